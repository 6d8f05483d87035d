#!/usr/bin/env bash
# The runner's CoW/zeroing-policy cases on the tiny matrix (--repeat 1): the 4 KiB CoW and
# the 4 KiB first write with zeroing under thinp_cow=kernel and =merged, the CoW floor
# (scenarios/jobs/10-floor.fio), qcow2 beside them. Checks the cases ran with the policy the
# id names (libthinp's exact bytes per CoW: kernel reads 64 KiB and writes 68 KiB, merged
# reads 64 KiB and writes 64 KiB; zeroing: kernel zeroes 64 KiB and writes 4 KiB, merged
# writes 64 KiB), that the floor's first step is its read plus its write, and that the
# benchmarks page reports both policies against the floor and qcow2. Needs fio, qemu-img and
# the built engine (make).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
if grep -qs -- -fsanitize "$BUILD/.build-flags"; then
	echo "SKIP: sanitizer build ($BUILD); the benchmark runner needs the plain build"
	exit 0
fi
mkdir -p "$BUILD"
WORK=$(mktemp -d "$BUILD/scenarios-cow.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export SCENARIOS_SCALE=tiny
SEED=${THINP_SEED:-1}
echo "seed $SEED (THINP_SEED: the iologs' seed)"

"$ROOT/scenarios/run" --repeat 1 --seed "$SEED" --out "$WORK/run" --tmp "$WORK" \
	--only '^cow\.bs=4k\.order=seq\.thinp' \
	--only '^alloc\.bs=4k\.order=seq\.thinp\.(loop|direct)\.z1' \
	2>&1 | tail -n 3

python3 -B - "$WORK/run" "$ROOT" <<'PY'
import json, os, sys
out, root = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(root, "scenarios"))
from thinbench_runner import benchmarks, rundata
cases = json.load(open(os.path.join(out, "cases.json")))["cases"]
bad = []
K, B = 4096, 65536


def step(cid, name):
    c = cases.get(cid)
    if not c:
        bad.append(f"no case {cid}")
        return {}
    r = c["reps"][0]
    if r.get("status") != "ok":
        bad.append(f"{cid}: {r.get('status')} {r.get('error')}")
        return {}
    return r["steps"].get(name, {})


for mode in ("loop", "direct"):
    for pol, sfx, rd, wr in (("kernel", "", B, B + K), ("merged", ".cow-merged", B, B)):
        cl = step(f"cow.bs=4k.order=seq.thinp.{mode}{sfx}", "first").get("write_cow")
        if not cl:
            bad.append(f"cow {mode} {pol}: no write_cow class")
            continue
        n = cl["ios"]
        if (cl["data_read"], cl["data_written"]) != (n * rd, n * wr):
            bad.append(f"cow {mode} {pol}: {n} CoWs read {cl['data_read']} wrote "
                       f"{cl['data_written']}, expected {n * rd} and {n * wr}")
    for pol, sfx, wr, zr in (("kernel", "", K, B), ("merged", ".cow-merged", B, 0)):
        cl = step(f"alloc.bs=4k.order=seq.thinp.{mode}.z1{sfx}", "first-write") \
            .get("write_provision_zero")
        if not cl:
            bad.append(f"zeroing {mode} {pol}: no write_provision_zero class")
            continue
        n = cl["ios"]
        if (cl["data_written"], cl["data_zeroed"]) != (n * wr, n * zr):
            bad.append(f"zeroing {mode} {pol}: {n} writes wrote {cl['data_written']} zeroed "
                       f"{cl['data_zeroed']}, expected {n * wr} and {n * zr}")
    f = f"cow.bs=4k.order=seq.floor.{mode}"
    r, w, first = step(f, "read").get("all"), step(f, "write").get("all"), \
        step(f, "first").get("all")
    if r and w and first:
        if abs(first["cost_us"] - (r["cost_us"] + w["cost_us"])) > 1e-6:
            bad.append(f"{f}: first {first['cost_us']} != read {r['cost_us']} + write "
                       f"{w['cost_us']}")
        if r["dir"] != "read" or w["dir"] != "write" or r["bytes"] != w["bytes"]:
            bad.append(f"{f}: read {r['dir']} {r['bytes']} B, write {w['dir']} {w['bytes']} B")
    else:
        bad.append(f"{f}: steps read, write and first expected")
    # the merged case is compared with the same baselines as the kernel's
    bl = cases.get(f"cow.bs=4k.order=seq.thinp.{mode}.cow-merged", {}).get("baselines", [])
    for want in (f"cow.bs=4k.order=seq.floor.{mode}", f"cow.bs=4k.order=seq.qcow2-bench.{mode}"):
        if want not in bl:
            bad.append(f"merged CoW {mode}: baseline {want} missing from {bl}")

page = benchmarks.page(rundata.Run(out), out, "run")
for mode in ("loop-lvm", "direct-lvm"):
    line = next((l for l in page.splitlines() if l.startswith(f"- **CoW/zeroing policy, {mode}**")),
                None)
    if not line:
        bad.append(f"the benchmarks page has no CoW/zeroing policy line for {mode}")
        continue
    for w in ("floor", "kernel CoW 4 KiB", "merged CoW 4 KiB", "qcow2", "with zeroing"):
        if w not in line:
            bad.append(f"{mode} policy line lacks {w!r}: {line}")
if bad:
    print("FAIL:\n  " + "\n  ".join(bad))
    sys.exit(1)
print("  ok: both policies' exact bytes, the floor, the page's policy lines")
PY
echo "PASS"
