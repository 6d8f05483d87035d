#!/usr/bin/env bash
# Build (or check up to date) the thinbench VM: Debian's kernel (vmlinux extracted from
# linux-image-amd64, booted via PVH) and a base initramfs holding busybox, bash, kmod,
# dmsetup, lvm2 (with dmeventd and its thin plugin), thin-provisioning-tools, fio, util-linux
# and e2fsprogs with their library closure and the dm-thin / virtio / 9p / ext4 modules, and
# python3 with the part of its standard library scenarios/run needs (make vm-bench). Debian
# packages only.
# thinbench's own binaries are not in the base image: ci/vm/run.sh appends them, fresh
# from the repo, as a second cpio archive at every boot.
#
# Usage: ci/vm/build.sh [--force] [--check]
#   --force   rebuild even when up to date
#   --check   only say whether the cached image is up to date (exit 0 yes, 1 no)
# Cache: ${XDG_CACHE_HOME:-$HOME/.cache}/thinbench/vm (THINBENCH_VM_CACHE overrides).
# Installing missing host packages needs root; otherwise the exact command is printed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=ci/vm/lib.sh
. "$here/lib.sh"

force=0 check=0
for a in "$@"; do
	case $a in
	--force) force=1 ;;
	--check) check=1 ;;
	-h | --help)
		awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"
		exit 0
		;;
	*) vm_die "unknown argument '$a' (see --help)" ;;
	esac
done

# Host packages: the tools copied into the image, qemu to boot it, and the build tools.
PACKAGES=(qemu-system-x86 busybox-static lvm2 dmsetup dmeventd thin-provisioning-tools fio kmod
	cpio e2fsprogs util-linux coreutils bash xz-utils xfsprogs python3)
# Kernel modules the guest loads (dependencies are resolved with modprobe --show-depends).
MODULES=(virtio_pci virtio_blk virtio_rng 9pnet_virtio 9p loop dm-mod dm-thin-pool
	dm-snapshot dm-zero dm-flakey crc32c_intel crc32c_generic libcrc32c ext4 xfs)
# Tools in the image (host paths are looked up with command -v).
TOOLS=(bash kmod dmsetup lvm losetup blkdiscard blockdev lsblk mke2fs pdata_tools fio dd
	fallocate sha256sum cmp truncate stat mkfs.xfs python3 blkid dmeventd)
# dmeventd's thin plugin (dlopened by name, so no ldd finds it): it polls a monitored LVM thin
# pool and runs lvextend --use-policies in-process through liblvm2cmd (the autoextend profile)
DM_PLUGINS=(libdevmapper-event-lvm2thin.so)
# The standard library's parts a guest without a terminal, network or GUI never imports
# (tests, IDEs, Tk, the build config, bytecode caches), left out of the image (about 40 of
# its 54 MB); what scenarios/run imports stays.
PY_SKIP_DIRS=(test idlelib tkinter turtledemo lib2to3 ensurepip pydoc_data site-packages
	dist-packages 'config-*' __pycache__ unittest/test ctypes/test distutils/tests
	sqlite3/test)
PY_SKIP_EXT=('_test*' '_ctypes_test*' 'xx*' '_tkinter*' '_ssl*' '_hashlib*' '_sqlite3*' '_dbm*'
	'nis*' '_curses*' 'readline*' 'ossaudiodev*' 'audioop*' '_crypt*' '_codecs_[a-z][a-z]*')

# ---- host packages ----------------------------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
	[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" = "install ok installed" ] ||
		missing+=("$p")
done
apt_updated=0
apt_update() {
	[ "$apt_updated" = 1 ] && return 0
	vm_log "apt-get update"
	apt-get update -qq
	apt_updated=1
}
if [ "${#missing[@]}" -gt 0 ]; then
	[ "$check" = 1 ] && { echo "vm image: host packages missing: ${missing[*]}"; exit 1; }
	if [ "$(id -u)" -ne 0 ]; then
		vm_die "missing Debian packages: ${missing[*]}; run as root:
  apt-get update && apt-get install -y ${missing[*]}"
	fi
	apt_update
	vm_log "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
for c in dpkg-deb apt-get depmod modprobe cpio ldd xz busybox qemu-system-x86_64; do
	vm_need_cmd "$c" "see PACKAGES in $0"
done

# ---- the kernel package -----------------------------------------------------------------------
kernel_pkg() { # the ABI package linux-image-amd64 depends on, e.g. linux-image-6.1.0-56-amd64
	apt-cache depends linux-image-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ {print $2; exit}'
}
kpkg=$(kernel_pkg || true)
if [ -z "$kpkg" ] && [ "$check" = 0 ] && [ "$(id -u)" -eq 0 ]; then
	apt_update
	kpkg=$(kernel_pkg || true)
fi
[ -n "$kpkg" ] || vm_die "apt knows no linux-image-amd64 (run apt-get update as root)"
kver_deb=$(apt-cache policy "$kpkg" | awk '/Candidate:/ {print $2}')
kver=${kpkg#linux-image-} # 6.1.0-56-amd64: the module directory (uname -r)

# ---- up-to-date check -------------------------------------------------------------------------
tool_paths=()
for t in "${TOOLS[@]}"; do
	p=$(PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH command -v "$t") || vm_die "'$t' not found on the host"
	tool_paths+=("$p")
done
plugin_paths=()
for p in "${DM_PLUGINS[@]}"; do
	f=$(dpkg -L dmeventd | grep -v /device-mapper/ | grep -m1 "/$p\$") || vm_die "dmeventd ships no $p (dpkg -L dmeventd)"
	plugin_paths+=("$f")
done
bb=$(command -v busybox)
key=$({
	echo "kernel $kpkg $kver_deb"
	echo "modules ${MODULES[*]}"
	dpkg-query -W "${PACKAGES[@]}" libc6 libdevmapper1.02.1 2>/dev/null
	sha256sum "$here/build.sh" "$here/lib.sh" "$here/init" "$here/guest-run" | awk '{print $1}'
	sha256sum "${tool_paths[@]}" "$bb" "${plugin_paths[@]}" | awk '{print $1}'
} | sha256sum | cut -d' ' -f1)
if [ "$force" = 0 ] && [ -f "$VM_CACHE/stamp" ] && [ "$(cat "$VM_CACHE/stamp")" = "$key" ] &&
	[ -f "$VM_CACHE/vmlinux" ] && [ -f "$VM_CACHE/base.cpio" ]; then
	[ "$check" = 1 ] && echo "vm image: up to date ($VM_CACHE)"
	exit 0
fi
if [ "$check" = 1 ]; then
	echo "vm image: not built or out of date ($VM_CACHE)"
	exit 1
fi

t0=$(date +%s.%N)
mkdir -p "$VM_CACHE/debs"
work=$(mktemp -d "${TMPDIR:-/tmp}/thinbench-vm-build.XXXXXX")
trap 'rm -rf "$work"' EXIT

deb=$(ls "$VM_CACHE/debs/${kpkg}_"*.deb 2>/dev/null | head -n1 || true)
if [ -z "$deb" ] || [ "$(dpkg-deb -f "$deb" Version)" != "$kver_deb" ]; then
	rm -f "$VM_CACHE/debs/"linux-image-*.deb
	vm_log "downloading $kpkg $kver_deb"
	dl_opts=()
	[ "$(id -u)" -eq 0 ] && dl_opts=(-o APT::Sandbox::User=root)
	(cd "$VM_CACHE/debs" && apt-get download -qq "${dl_opts[@]}" "$kpkg=$kver_deb") ||
		vm_die "apt-get download $kpkg failed"
	deb=$(ls "$VM_CACHE/debs/${kpkg}_"*.deb | head -n1)
fi

vm_log "extracting $(basename "$deb")"
ktree=$work/kernel
dpkg-deb -x "$deb" "$ktree"
vmlinuz=$ktree/boot/vmlinuz-$kver
[ -f "$vmlinuz" ] || vm_die "no /boot/vmlinuz-$kver in $deb"

# extract-vmlinux: find the compressed payload in the bzImage and unpack it (PVH boots
# the uncompressed ELF directly, skipping BIOS and the in-guest decompressor).
extract_vmlinux() {
	local img=$1 out=$2 magic cmd off
	for pair in '\xfd7zXZ\x00:xz -dc' '\x28\xb5\x2f\xfd:zstd -dc' '\x1f\x8b\x08:gzip -dc'; do
		magic=${pair%%:*} cmd=${pair#*:}
		command -v "${cmd%% *}" >/dev/null || continue
		for off in $(LC_ALL=C grep -obUaP "$magic" "$img" | cut -d: -f1); do
			tail -c +$((off + 1)) "$img" | $cmd >"$out" 2>/dev/null || true
			[ "$(head -c 4 "$out" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] && return 0
		done
	done
	return 1
}
extract_vmlinux "$vmlinuz" "$work/vmlinux" || vm_die "could not extract vmlinux from $vmlinuz"
if command -v readelf >/dev/null && ! readelf -n "$work/vmlinux" | grep -q 'Xen.*0x00000012\|PHYS32_ENTRY'; then
	vm_log "warning: vmlinux has no PVH entry note; qemu may not boot it directly"
fi

# ---- image tree -------------------------------------------------------------------------------
root=$work/root
mkdir -p "$root"/usr/{bin,sbin,lib,lib64} "$root"/{proc,sys,dev,run,tmp,root,mnt,etc/thinbench,etc/lvm}
for d in bin sbin lib lib64; do ln -s "usr/$d" "$root/$d"; done
chmod 1777 "$root/tmp"

vm_log "resolving modules"
depmod -b "$ktree" "$kver"
mods=()
for m in "${MODULES[@]}"; do
	out=$(modprobe -d "$ktree" -S "$kver" --show-depends "$m" 2>&1) ||
		vm_die "module $m: $out"
	while read -r w path _; do
		[ "$w" = insmod ] && mods+=("$path")
	done <<<"$out"
done
mdir=/usr/lib/modules/$kver
mkdir -p "$root$mdir"
for f in "${mods[@]}"; do
	rel=${f#"$ktree"/lib/modules/"$kver"/}
	mkdir -p "$root$mdir/$(dirname "$rel")"
	cp -n "$f" "$root$mdir/$rel"
done
cp "$ktree/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} "$root$mdir/"
depmod -b "$root" "$kver"
printf '%s\n' "${MODULES[@]}" >"$root/etc/thinbench/modules"

vm_log "copying tools and their libraries"
vm_add_closure "$root" "${tool_paths[@]}" "${plugin_paths[@]}"
cp "$bb" "$root/usr/bin/busybox"
# python3's standard library (the interpreter itself came with TOOLS)
pyver=$(readlink -f "$(PATH=/usr/bin:$PATH command -v python3)")
pylib=/usr/lib/$(basename "$pyver")
[ -d "$pylib" ] || vm_die "no standard library at $pylib for $pyver"
skip=()
for d in "${PY_SKIP_DIRS[@]}"; do skip+=(-path "./$d" -prune -o -path "*/$d" -prune -o); done
for e in "${PY_SKIP_EXT[@]}"; do skip+=(-path "./lib-dynload/$e" -prune -o); done
(cd "$pylib" && find . "${skip[@]}" \( -type f -o -type l \) -print) | while read -r f; do
	mkdir -p "$root$pylib/$(dirname "$f")"
	cp -P "$pylib/$f" "$root$pylib/$f"
done
vm_add_libs "$root" "$root$pylib"/lib-dynload/*.so
# Debian's site.py hook (a link into /etc): its target, so the link is not dangling
for f in "$pylib"/sitecustomize.py; do
	[ -L "$f" ] && [ -f "$(readlink -f "$f")" ] && vm_add_file "$root" "$(readlink -f "$f")"
done
# kmod's applets, lvm's commands, pdata_tools' commands, mkfs.ext4
for l in modprobe insmod rmmod lsmod depmod modinfo; do ln -sf ../bin/kmod "$root/usr/sbin/$l"; done
for l in pvcreate pvremove pvs pvdisplay vgcreate vgremove vgchange vgs vgdisplay vgextend \
	lvcreate lvremove lvconvert lvchange lvextend lvresize lvs lvdisplay lvmconfig; do
	ln -sf lvm "$root/usr/sbin/$l"
done
for l in thin_check thin_dump thin_restore thin_repair thin_ls thin_delta thin_trim \
	thin_metadata_size thin_rmap cache_check era_check; do
	ln -sf pdata_tools "$root/usr/sbin/$l"
done
ln -sf mke2fs "$root/usr/sbin/mkfs.ext4"
# busybox applets for everything not provided by a real tool
while read -r a; do
	a=${a#/}
	case $a in bin/* | sbin/*) a=usr/$a ;; esac
	[ -e "$root/$a" ] || [ -L "$root/$a" ] || ln -s /usr/bin/busybox "$root/$a"
done < <("$bb" --list-full)

cat >"$root/etc/lvm/lvm.conf" <<'EOF'
# No udev and no daemons in this guest.
devices {
	obtain_device_list_from_udev = 0
	external_device_info_source = "none"
}
activation {
	udev_sync = 0
	udev_rules = 0
	monitoring = 0
}
global {
	use_lvmlockd = 0
}
backup {
	backup = 0
	archive = 0
}
EOF
mkdir -p "$root/etc/lvm/profile"
printf 'root:x:0:0:root:/root:/usr/bin/bash\n' >"$root/etc/passwd"
printf 'root:x:0:\ndisk:x:6:\n' >"$root/etc/group"
install -m 0755 "$here/init" "$root/init"
install -m 0755 "$here/guest-run" "$root/etc/thinbench/guest-run"
echo "$kpkg $kver_deb" >"$root/etc/thinbench/kernel"

vm_log "packing the initramfs"
vm_pack_cpio "$root" "$work/base.cpio"
(cd "$root" && find . -mindepth 1 | sed 's|^\.||') | LC_ALL=C sort >"$work/base.files"

mv -f "$work/vmlinux" "$VM_CACHE/vmlinux"
mv -f "$work/base.cpio" "$VM_CACHE/base.cpio"
mv -f "$work/base.files" "$VM_CACHE/base.files"
echo "$kpkg $kver_deb" >"$VM_CACHE/kernel"
echo "$key" >"$VM_CACHE/stamp"
t1=$(date +%s.%N)
vm_log "built $VM_CACHE: vmlinux $(du -h "$VM_CACHE/vmlinux" | cut -f1), initramfs $(du -h "$VM_CACHE/base.cpio" | cut -f1), kernel $kpkg $kver_deb, $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') s"
