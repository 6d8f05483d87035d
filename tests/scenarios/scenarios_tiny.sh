#!/usr/bin/env bash
# scenarios/run on a tiny matrix (SCENARIOS_SCALE=tiny, --repeat 1): a handful of cases from
# several scenarios, both modes, with their raw/qcow2 baselines; then checks what it wrote:
# summary.csv's schema and rows, every JSON file parses, the charts exist and are non-empty
# PNG/SVG, every link in report.md resolves. A second run with an injected failure must carry
# on, record it and exit non-zero. Needs fio, gnuplot, qemu-img and the built engine (make).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
# A sanitizer build has no fio engine (fio cannot load an ASan .so): the engine tests skip
# there too.
if grep -qs -- -fsanitize "$BUILD/.build-flags"; then
	echo "SKIP: sanitizer build ($BUILD); the benchmark runner needs the plain build"
	exit 0
fi
mkdir -p "$BUILD"
WORK=$(mktemp -d "$BUILD/scenarios-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export SCENARIOS_SCALE=tiny

echo "== tiny matrix"
"$ROOT/scenarios/run" --repeat 1 --out "$WORK/run" --tmp "$WORK" \
	--only '^alloc\.bs=4k\.order=seq\.thinp' \
	--only '^cow\.bs=4k\.order=seq\.thinp' \
	--only '^chain\.depth=(1|4)\.thinp' \
	--only '^fill\.nospace=error\.thinp-tool\.loop' \
	--only '^seed\.update=32k\.thinp\.loop' \
	2>&1 | tail -n 5

echo "== checking the files"
python3 -B - "$WORK/run" "$ROOT" <<'EOF'
import csv, glob, json, os, re, sys
out, root = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(root, "scenarios"))
from thinbench_runner import kernel_results, rundata
bad = []

# summary.csv: the documented header, rows of that width, numbers where numbers belong
rows = list(csv.reader(open(os.path.join(out, "summary.csv"))))
if rows[0] != rundata.CSV_COLUMNS:
    bad.append(f"summary.csv header {rows[0]} != {rundata.CSV_COLUMNS}")
if len(rows) < 10:
    bad.append(f"summary.csv has only {len(rows) - 1} rows")
numeric = {"ios", "median_us", "min_us", "max_us", "lat_p50_us", "lat_p99_us", "iops", "mbps",
           "bytes_amp", "ratio_raw", "ratio_qcow2", "alloc_per_io", "blocks_per_io"}
for r in rows[1:]:
    if len(r) != len(rows[0]):
        bad.append(f"summary.csv row of {len(r)} fields: {r[:3]}")
        continue
    d = dict(zip(rows[0], r))
    for k in numeric:
        if d[k] != "":
            try:
                float(d[k])
            except ValueError:
                bad.append(f"summary.csv {d['case']} {k}={d[k]!r} is not a number")
    if d["status"] != "ok":
        bad.append(f"summary.csv: {d['case']} status {d['status']}")
    if d["schema"] != str(rundata.SUMMARY_SCHEMA):
        bad.append(f"summary.csv: {d['case']} schema {d['schema']!r}, not {rundata.SUMMARY_SCHEMA}")
cases_json = json.load(open(os.path.join(out, "cases.json")))
if cases_json.get("schema") != 1:
    bad.append(f"cases.json schema {cases_json.get('schema')!r}, not 1")
want = {("alloc.bs=4k.order=seq.thinp.loop.z0", "write_provision"),
        ("alloc.bs=4k.order=seq.thinp.direct.z1", "write_provision_zero"),
        ("cow.bs=4k.order=seq.thinp.loop", "write_cow"),
        ("chain.depth=4.thinp.loop", "all"), ("alloc.bs=4k.order=seq.raw-psync.loop", "all"),
        ("alloc.bs=4k.order=seq.qcow2-bench.loop", "all"), ("fill.nospace=error.thinp-tool.loop", "all"),
        ("seed.update=32k.thinp.loop", "all")}
have = {(r[0], r[9]) for r in rows[1:]}
for w in sorted(want - have):
    bad.append(f"summary.csv has no row {w}")
byk = {(r[0], r[8], r[9]): dict(zip(rows[0], r)) for r in rows[1:]}
r = byk.get(("alloc.bs=4k.order=seq.thinp.loop.z0", "first-write", "all"))
if r and not (r["ratio_raw"] and float(r["ratio_raw"]) > 0 and r["alloc_per_io"] == "65536"):
    bad.append(f"alloc 4k: ratio_raw {r['ratio_raw']!r}, alloc_per_io {r['alloc_per_io']!r} "
               "(expected a ratio and 65536)")

# every JSON file parses
n = 0
for p in glob.glob(os.path.join(out, "**", "*.json"), recursive=True):
    n += 1
    try:
        json.load(open(p))
    except ValueError as e:
        bad.append(f"{p}: {e}")
if n < 10:
    bad.append(f"only {n} JSON files")
env = json.load(open(os.path.join(out, "env.json")))
for k in ("cpu", "kernel", "fio", "git_commit", "options", "direct_lvm", "kernel_dm_thin"):
    if env.get(k) in (None, ""):
        bad.append(f"env.json: no {k}")

# charts: PNG + SVG, non-empty
for name in ("latency-per-class", "write-amplification", "cost-vs-raw", "snapshot-depth",
             "fill-timeline-loop"):
    for ext, magic in (("png", b"\x89PNG"), ("svg", b"<?xml")):
        p = os.path.join(out, "charts", f"{name}.{ext}")
        if not os.path.exists(p) or os.path.getsize(p) < 1000:
            bad.append(f"chart {p} missing or empty")
        elif not open(p, "rb").read(8).startswith(magic):
            bad.append(f"chart {p} is not a {ext}")

# every relative link of report.md resolves
report = open(os.path.join(out, "report.md")).read()
links = re.findall(r"\]\(([^)\s]+)\)", report)
if len(links) < 10:
    bad.append(f"report.md has only {len(links)} links")
for l in links:
    if re.match(r"[a-z]+://", l):
        continue
    p = os.path.normpath(os.path.join(out, l.split("#")[0]))
    if not os.path.exists(p):
        bad.append(f"report.md link {l} does not resolve")
if kernel_results.KERNEL_NOTE not in report or "Kernel dm-thin beside libthinp" in report:
    bad.append("report.md does not say how to fill the kernel column (no --kernel here)")
if bad:
    print("FAIL:\n  " + "\n  ".join(bad))
    sys.exit(1)
print(f"  ok: {len(rows) - 1} rows, {n} JSON files, charts, {len(links)} links")
EOF

echo "== a failing case is recorded, the run goes on, the exit status is non-zero"
rc=0
SCENARIOS_FAIL='^alloc\.bs=4k\.order=seq\.thinp\.loop\.z0$' "$ROOT/scenarios/run" --repeat 1 \
	--out "$WORK/fail" --tmp "$WORK" --only '^alloc\.bs=4k\.order=seq\.thinp\.loop' \
	>"$WORK/fail.log" 2>&1 || rc=$?
tail -n 4 "$WORK/fail.log"
if [ "$rc" -eq 0 ]; then
	echo "FAIL: the run with a failing case exited 0"
	exit 1
fi
grep -q 'FAILED' "$WORK/fail.log" || { echo "FAIL: no FAILED line"; exit 1; }
grep -q 'alloc.bs=4k.order=seq.thinp.loop.z0.*failed' "$WORK/fail/summary.csv" || {
	echo "FAIL: summary.csv does not record the failed case"
	exit 1
}
grep -q '^alloc.bs=4k.order=seq.thinp.loop.z1,.*,ok,[0-9]*$' "$WORK/fail/summary.csv" || {
	echo "FAIL: the case after the failure did not run"
	exit 1
}
grep -q 'Failed or skipped' "$WORK/fail/report.md" || { echo "FAIL: report.md lists no failure"; exit 1; }
echo "  ok: exit $rc, failure recorded, later cases ran"

echo "== nothing left behind (loop devices, qemu-nbd, mounts)"
if losetup -a 2>/dev/null | grep -q "$WORK"; then
	echo "FAIL: loop devices left over:"
	losetup -a | grep "$WORK"
	exit 1
fi
if grep -q "$WORK" /proc/mounts; then
	echo "FAIL: mounts left over"
	exit 1
fi
if pgrep -f "qemu-nbd.*$WORK" >/dev/null; then
	echo "FAIL: qemu-nbd left running"
	exit 1
fi
echo "PASS"
