#!/bin/bash
# The thinp pool CLI end to end on a loop-lvm style directory: create,
# thins and snapshots, IO through stdin/stdout, status lines, extend,
# transaction id, metadata snapshot; metadata checked by thin_check after
# every step. Usage errors must exit 2 and name the bad value.
set -euo pipefail
THINP=${THINP:-impl/cli/thinp}
tmp=$(mktemp -d)
ld=""
trap '[ -z "$ld" ] || losetup -d "$ld" 2>/dev/null; rm -rf "$tmp"' EXIT
pool=$tmp/pool
fail() { echo "FAIL: $*" >&2; exit 1; }
check() { thin_check -q "$pool/metadata" || fail "thin_check after: $1"; }
expect_rc() { # rc cmd...
	local want=$1; shift
	set +e; "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?; set -e
	[ "$rc" = "$want" ] || { cat "$tmp/err" >&2; fail "exit $rc (want $want): $*"; }
}

"$THINP" pool create "$pool" --data-size 1G --metadata-size 16M --block-size 64k --low-water 16
[ "$(stat -c %s "$pool/data")" = $((1 << 30)) ] || fail "data file size"
[ "$(stat -c %b "$pool/data")" -lt 64 ] || fail "data file is not sparse"
check create

# refuses to overwrite an existing pool without --force
expect_rc 1 "$THINP" pool create "$pool" --data-size 1G --metadata-size 16M
grep -q -- "--force" "$tmp/err" || fail "refusal does not mention --force"

"$THINP" thin create "$pool" 1
check "thin create"
[ "$("$THINP" thin status "$pool" 1)" = "0 -" ] || fail "empty thin status"

# 100 KiB of pattern at offset 4 KiB: touches blocks 0 and 1
head -c 102400 /dev/urandom >"$tmp/in"
"$THINP" write "$pool" 1 4k 102400 <"$tmp/in"
"$THINP" read "$pool" 1 4k 102400 >"$tmp/back"
cmp "$tmp/in" "$tmp/back" || fail "read back differs"
[ "$("$THINP" thin status "$pool" 1)" = "256 255" ] || fail "thin status after write: $("$THINP" thin status "$pool" 1)"
# unwritten ranges read as zeros
"$THINP" read "$pool" 1 1m 4096 | cmp - <(head -c 4096 /dev/zero) || fail "unmapped read not zero"
check write

# snapshot, CoW write on the snapshot, origin unchanged
"$THINP" thin snap "$pool" 2 1
head -c 4096 /dev/urandom >"$tmp/in2"
"$THINP" write "$pool" 2 8k 4096 <"$tmp/in2"
"$THINP" read "$pool" 2 8k 4096 | cmp - "$tmp/in2" || fail "snapshot write"
"$THINP" read "$pool" 1 4k 102400 | cmp - "$tmp/in" || fail "origin changed by snapshot write"
check snap

line=$("$THINP" pool status "$pool")
# <trans> <used>/<total meta> <used>/<total data> <held> rw discard_passdown queue_if_no_space - <lw>
[[ "$line" =~ ^0\ [0-9]+/4096\ 3/16384\ -\ rw\ discard_passdown\ queue_if_no_space\ -\ 1024\ $ ]] ||
	fail "pool status line '$line'"

"$THINP" set-transaction-id "$pool" 0 5
expect_rc 1 "$THINP" set-transaction-id "$pool" 0 6
[[ "$("$THINP" pool status "$pool")" == 5\ * ]] || fail "transaction id not 5"

"$THINP" metadata-snap "$pool" reserve
held=$("$THINP" pool status "$pool" | awk '{print $4}')
[ "$held" != "-" ] || fail "no held root after reserve"
thin_dump --metadata-snap="$held" "$pool/metadata" >"$tmp/msnap.xml"
grep -q 'dev_id="2"' "$tmp/msnap.xml" || fail "thin_dump -m of the held root"
"$THINP" metadata-snap "$pool" release
[ "$("$THINP" pool status "$pool" | awk '{print $4}')" = "-" ] || fail "held root after release"
check metadata-snap

"$THINP" pool extend "$pool" --data-size 2G
[ "$(stat -c %s "$pool/data")" = $((2 << 30)) ] || fail "data not grown"
[[ "$("$THINP" pool status "$pool")" == *"/32768 "* ]] || fail "pool not grown"
check extend

"$THINP" discard "$pool" 2 0 128k
[ "$("$THINP" thin status "$pool" 2)" = "0 -" ] || fail "discard left mappings: $("$THINP" thin status "$pool" 2)"
"$THINP" thin delete "$pool" 2
expect_rc 1 "$THINP" thin status "$pool" 2
check delete

# usage errors: exit 2, the bad value named
expect_rc 2 "$THINP" pool create "$tmp/p2" --data-size 12Q
grep -q "12Q" "$tmp/err" || fail "bad size not named"
expect_rc 2 "$THINP" pool create "$tmp/p3" --block-size 100k
grep -q "100k" "$tmp/err" || fail "bad block size not named"
expect_rc 2 "$THINP" thin create "$pool" 99999999
grep -q "99999999" "$tmp/err" || fail "bad id not named"
expect_rc 2 "$THINP" write "$pool" 1 abc 10
expect_rc 2 "$THINP" frobnicate
"$THINP" pool create --help >"$tmp/help"
grep -q "usage" "$tmp/help" || fail "--help"

# loop-lvm preset (Docker): skip_block_zeroing persists in the table
"$THINP" pool create "$tmp/docker" --data-size 1G --metadata-size 8M --skip-block-zeroing --low-water 32768
[[ "$("$THINP" pool status "$tmp/docker")" == *" rw discard_passdown queue_if_no_space - "* ]] || fail "docker preset status"
# loop-lvm through real loop devices (root): same results, no loop left behind
if [ "$(id -u)" = 0 ] && [ -e /dev/loop-control ]; then
	lp=$tmp/looped
	"$THINP" pool create "$lp" --losetup --data-size 256M --metadata-size 8M
	"$THINP" thin create "$lp" 7 --losetup
	head -c 8192 /dev/urandom >"$tmp/in8"
	"$THINP" write "$lp" 7 60k 8192 --losetup <"$tmp/in8" # 60k..68k: blocks 0 and 1
	"$THINP" read "$lp" 7 60k 8192 --losetup | cmp - "$tmp/in8" || fail "losetup read back"
	[ "$("$THINP" thin status "$lp" 7 --losetup)" = "256 255" ] || fail "losetup thin status"
	thin_check -q "$lp/metadata" || fail "thin_check after --losetup"
	# the plain-file view of the same pool agrees
	"$THINP" read "$lp" 7 64k 4096 | cmp - <(tail -c +4097 "$tmp/in8") || fail "file view of a losetup pool"
	# the seed's "increase capacity" on loop-lvm: the files grow, the loops re-read their size
	"$THINP" pool extend "$lp" --data-size 512M --metadata-size 16M --losetup ||
		fail "pool extend through loop devices"
	[ "$(stat -c %s "$lp/data") $(stat -c %s "$lp/metadata")" = "$((512 << 20)) $((16 << 20))" ] ||
		fail "pool extend --losetup: the files did not grow"
	set -- $("$THINP" pool status "$lp" --losetup)
	# TRANSACTION_ID USED_META/TOTAL_META USED_DATA/TOTAL_DATA ...: 16M of 4k, 512M of 64k
	[ "${2#*/}" = 4096 ] && [ "$3" = 2/8192 ] || fail "pool extend --losetup: status $*"
	"$THINP" read "$lp" 7 60k 8192 --losetup | cmp - "$tmp/in8" || fail "losetup read back after extend"
	thin_check -q "$lp/metadata" || fail "thin_check after extend --losetup"
	# (only this test's files: other tests may run at the same time with their own loops)
	[ -z "$(losetup -j "$lp/data"; losetup -j "$lp/metadata")" ] || fail "a loop device was left attached"
	# a block device (direct-lvm) is used whole; it is grown by its owner, not by thinp
	bd=$tmp/bdev
	mkdir "$bd"
	truncate -s 64M "$bd/data"
	ld=$(losetup -f --show "$bd/data")
	"$THINP" pool create --data "$ld" --metadata "$bd/meta" --metadata-size 8M ||
		fail "pool create on a block device without --data-size"
	set -- $("$THINP" pool status --data "$ld" --metadata "$bd/meta")
	[ "$3" = 0/1024 ] || fail "a 64M block device should give 1024 data blocks: $*"
	if "$THINP" pool create --data "$ld" --metadata "$bd/meta2" --data-size 1G 2>"$tmp/err"; then
		fail "pool create asked for more than the block device has"
	fi
	grep -q "has 67108864 bytes, fewer than the 1073741824 asked for" "$tmp/err" ||
		fail "unclear error for a too-small block device: $(cat "$tmp/err")"
	[ ! -e "$bd/meta2" ] || fail "a failed pool create left the metadata file it made"
	if "$THINP" pool extend --data "$ld" --metadata "$bd/meta" --data-size 128M 2>"$tmp/err"; then
		fail "pool extend beyond the block device"
	fi
	grep -q "grow it first" "$tmp/err" || fail "unclear error extending past a block device: $(cat "$tmp/err")"
	truncate -s 128M "$bd/data"
	losetup -c "$ld"
	"$THINP" pool extend --data "$ld" --metadata "$bd/meta" --data-size 128M ||
		fail "pool extend after the block device grew"
	set -- $("$THINP" pool status --data "$ld" --metadata "$bd/meta")
	[ "$3" = 0/2048 ] || fail "extend after the device grew: status $*"
	losetup -d "$ld"
	ld=""
else
	echo "note: not root or no loop devices: --losetup not exercised"
fi
echo "pool_cli: all checks passed"
