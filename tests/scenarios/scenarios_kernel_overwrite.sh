#!/usr/bin/env bash
# Issue 11's class ÷ overwrite targets need an overwrite steady state of the same write size,
# set-up and backend beside every provision and CoW step at 4 KiB and 64 KiB: in the quick
# matrix (what make vm-bench runs) every alloc/cow case of those sizes, libthinp and kernel,
# loop-lvm and direct-lvm, has its overwrite twin and that twin's raw baseline (raw-psync).
# Needs python3 (only --list runs: no root, no device-mapper).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
RUN=$ROOT/scenarios/run
"$RUN" --backend libthinp,kernel --list --data-dev /dev/null --metadata-dev /dev/null >"$WORK/q.list"
python3 -B - "$WORK/q.list" <<'PY'
import re, sys
ids = {l.split()[0] for l in open(sys.argv[1]) if re.search(r"\s+quick\s", l)}
bad, n = [], 0
for i in sorted(ids):
    m = re.match(r"^(alloc|cow)\.bs=(4k|64k)\.order=\w+\.(thinp|kernel)\.(loop|direct)", i)
    if not m:
        continue
    n += 1
    _, bs, be, mode = m.groups()
    for want in (f"overwrite.bs={bs}.{be}.{mode}", f"overwrite.bs={bs}.raw-psync.{mode}"):
        if want not in ids:
            bad.append(f"{i}: no {want} in the quick matrix")
print(f"{n} alloc/cow cases at 4k/64k checked")
if n < 16 or bad:
    print("FAIL: " + ("; ".join(bad) or f"only {n} cases"))
    sys.exit(1)
PY
echo "PASS"
