#!/usr/bin/env bash
# The gate's timing layer (ci/gate compare --layers timing) on synthetic runs, seeded.
# Paired (the two sides of one `scenarios/run --ab-base-engine` run): each repetition's
# machine speed is shared by the base and the new run of a case (they ran back to back), the
# speed moves a lot between repetitions (lognormal sigma 0.3) and each run has its own jitter
# (sigma 0.05), the same for the 10th percentile, median and mean latency. A libthinp case
# and a kernel case are judged (any backend); the raw baseline is one record shared by both
# sides. Unchanged -> never regressed nor improved over 200 seeds; the libthinp case 30% slower -> regressed (the kernel's unchanged); the kernel case
# 30% slower -> regressed; 30% faster -> improved; 3 pairs -> inconclusive. Bad input, exit 2
# with a message: a side of no A/B run, sides of two runs, sides swapped, a case on one side
# only, different repetition counts. Unpaired (--unpaired, two ordinary runs, ratios to raw)
# keeps working for any backend; without --layers two ordinary runs get no timing rows.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
GATE=${GATE:-$ROOT/ci/gate}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
SEED=${THINP_SEED:-1}
echo "seed $SEED (THINP_SEED)"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# mkab OUT SEED REPS THINP_FACTOR KERNEL_FACTOR [PAIR]: OUT/base and OUT/new of an A/B run
# mkrun OUT SEED REPS THINP_FACTOR KERNEL_FACTOR: one ordinary run (no "ab")
cat >"$WORK/gen.py" <<'PY'
import json, os, random, sys

STEPS = (("first", 25.0), ("second", 6.0))

def steps(machine, factor, base_us):
    s = {}
    for step, cost in STEPS:
        v = cost * (base_us / 25.0) * factor * machine * r.lognormvariate(0, 0.05)
        s[step] = {"all": {"ios": 64, "lat_p10_us": v * 0.8, "lat_p50_us": v, "cost_us": v * 3}}
    return s

def case(cid, backend, baselines):
    return {"id": cid, "backend": backend, "baselines": baselines, "reps": []}

def write(d, cases, ab=None):
    os.makedirs(d)
    doc = {"schema": 1, "cases": cases}
    if ab:
        doc["ab"] = ab
    json.dump(doc, open(f"{d}/cases.json", "w"))
    open(f"{d}/summary.csv", "w").write("case,step,class,schema\n")

def gen(kind, out, seed, reps, ft, fk, pair=None):
    global r
    r = random.Random(seed)
    pair = pair or f"p{seed}"
    (ab if kind == "ab" else run)(out, reps, ft, fk, pair)

ids = {"thinp": "cow.t.thinp.loop", "kernel": "cow.t.kernel.loop", "raw": "cow.t.raw-psync.loop"}

def ab(out, reps, ft, fk, pair):
    sides = {s: {"thinp": case(ids["thinp"], "thinp", [ids["raw"]]),
                 "kernel": case(ids["kernel"], "kernel", [ids["raw"]]),
                 "raw": case(ids["raw"], "raw-psync", [])} for s in ("base", "new")}
    for i in range(1, reps + 1):
        machine = r.lognormvariate(0, 0.3)  # this repetition's load: both sides see it
        first = ("base", "new") if i % 2 else ("new", "base")
        for s in first:
            for what, f in (("thinp", ft), ("kernel", fk)):
                sides[s][what]["reps"].append({"rep": i, "status": "ok", "ab_first": first[0],
                    "steps": steps(machine, f if s == "new" else 1.0, 25.0)})
        raw = {"rep": i, "status": "ok", "ab_shared": True, "steps": steps(machine, 1.0, 5.0)}
        for s in sides:
            sides[s]["raw"]["reps"].append(raw)
    for s, peer in (("base", "new"), ("new", "base")):
        write(f"{out}/{s}", {c["id"]: c for c in sides[s].values()},
              {"pair": pair, "side": s, "peer": f"../{peer}", "repeat": reps})

def run(out, reps, ft, fk, pair):
    cs = {"thinp": case(ids["thinp"], "thinp", [ids["raw"]]),
          "kernel": case(ids["kernel"], "kernel", [ids["raw"]]),
          "raw": case(ids["raw"], "raw-psync", [])}
    for i in range(1, reps + 1):
        machine = r.lognormvariate(0, 0.3)
        for what, f in (("thinp", ft), ("kernel", fk), ("raw", 1.0)):
            cs[what]["reps"].append({"rep": i, "status": "ok",
                                     "steps": steps(machine, f, 5.0 if what == "raw" else 25.0)})
    write(out, {c["id"]: c for c in cs.values()})

if __name__ == "__main__":
    a = sys.argv
    gen(a[1], a[2], int(a[3]), int(a[4]), float(a[5]), float(a[6]), *a[7:])
PY
mkab() { python3 -B "$WORK/gen.py" ab "$@"; }
mkrun() { python3 -B "$WORK/gen.py" run "$@"; }

# verdicts DIR: the timing rows as "CASE/STEP=VERDICT", sorted, one line
verdicts() {
	python3 -B -c "import json,sys; print(' '.join(sorted(r['case'].split('.')[2] + '/' + r['class'] + '=' + r['verdict'] for r in json.load(open(sys.argv[1]))['rows'] if r['layer'] == 'timing')))" "$1/verdict.json"
}

# check NAME WANT_EXIT WANT_VERDICTS_REGEX BASE NEW [ARGS...]
check() {
	local name=$1 want=$2 re=$3 base=$4 new=$5 rc=0 got
	shift 5
	"$GATE" compare "$base" "$new" --layers timing --out "$WORK/v-$name" "$@" >"$WORK/out" 2>&1 || rc=$?
	got=$(verdicts "$WORK/v-$name")
	echo "  $name: exit $rc, $got"
	[ "$rc" = "$want" ] || { fail "$name: exit $rc, expected $want"; cat "$WORK/out"; }
	[[ "$got" =~ ^$re$ ]] || { fail "$name: verdicts '$got', expected /^$re\$/"; cat "$WORK/out"; }
}

# refuse NAME TEXT BASE NEW [ARGS...]: exit 2 and TEXT in the message
refuse() {
	local name=$1 text=$2 base=$3 new=$4 rc=0
	shift 4
	"$GATE" compare "$base" "$new" --layers timing "$@" >"$WORK/out" 2>&1 || rc=$?
	echo "  $name: exit $rc: $(head -c 160 "$WORK/out")"
	[ "$rc" = 2 ] || fail "$name: exit $rc, expected 2: $(cat "$WORK/out")"
	grep -q -- "$text" "$WORK/out" || fail "$name: no '$text' in: $(cat "$WORK/out")"
}

echo "== the rank tests' exact p-values"
python3 -B - "$ROOT/ci" <<'PY' || fail "rank test p-values"
import sys
sys.path.insert(0, sys.argv[1])
from gate_lib import ranktest as rt
ok = True
def eq(name, got, want):
    global ok
    good = abs(got - want) < 1e-12
    ok &= good
    print(f"  {name}: {got:.6g} (want {want:.6g}){'' if good else '  <- WRONG'}")
eq("signed-rank, 10 of 10 positive", rt.p_positive([float(i) for i in range(1, 11)]), 1 / 1024)
eq("signed-rank, smallest negative", rt.p_positive([-1.0] + [float(i) for i in range(2, 11)]), 2 / 1024)
eq("signed-rank, all negative", rt.p_positive([-float(i) for i in range(1, 6)]), 1.0)
eq("Mann-Whitney, separated 5/5", rt.p_greater([6.0, 7, 8, 9, 10], [1.0, 2, 3, 4, 5]), 1 / 252)
# Walsh averages 1, 1.5, 2, 5, 5.5, 9
eq("Hodges-Lehmann", rt.hodges_lehmann([1.0, 2.0, 9.0]), 3.5)
sys.exit(0 if ok else 1)
PY

echo "== paired: the two sides of one A/B run"
# no change: never regressed or improved, over many seeds (inconclusive is allowed: it is what
# a rank test may honestly say of noise)
# (one process for the 200 seeds: the gate's command line called in it, its table discarded)
python3 -B - "$WORK" "$SEED" "$(dirname "$GATE")" <<'PY' || fail "unchanged runs judged regressed or improved"
import contextlib, io, json, shutil, sys
work, seed = sys.argv[1], int(sys.argv[2])
sys.path[:0] = [work, sys.argv[3]]
from gen import gen
from gate_lib.cli import main
bad = 0
for s in range(seed, seed + 200):
    d = f"{work}/u{s}"
    gen("ab", d, s, 10, 1.0, 1.0)
    with contextlib.redirect_stdout(io.StringIO()):
        rc = main(["compare", f"{d}/base", f"{d}/new", "--layers", "timing", "--out", f"{d}/v"])
    got = sorted(r["verdict"] for r in json.load(open(f"{d}/v/verdict.json"))["rows"])
    if rc != 0 or len(got) != 4 or {"regressed", "improved"} & set(got):
        bad += 1
        print(f"  seed {s}: exit {rc}, {got}")
    shutil.rmtree(d)
print(f"  unchanged: {bad} of 200 seeds with a regressed or improved verdict")
sys.exit(1 if bad else 0)
PY

mkab "$WORK/slow" $((SEED + 1000)) 10 1.3 1.0
check slower 1 "kernel/first=unchanged kernel/second=unchanged thinp/first=regressed thinp/second=regressed" \
	"$WORK/slow/base" "$WORK/slow/new"
grep -q "paired: new/base +[23][0-9]\.[0-9]%" "$WORK/v-slower/verdict.md" || fail "no +30% effect shown"
mkab "$WORK/kslow" $((SEED + 2000)) 10 1.0 1.3
check kernel-slower 1 "kernel/first=regressed kernel/second=regressed thinp/first=unchanged thinp/second=unchanged" \
	"$WORK/kslow/base" "$WORK/kslow/new"
mkab "$WORK/fast" $((SEED + 3000)) 10 0.7 1.0
check faster 0 "kernel/first=unchanged kernel/second=unchanged thinp/first=improved thinp/second=improved" \
	"$WORK/fast/base" "$WORK/fast/new"
mkab "$WORK/few" $((SEED + 4000)) 3 1.3 1.3
check few 0 "(\S+=inconclusive ?){4}" "$WORK/few/base" "$WORK/few/new"
grep -q "3 pairs: the signed-rank test needs >= 5" "$WORK/out" || fail "no repetition message: $(cat "$WORK/out")"
# the median or the mean instead of the 10th percentile: the same decisions on these rows
for stat in p50 mean; do
	check "slower-$stat" 1 "kernel/first=unchanged kernel/second=unchanged thinp/first=regressed thinp/second=regressed" \
		"$WORK/slow/base" "$WORK/slow/new" --timing-stat $stat
done
# runs recorded before the runner kept lat_p10_us: judged on the median, and said so
cp -r "$WORK/slow" "$WORK/old"
for s in base new; do
	sed -i 's/"lat_p10_us": [0-9.e+-]*, //g' "$WORK/old/$s/cases.json"
done
grep -q lat_p10_us "$WORK/old/new/cases.json" && fail "lat_p10_us not removed"
check no-p10 1 "kernel/first=unchanged kernel/second=unchanged thinp/first=regressed thinp/second=regressed" \
	"$WORK/old/base" "$WORK/old/new"
grep -q "on lat_p50_us (no lat_p10_us in these runs)" "$WORK/v-no-p10/verdict.md" || fail "no fallback note"

# a side failed in every repetition: an inconclusive row that says so, never a silent pass
cp -r "$WORK/slow" "$WORK/failed"
python3 -B - "$WORK/failed/new/cases.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for r in d["cases"]["cow.t.thinp.loop"]["reps"]:
    r.update(status="failed", error="fio exited 1")
    del r["steps"]
json.dump(d, open(sys.argv[1], "w"))
PY
check failed 0 "kernel/first=unchanged kernel/second=unchanged thinp/-=inconclusive" "$WORK/failed/base" "$WORK/failed/new"
grep -q "no repetition with lat_p10_us ok on both sides, 10 pairs dropped" "$WORK/v-failed/verdict.md" ||
	fail "no failed-side row: $(cat "$WORK/v-failed/verdict.md")"

echo "== paired: bad input"
mkrun "$WORK/plain" $((SEED + 5000)) 10 1.0 1.0
refuse not-ab "not a side of an A/B run" "$WORK/plain" "$WORK/slow/new"
refuse two-runs "sides of two different A/B runs" "$WORK/slow/base" "$WORK/fast/new"
refuse swapped "give the base side first" "$WORK/slow/new" "$WORK/slow/base"
cp -r "$WORK/slow" "$WORK/lost"
python3 -B - "$WORK/lost/new/cases.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
del d["cases"]["cow.t.kernel.loop"]
json.dump(d, open(sys.argv[1], "w"))
PY
refuse one-side "cow.t.kernel.loop (only in $WORK/lost/base)" "$WORK/lost/base" "$WORK/lost/new"
cp -r "$WORK/slow" "$WORK/short"
python3 -B - "$WORK/short/new/cases.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d["cases"]["cow.t.thinp.loop"]["reps"].pop()
json.dump(d, open(sys.argv[1], "w"))
PY
refuse rep-count "cow.t.thinp.loop: 10 repetitions in $WORK/short/base, 9 in" "$WORK/short/base" "$WORK/short/new"

echo "== unpaired (--unpaired): two ordinary runs, ratios to raw, any backend"
mkrun "$WORK/r-base" "$SEED" 7 1.0 1.0
mkrun "$WORK/r-same" $((SEED + 6000)) 7 1.0 1.0
mkrun "$WORK/r-slow" $((SEED + 7000)) 7 1.3 1.3
mkrun "$WORK/r-few" $((SEED + 8000)) 2 1.3 1.3
check u-unchanged 0 "(\S+=(inconclusive|unchanged) ?){4}" "$WORK/r-base" "$WORK/r-same" --unpaired
check u-slower 1 "(\S+=regressed ?){4}" "$WORK/r-base" "$WORK/r-slow" --unpaired
check u-few 0 "(\S+=inconclusive ?){4}" "$WORK/r-base" "$WORK/r-few" --unpaired
grep -q "needs >= 5 each side" "$WORK/out" || fail "no repetition message: $(cat "$WORK/out")"
# without --layers, two ordinary runs are compared without the timing layer (and say so)
rc=0
"$GATE" compare "$WORK/r-base" "$WORK/r-slow" --out "$WORK/v-plain" >"$WORK/out" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "default layers on two ordinary runs: exit $rc: $(cat "$WORK/out")"
grep -q "timing layer: not applied (two ordinary runs" "$WORK/out" || fail "no note: $(cat "$WORK/out")"

if [ "$fails" -ne 0 ]; then
	echo "$fails failures"
	exit 1
fi
echo "gate timing layer: all passed"
