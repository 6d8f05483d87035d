#!/usr/bin/env bash
# The gate's timing layer (ci/gate compare --layers timing) on synthetic scenarios/run
# directories: seeded noise (each repetition's machine speed shared by a case and its raw
# baseline, as the runner's interleaving gives, plus each case's own jitter). Same
# distribution -> no "regressed" (nor "improved") and exit 0; the libthinp case 30% slower -> "regressed" and
# exit 1; 30% faster -> "improved", exit 0; two repetitions a side -> "inconclusive", exit 0.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
GATE="$ROOT/ci/gate"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
SEED=${THINP_SEED:-1}
echo "seed $SEED (THINP_SEED)"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# mkrun DIR SEED REPS FACTOR: a run with a thinp case (two steps) and its raw baseline
mkrun() {
	python3 -B - "$@" <<'PY'
import json, os, random, sys
out, seed, reps, factor = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
r = random.Random(seed)
thin, raw = {"id": "cow.t", "backend": "thinp", "baselines": ["cow.raw"], "reps": []}, \
	{"id": "cow.raw", "backend": "raw-psync", "baselines": [], "reps": []}
for i in range(1, reps + 1):
    machine = r.lognormvariate(0, 0.3)  # the load of this repetition: both sides see it
    ts, rs = {}, {}
    for step, cost in (("first-write", 150.0), ("overwrite", 120.0)):
        ts[step] = {"all": {"ios": 100, "cost_us": cost * factor * machine * r.lognormvariate(0, 0.05)}}
        rs[step] = {"all": {"ios": 100, "cost_us": 100.0 * machine * r.lognormvariate(0, 0.05)}}
    thin["reps"].append({"rep": i, "status": "ok", "steps": ts})
    raw["reps"].append({"rep": i, "status": "ok", "steps": rs})
os.makedirs(out)
json.dump({"schema": 1, "cases": {"cow.t": thin, "cow.raw": raw}}, open(f"{out}/cases.json", "w"))
open(f"{out}/summary.csv", "w").write("case,step,class\n")
PY
}

# verdicts DIR: the timing rows' verdicts, sorted, one line (matched as a regex by check)
verdicts() {
	python3 -B -c "import json,sys; print(' '.join(sorted(r['verdict'] for r in json.load(open(sys.argv[1]))['rows'] if r['layer'] == 'timing')))" "$1/verdict.json"
}

check() { # NAME WANT_EXIT WANT_VERDICTS_REGEX BASE NEW
	local rc=0
	"$GATE" compare "$4" "$5" --layers timing --out "$WORK/v-$1" >"$WORK/out" 2>&1 || rc=$?
	local got
	got=$(verdicts "$WORK/v-$1")
	echo "  $1: exit $rc, verdicts: $got"
	[ "$rc" = "$2" ] || { fail "$1: exit $rc, expected $2"; cat "$WORK/out"; }
	[[ "$got" =~ ^$3$ ]] || { fail "$1: verdicts '$got', expected /^$3\$/"; cat "$WORK/out"; }
}

mkrun "$WORK/base" "$SEED" 7 1.0
mkrun "$WORK/same" $((SEED + 1000)) 7 1.0
mkrun "$WORK/slow" $((SEED + 2000)) 7 1.3
mkrun "$WORK/fast" $((SEED + 3000)) 7 0.7
mkrun "$WORK/few" $((SEED + 4000)) 2 1.3
# no difference: never regressed or improved; inconclusive is allowed (it is what the
# rank test may honestly say of noise)
check unchanged 0 "(inconclusive|unchanged) (inconclusive|unchanged)" "$WORK/base" "$WORK/same"
check slower 1 "regressed regressed" "$WORK/base" "$WORK/slow"
check faster 0 "improved improved" "$WORK/base" "$WORK/fast"
check few 0 "inconclusive inconclusive" "$WORK/base" "$WORK/few"
grep -q "needs >= 5 each side" "$WORK/out" || fail "no repetition message: $(cat "$WORK/out")"

if [ "$fails" -ne 0 ]; then
	echo "$fails failures"
	exit 1
fi
echo "gate timing layer: all passed"
