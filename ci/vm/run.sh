#!/usr/bin/env bash
# Boot the thinbench VM (built by ci/vm/build.sh) and run one job script inside it.
#
# Usage: ci/vm/run.sh SCRIPT [options]
#   --disk SIZE[:SERIAL]  add a virtio disk (host file, fallocate'd); repeatable. Serials
#                         default to disk0, disk1, ...; in the guest: /dev/disk/by-id/virtio-SERIAL
#   --file PATH           copy PATH into the guest's $IN directory; repeatable
#   --env NAME=VALUE      export NAME in the job; repeatable
#   --timeout S           kill the VM after S seconds (default 600); exit 124 then
#   --out DIR             copy the job's $OUT files here (default build/vm/out), plus
#                         accel.txt, console.log, vm-times.txt, exit-code
#   --accel auto|kvm|tcg  auto (default): KVM if a probe boot works (verdict cached), else TCG
#   -v, --verbose         stream the guest console to stderr
# Environment: THINP, THINP_IOENGINE (the thinbench binaries put in the guest; default
#   impl/cli/thinp and ioengine/thinp.so of this repo), VM_ACCEL (as --accel), VM_MEM (2G), VM_SMP (2), VM_KVM_PROBE_TIMEOUT (30),
#   VM_CMDLINE_EXTRA (appended to the kernel command line), VM_TCG_CPU (max).
# The job runs under bash as root with OUT (write results here), IN, THINP (the thinp CLI),
# THINP_IOENGINE (fio engine, when built), DM_DISABLE_UDEV=1. Exit status: the job's, or
# 124 on timeout, 125 if the VM stopped without the job finishing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=ci/vm/lib.sh
. "$here/lib.sh"

usage() { awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; }

script="" timeout=600 out="" accel=${VM_ACCEL:-auto} verbose=0
disks=() files=() envs=()
while [ $# -gt 0 ]; do
	case $1 in
	--disk) disks+=("${2:?--disk needs SIZE}"); shift 2 ;;
	--file) files+=("${2:?--file needs PATH}"); shift 2 ;;
	--env) envs+=("${2:?--env needs NAME=VALUE}"); shift 2 ;;
	--timeout) timeout=${2:?--timeout needs seconds}; shift 2 ;;
	--out) out=${2:?--out needs DIR}; shift 2 ;;
	--accel) accel=${2:?--accel needs auto, kvm or tcg}; shift 2 ;;
	-v | --verbose) verbose=1; shift ;;
	-h | --help) usage; exit 0 ;;
	-*) echo "run.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
	*)
		[ -z "$script" ] || { echo "run.sh: one SCRIPT only ('$1')" >&2; exit 2; }
		script=$1; shift ;;
	esac
done
[ -n "$script" ] || { usage >&2; exit 2; }
[ -f "$script" ] || vm_die "no such script: $script"
if ! [[ $timeout =~ ^[1-9][0-9]*$ ]]; then vm_die "bad --timeout '$timeout' (seconds)"; fi
case $accel in auto | kvm | tcg) ;; *) vm_die "bad --accel '$accel' (auto, kvm or tcg)" ;; esac
for f in "${files[@]}"; do [ -e "$f" ] || vm_die "no such file: $f"; done
for e in "${envs[@]}"; do [[ $e =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || vm_die "bad --env '$e'"; done
out=${out:-$repo/build/vm/out}

vm_need_cmd qemu-system-x86_64 qemu-system-x86
vm_need_cmd cpio cpio
vm_need_cmd fallocate util-linux
vm_need_cmd timeout coreutils
for f in vmlinux base.cpio base.files kernel; do
	[ -f "$VM_CACHE/$f" ] || vm_die "no VM image in $VM_CACHE: run ci/vm/build.sh first"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/thinbench-vm.XXXXXX")
vm_pid=""
cleanup() {
	if [ -n "$vm_pid" ]; then # timeout(1) passes the TERM on to qemu
		kill -TERM "$vm_pid" 2>/dev/null || true
		wait "$vm_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'vm_log "interrupted: stopping the VM"; exit 130' INT TERM

# ---- initramfs: the cached base + thinbench's current binaries ----------------------------------
ov=$tmp/overlay
mkdir -p "$ov/usr/local/bin" "$ov/usr/local/lib/thinbench"
thinp_bin=${THINP:-$repo/impl/cli/thinp}
thinp_so=${THINP_IOENGINE:-$repo/ioengine/thinp.so}
if [ -x "$thinp_bin" ]; then
	vm_add_libs "$ov" "$thinp_bin"
	cp "$thinp_bin" "$ov/usr/local/bin/thinp"
else
	vm_log "note: $thinp_bin not built (make cli): the guest has no thinp"
fi
if [ -f "$thinp_so" ]; then
	vm_add_libs "$ov" "$thinp_so"
	cp "$thinp_so" "$ov/usr/local/lib/thinbench/thinp.so"
fi
# libraries the base already has are dropped (the base's copy wins anyway)
(cd "$ov" && find . -mindepth 1 \( -type f -o -type l \) | sed 's|^\.||') | while read -r f; do
	if grep -qxF "$f" "$VM_CACHE/base.files"; then rm -f "$ov$f"; fi
done
find "$ov" -mindepth 1 -type d -empty -delete 2>/dev/null || true
mkdir -p "$ov/usr/local/bin"
vm_pack_cpio "$ov" "$tmp/overlay.cpio"
cat "$VM_CACHE/base.cpio" "$tmp/overlay.cpio" >"$tmp/initrd.cpio"
rm -rf "$ov" "$tmp/overlay.cpio"

# ---- disks ------------------------------------------------------------------------------------
cache_mode=none
if ! dd if=/dev/zero of="$tmp/.dio" bs=4096 count=1 oflag=direct status=none 2>/dev/null; then
	cache_mode=writeback # e.g. tmpfs: no O_DIRECT
fi
rm -f "$tmp/.dio"
disk_args=()
i=0
for d in "${disks[@]}"; do
	size=${d%%:*} serial=disk$i
	[[ $d == *:* ]] && serial=${d#*:}
	[[ $serial =~ ^[A-Za-z0-9_-]{1,20}$ ]] || vm_die "bad disk serial '$serial' (1-20 of A-Za-z0-9_-)"
	img=$tmp/disk$i.img
	fallocate -l "$size" "$img" || vm_die "cannot allocate a $size disk image in $tmp"
	disk_args+=(-drive "file=$img,if=none,id=d$i,format=raw,cache=$cache_mode,aio=threads"
		-device "virtio-blk-pci,drive=d$i,serial=$serial")
	i=$((i + 1))
done

# ---- boot -------------------------------------------------------------------------------------
# boot_vm ACCEL TIMEOUT SHARE LOGPREFIX -- runs SHARE/job.sh; returns qemu's/timeout's status
boot_vm() {
	local acc=$1 tmo=$2 share=$3 log=$4 cpu accel_opt
	if [ "$acc" = kvm ]; then
		accel_opt=kvm cpu=host,-arch-capabilities
	else
		accel_opt=tcg,thread=multi cpu=${VM_TCG_CPU:-max}
	fi
	local cmd=(qemu-system-x86_64 -nodefaults -no-user-config -display none -no-reboot
		-machine pc -accel "$accel_opt" -cpu "$cpu" -m "${VM_MEM:-2G}" -smp "${VM_SMP:-2}"
		-kernel "$VM_CACHE/vmlinux" -initrd "$tmp/initrd.cpio"
		-append "console=ttyS0 rdinit=/init panic=-1 quiet loglevel=4 mitigations=off ${VM_CMDLINE_EXTRA:-}"
		-serial stdio -device virtio-rng-pci
		-virtfs "local,path=$share,mount_tag=share,security_model=none,id=share"
		"${disk_args[@]}")
	local rc=0 tail_pid=""
	# in the background, so that a signal to this script is handled at once (cleanup)
	timeout -k 5 "$tmo" "${cmd[@]}" </dev/null >"$log.console" 2>"$log.err" &
	vm_pid=$!
	if [ "$verbose" = 1 ]; then
		tail -n +1 -f --pid="$vm_pid" "$log.console" >&2 &
		tail_pid=$!
	fi
	wait "$vm_pid" || rc=$?
	vm_pid=""
	[ -z "$tail_pid" ] || wait "$tail_pid" || true
	return "$rc"
}

new_share() { # DIR SCRIPT
	mkdir -p "$1/out" "$1/in"
	cp "$2" "$1/job.sh"
}

kernel=$(cat "$VM_CACHE/kernel")
accel_reason=""
if [ "$accel" = auto ]; then
	verdict_key="host $(uname -r) | $(qemu-system-x86_64 --version | head -n1) | $kernel | $(sha256sum "$VM_CACHE/vmlinux" | cut -c1-16)"
	vf=$VM_CACHE/accel-verdict
	if [ -f "$vf" ] && [ "$(head -n1 "$vf")" = "$verdict_key" ]; then
		accel=$(sed -n 2p "$vf")
		accel_reason="$(sed -n 3p "$vf") (cached probe verdict)"
	elif [ ! -e /dev/kvm ]; then
		accel=tcg accel_reason="no /dev/kvm"
	elif [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
		accel=tcg accel_reason="/dev/kvm not accessible to $(id -un)"
	else
		probe_t=${VM_KVM_PROBE_TIMEOUT:-30}
		vm_log "probing KVM (one boot, at most ${probe_t} s; the verdict is cached)"
		ps=$tmp/probe
		printf '#!/bin/bash\necho ok >"$OUT/probe"\n' >"$tmp/probe.sh"
		new_share "$ps" "$tmp/probe.sh"
		p0=$(date +%s.%N)
		prc=0
		saved_disks=("${disk_args[@]}")
		disk_args=()
		boot_vm kvm "$probe_t" "$ps" "$tmp/probe" || prc=$?
		disk_args=("${saved_disks[@]}")
		p1=$(date +%s.%N)
		pt=$(awk -v a="$p0" -v b="$p1" 'BEGIN {printf "%.1f", b - a}')
		if [ "$prc" = 0 ] && [ "$(cat "$ps/out/probe" 2>/dev/null)" = ok ]; then
			accel=kvm accel_reason="KVM probe boot succeeded in $pt s"
		else
			why=$(grep -m1 -iE 'error|fail' "$tmp/probe.err" 2>/dev/null | cut -c1-160 || true)
			[ "$prc" = 124 ] && why="no guest userspace within ${probe_t} s${why:+; $why}"
			accel=tcg accel_reason="KVM probe failed after $pt s (${why:-qemu exit $prc})"
		fi
		printf '%s\n%s\n%s\n' "$verdict_key" "$accel" "$accel_reason" >"$vf"
		rm -rf "$ps"
	fi
else
	accel_reason="forced (--accel/VM_ACCEL)"
fi
vm_log "accelerator: $accel — $accel_reason"

share=$tmp/share
new_share "$share" "$script"
for f in "${files[@]}"; do cp -r "$f" "$share/in/"; done
[ "${#envs[@]}" -eq 0 ] || printf '%s\n' "${envs[@]}" >"$share/env"
vm_log "booting $kernel ($accel, ${VM_SMP:-2} CPUs, ${VM_MEM:-2G}, ${#disks[@]} disk(s), timeout ${timeout} s)"
t0=$(date +%s.%N)
rc=0
boot_vm "$accel" "$timeout" "$share" "$tmp/vm" || rc=$?
t1=$(date +%s.%N)
wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')

mkdir -p "$out"
cp -r "$share/out/." "$out/" 2>/dev/null || true
cp "$tmp/vm.console" "$out/console.log"
[ -s "$tmp/vm.err" ] && cp "$tmp/vm.err" "$out/qemu-stderr.log"
{
	echo "$accel"
	echo "reason: $accel_reason"
	echo "cpu: $([ "$accel" = kvm ] && echo host,-arch-capabilities || echo "${VM_TCG_CPU:-max}"), smp ${VM_SMP:-2}, mem ${VM_MEM:-2G}, disk cache=$cache_mode"
} >"$out/accel.txt"
boot="" job=""
if [ -f "$share/guest-times" ] && read -r gs ge <"$share/guest-times"; then
	boot=$gs job=$(awk -v a="$gs" -v b="$ge" 'BEGIN {printf "%.1f", b - a}')
fi
printf 'wall_s=%s guest_uptime_at_job_start_s=%s job_s=%s accel=%s kernel=%s\n' \
	"$wall" "${boot:-?}" "${job:-?}" "$accel" "${kernel// /=}" >"$out/vm-times.txt"

if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
	vm_log "TIMEOUT: the VM was killed after ${timeout} s; last console lines:"
	tail -n 30 "$tmp/vm.console" | sed 's/^/  | /' >&2
	echo timeout >"$out/exit-code"
	exit 124
fi
if [ ! -f "$share/exit-code" ]; then
	vm_log "the VM stopped (qemu exit $rc) before the job finished; last console lines:"
	tail -n 30 "$tmp/vm.console" | sed 's/^/  | /' >&2
	[ -s "$tmp/vm.err" ] && sed 's/^/  qemu: /' "$tmp/vm.err" >&2
	echo none >"$out/exit-code"
	exit 125
fi
jrc=$(cat "$share/exit-code")
cp "$share/exit-code" "$out/exit-code"
vm_log "job exit $jrc; wall ${wall} s (boot ≈ ${boot:-?} s guest uptime, job ${job:-?} s); output in $out"
exit "$jrc"
