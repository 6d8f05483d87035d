#!/bin/bash
# thinp pool report and thinp thin ls against the reference tools:
#  - thin ls prints what thin_ls prints (mapped, exclusive, shared blocks, sectors and
#    bytes; transaction, creation and snapshot times) on metadata written by libthinp with
#    snapshots sharing mapping subtrees and a held metadata snapshot (mk_shared_meta),
#    on seeded random metadata of 64/128/256 KiB blocks (mk_random_meta), and on a pool
#    built by the CLI; the same counts derived from thin_dump's XML (a block is exclusive
#    when one mapping of all the thins points at it);
#  - pool report -o data_percent,metadata_percent --format json equals used/total x 100
#    rounded to 2 decimals, with used data = the distinct data blocks thin_dump shows and
#    the metadata counts of the status line; every field, text and JSON;
#  - a pool another process holds: report answers through DIR/control, thin ls reads a
#    metadata snapshot reserved there (and released), or the one held (as thin_ls -m); bad -o, --format and pools are refused with exact messages.
set -euo pipefail
THINP=${THINP:-impl/cli/thinp}
BUILD=${BUILD:-build}
SEED=${THINP_SEED:-$RANDOM}
echo "report: THINP_SEED=$SEED"
tmp=$(mktemp -d)
writer=""
cleanup() {
	exec 3>&- 2>/dev/null || true
	[ -z "$writer" ] || kill "$writer" 2>/dev/null || true
	[ -z "$writer" ] || wait "$writer" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
for t in thin_ls thin_dump; do
	command -v $t >/dev/null || { echo "SKIP: $t (thin-provisioning-tools) not installed"; exit 0; }
done

# expect RC MESSAGE ARGS...: exit RC, stderr's first line exactly MESSAGE, nothing on stdout
expect() {
	local want=$1 msg=$2 rc=0
	shift 2
	"$THINP" "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
	[ "$rc" = "$want" ] || { cat "$tmp/err" >&2; fail "exit $rc (want $want): thinp $*"; }
	[ ! -s "$tmp/out" ] || fail "stdout not empty on a failure: thinp $*"
	[ "$(head -n1 "$tmp/err")" = "$msg" ] || { cat "$tmp/err" >&2; fail "message of thinp $* is not: $msg"; }
	if [ "$want" = 2 ]; then
		[ "$(tail -n1 "$tmp/err")" = "Try 'thinp ${*:1:2} --help'." ] || fail "no --help hint: thinp $*"
	fi
}

# from_dump XML: "DEV MAPPED EXCLUSIVE SHARED TRANSACTION CREATE_TIME SNAP_TIME" per device,
# then "used DISTINCT_DATA_BLOCKS NR_DATA_BLOCKS", counted from thin_dump's mappings alone
from_dump() {
	python3 - "$1" <<'PY'
import sys, xml.etree.ElementTree as ET
sb = ET.parse(sys.argv[1]).getroot()
refs, devs = {}, []
for d in sb.iter("device"):
    blocks = []
    for m in d:
        n = int(m.get("length", "1"))
        b = int(m.get("data_begin", m.get("data_block", "0")))
        blocks.extend(range(b, b + n))
    for b in blocks:
        refs[b] = refs.get(b, 0) + 1
    devs.append((d, blocks))
for d, blocks in devs:
    excl = sum(1 for b in blocks if refs[b] == 1)
    print(d.get("dev_id"), len(blocks), excl, len(blocks) - excl, d.get("transaction"),
          d.get("creation_time"), d.get("snap_time"))
print("used", len(refs), sb.get("nr_data_blocks"))
PY
}

ls_fields=dev,mapped_blocks,exclusive_blocks,shared_blocks,transaction,create_time,snap_time
tl_fields=DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS,TRANSACTION,CREATE_TIME,SNAP_TIME
units=mapped_sectors,exclusive_sectors,shared_sectors,mapped_bytes,exclusive_bytes,shared_bytes

# oracle DIR WHAT: thin ls of DIR against thin_ls and thin_dump on DIR/metadata
oracle() {
	local dir=$1 what=$2
	"$THINP" thin ls "$dir" -o $ls_fields --noheadings | awk '{$1=$1; print}' >"$tmp/ours"
	thin_ls --no-headers --format $tl_fields "$dir/metadata" | awk '{$1=$1; print}' >"$tmp/theirs"
	[ -s "$tmp/theirs" ] || fail "$what: thin_ls printed nothing"
	diff -u "$tmp/theirs" "$tmp/ours" >&2 || fail "$what: thin ls differs from thin_ls (- thin_ls, + thinp)"
	"$THINP" thin ls "$dir" -o "${units^^}" --noheadings | awk '{$1=$1; print}' >"$tmp/ours"
	thin_ls --no-headers --format "${units^^}" "$dir/metadata" | awk '{$1=$1; print}' >"$tmp/theirs"
	diff -u "$tmp/theirs" "$tmp/ours" >&2 || fail "$what: sectors/bytes differ from thin_ls"
	thin_dump "$dir/metadata" >"$tmp/dump.xml"
	from_dump "$tmp/dump.xml" | grep -v '^used' >"$tmp/theirs"
	"$THINP" thin ls "$dir" -o $ls_fields --noheadings | awk '{$1=$1; print}' >"$tmp/ours"
	diff -u "$tmp/theirs" "$tmp/ours" >&2 || fail "$what: thin ls differs from thin_dump's counts"
	echo "$what: $(wc -l <"$tmp/ours") thins agree with thin_ls and thin_dump"
}

# ---- metadata with shared subtrees and a held metadata snapshot ----
d=$tmp/shared
mkdir "$d"
truncate -s 8M "$d/metadata"
truncate -s 4G "$d/data" # mk_shared_meta: 65536 blocks of 64 KiB
"$BUILD/tests/tools/mk_shared_meta" "$d/metadata" "$SEED" >/dev/null
oracle "$d" "mk_shared_meta seed $SEED"
# snapshots of a thin that was never written to since: nothing is exclusive, though the
# data space map counts those blocks once (the subtree is shared, not the blocks)
"$THINP" thin ls "$d" -o dev,exclusive_blocks,shared_blocks --format json >"$tmp/j"
python3 - "$tmp/j" <<'PY' || fail "thins 20-22 share their 10 blocks"
import json, sys
t = {r["dev"]: r for r in json.load(open(sys.argv[1]))["thins"]}
assert all(t[i]["exclusive_blocks"] == 0 and t[i]["shared_blocks"] == 10 for i in (20, 21, 22)), t
PY

# ---- seeded random metadata, block sizes 64..256 KiB ----
for i in 1 2 3; do
	d=$tmp/random$i
	mkdir "$d"
	truncate -s 8M "$d/metadata"
	"$BUILD/tests/tools/mk_random_meta" "$d/metadata" $((SEED + i)) 400 >/dev/null
	bs=$(thin_dump "$d/metadata" | sed -n '1s/.*data_block_size="\([0-9]*\)".*/\1/p')
	nr=$(thin_dump "$d/metadata" | sed -n '1s/.*nr_data_blocks="\([0-9]*\)".*/\1/p')
	echo "$bs 0 0" >"$d/table"
	truncate -s $((bs * 512 * nr)) "$d/data"
	oracle "$d" "mk_random_meta seed $((SEED + i)) (block $((bs / 2)) KiB)"
done

# ---- a pool built by the CLI: snapshots, CoW, a delete ----
pool=$tmp/pool
"$THINP" pool create "$pool" --data-size 32M --metadata-size 4M --block-size 128k --low-water 7
"$THINP" thin create "$pool" 1 --size 8M
python3 -c "import random,sys; random.seed($SEED); sys.stdout.buffer.write(random.randbytes(4<<20))" >"$tmp/in"
"$THINP" write "$pool" 1 0 $((4 << 20)) <"$tmp/in"
"$THINP" thin snap "$pool" 2 1
"$THINP" thin snap "$pool" 3 2
"$THINP" write "$pool" 2 $(((SEED % 16) * 131072)) 262144 <"$tmp/in"
"$THINP" write "$pool" 3 $((6 << 20)) 131072 <"$tmp/in"
"$THINP" thin create "$pool" 4
"$THINP" thin snap "$pool" 5 1
"$THINP" thin delete "$pool" 5
oracle "$pool" "CLI pool"
# the size column: DIR/thins (thin 4 has none)
"$THINP" thin ls "$pool" -o dev,size_bytes --noheadings | awk '{$1=$1; print}' >"$tmp/ours"
printf '1 8388608\n2 8388608\n3 8388608\n4 -\n' | diff -u - "$tmp/ours" >&2 || fail "size_bytes"

# pool report against thin_dump's distinct data blocks and the status line
thin_dump "$pool/metadata" >"$tmp/dump.xml"
read -r _ used nr < <(from_dump "$tmp/dump.xml" | grep '^used')
read -r -a status < <("$THINP" pool status "$pool" --noflush)
# status: TRANSACTION USED_META/TOTAL_META USED_DATA/TOTAL_DATA HELD MODE ...
meta_used=${status[1]%/*} meta_total=${status[1]#*/}
[ "${status[2]}" = "$used/$nr" ] || fail "status data ${status[2]}, thin_dump $used/$nr"
want=$(python3 -c "print('{\"pool\": {\"data_percent\": %.2f, \"metadata_percent\": %.2f}}' % (round($used*100/$nr+1e-9,2), round($meta_used*100/$meta_total+1e-9,2)))")
got=$("$THINP" pool report "$pool" -o data_percent,metadata_percent --format json)
[ "$got" = "$want" ] || fail "pool report: $got, want $want (used $used of $nr)"
echo "pool report: $got ($used of $nr data blocks, $meta_used of $meta_total metadata blocks)"
"$THINP" pool report "$pool" --format json >"$tmp/j"
python3 - "$tmp/j" "$used" "$nr" "$meta_used" "$meta_total" <<'PY' || fail "pool report --format json: $(cat "$tmp/j")"
import json, sys
r = json.load(open(sys.argv[1]))["pool"]
used, nr, mu, mt = map(int, sys.argv[2:])
want = {"used_data_blocks": used, "total_data_blocks": nr, "used_metadata_blocks": mu,
        "total_metadata_blocks": mt, "block_size": 131072, "low_water": 7, "mode": "write",
        "transaction_id": 0, "needs_check": False, "held_metadata_snap": None}
for k, v in want.items():
    assert r[k] == v, (k, r[k], v)
assert list(r)[:2] == ["data_percent", "metadata_percent"] and len(r) == 12, list(r)
PY
"$THINP" metadata-snap "$pool" reserve
"$THINP" set-transaction-id "$pool" 0 5
"$THINP" pool report "$pool" -o Transaction_ID,held_metadata_snap,mode --noheadings >"$tmp/out"
read -r tid held mode <"$tmp/out"
[ "$tid" = 5 ] && [ "$held" -gt 0 ] && [ "$mode" = write ] || fail "report after reserve: $(cat "$tmp/out")"
# text: a header of the upper-cased names, columns aligned (every row as long)
"$THINP" pool report "$pool" -o mode,block_size,needs_check >"$tmp/out"
[ "$(head -n1 "$tmp/out" | awk '{$1=$1; print}')" = "MODE BLOCK_SIZE NEEDS_CHECK" ] || fail "header: $(head -n1 "$tmp/out")"
[ "$(awk '{print length($0)}' "$tmp/out" | sort -u | wc -l)" = 1 ] || fail "columns not aligned: $(cat "$tmp/out")"
"$THINP" metadata-snap "$pool" release

# ---- a pool another process holds ----
offline=$("$THINP" pool report "$pool" --format json)
"$THINP" thin ls "$pool" --format json >"$tmp/offline_ls"
mkfifo "$tmp/fifo"
"$THINP" write "$pool" 4 0 65536 <"$tmp/fifo" 2>"$tmp/writer.err" &
writer=$!
exec 3>"$tmp/fifo"
for i in $(seq 400); do
	[ -S "$pool/control" ] && "$THINP" pool report "$pool" -o mode --noheadings >/dev/null 2>&1 && break
	kill -0 "$writer" 2>/dev/null || { cat "$tmp/writer.err" >&2; fail "the writer ended"; }
	sleep 0.05
done
# the holder has not written yet: its answer is the offline one
[ "$offline" = "$("$THINP" pool report "$pool" --format json)" ] || fail "live report differs from offline $offline"
# thin ls reads a metadata snapshot reserved for it through DIR/control, then released
"$THINP" thin ls "$pool" --format json >"$tmp/live" 2>"$tmp/err" || { cat "$tmp/err" >&2; fail "live thin ls"; }
[ ! -s "$tmp/err" ] || { cat "$tmp/err" >&2; fail "live thin ls wrote to stderr"; }
diff -u "$tmp/offline_ls" "$tmp/live" >&2 || fail "live thin ls differs from offline"
[ "$("$THINP" pool report "$pool" -o held_metadata_snap --noheadings | tr -d ' ')" = - ] ||
	fail "live thin ls left a metadata snapshot held"
# one already held is read (with a warning) and kept: thin_ls -m reads the same
"$THINP" metadata-snap "$pool" reserve
"$THINP" thin ls "$pool" -o $ls_fields --noheadings 2>"$tmp/err" | awk '{$1=$1; print}' >"$tmp/ours"
grep -qF "warning: a metadata snapshot (block" "$tmp/err" || { cat "$tmp/err" >&2; fail "no warning for a held snapshot"; }
thin_ls -m --no-headers --format $tl_fields "$pool/metadata" | awk '{$1=$1; print}' >"$tmp/theirs"
diff -u "$tmp/theirs" "$tmp/ours" >&2 || fail "live thin ls differs from thin_ls -m"
[ "$("$THINP" pool report "$pool" -o held_metadata_snap --noheadings | tr -d ' ')" != - ] ||
	fail "live thin ls released a snapshot it did not reserve"
"$THINP" metadata-snap "$pool" release
head -c 65536 "$tmp/in" >&3
exec 3>&-
wait "$writer" || { cat "$tmp/writer.err" >&2; fail "the writer failed"; }
writer=""
echo "live pool: report through DIR/control, thin ls through a metadata snapshot"

# ---- bad input ----
valid="data_percent, metadata_percent, used_data_blocks, total_data_blocks, used_metadata_blocks, total_metadata_blocks, block_size, low_water, mode, transaction_id, needs_check, held_metadata_snap"
expect 2 "thinp pool report: unknown field 'data%' in -o 'mode,data%': valid fields are $valid" \
	pool report "$pool" -o mode,data%
expect 2 "thinp pool report: unknown field '' in -o 'mode,,mode': valid fields are $valid" \
	pool report "$pool" -o mode,,mode
expect 2 "thinp thin ls: unknown field 'origin' in -o 'origin': valid fields are dev, mapped_blocks, exclusive_blocks, shared_blocks, mapped_sectors, exclusive_sectors, shared_sectors, mapped_bytes, exclusive_bytes, shared_bytes, transaction, create_time, snap_time, size_bytes" \
	thin ls "$pool" -o origin
expect 2 "thinp pool report: too many fields in -o 'mode,mode,mode,mode,mode,mode,mode,mode,...': give at most 64" \
	pool report "$pool" -o "$(printf 'mode,%.0s' $(seq 64))mode"
expect 2 "thinp thin ls: the field list -o '$(printf 'dev,%.0s' $(seq 10))...' is too long: give at most 1023 characters" \
	thin ls "$pool" -o "$(printf 'dev,%.0s' $(seq 300))dev"
expect 2 "thinp pool report: invalid --format 'yaml': use text or json" pool report "$pool" --format yaml
expect 2 "thinp thin ls: invalid --format 'XML': use text or json" thin ls "$pool" --format XML
rc=0
"$THINP" pool report "$tmp/nopool" >"$tmp/out" 2>"$tmp/err" || rc=$?
[ "$rc" = 1 ] && [ ! -s "$tmp/out" ] && grep -qF "$tmp/nopool" "$tmp/err" || { cat "$tmp/err" >&2; fail "missing pool: exit $rc"; }
rc=0
"$THINP" thin ls "$tmp/nopool" >"$tmp/out" 2>"$tmp/err" || rc=$?
[ "$rc" = 1 ] && grep -qF "$tmp/nopool" "$tmp/err" || { cat "$tmp/err" >&2; fail "thin ls, missing pool: exit $rc"; }
# lvs's rounding: 100.00 only when full, 0.00 only when empty (a restored pool one block
# short of full; one block used of a 100G pool's 1638400)
d=$tmp/edges
mkdir "$d"
cat >"$d/x.xml" <<'XML'
<superblock uuid="" time="0" transaction="1" flags="0" version="2" data_block_size="128" nr_data_blocks="20001">
  <device dev_id="1" mapped_blocks="20000" transaction="0" creation_time="0" snap_time="0">
    <range_mapping origin_begin="0" data_begin="0" length="20000" time="0"/>
  </device>
</superblock>
XML
truncate -s 4M "$d/metadata"
truncate -s $((20001 * 65536)) "$d/data"
"$THINP" restore -i "$d/x.xml" -o "$d/metadata"
got=$("$THINP" pool report "$d" -o data_percent,used_data_blocks --noheadings | awk '{$1=$1; print}')
[ "$got" = "99.99 20000" ] || fail "one block short of full: $got, want 99.99 20000"
rm -rf "$d"
"$THINP" pool create "$d" --data-size 100G --metadata-size 4M
"$THINP" thin create "$d" 1
head -c 512 "$tmp/in" | "$THINP" write "$d" 1 0 512
got=$("$THINP" pool report "$d" -o data_percent,used_data_blocks,total_data_blocks --noheadings | awk '{$1=$1; print}')
[ "$got" = "0.01 1 1638400" ] || fail "one block used: $got, want 0.01 1 1638400"

# damaged metadata: mappings beyond the data device (its space map shrunk to 32 blocks in
# the superblock, checksum kept valid) are an error naming the thin and the block
d=$tmp/damaged
"$THINP" pool create "$d" --data-size 8M --metadata-size 4M
"$THINP" thin create "$d" 1
head -c $((4 << 20)) "$tmp/in" | "$THINP" write "$d" 1 0 $((4 << 20))
truncate -s 2M "$d/data"
python3 - "$d/metadata" "$(dirname "$0")" <<'PY'
import struct, sys
sys.path.insert(0, sys.argv[2])
import edit_meta as em
with open(sys.argv[1], "r+b") as f:
    sb = em.read(f, 0)
    struct.pack_into("<Q", sb, 64, 32)  # the data space map root's nr_blocks
    em.write(f, 0, sb, em.SB_XOR)
PY
expect 1 "thinp thin ls: thin 1 maps data block 32, beyond the data device's 32 blocks: the metadata is damaged; run thinp check on it" \
	thin ls "$d"
"$THINP" pool report --help | grep -q "data_percent, metadata_percent" || fail "pool report --help"
"$THINP" thin ls --help | grep -q "exclusive_blocks" || fail "thin ls --help"
echo "PASS"
