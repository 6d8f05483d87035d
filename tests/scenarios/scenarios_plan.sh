#!/usr/bin/env bash
# The planning validation cases of scenarios/run (issue #13; docs/capacity-planning.md,
# "Validation") at the tiny scale: every spec in scenarios/plans/ is planned and replayed on
# a real libthinp pool; each case's files exist, its comparison holds the bars (data 5%,
# metadata 10%, event times 10%) and the report has the section with every case. Then the
# comparison must catch a wrong prediction: the plan of a spec with the wrong block size
# (512 KiB for 64 KiB), and of one whose LVM threshold is off (90% for 80%), compared with
# the same measurement, fail. Nothing is timed; the replay's random writes are seeded
# (THINP_SEED, default 1). Needs fio, gnuplot and the built engine.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
if grep -qs -- -fsanitize "$BUILD/.build-flags"; then
	echo "SKIP: sanitizer build ($BUILD); the benchmark runner needs the plain build"
	exit 0
fi
SEED=${THINP_SEED:-1}
echo "scenarios_plan: THINP_SEED=$SEED"
mkdir -p "$BUILD"
WORK=$(mktemp -d "$BUILD/scenarios-plan.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export SCENARIOS_SCALE=tiny
fail() { echo "FAIL: $*" >&2; exit 1; }

rc=0
"$ROOT/scenarios/run" --repeat 1 --seed "$SEED" --out "$WORK/run" --tmp "$WORK" \
	--only '^plan\.' >"$WORK/log" 2>&1 || rc=$?
tail -n 12 "$WORK/log"
[ "$rc" = 0 ] || fail "scenarios/run exited $rc"

python3 -B - "$WORK/run" "$ROOT" "$(command -v "${THINP:-$ROOT/impl/cli/thinp}")" <<'PY'
import json, os, subprocess, sys
out, root, thinp = sys.argv[1:4]
sys.path.insert(0, os.path.join(root, "scenarios"))
from thinbench_runner import plan_cases, plan_spec
bad = []
ids = plan_cases.case_ids()
if len(ids) < 6:
    bad.append(f"only {len(ids)} planning specs in scenarios/plans/")
report = open(os.path.join(out, "report.md")).read()
if "## Capacity planning" not in report:
    bad.append("report.md has no capacity-planning section")
kinds = set()
for cid in ids:
    name = cid.split(".", 1)[1]
    d = os.path.join(out, "plan", name)
    for f in ("spec.yaml", "predicted.json", "measured.json", "comparison.json", "case.json",
              "commands.txt", "charts/usage.png"):
        if not os.path.isfile(os.path.join(d, f)) or not os.path.getsize(os.path.join(d, f)):
            bad.append(f"{name}: no {f}")
    if bad:
        continue
    c = json.load(open(os.path.join(d, "comparison.json")))
    print(f"{name}: data {c['data_error_pct']:.2f}%, metadata {c['metadata_error_pct']:.2f}%, "
          + ", ".join(f"{e['event']} {e['predicted_hours']} / {e['measured_hours']} h"
                      for e in c["events"]))
    if not c["pass"] or c["data_error_pct"] > 5 or c["metadata_error_pct"] > 10 or \
            any(e["error_pct"] is None or e["error_pct"] > 10 for e in c["events"]):
        bad.append(f"{name}: misses a bar: {c['why']}")
    if len(c["steps"]) < 8:
        bad.append(f"{name}: only {len(c['steps'])} steps compared")
    kinds |= {e["event"] for e in c["events"]}
    if f"[{name}](plan/{name}/comparison.json)" not in report:
        bad.append(f"report.md has no row for {name}")
for k in ("low_water", "autoextend_data", "data_full"):
    if k not in kinds:
        bad.append(f"no case measured a {k} event")

# a wrong prediction must fail: the plan of a mutated spec against the same measurement
def replan(name, key, value):
    d = os.path.join(out, "plan", name)
    doc = plan_spec.parse(os.path.join(d, "spec.yaml"))
    sec, k = key.split(".")
    doc[sec][k] = value
    path = os.path.join(out, f"wrong-{name}.yaml")
    plan_spec.dump(doc, path)
    p = subprocess.run([thinp, "plan", "--format", "json", "--no-chart", path],
                       stdout=subprocess.PIPE, text=True, check=True)
    meas = json.load(open(os.path.join(d, "measured.json")))
    return plan_cases.compare(json.loads(p.stdout), meas)

for name, key, value in (("fresh-writes", "pool.block_size", "512k"),
                         ("heavy-cow", "pool.block_size", "512k"),
                         ("fresh-writes", "lvm.autoextend_threshold", "90")):
    c = replan(name, key, value)
    print(f"wrong {key}={value} for {name}: pass={c['pass']}: {'; '.join(c['why'])[:200]}")
    if c["pass"]:
        bad.append(f"{name} with {key}={value} passed the comparison")
if bad:
    print("\n".join("FAIL: " + b for b in bad))
    sys.exit(1)
PY
echo "scenarios_plan: ok"
