#!/usr/bin/env bash
# Oracle: `thinp dump` on metadata thin_restore cannot write — mapping subtrees shared by
# snapshots (nodes with 3+ references, so the metadata space map's overflow tree is in
# use) and a metadata snapshot — against thin_dump 0.9.0, including `dump -m`.
# The metadata is written by tests/tools/mk_shared_meta.c through libthinp's metadata API
# (compiled here against $BUILD/libthinp.a); thin_check must accept it first.
#
# Env: THINP (CLI under test), BUILD (build dir with libthinp.a). SEED (printed) fixes
# the generated data.
set -euo pipefail

: "${THINP:?set THINP to the thinp CLI under test}"
: "${BUILD:?set BUILD to the build directory (with libthinp.a)}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
impl=$here/../../impl
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

SEED=${THINP_SEED:-${SEED:-$(( (RANDOM << 15) | RANDOM ))}}
echo "seed: $SEED (rerun with THINP_SEED=$SEED)"

# the generator is built by the Makefile (tests/tools/mk_shared_meta.c), in the build's mode
mk_shared_meta=$BUILD/tests/tools/mk_shared_meta
[ -x "$mk_shared_meta" ] || { echo "FAIL: $mk_shared_meta is not built (make tools)"; exit 1; }

failures=0
fail() {
	echo "FAIL: $*" >&2
	failures=$((failures + 1))
}

same() { # NAME, then two commands separated by --
	local name=$1
	shift
	local a=() b=()
	while [ "$1" != -- ]; do a+=("$1"); shift; done
	shift
	b=("$@")
	"${a[@]}" >"$tmp/a.out" || { fail "$name: ${a[*]} failed"; return; }
	"${b[@]}" >"$tmp/b.out" || { fail "$name: ${b[*]} failed"; return; }
	if ! cmp -s "$tmp/a.out" "$tmp/b.out"; then
		fail "$name: outputs differ"
		diff "$tmp/a.out" "$tmp/b.out" | head -20 >&2 || true
	fi
}

meta=$tmp/shared.bin
truncate -s 8M "$meta"
held=$("$mk_shared_meta" "$meta" "$SEED")
thin_check "$meta" >/dev/null 2>"$tmp/check.err" ||
	{ cat "$tmp/check.err" >&2; fail "thin_check rejects the generated metadata"; }

same "dump" thin_dump "$meta" -- "$THINP" dump "$meta"
same "dump -f human_readable" thin_dump -f human_readable "$meta" -- \
	"$THINP" dump -f human_readable "$meta"
same "dump -m" thin_dump -m "$meta" -- "$THINP" dump -m "$meta"
same "dump -m$held" thin_dump "-m$held" "$meta" -- "$THINP" dump "--metadata-snap=$held" "$meta"
same "dump -m --skip-mappings" thin_dump -m --skip-mappings "$meta" -- \
	"$THINP" dump -m --skip-mappings "$meta"
same "dump -m --dev-id 2" thin_dump -m --dev-id 2 "$meta" -- "$THINP" dump -m --dev-id 2 "$meta"
same "dump -m -f human_readable" thin_dump -m -f human_readable "$meta" -- \
	"$THINP" dump -m -f human_readable "$meta"
# the snapshot really is older than the live metadata
cmp -s <(thin_dump "$meta") <(thin_dump -m "$meta") && fail "snapshot and live dumps are equal"
rc=0
"$THINP" dump -m$((held + 1)) "$meta" >/dev/null 2>"$tmp/m.err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "not the metadata snapshot" "$tmp/m.err" ||
	fail "dump -m with a wrong block: exit $rc, $(cat "$tmp/m.err")"

# restoring the dump of shared metadata unshares it (like thin_restore)
thin_dump "$meta" >"$tmp/shared.xml"
truncate -s 16M "$tmp/ref.bin" "$tmp/ours.bin"
thin_restore -q -i "$tmp/shared.xml" -o "$tmp/ref.bin"
"$THINP" restore -q -i "$tmp/shared.xml" -o "$tmp/ours.bin" || fail "restore of shared metadata"
thin_check "$tmp/ours.bin" >/dev/null 2>&1 || fail "thin_check rejects restore of shared metadata"
"$THINP" check "$tmp/ours.bin" >/dev/null 2>"$tmp/ours.check" ||
	fail "thinp check rejects restore of shared metadata: $(head -5 "$tmp/ours.check")"
same "restore of shared metadata" thin_dump "$tmp/ref.bin" -- thin_dump "$tmp/ours.bin"

if [ "$failures" -ne 0 ]; then
	echo "$failures failure(s) (seed $SEED)" >&2
	exit 1
fi
echo "all metadata-snapshot / shared-subtree dump checks passed (seed $SEED, snapshot at block $held)"
