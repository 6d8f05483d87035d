#!/bin/bash
# `thinp check` takes the options LVM passes to thin_check (thin_check_options: -q,
# --clear-needs-check-flag, --skip-mappings, --ignore-non-fatal-errors; -V), so
# thin_check_executable may name it. Oracle: thin_check 0.9.0 on the same images, exit code
# by exit code; both are pinned here, so a change of either shows. Images: clean, the
# needs_check flag set, a data leak, a metadata leak, a damaged mapping leaf, a held
# metadata snapshot (tests/cli/edit_meta.py makes the faults with valid checksums), a
# damaged superblock and a damaged device details tree (a byte changed, checksum stale).
#
# Where thinp differs, on purpose:
#  - usage errors exit 2 (thin_check: 1);
#  - data reference counts are compared (thin_check 0.9 does not): a data leak fails
#    unless --ignore-non-fatal-errors;
#  - --skip-mappings skips what thin_check skips (the trees below the top level of the
#    mapping tree, data counts, metadata leaks) and so agrees with it on these images; it
#    still checks the space maps' structure and counts that are too low (thin_check
#    --skip-mappings looks at no space map). --clear-needs-check-flag with it is a usage
#    error (exit 2), as with the other partial checks.
set -euo pipefail
THINP=${THINP:-impl/cli/thinp}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
for t in thin_check python3; do
	command -v "$t" >/dev/null || { echo "missing $t (make deps)" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
edit() { python3 "$here/edit_meta.py" "$@"; }
n=0

# both IMAGE "OPTIONS" THIN_CHECK_RC THINP_RC [FLAGS_AFTER_THIN_CHECK FLAGS_AFTER_THINP]:
# each tool on its own copy of IMAGE; the needs_check flags after, when given
both() {
	local img=$1 opts=$2 want_tc=$3 want_tp=$4 rc
	# shellcheck disable=SC2086 # the options are words
	{
		cp "$tmp/$img.bin" "$tmp/tc.bin"
		rc=0; thin_check $opts "$tmp/tc.bin" >"$tmp/tc.out" 2>&1 || rc=$?
		[ "$rc" = "$want_tc" ] || { cat "$tmp/tc.out" >&2; fail "thin_check $opts $img: exit $rc (pinned: $want_tc)"; }
		cp "$tmp/$img.bin" "$tmp/tp.bin"
		rc=0; "$THINP" check $opts "$tmp/tp.bin" >"$tmp/tp.out" 2>&1 || rc=$?
		[ "$rc" = "$want_tp" ] || { cat "$tmp/tp.out" >&2; fail "thinp check $opts $img: exit $rc (want $want_tp; thin_check: $want_tc)"; }
	}
	if [ $# -gt 4 ]; then
		[ "$(edit "$tmp/tc.bin" flags)" = "$5" ] || fail "thin_check $opts $img: flags $(edit "$tmp/tc.bin" flags), pinned $5"
		[ "$(edit "$tmp/tp.bin" flags)" = "$6" ] || fail "thinp check $opts $img: flags $(edit "$tmp/tp.bin" flags), want $6"
	fi
	n=$((n + 1))
}

pool=$tmp/pool
"$THINP" pool create "$pool" --data-size 64M --metadata-size 8M
"$THINP" thin create "$pool" 1
head -c 300000 /dev/urandom | "$THINP" write "$pool" 1 0 300000
"$THINP" thin snap "$pool" 2 1
cp "$pool/metadata" "$tmp/clean.bin"
for e in needs-check leak meta-leak bad-leaf; do
	cp "$tmp/clean.bin" "$tmp/$e.bin"
	edit "$tmp/$e.bin" "$e" >/dev/null
done
cp "$tmp/bad-leaf.bin" "$tmp/bad-nc.bin"
edit "$tmp/bad-nc.bin" needs-check
"$THINP" metadata-snap "$pool" reserve
cp "$pool/metadata" "$tmp/snap.bin"
thin_check -q "$tmp/snap.bin" || fail "thin_check rejects the image with a metadata snapshot"

# ---- clean metadata: every option passes, nothing is written ----
for o in "" -q --quiet --skip-mappings --super-block-only --ignore-non-fatal-errors \
	--clear-needs-check-flag "-q --clear-needs-check-flag" "-q --clear-needs-check-flag --skip-mappings"; do
	case $o in
	*--skip-mappings*--clear* | *--clear*--skip-mappings*) both clean "$o" 1 2 ;;
	*) both clean "$o" 0 0 ;;
	esac
	cmp -s "$tmp/tp.bin" "$tmp/clean.bin" || fail "thinp check $o wrote to clean metadata"
done
both clean -q 0 0
[ ! -s "$tmp/tc.out" ] && [ ! -s "$tmp/tp.out" ] || fail "-q printed something"
# -m: a metadata snapshot must be there
both clean -m 1 1
both clean --metadata-snap 1 1
both snap -m 0 0
both snap --metadata-snap 0 0
both snap "-m --skip-mappings" 0 0
# --metadata-snapshot is in thin_check's man page, not in the 0.9.0 binary
both clean --metadata-snapshot 1 2

# ---- needs_check: reported as clean; cleared after a full clean check only ----
both needs-check "" 0 0 1 1
both needs-check "--skip-mappings" 0 0 1 1
both needs-check "--clear-needs-check-flag" 0 0 0 0
cmp -s "$tmp/tc.bin" "$tmp/tp.bin" || fail "thinp's cleared superblock differs from thin_check's"
cmp -s "$tmp/tp.bin" "$tmp/clean.bin" || fail "clearing needs_check changed more than the flag"
both needs-check "-q --clear-needs-check-flag" 0 0 0 0
[ ! -s "$tmp/tp.out" ] || fail "check -q --clear-needs-check-flag printed: $(cat "$tmp/tp.out")"
both needs-check "--clear-needs-check-flag -m" 1 2 1 1
both needs-check "--clear-needs-check-flag --super-block-only" 1 2 1 1
both needs-check "--clear-needs-check-flag --ignore-non-fatal-errors" 1 2 1 1
grep -q "needs a full check" "$tmp/tp.out" || fail "the refusal does not say why: $(cat "$tmp/tp.out")"
both needs-check "--clear-needs-check-flag --skip-mappings" 1 2 1 1
grep -q "not with --skip-mappings" "$tmp/tp.out" || fail "the refusal does not name --skip-mappings: $(cat "$tmp/tp.out")"
both bad-nc "--clear-needs-check-flag" 1 1 1 1
both bad-nc "-q --clear-needs-check-flag --skip-mappings" 1 2 1 1

# ---- non-fatal faults: leaks ----
both leak "" 0 1
grep -q "leaked" "$tmp/tp.out" || fail "the data leak is not named"
both leak --ignore-non-fatal-errors 0 0
grep -q "warning: .*leaked" "$tmp/tp.out" || fail "the ignored leak is not a warning"
both leak "-q --clear-needs-check-flag" 0 1
both leak --skip-mappings 0 0
both meta-leak "" 1 1
both meta-leak --ignore-non-fatal-errors 0 0
both meta-leak --skip-mappings 0 0
both meta-leak --super-block-only 0 0

# ---- fatal faults ----
both bad-leaf "" 1 1
both bad-leaf --ignore-non-fatal-errors 1 1
both bad-leaf --skip-mappings 0 0
[ ! -s "$tmp/tp.out" ] || fail "check --skip-mappings on a damaged leaf printed: $(cat "$tmp/tp.out")"
both bad-leaf --super-block-only 0 0
both bad-leaf "-q --clear-needs-check-flag" 1 1

# ---- damage --skip-mappings still sees: the superblock, the device details tree ----
cp "$tmp/clean.bin" "$tmp/bad-sb.bin"
printf '\x5a' | dd of="$tmp/bad-sb.bin" bs=1 seek=100 conv=notrunc status=none
details_root=$(od -An -t u8 -j 328 -N 8 "$tmp/clean.bin" | tr -d ' ')
[ "$details_root" -gt 0 ] || fail "no device details root in the image"
cp "$tmp/clean.bin" "$tmp/bad-details.bin"
printf '\x5a' | dd of="$tmp/bad-details.bin" bs=1 seek=$((details_root * 4096 + 40)) conv=notrunc status=none
for o in "" --skip-mappings "-q --skip-mappings"; do
	both bad-sb "$o" 1 1
	both bad-details "$o" 1 1
done
both bad-sb --skip-mappings 1 1
grep -q "superblock: bad checksum" "$tmp/tp.out" || fail "the damaged superblock is not named: $(cat "$tmp/tp.out")"
both bad-details --skip-mappings 1 1
grep -q "device details tree" "$tmp/tp.out" || fail "the damaged details tree is not named: $(cat "$tmp/tp.out")"

# ---- -V / --version: one version line on stdout, exit 0 ----
for o in -V --version; do
	out=$("$THINP" check "$o") || fail "thinp check $o: exit $?"
	[ "$(wc -l <<<"$out")" = 1 ] && [[ $out =~ [0-9]+\.[0-9]+ ]] || fail "thinp check $o: '$out'"
	thin_check "$o" >/dev/null || fail "thin_check $o"
done
echo "check_options: all checks passed ($n cases against thin_check)"
