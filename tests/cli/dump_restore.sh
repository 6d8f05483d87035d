#!/usr/bin/env bash
# Oracle: `thinp dump` / `thinp restore` against thin_dump / thin_restore / thin_check 0.9.0.
#
#  1. metadata written by thin_restore from varied XML (hand-written edge cases, 320 devices,
#     one device with >= 100k mappings, shared data blocks, snapshot-like times):
#     `thinp dump` must equal `thin_dump` byte for byte (xml, human_readable,
#     --skip-mappings, --dev-id, -o).
#  2. `thinp restore` of the same XML must pass thin_check (exit 0, nothing but its progress
#     lines) and `thinp check` (data reference counts etc.), and thin_dump of it must equal
#     thin_dump of thin_restore's output.
#  3. error cases: bad XML names the line and leaves no valid-looking metadata; missing or
#     too small files give clear messages; usage errors exit 2.
#
# Env: THINP (the CLI under test). SEED fixes the generated data (printed at the start).
set -euo pipefail

: "${THINP:?set THINP to the thinp CLI under test}"
for t in thin_dump thin_restore thin_check python3; do
	command -v "$t" >/dev/null || { echo "missing $t (make deps)" >&2; exit 1; }
done
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

SEED=${THINP_SEED:-${SEED:-$(( (RANDOM << 15) | RANDOM ))}}
echo "seed: $SEED (rerun with THINP_SEED=$SEED)"

failures=0
fail() {
	echo "FAIL: $*" >&2
	failures=$((failures + 1))
}

# A fresh metadata file of SIZE (thin_restore needs an existing output).
newmeta() {
	rm -f "$1"
	truncate -s "${2:-16M}" "$1"
}

# thin_check must exit 0 and print nothing but its progress lines.
tools_check() {
	local meta=$1 what=$2 out
	if ! out=$(thin_check "$meta" 2>&1 >/dev/null); then
		fail "$what: thin_check rejects it: $out"
		return
	fi
	out=$(grep -v -e '^examining superblock$' -e '^examining devices tree$' \
		-e '^examining mapping tree$' -e '^checking space map counts$' <<<"$out" || true)
	[ -z "$out" ] || fail "$what: thin_check complained: $out"
}

# same_output NAME FILE_A FILE_B
same_output() {
	if ! cmp -s "$2" "$3"; then
		fail "$1: outputs differ"
		diff "$2" "$3" | head -20 >&2 || true
	fi
}

# The main check for one XML file (see the header).
roundtrip() {
	local name=$1 xml=$2 size=${3:-16M}
	local ref=$tmp/$name.ref.bin ours=$tmp/$name.ours.bin
	newmeta "$ref" "$size"
	thin_restore -q -i "$xml" -o "$ref" || { fail "$name: thin_restore refused the input"; return; }

	# 1. reading what the tools wrote
	thin_dump "$ref" >"$tmp/$name.tools.xml"
	"$THINP" dump "$ref" >"$tmp/$name.thinp.xml" || fail "$name: thinp dump failed"
	same_output "$name: dump" "$tmp/$name.tools.xml" "$tmp/$name.thinp.xml"
	thin_dump -f human_readable "$ref" >"$tmp/$name.tools.txt"
	"$THINP" dump -f human_readable "$ref" >"$tmp/$name.thinp.txt" ||
		fail "$name: thinp dump -f human_readable failed"
	same_output "$name: dump -f human_readable" "$tmp/$name.tools.txt" "$tmp/$name.thinp.txt"
	thin_dump --skip-mappings "$ref" >"$tmp/$name.tools.skip"
	"$THINP" dump --skip-mappings -o "$tmp/$name.thinp.skip" "$ref" ||
		fail "$name: thinp dump --skip-mappings -o failed"
	same_output "$name: dump --skip-mappings -o" "$tmp/$name.tools.skip" "$tmp/$name.thinp.skip"
	local dev
	dev=$(grep -m1 -o 'dev_id="[0-9]*"' "$tmp/$name.tools.xml" | tr -dc 0-9 || true)
	for d in $dev 16777215; do
		thin_dump --dev-id "$d" "$ref" >"$tmp/$name.tools.dev"
		"$THINP" dump --dev-id "$d" "$ref" >"$tmp/$name.thinp.dev" ||
			fail "$name: thinp dump --dev-id $d failed"
		same_output "$name: dump --dev-id $d" "$tmp/$name.tools.dev" "$tmp/$name.thinp.dev"
	done

	# 2. writing
	newmeta "$ours" "$size"
	if ! "$THINP" restore -q -i "$xml" -o "$ours"; then
		fail "$name: thinp restore failed"
		return
	fi
	tools_check "$ours" "$name: thinp restore output"
	# the strict checker also verifies what 0.9.0 skips (data reference counts, counters)
	"$THINP" check "$ours" >/dev/null 2>"$tmp/$name.check" ||
		fail "$name: thinp check rejects our restore: $(head -5 "$tmp/$name.check")"
	thin_dump "$ours" >"$tmp/$name.ours.tools.xml" || fail "$name: thin_dump cannot read our restore"
	same_output "$name: thin_dump(thinp restore) vs thin_dump(thin_restore)" \
		"$tmp/$name.tools.xml" "$tmp/$name.ours.tools.xml"
	"$THINP" dump "$ours" >"$tmp/$name.ours.thinp.xml" || fail "$name: thinp dump of our restore"
	same_output "$name: thinp dump(thinp restore)" "$tmp/$name.tools.xml" "$tmp/$name.ours.thinp.xml"
	echo "ok: $name ($(grep -c '<device' "$tmp/$name.tools.xml" || true) devices," \
		"$(grep -c '_mapping' "$tmp/$name.tools.xml" || true) mapping lines)"
}

# ---- hand-written inputs ----

# origin + snapshot sharing data block 20, different times, an empty device
cat >"$tmp/snap.xml" <<'EOF'
<superblock uuid="" time="1" transaction="5" version="2" data_block_size="128" nr_data_blocks="1024">
  <device dev_id="1" mapped_blocks="7" transaction="0" creation_time="0" snap_time="1">
    <range_mapping origin_begin="0" data_begin="10" length="4" time="0"/>
    <single_mapping origin_block="100" data_block="20" time="0"/>
    <single_mapping origin_block="101" data_block="21" time="1"/>
    <single_mapping origin_block="200" data_block="30" time="0"/>
  </device>
  <device dev_id="2" mapped_blocks="2" transaction="3" creation_time="1" snap_time="1">
    <single_mapping origin_block="100" data_block="20" time="0"/>
    <single_mapping origin_block="101" data_block="40" time="1"/>
  </device>
  <device dev_id="3" mapped_blocks="0" transaction="3" creation_time="1" snap_time="1">
  </device>
</superblock>
EOF
roundtrip snap "$tmp/snap.xml"

# no devices; version absent (-> 1); flags kept; uuid text (stored, dumped as "")
cat >"$tmp/empty.xml" <<'EOF'
<superblock uuid="some-uuid-longer-than-16" time="0" transaction="0" flags="1" data_block_size="2097152" nr_data_blocks="0">
</superblock>
EOF
roundtrip empty "$tmp/empty.xml" 64k

# Coalescing boundaries and non-canonical input: runs broken by time, by data, by a hole;
# ranges split in the input; unsorted and duplicated mappings (the last one wins); a
# self-closed device; comments, an XML declaration, single quotes, explicit close tags,
# huge virtual block numbers, data blocks at the end of the pool, devices out of order.
cat >"$tmp/edges.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<!-- hand-written -->
<superblock uuid='' time='16777215' transaction='18446744073709551615' version='2' data_block_size='256' nr_data_blocks='16777216'>
  <device dev_id="16777215" mapped_blocks="9" transaction="1" creation_time="16777215" snap_time="16777215">
    <range_mapping origin_begin="0" data_begin="100" length="3" time="7"/>
    <range_mapping origin_begin="3" data_begin="103" length="2" time="7"/>
    <single_mapping origin_block="5" data_block="105" time="8"/>
    <single_mapping origin_block="6" data_block="200" time="8"/>
    <single_mapping origin_block="8" data_block="201" time="8"></single_mapping>
    <single_mapping origin_block="18446744073709551615" data_block="16777215" time="16777215"/>
    <single_mapping origin_block="18446744073709551614" data_block="16777214" time="16777215"/>
    <single_mapping origin_block="7" data_block="999" time="8"/>
    <single_mapping origin_block="7" data_block="202" time="8"/>
  </device>
  <device dev_id="0" mapped_blocks="0" transaction="0" creation_time="0" snap_time="0"/>
  <!-- shares everything with 16777215 -->
  <device dev_id="5" mapped_blocks="3" transaction="2" creation_time="1" snap_time="3">
    <range_mapping origin_begin="0" data_begin="100" length="3" time="7"/>
  </device>
</superblock>
EOF
roundtrip edges "$tmp/edges.xml"

# ---- generated inputs ----
python3 "$here/gen_thin_xml.py" many "$SEED" >"$tmp/many.xml"
roundtrip many "$tmp/many.xml"
python3 "$here/gen_thin_xml.py" big "$SEED" >"$tmp/big.xml"
roundtrip big "$tmp/big.xml" 64M

# dump | restore through a pipe, and thin_restore's overrides
newmeta "$tmp/pipe.bin"
"$THINP" dump "$tmp/many.ref.bin" | "$THINP" restore -q -i - -o "$tmp/pipe.bin" ||
	fail "dump | restore -i - failed"
thin_dump "$tmp/pipe.bin" >"$tmp/pipe.xml"
same_output "dump | restore" "$tmp/many.tools.xml" "$tmp/pipe.xml"
newmeta "$tmp/ovr.ref.bin"
newmeta "$tmp/ovr.ours.bin"
ovr=(--transaction-id 42 --data-block-size 512 --nr-data-blocks 5000)
thin_restore -q "${ovr[@]}" -i "$tmp/snap.xml" -o "$tmp/ovr.ref.bin"
"$THINP" restore -q "${ovr[@]}" -i "$tmp/snap.xml" -o "$tmp/ovr.ours.bin" ||
	fail "restore with overrides failed"
thin_dump "$tmp/ovr.ref.bin" >"$tmp/ovr.ref.xml"
thin_dump "$tmp/ovr.ours.bin" >"$tmp/ovr.ours.xml"
same_output "restore --transaction-id/--data-block-size/--nr-data-blocks" \
	"$tmp/ovr.ref.xml" "$tmp/ovr.ours.xml"

# a wrong mapped_blocks attribute: counted like thin_restore, with a warning
sed 's/mapped_blocks="7"/mapped_blocks="6"/' "$tmp/snap.xml" >"$tmp/mb.xml"
newmeta "$tmp/mb.bin"
"$THINP" restore -i "$tmp/mb.xml" -o "$tmp/mb.bin" 2>"$tmp/mb.err" || fail "mapped_blocks: restore failed"
grep -q 'line 2: .*mapped_blocks="6".* 7 mappings' "$tmp/mb.err" ||
	fail "mapped_blocks: no warning naming line 2: $(cat "$tmp/mb.err")"
thin_dump "$tmp/mb.bin" | cmp -s - "$tmp/snap.tools.xml" || fail "mapped_blocks: not recounted"
echo "ok: pipe, overrides, mapped_blocks warning"

# ---- error cases ----

# expect_error NAME WANT_RC PATTERN CMD...: exit status WANT_RC and PATTERN on stderr
expect_error() {
	local name=$1 want=$2 pattern=$3 rc=0
	shift 3
	"$@" >"$tmp/err.out" 2>"$tmp/err.txt" || rc=$?
	if [ "$rc" -ne "$want" ]; then
		fail "$name: exit $rc, expected $want ($(head -3 "$tmp/err.txt"))"
	elif ! grep -q -e "$pattern" "$tmp/err.txt"; then
		fail "$name: message does not match /$pattern/: $(head -3 "$tmp/err.txt")"
	fi
}

# bad_xml NAME LINE PATTERN: the XML on stdin must fail at LINE, leaving the output
# unusable for both thin_dump and thinp dump.
bad_xml() {
	local name=$1 line=$2 pattern=$3
	cat >"$tmp/bad.xml"
	newmeta "$tmp/bad.bin"
	"$THINP" restore -i "$tmp/snap.xml" -o "$tmp/bad.bin" # valid metadata to be replaced
	expect_error "bad xml: $name" 1 "line $line: .*$pattern" \
		"$THINP" restore -i "$tmp/bad.xml" -o "$tmp/bad.bin"
	thin_dump "$tmp/bad.bin" >/dev/null 2>&1 && fail "bad xml: $name: output still looks valid to thin_dump"
	"$THINP" dump "$tmp/bad.bin" >/dev/null 2>&1 && fail "bad xml: $name: output still looks valid to thinp dump"
	return 0
}

head_sb='<superblock uuid="" time="1" transaction="5" data_block_size="128" nr_data_blocks="1024">'
head_dev='  <device dev_id="1" mapped_blocks="1" transaction="0" creation_time="0" snap_time="1">'
bad_xml beyond-data 4 'data_block 5000 is beyond nr_data_blocks 1024' <<EOF
$head_sb
$head_dev
    <single_mapping origin_block="0" data_block="1" time="0"/>
    <single_mapping origin_block="1" data_block="5000" time="0"/>
  </device>
</superblock>
EOF
bad_xml range-beyond 3 'beyond nr_data_blocks 1024' <<EOF
$head_sb
$head_dev
    <range_mapping origin_begin="0" data_begin="1020" length="5" time="0"/>
  </device>
</superblock>
EOF
bad_xml unquoted 3 'must be quoted' <<EOF
$head_sb
$head_dev
    <single_mapping origin_block=0 data_block="1" time="0"/>
  </device>
</superblock>
EOF
bad_xml missing-attr 2 'missing the snap_time attribute' <<EOF
$head_sb
  <device dev_id="1" mapped_blocks="1" transaction="0" creation_time="0">
  </device>
</superblock>
EOF
bad_xml def-ref 3 '<def>.*not supported' <<EOF
$head_sb
$head_dev
    <def name="x"><single_mapping origin_block="0" data_block="1" time="0"/></def>
  </device>
</superblock>
EOF
bad_xml unknown-element 2 '<foo> is not allowed' <<EOF
$head_sb
  <foo/>
</superblock>
EOF
bad_xml duplicate-device 5 'device 1 appears twice' <<EOF
$head_sb
$head_dev
  </device>
  <!-- again -->
$head_dev
  </device>
</superblock>
EOF
bad_xml not-a-number 3 'data_block="1x" is not a non-negative decimal number' <<EOF
$head_sb
$head_dev
    <single_mapping origin_block="0" data_block="1x" time="0"/>
  </device>
</superblock>
EOF
bad_xml truncated 4 'end of file: <device> (line 2) is not closed' <<EOF
$head_sb
$head_dev
    <single_mapping origin_block="0" data_block="1" time="0"/>
EOF
bad_xml mismatched 4 'unexpected </superblock>: <device> is still open' <<EOF
$head_sb
$head_dev
    <single_mapping origin_block="0" data_block="1" time="0"/>
</superblock>
EOF
bad_xml not-xml 1 'unexpected text' <<EOF
this is not XML
EOF

newmeta "$tmp/e.bin"
expect_error "restore: missing input" 1 'cannot open .*nope.xml: No such file' \
	"$THINP" restore -i "$tmp/nope.xml" -o "$tmp/e.bin"
expect_error "restore: missing output" 1 'nope.bin does not exist: create it first' \
	"$THINP" restore -i "$tmp/snap.xml" -o "$tmp/nope.bin"
newmeta "$tmp/small.bin" 16k
expect_error "restore: output too small" 1 'too small.*at least 32 KiB' \
	"$THINP" restore -i "$tmp/snap.xml" -o "$tmp/small.bin"
newmeta "$tmp/full.bin" 256k
expect_error "restore: metadata device full" 1 'line [0-9]*: .*metadata device is full' \
	"$THINP" restore -i "$tmp/many.xml" -o "$tmp/full.bin"
thin_dump "$tmp/full.bin" >/dev/null 2>&1 && fail "restore: metadata device full: output looks valid"
expect_error "restore: no -o" 2 'no output given' "$THINP" restore -i "$tmp/snap.xml"
expect_error "restore: no -i" 2 'no input given' "$THINP" restore -o "$tmp/e.bin"
expect_error "dump: missing file" 1 'cannot open .*nope.bin: No such file' \
	"$THINP" dump "$tmp/nope.bin"
expect_error "dump: not metadata" 1 'bad checksum' "$THINP" dump "$tmp/small.bin"
expect_error "dump: no argument" 2 'no metadata file' "$THINP" dump
expect_error "dump: bad format" 2 "unknown format 'custom'" \
	"$THINP" dump -f custom "$tmp/snap.ref.bin"
expect_error "dump: no metadata snapshot" 1 'no metadata snapshot' \
	"$THINP" dump -m "$tmp/snap.ref.bin"
expect_error "unknown command" 2 "unknown command 'frobnicate'" "$THINP" frobnicate
expect_error "no command" 2 'Usage: thinp' "$THINP"
"$THINP" help dump | grep -q 'Usage: thinp dump' || fail "thinp help dump"
"$THINP" restore --help | grep -q 'Usage: thinp restore' || fail "thinp restore --help"
"$THINP" --version | grep -q '^thinp ' || fail "thinp --version"
echo "ok: error cases"

if [ "$failures" -ne 0 ]; then
	echo "$failures failure(s) (seed $SEED)" >&2
	exit 1
fi
echo "all dump/restore oracle checks passed (seed $SEED)"
