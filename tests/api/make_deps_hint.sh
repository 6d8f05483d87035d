#!/usr/bin/env bash
# Plain `make` on a machine without a build dependency names the missing package and the command
# that installs it, before any compiler error. The missing package is simulated with a
# dpkg-query that reports libdevmapper-dev as absent.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/bin"
real=$(command -v dpkg-query)
cat >"$tmp/bin/dpkg-query" <<EOS
#!/bin/sh
for a; do case \$a in libdevmapper-dev) echo "unknown ok not-installed"; exit 0 ;; esac; done
exec "$real" "\$@"
EOS
chmod +x "$tmp/bin/dpkg-query"
rc=0
PATH="$tmp/bin:$PATH" make -C "$ROOT" --no-print-directory BUILDDIR="$tmp/b" \
	THINP_BIN="$tmp/b/thinp" lib >"$tmp/out" 2>&1 || rc=$?
cat "$tmp/out"
[ "$rc" -ne 0 ] || { echo "FAIL: make succeeded without libdevmapper-dev"; exit 1; }
grep -q "missing Debian packages: libdevmapper-dev" "$tmp/out" || { echo "FAIL: the package is not named"; exit 1; }
grep -q "run 'make deps'" "$tmp/out" || { echo "FAIL: the installing command is not named"; exit 1; }
if grep -q "No such file or directory" "$tmp/out" || [ -n "$(find "$tmp/b" -name '*.o' 2>/dev/null)" ]; then
	echo "FAIL: the build started anyway"
	exit 1
fi
echo PASS
