#!/bin/bash
# Guest half of tests/vm/docker_kernel.sh: tests/cli/docker_driver.sh with BACKEND=kernel on
# an ext4 scratch disk, its layers picked from the host's files in $IN/tree.tar.
set -euo pipefail
mkdir -p /usr/local/sbin
for t in tune2fs blkid; do
	cp "$IN/$t" "/usr/local/sbin/$t" && chmod 0755 "/usr/local/sbin/$t"
done
# the guest's tools, first: the driver's mkfs.ext4, tune2fs and blkid -p must work
command -v mkfs.ext4 >/dev/null || { echo "FAIL: the guest has no mkfs.ext4"; exit 1; }
blkid -V >/dev/null || { echo "FAIL: blkid does not run in the guest"; exit 1; }
{ tune2fs 2>&1 || true; } | grep -q "^Usage" || { echo "FAIL: tune2fs does not run in the guest"; exit 1; }
scratch=/dev/disk/by-id/virtio-scratch
mkfs.ext4 -q -F "$scratch" && mkdir -p /scratch && mount -t ext4 "$scratch" /scratch ||
	{ echo "FAIL: scratch disk"; exit 1; }
mkdir -p /scratch/tree /scratch/tmp
tar -xf "$IN/tree.tar" -C /scratch/tree
cp "$IN/docker_driver.sh" /scratch/docker_driver.sh
TMPDIR=/scratch/tmp BACKEND=kernel TREE_DIRS=/scratch/tree bash /scratch/docker_driver.sh

# ---- what only the kernel backend has: resize of a live pool, dm.thinpooldev ----
fail() { echo "FAIL: $*"; exit 1; }
D() { "$THINP" docker "$@"; }
uopt=(--storage-opt dm.override_udev_sync_check=true --storage-opt dm.fs=ext4
	--storage-opt dm.basesize=64M --storage-opt dm.loopmetadatasize=16M)
R=/scratch/resize
D init "$R" --backend kernel "${uopt[@]}" --storage-opt dm.loopdatasize=256M >/dev/null 2>&1 ||
	fail "init $R"
D create "$R" c1 && p=$(D get "$R" c1) || fail "create/get c1"
pool=$(D info "$R" 2>/dev/null | sed -n 's/^  Pool Name: //p')
# the daemon holds the pool: grown by file + LOOP_SET_CAPACITY + reload, c1 written across
dd if=/dev/urandom of="$p/before" bs=1M count=8 status=none
out=$(D resize "$R" 128M 2>&1) && fail "resize to a smaller size worked"
grep -qF "devmapper: Can't shrink file" <<<"$out" || fail "shrink: $out"
D resize "$R" 512MB || fail "resize 512MB"
[ "$(dmsetup table "$pool" | cut -d' ' -f2)" = 1048576 ] || fail "pool table after resize: $(dmsetup table "$pool")"
D info "$R" 2>/dev/null | grep -qx "  Data Space Total: 536.9MB" || fail "info after resize"
dd if=/dev/urandom of="$p/after" bs=1M count=8 status=none && sync -f "$p" || fail "writes after resize"
sha=$(cat "$p/before" "$p/after" | sha256sum)
D put "$R" c1 && D cleanup "$R" || fail "put/cleanup"
[ ! -e "/dev/mapper/$pool" ] || fail "the loop-lvm pool stays after cleanup"
p=$(D get "$R" c1) && [ "$(cat "$p/before" "$p/after" | sha256sum)" = "$sha" ] || fail "c1 after reopen"
D put "$R" c1 && D cleanup "$R" || fail "put/cleanup 2"
thin_check "$R/devicemapper/metadata" >/dev/null || fail "thin_check after resize"
echo "docker_kernel: resize of a live pool OK (256M -> 512 MiB, 16 MiB written across it)"

# dm.thinpooldev: an existing pool is taken while unused, kept at cleanup; refused otherwise
"$THINP" --backend kernel pool create /scratch/tp --data-size 256M --metadata-size 16M >/dev/null ||
	fail "pool create /scratch/tp"
pool_of() { sed -n 's/.*"name": *"\([^"]*\)".*/\1/p' "$1/kernel.json"; }
tp=$(pool_of /scratch/tp)
[ -n "$tp" ] || fail "no pool for dm.thinpooldev"
R=/scratch/named
D init "$R" --backend kernel "${uopt[@]}" --storage-opt dm.thinpooldev=/dev/mapper/$tp \
	>/scratch/named.out 2>/scratch/named.err || { cat /scratch/named.err; fail "init on $tp"; }
grep -qx "  Pool Name: $tp" /scratch/named.out || fail "Pool Name is not $tp"
grep -q "loop file\|loopback" /scratch/named.out /scratch/named.err && fail "loop-lvm lines for a named pool"
D create "$R" l1 && D cleanup "$R" || fail "create/cleanup on $tp"
[ -e "/dev/mapper/$tp" ] || fail "cleanup removed the dm.thinpooldev pool $tp"
out=$(D resize "$R" 1G 2>&1) && fail "resize of a dm.thinpooldev pool worked"
grep -q "not ours to grow" <<<"$out" || fail "resize $tp: $out"
out=$(D init /scratch/other --backend kernel "${uopt[@]}" --storage-opt dm.thinpooldev="$tp" 2>&1) &&
	fail "a second driver took the used pool $tp"
grep -qF "devmapper: Unable to take ownership of thin-pool ($tp) that already has used data blocks" <<<"$out" ||
	fail "used pool: $out"
"$THINP" --backend kernel pool remove /scratch/tp >/dev/null || fail "pool remove $tp"
"$THINP" --backend kernel pool create /scratch/tp2 --data-size 256M --metadata-size 16M >/dev/null &&
	tp2=$(pool_of /scratch/tp2) && [ -n "$tp2" ] &&
	"$THINP" --backend kernel set-transaction-id "$tp2" 0 1 || fail "pool tp2 with transaction id 1"
out=$(D init /scratch/other2 --backend kernel "${uopt[@]}" --storage-opt dm.thinpooldev="$tp2" 2>&1) &&
	fail "a pool with transaction id 1 was taken"
grep -qF "devmapper: Unable to take ownership of thin-pool ($tp2) that already has non-zero transaction ID" <<<"$out" ||
	fail "transaction id: $out"
"$THINP" --backend kernel pool remove /scratch/tp2 >/dev/null || fail "pool remove $tp2"
echo "docker_kernel: dm.thinpooldev OK (taken while unused, kept at cleanup; used data and transaction id refused)"
echo "PASS kernel extras"
