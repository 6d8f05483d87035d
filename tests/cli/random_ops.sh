#!/usr/bin/env bash
# Oracle: metadata written by libthinp after seeded random operation sequences
# (create, snapshot chains 1-16 deep, inserts, overwrites, removes, range
# removes, deletes, metadata snapshot) must pass thin_check 0.9.0 and our strict
# `thinp check`, and `thin_dump` of it must equal `thinp dump` byte for byte
# (and `thin_dump -m` must equal `thinp dump -m` when a snapshot is held).
#
# Env: THINP, BUILD (dir with libthinp.a); SEED fixes the sequences (printed).
set -euo pipefail
: "${THINP:?set THINP to the thinp CLI under test}"
: "${BUILD:?set BUILD to the build directory (with libthinp.a)}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
SEED=${THINP_SEED:-${SEED:-$(( (RANDOM << 15) | RANDOM ))}}
echo "seed: $SEED (rerun with THINP_SEED=$SEED)"

# the generator is built by the Makefile (tests/tools/mk_random_meta.c), in the build's mode
mk=$BUILD/tests/tools/mk_random_meta
[ -x "$mk" ] || { echo "FAIL: $mk is not built (make tools)"; exit 1; }

failures=0
fail() { echo "FAIL (seed $SEED, case $1): $2" >&2; failures=$((failures + 1)); }

# sizes from a handful of ops (single leaves) to enough for 3-level trees
ops=(50 300 1000 3000 8000 20000)
for i in "${!ops[@]}"; do
	n=${ops[$i]}
	s=$((SEED + i))
	meta=$tmp/m$i
	truncate -s 64M "$meta"
	held=$("$mk" "$meta" "$s" "$n") || { fail "$n ops" "generator failed"; continue; }
	thin_check "$meta" >"$tmp/tc.out" 2>&1 || { cat "$tmp/tc.out" >&2; fail "$n ops" "thin_check rejects it"; }
	"$THINP" check "$meta" >"$tmp/ours.out" 2>&1 || { cat "$tmp/ours.out" >&2; fail "$n ops" "thinp check rejects it"; }
	thin_dump "$meta" >"$tmp/a.xml" || fail "$n ops" "thin_dump failed"
	"$THINP" dump "$meta" >"$tmp/b.xml" || fail "$n ops" "thinp dump failed"
	cmp -s "$tmp/a.xml" "$tmp/b.xml" || { diff "$tmp/a.xml" "$tmp/b.xml" | head >&2; fail "$n ops" "dumps differ"; }
	if [ "$held" = held ]; then
		thin_dump -m "$meta" >"$tmp/am.xml" || fail "$n ops" "thin_dump -m failed"
		"$THINP" dump -m "$meta" >"$tmp/bm.xml" || fail "$n ops" "thinp dump -m failed"
		cmp -s "$tmp/am.xml" "$tmp/bm.xml" || fail "$n ops" "metadata-snap dumps differ"
	fi
	echo "case $n ops (seed $s): $(grep -c '<device' "$tmp/a.xml") devices, $(grep -c mapping "$tmp/a.xml") mapping lines${held:+, held snapshot}"
done
[ "$failures" = 0 ] || { echo "$failures failure(s)" >&2; exit 1; }
echo "random_ops: all cases agree"
