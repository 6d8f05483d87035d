#!/bin/bash
# A thin device's size bounds its IO, as a kernel thin's table length does. `thin create
# DIR ID --size SIZE` and `thin snap DIR ID ORIGIN [--size SIZE]` (a snapshot inherits its
# origin's size) record it in DIR/thins; `thin delete` drops it; `pool create` of a new pool
# starts without records. read/write/discard past the size, or with OFFSET+LENGTH beyond 64
# bits, are usage errors (exit 2) naming the offset, the length and the size, and nothing
# is written: the old CLI wrapped `write DIR 1 18446744073709551516 4096` to offset 0 and
# exited 0. A thin without a record is bounded by 2^63 bytes (8 EiB: what an off_t can
# address); --data/--metadata pools have no directory: IO takes --size there.
set -euo pipefail
THINP=${THINP:-impl/cli/thinp}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
pool=$tmp/pool
n=0

# usage PATTERN... -- ARGS...: exit 2, each pattern (fixed string) in the message, the --help
# hint last, nothing on stdout
usage() {
	local pats=()
	while [ "$1" != -- ]; do pats+=("$1"); shift; done
	shift
	local rc=0
	"$THINP" "$@" >"$tmp/out" 2>"$tmp/err" <"$tmp/in4k" || rc=$?
	[ "$rc" = 2 ] || { cat "$tmp/err" >&2; fail "exit $rc (want 2): thinp $*"; }
	[ ! -s "$tmp/out" ] || fail "stdout not empty on a usage error: thinp $*"
	local p
	for p in "${pats[@]}"; do
		grep -qF -- "$p" "$tmp/err" || { cat "$tmp/err" >&2; fail "no '$p' in the message of: thinp $*"; }
	done
	tail -n1 "$tmp/err" | grep -q "^Try 'thinp.*--help'\.$" || { cat "$tmp/err" >&2; fail "no --help hint: thinp $*"; }
	n=$((n + 1))
}
# record ID: the size DIR/thins holds for ID (empty: none)
record() { [ -e "$pool/thins" ] && awk -v id="$1" '$1 == id { print $2 }' "$pool/thins" || true; }
field() { "$THINP" thin status "$pool" "$1" --fields | sed -n "s/^$2=//p"; }

head -c 4096 /dev/urandom >"$tmp/in4k"
head -c 8192 /dev/urandom >"$tmp/in8k"
"$THINP" pool create "$pool" --data-size 64M --metadata-size 4M
[ ! -e "$pool/thins" ] || fail "a new pool has size records"

# ---- the bug: an offset near 2^64 wrapped to offset 0, exit 0 ----
"$THINP" thin create "$pool" 1
[ -z "$(record 1)" ] || fail "thin create without --size recorded a size"
"$THINP" write "$pool" 1 0 8192 <"$tmp/in8k"
before=$(sha256sum "$pool/data" "$pool/metadata")
usage "offset 18446744073709551516" "length 4096" "64 bits" -- write "$pool" 1 18446744073709551516 4096
usage "offset 18446744073709551516" "length 4096" -- read "$pool" 1 18446744073709551516 4096
usage "offset 18446744073709551516" "length 4096" -- discard "$pool" 1 18446744073709551516 4096
# no record: 2^63 bytes (8 EiB) is the bound
usage "offset 9223372036854775807" "length 2" "9223372036854775808" -- write "$pool" 1 9223372036854775807 2
usage "offset 9223372036854775808" "length 1" -- read "$pool" 1 8388608t 1
"$THINP" read "$pool" 1 9223372036854771712 4096 | cmp - <(head -c 4096 /dev/zero) ||
	fail "a read just below 2^63 on a thin without a size record"
[ "$before" = "$(sha256sum "$pool/data" "$pool/metadata")" ] || fail "a refused IO changed the pool"
"$THINP" read "$pool" 1 0 8192 | cmp - "$tmp/in8k" || fail "thin 1's data changed"

# ---- thin create --size: recorded, bounds IO ----
"$THINP" thin create "$pool" 2 --size 1M
[ "$(record 2)" = 1048576 ] || fail "thin create --size 1M recorded '$(record 2)'"
[ "$(stat -c %a "$pool/thins")" ] || fail "no DIR/thins"
ls -a "$pool" | grep -q '^\.thins\.' && fail "a temporary file is left in the pool directory"
"$THINP" write "$pool" 2 1020k 4096 <"$tmp/in4k" || fail "the last 4 KiB of a 1M thin"
"$THINP" read "$pool" 2 1020k 4096 | cmp - "$tmp/in4k" || fail "read back the last 4 KiB"
"$THINP" discard "$pool" 2 0 1M || fail "discard of the whole thin"
"$THINP" read "$pool" 2 1M 0 >/dev/null || fail "an empty read at the end of the thin"
before=$(sha256sum "$pool/data" "$pool/metadata")
usage "offset 1048576" "length 1" "size 1048576" -- write "$pool" 2 1M 1
usage "offset 1044480" "length 8192" "size 1048576" -- write "$pool" 2 1020k 8192
usage "offset 1044480" "length 8192" "size 1048576" -- read "$pool" 2 1020k 8192
usage "offset 0" "length 2097152" "size 1048576" -- discard "$pool" 2 0 2M
usage "offset 18446744073709551516" "length 4096" -- write "$pool" 2 18446744073709551516 4096
[ "$before" = "$(sha256sum "$pool/data" "$pool/metadata")" ] || fail "a refused IO changed the pool"
[ "$(field 2 size_bytes)" = 1048576 ] || fail "thin status --fields has no size_bytes=1048576"
[ -z "$(field 1 size_bytes)" ] || fail "thin status --fields shows a size for thin 1 (none recorded)"
[ "$("$THINP" thin status "$pool" 2)" = "0 -" ] || fail "the status line changed: $("$THINP" thin status "$pool" 2)"
# a --size given to IO must agree with the record
usage "--size" "1048576" -- read "$pool" 2 0 4096 --size 2M
"$THINP" read "$pool" 2 0 4096 --size 1M >/dev/null || fail "IO --size equal to the record"

# ---- --size values ----
usage "--size" "'0'" "multiple of 512" -- thin create "$pool" 3 --size 0
usage "--size" "'1000'" "multiple of 512" -- thin create "$pool" 3 --size 1000
usage "--size" "'9223372036854775809'" -- thin create "$pool" 3 --size 9223372036854775809
usage "--size" "'-1'" "must be ≥ 0" -- thin create "$pool" 3 --size -1
usage "unknown option '--size'" -- thin delete "$pool" 2 --size 1M
usage "unknown option '--size'" -- pool status "$pool" --size 1M
"$THINP" thin status "$pool" 3 >/dev/null 2>&1 && fail "a refused thin create made thin 3"

# ---- snapshots inherit, or take --size ----
"$THINP" thin snap "$pool" 3 2
[ "$(record 3)" = 1048576 ] || fail "a snapshot did not inherit its origin's size: '$(record 3)'"
"$THINP" thin snap "$pool" 4 2 --size 4M
[ "$(record 4)" = 4194304 ] || fail "thin snap --size 4M recorded '$(record 4)'"
"$THINP" write "$pool" 4 3M 4096 <"$tmp/in4k" || fail "IO inside a larger snapshot"
usage "size 1048576" -- write "$pool" 3 3M 4096
"$THINP" thin snap "$pool" 5 1
[ -z "$(record 5)" ] || fail "a snapshot of a thin without a size got one"
"$THINP" thin snap "$pool" 6 1 --size 64k
[ "$(record 6)" = 65536 ] || fail "thin snap --size of an unrecorded origin"
# a failed create leaves the record of the existing thin alone
rc=0; "$THINP" thin create "$pool" 2 --size 2M 2>/dev/null || rc=$?
[ "$rc" = 1 ] && [ "$(record 2)" = 1048576 ] || fail "a failed thin create changed thin 2's record: rc $rc, '$(record 2)'"
rc=0; "$THINP" thin snap "$pool" 7 99 2>/dev/null || rc=$?
[ "$rc" = 1 ] && [ -z "$(record 7)" ] || fail "a failed snap recorded a size"

# ---- delete drops the record; a new thin of that id starts without one ----
"$THINP" thin delete "$pool" 3
[ -z "$(record 3)" ] || fail "thin delete left the record"
"$THINP" thin create "$pool" 3
[ -z "$(record 3)" ] || fail "a recreated thin inherited an old record"
"$THINP" write "$pool" 3 3M 4096 <"$tmp/in4k" || fail "IO on a recreated thin without a size"
# the record file: one "ID BYTES" line per thin, ascending, nothing else
printf '2 1048576\n4 4194304\n6 65536\n' | cmp - "$pool/thins" || { cat "$pool/thins" >&2; fail "DIR/thins content"; }

# ---- a damaged record is reported, not ignored ----
cp "$pool/thins" "$tmp/thins.good"
printf '2 1048576\n4 lots\n' >"$pool/thins"
rc=0; "$THINP" read "$pool" 2 0 4096 >/dev/null 2>"$tmp/err" || rc=$?
[ "$rc" = 1 ] && grep -q "thins.*line 2" "$tmp/err" || fail "a damaged DIR/thins: exit $rc, $(cat "$tmp/err")"
cp "$tmp/thins.good" "$pool/thins"

# ---- pool create --force: a new pool, no stale sizes ----
"$THINP" pool create "$pool" --data-size 64M --metadata-size 4M --force
[ ! -e "$pool/thins" ] || fail "pool create --force kept the old pool's size records"
"$THINP" thin create "$pool" 2
"$THINP" write "$pool" 2 3M 4096 <"$tmp/in4k" || fail "thin 2 of the new pool is bounded by the old one's size"

# ---- --data/--metadata pools: no directory, IO takes --size ----
dev=(--data "$pool/data" --metadata "$pool/metadata")
usage "--size" "pool directory" -- thin create "${dev[@]}" 9 --size 1M
"$THINP" thin create "${dev[@]}" 9
usage "offset 1048576" "length 4096" "size 1048576" -- write "${dev[@]}" 9 1M 4096 --size 1M
"$THINP" write "${dev[@]}" 9 1020k 4096 --size 1M <"$tmp/in4k" || fail "IO within --size"
usage "offset 18446744073709551516" -- write "${dev[@]}" 9 18446744073709551516 4096
"$THINP" read "${dev[@]}" 9 1020k 4096 | cmp - "$tmp/in4k" || fail "read back through --data/--metadata"

thin_check -q "$pool/metadata" || fail "thin_check after the size checks"
echo "thin_size: all checks passed ($n refusals)"
