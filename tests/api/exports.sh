#!/usr/bin/env bash
# libthinp.so's ABI is thinp.h: it exports exactly the functions thinp.h declares THINP_API
# (nothing of the internal layers: bm_, tm_, btree_, tmd_ …), and carries its SONAME.
set -euo pipefail
: "${BUILD:?set BUILD to the build directory (with libthinp.so)}"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
so=$BUILD/libthinp.so
[ -f "$so" ] || { echo "FAIL: $so is not built"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

nm -D --defined-only "$so" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sort >"$tmp/exported"
grep -o 'THINP_API [^(]*(' "$ROOT/impl/include/thinp.h" | grep -o 'thinp_[a-z0-9_]*' | sort -u \
	>"$tmp/declared"
echo "exported: $(wc -l <"$tmp/exported") symbols; declared THINP_API: $(wc -l <"$tmp/declared")"
[ "$(wc -l <"$tmp/declared")" -ge 30 ] || { echo "FAIL: too few THINP_API declarations found"; exit 1; }
if ! diff -u "$tmp/declared" "$tmp/exported"; then
	echo "FAIL: libthinp.so's exports differ from thinp.h's THINP_API list (- declared, + exported)"
	exit 1
fi
soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = libthinp.so.0 ] || { echo "FAIL: SONAME is '$soname', want libthinp.so.0"; exit 1; }
echo "SONAME $soname"
# the test-only fault injector never ships in the library
if nm "$BUILD/libthinp.a" | grep -q ' T tp_fault_'; then
	echo "FAIL: libthinp.a contains the fault injector (tests/support)"
	exit 1
fi
echo "PASS"
