#!/usr/bin/env bash
# scenarios/run --ab-base-engine (scenarios/thinbench_runner/abrun.py), a real tiny run: two
# repetitions of a libthinp case and its baselines. OUT/base and OUT/new are complete run
# dirs naming one pair; the engine case ran once per side per repetition, with that side's
# engine, base first in repetition 1 and new first in 2 (ABBA); every other case ran once
# per repetition, the same record in both sides; each step records its 10th-percentile
# latency; ci/gate compare reads the pair (two pairs: inconclusive, exit 0). Refused with
# exit 2: a base engine that does not exist, a selection without an engine case. Needs fio, qemu-img, gnuplot and the engine (THINP_ENGINE; make).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
# A sanitizer build has no fio engine (fio cannot load an ASan .so): like the runner's other
# tests, this one runs with the plain build only.
if grep -qs -- -fsanitize "$BUILD/.build-flags"; then
	echo "SKIP: sanitizer build ($BUILD); an A/B run needs the plain build's engine"
	exit 0
fi
ENGINE=${THINP_ENGINE:-$ROOT/ioengine/thinp.so}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
SEED=${THINP_SEED:-1}
echo "seed $SEED (THINP_SEED)"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
CASE='^commit\.fsync=1\.thinp\.loop'

# the base side's engine: the same library under another name, so each side's commands show
# which engine they loaded
cp "$ENGINE" "$WORK/thinp-base.so"
export SCENARIOS_SCALE=tiny TMPDIR=${TMPDIR:-/var/tmp}
rc=0
THINP_ENGINE=$ENGINE "$ROOT/scenarios/run" --repeat 2 --seed "$SEED" --only "$CASE" \
	--ab-base-engine "$WORK/thinp-base.so" --out "$WORK/ab" >"$WORK/log" 2>&1 || rc=$?
[ "$rc" = 0 ] || { fail "the A/B run exited $rc"; tail -20 "$WORK/log"; }

python3 -B - "$WORK/ab" "$WORK/thinp-base.so" "$ENGINE" "$ROOT" <<'PY' || fail "the A/B run's sides"
import json, os, sys
out, base_so, new_so, root = sys.argv[1:5]
if new_so.startswith(root.rstrip("/") + "/"):  # the run writes the repository's paths relative
    new_so = os.path.relpath(new_so, root)
bad = []
def need(cond, what):
    print(f"  {'ok' if cond else 'WRONG'}: {what}")
    if not cond:
        bad.append(what)
d = {s: json.load(open(f"{out}/{s}/cases.json")) for s in ("base", "new")}
for s in d:
    need(os.path.isfile(f"{out}/{s}/summary.csv") and os.path.isfile(f"{out}/{s}/env.json"),
         f"{s}: a complete run dir")
need(d["base"]["ab"]["pair"] == d["new"]["ab"]["pair"], "one pair id on both sides")
need((d["base"]["ab"]["side"], d["new"]["ab"]["side"]) == ("base", "new"), "sides named")
need(set(d["base"]["cases"]) == set(d["new"]["cases"]), "the same cases on both sides")
engine_cases = [c for c in d["base"]["cases"] if d["base"]["cases"][c]["backend"] == "thinp"]
need(len(engine_cases) == 1, f"one engine case ({engine_cases})")
for cid, c in d["base"]["cases"].items():
    b, n = c["reps"], d["new"]["cases"][cid]["reps"]
    need(len(b) == len(n) == 2 and all(r["status"] == "ok" for r in b + n),
         f"{cid}: two ok repetitions a side")
    if cid in engine_cases:
        need([r["ab_first"] for r in b] == ["base", "new"] == [r["ab_first"] for r in n],
             f"{cid}: base first in rep 1, new first in rep 2")
        need(b[0]["steps"] != n[0]["steps"], f"{cid}: measured per side")
        alls = [st["all"] for r in b + n for st in r["steps"].values()]
        need(all(0 < a["lat_p10_us"] <= a["lat_p50_us"] for a in alls),
             f"{cid}: each step's lat_p10_us (the gate's statistic), at most its p50")
        cb = " ".join(b[0]["commands"]); cn = " ".join(n[0]["commands"])
        need(f"external:{base_so}" in cb and base_so not in cn, f"{cid}: base side ran {base_so}")
        need(f"external:{new_so}" in cn, f"{cid}: new side ran {new_so}")
    else:
        need(b == n and all(r.get("ab_shared") for r in b), f"{cid}: one record in both sides")
        safe = cid.replace("/", "_")
        need(sorted(os.listdir(f"{out}/base/fio/{safe}")) == sorted(os.listdir(f"{out}/new/fio/{safe}")),
             f"{cid}: its fio reports in both sides")
sys.exit(1 if bad else 0)
PY

rc=0
"$ROOT/ci/gate" compare "$WORK/ab/base" "$WORK/ab/new" --layers exact,timing --out "$WORK/v" >"$WORK/out" 2>&1 || rc=$?
echo "  gate compare: exit $rc"
# the exact layer compares the engine case's counters too: the same library on both sides
[ "$rc" = 0 ] || { fail "gate compare exit $rc"; cat "$WORK/out"; }
grep -q "2 pairs: the signed-rank test needs >= 5" "$WORK/out" || fail "no pair count: $(cat "$WORK/out")"

echo "== refusals"
rc=0
THINP_ENGINE=$ENGINE "$ROOT/scenarios/run" --only "$CASE" --ab-base-engine "$WORK/nothing.so" \
	--out "$WORK/x" >"$WORK/out" 2>&1 || rc=$?
echo "  missing base engine: exit $rc: $(head -c 150 "$WORK/out")"
if [ "$rc" != 2 ] || ! grep -q "nothing.so: no such file" "$WORK/out"; then
	fail "missing base engine: exit $rc"
fi
rc=0
THINP_ENGINE=$ENGINE "$ROOT/scenarios/run" --only '^commit\.fsync=1\.raw-psync\.loop$' \
	--ab-base-engine "$WORK/thinp-base.so" --out "$WORK/x" >"$WORK/out" 2>&1 || rc=$?
echo "  no engine case: exit $rc: $(head -c 150 "$WORK/out")"
if [ "$rc" != 2 ] || ! grep -q "no selected case goes through the engine" "$WORK/out"; then
	fail "no engine case: exit $rc"
fi

if [ "$fails" -ne 0 ]; then
	echo "$fails failures"
	exit 1
fi
echo "A/B runs: all passed"
