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
set -euo pipefail
THINP=${THINP:-impl/cli/thinp}
THINP=$(realpath "$THINP")
SEED=${THINP_SEED:-$RANDOM}
echo "docker_driver: THINP_SEED=$SEED"
[ "$(id -u)" = 0 ] || { echo "FAIL: needs root (mounts, loop devices, FUSE)"; exit 1; }
[ -e /dev/fuse ] || { echo "FAIL: needs /dev/fuse"; exit 1; }
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

# a seeded pick of N regular files of the host (under /usr), copied into DIR
copy_tree() {
	python3 - "$1" "$2" "$SEED$3" <<'PY'
import os, random, shutil, sys
dst, n, seed = sys.argv[1], int(sys.argv[2]), sys.argv[3]
files = []
for top in ("/usr/share/doc", "/usr/share/perl5", "/usr/lib/python3"):
    for d, _, names in os.walk(top):
        for f in names:
            p = os.path.join(d, f)
            if os.path.isfile(p) and not os.path.islink(p) and os.path.getsize(p) < 200_000:
                files.append(p)
files.sort()
for p in random.Random(seed).sample(files, min(n, len(files))):
    t = os.path.join(dst, p.lstrip("/"))
    os.makedirs(os.path.dirname(t), exist_ok=True)
    shutil.copy2(p, t)
PY
}
sums() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum); }

docker() { "$THINP" docker "$@"; }

run_sequence() {
	local fs=$1 basesize=$2
	R=$tmp/root-$fs
	roots+=("$R")
	docker init "$R" --storage-opt dm.fs="$fs" --storage-opt dm.basesize="$basesize" \
		--storage-opt dm.loopdatasize=8G --storage-opt dm.loopmetadatasize=128M \
		--storage-opt dm.use_deferred_removal=true --storage-opt dm.use_deferred_deletion=true \
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
		mountpoint -q "$R/mnt/img$i" && fail "img$i still mounted after put"
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
	# docker info against the pool's own status (through its control socket, the daemon runs)
	docker info "$R" --format json >"$tmp/info.json"
	"$THINP" pool status "$R/devicemapper" --fields >"$tmp/fields" || fail "pool status of the live pool"
	python3 - "$tmp/info.json" "$tmp/fields" <<'PY' || fail "docker info disagrees with the pool status"
import json, sys
info = dict(json.load(open(sys.argv[1]))["DriverStatus"])
f = dict(l.strip().split("=", 1) for l in open(sys.argv[2]) if "=" in l)
def human(n):
    units = ["B", "kB", "MB", "GB", "TB"]
    v, i = float(n), 0
    while v >= 1000 and i < len(units) - 1:
        v /= 1000; i += 1
    return ("%.4g" % v) + units[i]
def num(*keys):
    for k in keys:
        if k in f:
            return int(f[k])
    raise SystemExit("no %s in status fields: %s" % (keys, sorted(f)))
B = 65536
want = {
    "Pool Blocksize": human(B),
    "Data Space Used": human(num("used_data_blocks") * B),
    "Data Space Total": human(num("total_data_blocks") * B),
    "Metadata Space Used": human(num("used_meta_blocks") * 4096),
    "Metadata Space Total": human(num("total_meta_blocks") * 4096),
    "Thin Pool Minimum Free Space": human(num("total_data_blocks") * 10 // 100 * B),
}
bad = {k: (info.get(k), v) for k, v in want.items() if info.get(k) != v}
if bad:
    raise SystemExit("docker info vs pool status: %s" % bad)
PY
	docker put "$R" c2
	docker cleanup "$R" || fail "cleanup"
	grep -q " $R/" /proc/self/mountinfo && fail "mounts left after cleanup"
	pgrep -f "thinp docker.*$R" >/dev/null && fail "a daemon still runs after cleanup"
	"$THINP" check "$R/devicemapper/metadata" >/dev/null || fail "thinp check after the sequence"
	if command -v thin_check >/dev/null; then
		thin_check "$R/devicemapper/metadata" >/dev/null 2>&1 || fail "thin_check after the sequence"
	fi
	# the pool's thins are exactly the devices the metadata files name
	local want_ids have_ids
	want_ids=$(find "$R/metadata" -type f ! -name deviceset-metadata ! -name transaction-metadata \
		-exec cat {} + | grep -o '"device_id":[0-9]*' | cut -d: -f2 | sort -n | tr '\n' ' ')
	have_ids=$("$THINP" thin ls "$R/devicemapper" --noheadings -o DEV | awk '{print $1}' | sort -n | tr '\n' ' ')
	[ "$want_ids" = "$have_ids" ] || fail "thins in the pool ($have_ids) vs metadata files ($want_ids)"
	echo "docker_driver: $fs sequence OK ($(wc -l <"$tmp/img3.sums") image files, ids $have_ids)"
}

run_sequence ext4 256M
if command -v mkfs.xfs >/dev/null; then
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
