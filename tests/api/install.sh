#!/usr/bin/env bash
# `make install` into a DESTDIR: the library with its SONAME link, the header, the CLI, the fio
# engine and a pkg-config file that names the version and the flags.
set -euo pipefail
: "${BUILD:?set BUILD to the build directory}"
: "${THINP:?set THINP to the thinp CLI under test}"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if grep -qs -- -fsanitize "$BUILD/.build-flags"; then
	echo "SKIP: sanitizer build ($BUILD) has no fio engine to install"
	exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
make -C "$ROOT" --no-print-directory -s install DESTDIR="$tmp" PREFIX=/usr \
	BUILDDIR="$BUILD" THINP_BIN="$THINP" ENGINE_SO="${THINP_ENGINE:-$ROOT/ioengine/thinp.so}" \
	>"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; echo "FAIL: make install"; exit 1; }
fail=0
for f in usr/lib/libthinp.a usr/lib/libthinp.so.0 usr/lib/libthinp.so usr/include/thinp.h \
	usr/bin/thinp usr/lib/thinbench/thinp.so usr/lib/pkgconfig/libthinp.pc; do
	[ -e "$tmp/$f" ] || { echo "FAIL: $f not installed"; fail=1; }
done
[ "$(readlink "$tmp/usr/lib/libthinp.so")" = libthinp.so.0 ] || { echo "FAIL: libthinp.so link"; fail=1; }
ver=$(PKG_CONFIG_SYSROOT_DIR=$tmp PKG_CONFIG_LIBDIR=$tmp/usr/lib/pkgconfig pkg-config --modversion libthinp)
want=$(sed -n 's/^VERSION *?= *//p' "$ROOT/Makefile")
[ "$ver" = "$want" ] || { echo "FAIL: libthinp.pc version '$ver', Makefile's '$want'"; fail=1; }
libs=$(PKG_CONFIG_SYSROOT_DIR=$tmp PKG_CONFIG_LIBDIR=$tmp/usr/lib/pkgconfig pkg-config --libs --static libthinp)
case $libs in *-lthinp*-lexpat*) ;; *) echo "FAIL: pkg-config --libs --static: $libs"; fail=1 ;; esac
"$tmp/usr/bin/thinp" --help >/dev/null || { echo "FAIL: installed thinp --help"; fail=1; }
[ $fail -eq 0 ] && echo "PASS: installed $(cd "$tmp" && find . -type f -o -type l | wc -l) files, libthinp $ver"
exit $fail
