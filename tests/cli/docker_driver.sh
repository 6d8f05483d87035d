#!/bin/bash
# Docker's devicemapper driver on libthinp, end to end (issue 10's "done when"), as root:
#   init (ext4 base) -> a 3-layer image, each layer a tree of real files copied from the host
#   -> 2 containers -> writes in one -> the other container and the image unchanged ->
#   remove with deferred deletion while a file of the container is still open (the device is
#   marked deleted, `docker info` counts it, a later pass deletes it) -> the daemon killed
#   (-9) with a container mounted -> reopened: every file's checksum as expected (what was
#   synced before the kill included), `thinp check` and thin_check clean, `docker info`
#   consistent with the pool's own status. Then the same on an xfs base, with two snapshots
#   of one xfs image mounted at once (Docker's nouuid).
# BACKEND=kernel runs the same sequence on the kernel's dm-thin (thinp docker --backend
# kernel; the VM harness runs it: tests/vm/docker_kernel.sh): the pool's status and thins
# are then read from dm-thin and thin_dump, and Docker's udev sync refusal is checked first.
# TREE_DIRS: where the layers' files are picked from (default: the host's docs and libraries).
set -euo pipefail
THINP=${THINP:-impl/cli/thinp}
THINP=$(realpath "$THINP")
SEED=${THINP_SEED:-$RANDOM}
BACKEND=${BACKEND:-user}
TREE_DIRS=${TREE_DIRS:-/usr/share/doc /usr/share/perl5 /usr/lib/python3}
echo "docker_driver: THINP_SEED=$SEED BACKEND=$BACKEND"
[ "$(id -u)" = 0 ] || { echo "FAIL: needs root (mounts, loop devices, FUSE)"; exit 1; }
case $BACKEND in
user) [ -e /dev/fuse ] || { echo "FAIL: needs /dev/fuse"; exit 1; } ;;
kernel) [ -e /dev/mapper/control ] || { echo "FAIL: BACKEND=kernel needs device-mapper"; exit 1; } ;;
*) echo "FAIL: BACKEND=$BACKEND: use user or kernel"; exit 2 ;;
esac
tmp=$(mktemp -d)
roots=()
held=""
cleanup() {
	[ -z "$held" ] || kill "$held" 2>/dev/null || true
	local r
	for r in "${roots[@]}"; do
		"$THINP" docker cleanup "$r" >/dev/null 2>&1 || true
		[ -f "$r/thinbench/daemon.pid" ] && kill -9 "$(cat "$r/thinbench/daemon.pid")" 2>/dev/null || true
		grep -o " $r/[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -z "${R:-}" ] || tail -5 "$R/thinbench/daemon.log" >&2 || true; exit 1; }

# a seeded pick of N regular files of TREE_DIRS (under 200 kB), copied into DIR (awk, not
# python: the VM's guest has none)
copy_tree() {
	local dst=$1 n=$2 f
	# shellcheck disable=SC2086
	find $TREE_DIRS -type f -size -200k 2>/dev/null | LC_ALL=C sort |
		awk -v seed="$SEED$3" 'BEGIN {srand(seed % 2147483647)} {printf "%.9f %s\n", rand(), $0}' |
		LC_ALL=C sort -n | awk -v n="$n" 'NR <= n' | cut -d' ' -f2- | while IFS= read -r f; do
			mkdir -p "$dst/$(dirname "${f#/}")"
			cp -p "$f" "$dst/${f#/}"
		done
}
sums() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum); }

docker() { "$THINP" docker "$@"; }
# is a `thinp docker ... ROOT` process alive? (pgrep -f, which the VM's guest lacks)
daemon_runs() {
	local c
	for c in /proc/[0-9]*/cmdline; do
		{ tr '\0' ' ' <"$c"; } 2>/dev/null | grep -q "thinp docker.*$1" && return 0
	done
	return 1
}
kernel_opts=()
[ "$BACKEND" = kernel ] && kernel_opts=(--backend kernel)

run_sequence() {
	local fs=$1 basesize=$2
	R=$tmp/root-$fs
	roots+=("$R")
	local opts=(--storage-opt dm.fs="$fs" --storage-opt dm.basesize="$basesize"
		--storage-opt dm.loopdatasize=8G --storage-opt dm.loopmetadatasize=128M
		--storage-opt dm.use_deferred_removal=true --storage-opt dm.use_deferred_deletion=true)
	if [ "$BACKEND" = kernel ] && ! docker init "$R" "${opts[@]}" "${kernel_opts[@]}" \
		>"$tmp/init.out" 2>"$tmp/init.err"; then
		# Docker's refusal without udev sync (the VM has no udev), nothing made
		grep -qF "devmapper: Udev sync is not supported. This will lead to data loss" "$tmp/init.err" ||
			{ cat "$tmp/init.err"; fail "init ($fs, kernel)"; }
		[ ! -e "$R/devicemapper" ] || fail "the refused init made $R/devicemapper"
		echo "docker_driver: no udev sync: init refused with Docker's text, then overridden"
		opts+=(--storage-opt dm.override_udev_sync_check=true)
	fi
	docker init "$R" "${opts[@]}" "${kernel_opts[@]}" \
		>"$tmp/init.out" 2>"$tmp/init.err" || { cat "$tmp/init.err"; fail "init ($fs)"; }
	grep -qx "  Backing Filesystem: $fs" "$tmp/init.out" || fail "init: no $fs base: $(cat "$tmp/init.out")"
	grep -q "usage of loopback devices is strongly discouraged" "$tmp/init.err" ||
		fail "init: no loopback warning on stderr"
	[ "$(stat -c %a "$R/devicemapper")" = 700 ] || fail "ROOT/devicemapper is not 0700"
	[ "$(stat -c %a "$R/metadata/base")" = 600 ] || fail "metadata/base is not 0600"

	# the image: 3 layers, each a snapshot of the one below, each adding/changing files
	local parent="" i p
	for i in 1 2 3; do
		docker create "$R" "img$i" ${parent:+--parent "$parent"} || fail "create img$i"
		p=$(docker get "$R" "img$i") || fail "get img$i"
		[ "$p" = "$R/mnt/img$i/rootfs" ] || fail "get printed '$p'"
		# Docker writes the id file only when absent: a snapshot keeps its first layer's
		[ "$(cat "$R/mnt/img$i/id")" = img1 ] || fail "id file of img$i: $(cat "$R/mnt/img$i/id")"
		copy_tree "$p/layer$i" $((40 * i)) "$i"
		# the layer above changes files of the first (copies up, in the thin's blocks)
		[ "$i" = 1 ] || find "$p/layer1" -type f | sort | awk 'NR <= 5' | while read -r f; do
			echo "changed in img$i" >>"$f"; done
		sync -f "$p"
		sums "$p" >"$tmp/img$i.sums"
		docker put "$R" "img$i" || fail "put img$i"
		grep -q " $R/mnt/img$i " /proc/self/mountinfo && fail "img$i still mounted after put"
		parent=img$i
	done
	[ "$(wc -l <"$tmp/img3.sums")" -ge 200 ] || fail "image too small: $(wc -l <"$tmp/img3.sums") files"

	# two containers of the image; writes in c1 only
	docker create "$R" c1 --parent img3 || fail "create c1"
	docker create "$R" c2 --parent img3 || fail "create c2"
	local p1 p2
	p1=$(docker get "$R" c1) && p2=$(docker get "$R" c2) || fail "get c1/c2"
	sums "$p1" | cmp -s - "$tmp/img3.sums" || fail "c1 does not start as the image"
	find "$p1/layer2" -type f | sort | awk 'NR % 3 == 0' | while read -r f; do
		head -c 4096 /dev/urandom >>"$f"; done
	dd if=/dev/urandom of="$p1/new-32M" bs=1M count=32 status=none
	rm -rf "$p1/layer3"
	sync -f "$p1"
	sums "$p2" | cmp -s - "$tmp/img3.sums" || fail "c2 changed by writes in c1"
	sums "$p1" >"$tmp/c1.sums"
	cmp -s "$tmp/c1.sums" "$tmp/img3.sums" && fail "c1's writes are not there"
	docker put "$R" c2
	p=$(docker get "$R" img3)
	sums "$p" | cmp -s - "$tmp/img3.sums" || fail "the image changed by writes in a container"
	docker put "$R" img3
	docker info "$R" --format json >"$tmp/info.json"

	# remove with deferred deletion: a process still has a file of c1 open
	sleep 3600 <"$p1/new-32M" &
	held=$!
	docker put "$R" c1 || fail "put c1 with a file open"
	docker remove "$R" c1 || fail "remove c1 (deferred)"
	docker exists "$R" c1 >/dev/null || fail "a device marked deleted must still exist (Docker's Exists)"
	docker info "$R" | grep -qx "  Deferred Deleted Device Count: 1" || fail "deferred count is not 1"
	local out
	out=$(docker get "$R" c1 2>&1) && fail "get of a deleted device worked"
	grep -qF "devmapper: Can't mount device c1 as it has been marked for deferred deletion" <<<"$out" ||
		fail "get of a deleted device: $out"
	out=$(docker create "$R" c3 --parent c1 2>&1) && fail "a deleted device was used as a parent"
	grep -qF "devmapper: Base device c1 has been marked for deferred deletion" <<<"$out" || fail "$out"
	kill "$held"; wait "$held" 2>/dev/null || true; held=""
	# the loop, then FUSE, let go of the device asynchronously: passes until it is deleted
	local tries=0
	until docker info "$R" | grep -qx "  Deferred Deleted Device Count: 0"; do
		tries=$((tries + 1)); [ $tries -le 200 ] || fail "c1 never deleted by prune"
		docker prune "$R" >/dev/null
	done
	docker exists "$R" c1 >/dev/null && fail "c1 exists after its deferred deletion"

	# c2 mounted, synced writes, daemon killed
	p2=$(docker get "$R" c2)
	echo "written before the kill" >"$p2/synced"
	sync -f "$p2"
	sums "$p2" >"$tmp/c2.sums"
	kill -9 "$(cat "$R/thinbench/daemon.pid")"
	local pid; pid=$(cat "$R/thinbench/daemon.pid")
	while kill -0 "$pid" 2>/dev/null; do :; done
	docker ls "$R" >"$tmp/ls" || fail "ls after the kill"
	[ "$(tr '\n' ' ' <"$tmp/ls")" = "base c2 img1 img2 img3 " ] || fail "ls after the kill: $(cat "$tmp/ls")"
	grep -q " $R/" /proc/self/mountinfo && fail "mounts left after the reopen: $(grep " $R/" /proc/self/mountinfo)"
	p2=$(docker get "$R" c2) || fail "get c2 after the kill"
	sums "$p2" | cmp -s - "$tmp/c2.sums" || fail "c2 lost synced data in the kill"
	for i in 1 2 3; do
		p=$(docker get "$R" "img$i"); sums "$p" | cmp -s - "$tmp/img$i.sums" || fail "img$i changed"
		docker put "$R" "img$i"
	done
	# docker info against the pool's own status (the userspace pool through its control
	# socket, the daemon runs; the kernel's from dm-thin)
	docker info "$R" >"$tmp/info"
	local pool_name
	pool_name=$(sed -n 's/^  Pool Name: //p' "$tmp/info")
	if [ "$BACKEND" = kernel ]; then
		[ "$pool_name" = "$(basename "$(ls -d /dev/mapper/docker-*-pool)")" ] || fail "Pool Name $pool_name"
		"$THINP" --backend kernel pool status "$pool_name" --fields >"$tmp/fields" ||
			fail "pool status of the live pool"
		grep -qx "  Data file: /dev/loop[0-9]*" "$tmp/info" || fail "no Data file loop device"
		grep -qx "  Metadata loop file: $R/devicemapper/metadata" "$tmp/info" || fail "no Metadata loop file"
		grep -q "^  Library Version: 1\." "$tmp/info" || fail "no libdevmapper Library Version"
		sed 's/^/docker_driver: | /' "$tmp/info"
	else
		"$THINP" pool status "$R/devicemapper" --fields >"$tmp/fields" || fail "pool status of the live pool"
	fi
	# go-units HumanSize: %.4g of the value divided by 1000 until below 1000
	awk -v B=65536 'BEGIN {split("B kB MB GB TB", unit, " ")}
		function human(n, i) {i = 1; while (n >= 1000 && i < 5) {n /= 1000; i++}
			return sprintf("%.4g%s", n, unit[i])}
		NR == FNR {sub(/^[ \t]+/, ""); if (index($0, "=")) f[substr($0, 1, index($0, "=") - 1)] = substr($0, index($0, "=") + 1); next}
		/^  [A-Z].*: / {k = substr($0, 3, index($0, ": ") - 3); info[k] = substr($0, index($0, ": ") + 2)}
		END {
			want["Pool Blocksize"] = human(B)
			want["Data Space Used"] = human(f["used_data_blocks"] * B)
			want["Data Space Total"] = human(f["total_data_blocks"] * B)
			want["Metadata Space Used"] = human(f["used_meta_blocks"] * 4096)
			want["Metadata Space Total"] = human(f["total_meta_blocks"] * 4096)
			want["Thin Pool Minimum Free Space"] = human(int(f["total_data_blocks"] * 10 / 100) * B)
			if (!("total_data_blocks" in f)) {print "no total_data_blocks in the status fields"; exit 1}
			for (k in want) if (info[k] != want[k]) {print k ": docker info " info[k] ", pool " want[k]; bad = 1}
			exit bad
		}' "$tmp/fields" "$tmp/info" || fail "docker info disagrees with the pool status" 
	docker put "$R" c2
	docker cleanup "$R" || fail "cleanup"
	grep -q " $R/" /proc/self/mountinfo && fail "mounts left after cleanup"
	daemon_runs "$R" && fail "a daemon still runs after cleanup"
	"$THINP" check "$R/devicemapper/metadata" >/dev/null || fail "thinp check after the sequence"
	if command -v thin_check >/dev/null; then
		thin_check "$R/devicemapper/metadata" >/dev/null 2>&1 || fail "thin_check after the sequence"
	fi
	# the pool's thins are exactly the devices the metadata files name
	local want_ids have_ids
	want_ids=$(find "$R/metadata" -type f ! -name deviceset-metadata ! -name transaction-metadata \
		-exec cat {} + | grep -o '"device_id":[0-9]*' | cut -d: -f2 | sort -n | tr '\n' ' ')
	if [ "$BACKEND" = kernel ]; then
		[ ! -e "/dev/mapper/$pool_name" ] || fail "the pool $pool_name is still active after cleanup"
		have_ids=$(thin_dump "$R/devicemapper/metadata" | grep -o 'dev_id="[0-9]*"' | tr -dc '0-9\n' | sort -n | tr '\n' ' ')
	else
		have_ids=$("$THINP" thin ls "$R/devicemapper" --noheadings -o DEV | awk '{print $1}' | sort -n | tr '\n' ' ')
	fi
	[ "$want_ids" = "$have_ids" ] || fail "thins in the pool ($have_ids) vs metadata files ($want_ids)"
	echo "docker_driver: $fs sequence OK ($(wc -l <"$tmp/img3.sums") image files, ids $have_ids)"
}

run_sequence ext4 256M
if [ "$BACKEND" = kernel ] && ! grep -qw xfs /proc/filesystems && ! modprobe xfs 2>/dev/null; then
	echo "docker_driver: NOTE: this kernel has no xfs: the xfs sequence is not run on it"
elif command -v mkfs.xfs >/dev/null; then
	run_sequence xfs 512M
	# two snapshots of one xfs image mounted at once: the same UUID, mounted with nouuid
	R=$tmp/root-xfs
	docker create "$R" x1 --parent img3 && docker create "$R" x2 --parent img3
	a=$(docker get "$R" x1) && b=$(docker get "$R" x2) || fail "two xfs snapshots mounted at once"
	grep " $R/mnt/x1 " /proc/self/mountinfo | grep -q nouuid || fail "xfs mounted without nouuid"
	docker put "$R" x1; docker put "$R" x2; docker cleanup "$R"
else
	echo "FAIL: mkfs.xfs missing (xfsprogs is a test dependency)"; exit 1
fi
echo "PASS"
