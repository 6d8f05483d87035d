#!/bin/bash
# thinp docker stats: the pool's per-class IO counters reached through the daemon, as the
# benchmark reads them beside fio's latency. A 1 MiB file written into a container's file
# system is new data (provision classes, >= 1 MiB written); a 4 KiB in-place update of a file
# that came from the image, in a second container, is a copy-on-write of a shared block
# (write_cow, its 64 KiB block read); --reset prints then zeroes; usage errors exit 2.
set -euo pipefail
THINP=${THINP:-impl/cli/thinp}
THINP=$(realpath "$THINP")
SEED=${THINP_SEED:-$RANDOM}
echo "docker_stats: THINP_SEED=$SEED"
[ "$(id -u)" = 0 ] || { echo "FAIL: needs root (mounts, loop devices, FUSE)"; exit 1; }
[ -e /dev/fuse ] || { echo "FAIL: needs /dev/fuse"; exit 1; }
tmp=$(mktemp -d)
R=$tmp/root
cleanup() {
	"$THINP" docker cleanup "$R" >/dev/null 2>&1 || true
	[ -f "$R/thinbench/daemon.pid" ] && kill -9 "$(cat "$R/thinbench/daemon.pid")" 2>/dev/null || true
	grep -o " $R/[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
docker() { "$THINP" docker "$@"; }
# FIELD of CLASS in a `stats --format json` output (FILE), summed over CLASSES separated by ,
field() {
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["classes"]
print(sum(d[c][sys.argv[3]] for c in sys.argv[2].split(",")))' "$1" "$2" "$3"
}

docker init "$R" --storage-opt dm.fs=ext4 --storage-opt dm.basesize=256M \
	--storage-opt dm.loopdatasize=2G --storage-opt dm.loopmetadatasize=64M \
	--storage-opt dm.no_warn_on_loop_devices=true >/dev/null || fail "init"
docker create "$R" img || fail "create img"
p=$(docker get "$R" img) || fail "get img"
# the image's file: seeded content, synced into the image layer
python3 -c 'import random,sys; sys.stdout.buffer.write(random.Random(int(sys.argv[1])).randbytes(1 << 20))' \
	"$SEED" >"$p/base.bin"
sync -f "$p/base.bin"
docker put "$R" img || fail "put img"
docker create "$R" c1 --parent img || fail "create c1"
p=$(docker get "$R" c1) || fail "get c1"

docker stats "$R" --reset >"$tmp/reset.txt" || fail "stats --reset"
head -1 "$tmp/reset.txt" | grep -q "^class  *ops  *requested" || fail "text header: $(head -1 "$tmp/reset.txt")"
[ "$(wc -l <"$tmp/reset.txt")" = 13 ] || fail "text: not 12 classes: $(cat "$tmp/reset.txt")"

# new data: 1 MiB, most of it into fresh blocks (ext4 may place a few KiB of it beside
# metadata it wrote into a block already provisioned)
head -c 1048576 /dev/zero | tr '\0' 'x' >"$p/new.bin"
sync -f "$p/new.bin"
docker stats "$R" --format json >"$tmp/new.json" || fail "stats json"
prov=$(field "$tmp/new.json" write_provision,write_provision_zero,write_provision_full ops)
provw=$(field "$tmp/new.json" write_provision,write_provision_zero,write_provision_full data_bytes_written)
allw=$(field "$tmp/new.json" write_overwrite,write_provision,write_provision_zero,write_provision_full,write_cow,write_cow_full data_bytes_written)
[ "$prov" -ge 12 ] || fail "1 MiB of new data: $prov provisioning writes (< 12 blocks)"
[ "$provw" -ge 786432 ] || fail "1 MiB of new data: $provw bytes provisioned (< 768 KiB)"
[ "$allw" -ge 1048576 ] || fail "1 MiB of new data: $allw bytes written in all"
# without --reset the counters keep counting
docker stats "$R" --format json >"$tmp/again.json" || fail "stats again"
again=$(field "$tmp/again.json" write_provision,write_provision_zero,write_provision_full ops)
[ "$again" -ge "$prov" ] || fail "stats without --reset lost counts: $again < $prov"

# an in-place 4 KiB update of the image's file: the shared block is copied
docker stats "$R" --reset >/dev/null || fail "stats --reset"
off=$(( (SEED % 16) * 16 ))
dd if=/dev/urandom of="$p/base.bin" bs=4096 seek=$off count=1 conv=notrunc,fsync status=none
docker stats "$R" --format json >"$tmp/cow.json" || fail "stats json (cow)"
cow=$(field "$tmp/cow.json" write_cow ops)
cowr=$(field "$tmp/cow.json" write_cow data_bytes_read)
[ "$cow" -ge 1 ] || fail "4 KiB update of an image file: no write_cow ($(cat "$tmp/cow.json"))"
[ "$cowr" -ge 65536 ] || fail "write_cow read $cowr bytes (< one 64 KiB block)"
# the reset zeroed what came before: the 1 MiB of provisioning is not counted again
prov2=$(field "$tmp/cow.json" write_provision,write_provision_zero,write_provision_full ops)
[ "$prov2" -lt 12 ] || fail "--reset did not zero the counters: $prov2 provisioning writes"

# usage errors: exit 2, naming the value
set +e
docker stats "$R" extra >/dev/null 2>"$tmp/err"; st=$?
set -e
[ $st = 2 ] || fail "stats ROOT extra: exit $st"
grep -q "extra" "$tmp/err" || fail "stats ROOT extra: $(cat "$tmp/err")"
set +e
docker stats "$R" --format yaml >/dev/null 2>"$tmp/err"; st=$?
set -e
[ $st = 2 ] && grep -q "yaml" "$tmp/err" || fail "stats --format yaml: exit $st $(cat "$tmp/err")"
docker put "$R" c1 || fail "put c1"
docker cleanup "$R" || fail "cleanup"
echo "docker_stats: OK (provisioned $prov writes / $provw bytes for 1 MiB; CoW $cow writes, $cowr bytes read)"
