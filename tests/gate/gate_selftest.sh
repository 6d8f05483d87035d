#!/usr/bin/env bash
# The regression gate (ci/gate) catches what it must and refuses what it cannot read.
# Injected regressions (impl/pdata/gate_inject.h), in a test-only build directory
# (BUILD/gate-inject, -DTHINP_GATE_INJECT, built here by make), each switched on by
# THINP_GATE_INJECT=LETTER, must fail the gate in the layer and class that should catch them:
#   a  whole-block writes over shared blocks copy anyway  -> exact, cow_64k / write_cow_full
#   b  a CoW copy reads the old block twice               -> exact, cow_4k / write_cow
#   c  every commit happens twice                          -> exact, overwrite / commit, ...
#   d  a btree lookup spins 20% longer                     -> instructions, reads (exact passes)
#   e  a CoW reads the old block twice, uncounted          -> instructions, cow_4k (exact passes)
# and an unchanged build must pass both layers (exact counters and instructions are
# deterministic). Bad input: a baseline of another schema version, a run directory missing
# files, cases on one side only, a bad layer name: each a clear message and exit 2 or 1.
# Needs valgrind for the instruction layer (make deps).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
GATE="$ROOT/ci/gate"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
SEED=${THINP_SEED:-1}
export THINP_SEED=$SEED
echo "seed $SEED (THINP_SEED)"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# the injection build: never the tested build itself (that one ships), never sanitized
# (valgrind cannot run ASan binaries)
INJ="$BUILD/gate-inject" # inside the build dir: ignored and cleaned with it
make -s -C "$ROOT" BUILDDIR="$INJ" THINP_BIN="$INJ/bin/thinp" ENGINE_SO="$INJ/thinp.so" \
	SANITIZE= EXTRA_CFLAGS=-DTHINP_GATE_INJECT "$INJ/tests/tools/gate_trace" >/dev/null

# expect STATUS CMD...: run the gate, keep its output in $WORK/out
expect() {
	local want=$1
	shift
	local rc=0
	"$@" >"$WORK/out" 2>&1 || rc=$?
	if [ "$rc" != "$want" ]; then
		fail "exit $rc, expected $want: $*"
		sed 's/^/    /' "$WORK/out" | head -30
	fi
}

# row CASE CLASS LAYER VERDICT [TEXT]: verdict.json in $WORK/v has that row (TEXT in its detail)
row() {
	python3 -B - "$WORK/v/verdict.json" "$@" <<'PY' || fail "no row $* in the verdict"
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
case, cls, layer, verdict = sys.argv[2:6]
text = sys.argv[6] if len(sys.argv) > 6 else ""
hit = [r for r in rows if (r["case"], r["class"], r["layer"], r["verdict"]) == (case, cls, layer, verdict)
       and text in r["detail"]]
if not hit:
    print("  rows:", [(r["case"], r["class"], r["layer"], r["verdict"], r["detail"])
                      for r in rows if r["verdict"] != "pass"])
    sys.exit(1)
print("  ok:", hit[0]["case"], hit[0]["class"], hit[0]["layer"], hit[0]["verdict"], "-", hit[0]["detail"])
PY
}

# only ROWS...: no failing row besides those named "case/class/layer"
only() {
	python3 -B - "$WORK/v/verdict.json" "$@" <<'PY' || fail "unexpected failing rows (want only $*)"
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
allowed = set(sys.argv[2:])
bad = [f"{r['case']}/{r['class']}/{r['layer']}" for r in rows
       if r["verdict"] in ("changed", "regressed", "missing")]
extra = [b for b in bad if b not in allowed]
if extra:
    print("  unexpected:", extra)
    sys.exit(1)
PY
}

echo "== an unchanged build passes: the tested build, exact layer, twice"
expect 0 "$GATE" measure --build "$BUILD" --layers exact -o "$WORK/m1.json"
expect 0 "$GATE" measure --build "$BUILD" --layers exact -o "$WORK/m2.json"
expect 0 "$GATE" compare "$WORK/m1.json" "$WORK/m2.json" --layers exact --out "$WORK/v"
grep -q "PASS" "$WORK/out" || fail "no PASS in: $(head -1 "$WORK/out")"

echo "== the injection build without injections: both layers, twice, pass"
expect 0 "$GATE" measure --build "$INJ" -o "$WORK/base.json"
expect 0 "$GATE" check --build "$INJ" --baseline "$WORK/base.json" --out "$WORK/v"
only

echo "== a: whole-block writes over shared blocks copy anyway"
THINP_GATE_INJECT=a expect 1 "$GATE" check --build "$INJ" --baseline "$WORK/base.json" \
	--layers exact --out "$WORK/v"
row cow_64k write_cow_full exact changed "data_bytes_read: 0 -> "
only cow_64k/write_cow_full/exact cow_64k/case/exact

echo "== b: a CoW reads the old block twice"
THINP_GATE_INJECT=b expect 1 "$GATE" check --build "$INJ" --baseline "$WORK/base.json" \
	--layers exact --out "$WORK/v"
row cow_4k write_cow exact changed "data_bytes_read: "
row cow_4k write_cow exact changed "+100.0%"
row snapshot_chain write_cow exact changed "data_bytes_read"
only cow_4k/write_cow/exact snapshot_chain/write_cow/exact

echo "== c: every commit happens twice"
THINP_GATE_INJECT=c expect 1 "$GATE" check --build "$INJ" --baseline "$WORK/base.json" \
	--layers exact --out "$WORK/v"
row overwrite commit exact changed "meta_bytes_written: 4,096 -> 8,192 (+4,096, +100.0%)"
row commit_every_8 commit exact changed "meta_bytes_written: "
row commit_every_8 case exact changed "meta_blocks_per_commit: "

echo "== d: a btree lookup spins 20% longer: exact passes, instructions catch it"
THINP_GATE_INJECT=d expect 0 "$GATE" check --build "$INJ" --baseline "$WORK/base.json" \
	--layers exact --out "$WORK/v"
THINP_GATE_INJECT=d expect 1 "$GATE" check --build "$INJ" --baseline "$WORK/base.json" \
	--layers instructions --out "$WORK/v"
row reads ops instructions regressed "instructions: "

echo "== e: a CoW reads the old block twice, uncounted: exact passes, instructions catch it"
THINP_GATE_INJECT=e expect 0 "$GATE" check --build "$INJ" --baseline "$WORK/base.json" \
	--layers exact --out "$WORK/v"
THINP_GATE_INJECT=e expect 1 "$GATE" check --build "$INJ" --baseline "$WORK/base.json" \
	--layers instructions --out "$WORK/v"
row cow_4k ops instructions regressed "instructions: "
only cow_4k/ops/instructions snapshot_chain/ops/instructions

echo "== outputs: markdown to \$GITHUB_STEP_SUMMARY, JUnit XML, JSON"
: >"$WORK/summary.md"
THINP_GATE_INJECT=b GITHUB_STEP_SUMMARY="$WORK/summary.md" expect 1 "$GATE" check \
	--build "$INJ" --baseline "$WORK/base.json" --layers exact --out "$WORK/v"
grep -q '| cow_4k | write_cow | exact | \*\*changed\*\* | data_bytes_read' "$WORK/summary.md" ||
	fail "the step summary lacks the cow_4k row: $(cat "$WORK/summary.md")"
python3 -B - "$WORK/v" <<'PY' || fail "junit.xml does not match verdict.json"
import json, sys, xml.etree.ElementTree as ET
d = sys.argv[1]
rows = json.load(open(f"{d}/verdict.json"))["rows"]
s = ET.parse(f"{d}/junit.xml").getroot()
cases = s.findall("testcase")
bad = [c for c in cases if c.find("failure") is not None]
assert len(cases) == len(rows) and int(s.get("tests")) == len(rows), (len(cases), len(rows))
assert len(bad) == int(s.get("failures")) == 2, [c.get("name") for c in bad]
assert {c.get("name") for c in bad} == {"cow_4k.write_cow.exact", "snapshot_chain.write_cow.exact"}
PY

echo "== bad input"
python3 -B -c "
import json, sys
d = json.load(open('$WORK/base.json'))
d['schema'] = 99
json.dump(d, open('$WORK/schema99.json', 'w'))
d['schema'] = 1
lost = d['cases'].pop('discard')
json.dump(d, open('$WORK/fewer.json', 'w'))
"
expect 2 "$GATE" check --build "$INJ" --baseline "$WORK/schema99.json"
grep -q "schema 99, this gate reads schema 1" "$WORK/out" || fail "schema message: $(cat "$WORK/out")"
expect 2 "$GATE" compare "$WORK/m1.json" "$WORK/schema99.json"
grep -q "schema 99" "$WORK/out" || fail "schema message: $(cat "$WORK/out")"
expect 1 "$GATE" compare "$WORK/base.json" "$WORK/fewer.json" --out "$WORK/v"
row discard - - missing "only in the base"
expect 1 "$GATE" compare "$WORK/fewer.json" "$WORK/base.json" --out "$WORK/v"
row discard - - missing "only in the new run"
expect 2 "$GATE" compare "$WORK/base.json" "$WORK/base.json" --layers exact,speed
grep -q "unknown layer speed" "$WORK/out" || fail "layer message: $(cat "$WORK/out")"
expect 2 "$GATE" compare "$WORK/base.json" "$WORK/nothing.json"
grep -q "nothing.json: no such file" "$WORK/out" || fail "missing file message: $(cat "$WORK/out")"
expect 2 "$GATE" check --build "$WORK" --baseline "$WORK/base.json"
grep -q "no trace driver" "$WORK/out" || fail "missing driver message: $(cat "$WORK/out")"

echo "== scenarios/run directories: the runner's exact counters (compare.py's choice)"
RUN=$(ls -d "$ROOT"/results/*/ | head -1)
cp -r "$RUN" "$WORK/runA"
cp -r "$RUN" "$WORK/runB"
expect 0 "$GATE" compare "$WORK/runA" "$WORK/runB" --layers exact --out "$WORK/v"
python3 -B - "$WORK/runB/cases.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
c = next(iter(d["cases"].values()))
step = next(iter(c["reps"][0]["steps"].values()))
cls = [k for k in step if k != "all"][0]
step[cls]["data_written"] += 4096
json.dump(d, open(sys.argv[1], "w"))
print("  changed", c["id"], cls)
PY
expect 1 "$GATE" compare "$WORK/runA" "$WORK/runB" --layers exact --out "$WORK/v"
grep -q "r[0-9]*\.data_written: .* (+4,096, +[0-9.e-]*%)" "$WORK/out" || fail "no data_written change shown: $(cat "$WORK/out")"
rm "$WORK/runB/summary.csv"
expect 2 "$GATE" compare "$WORK/runA" "$WORK/runB"
grep -q "missing summary.csv" "$WORK/out" || fail "missing-file message: $(cat "$WORK/out")"
python3 -B -c "
import json; p='$WORK/runA/cases.json'; d=json.load(open(p)); d['schema']=7; json.dump(d, open(p,'w'))"
expect 2 "$GATE" compare "$WORK/runA" "$WORK/runA"
grep -q "cases.json: schema 7" "$WORK/out" || fail "run schema message: $(cat "$WORK/out")"
# summary.csv's schema column: a version this gate does not read is refused
rm -rf "$WORK/runC" && cp -r "$RUN" "$WORK/runC"
python3 -B - "$WORK/runC/summary.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
cols = list(rows[0].keys()) + ([] if "schema" in rows[0] else ["schema"])
for r in rows:
    r["schema"] = "9"
w = csv.DictWriter(open(sys.argv[1], "w", newline=""), fieldnames=cols, lineterminator="\n")
w.writeheader()
w.writerows(rows)
PY
expect 2 "$GATE" compare "$WORK/runC" "$WORK/runC" --layers exact
grep -q "summary.csv: schema 9, this gate reads 0, 1" "$WORK/out" || fail "summary schema message: $(cat "$WORK/out")"

echo "== a kernel run: only the bytes its bios moved are exact (its commits follow its timer)"
for d in runK1 runK2; do
	cp -r "$ROOT/tests/fixtures/kernel_vmbench" "$WORK/$d"
	echo "case,schema" >"$WORK/$d/summary.csv"
done
python3 -B - "$WORK/runK2/cases.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
c = d["cases"]["alloc.bs=4k.order=seq.kernel.loop.z0"]
step = next(iter(c["reps"][0]["steps"].values()))
step["all"]["meta_written"] += 4096
step["all"]["meta_flushes"] += 2
step["all"]["data_writes"] += 1
json.dump(d, open(sys.argv[1], "w"))
PY
expect 0 "$GATE" compare "$WORK/runK1" "$WORK/runK2" --layers exact --out "$WORK/v"
python3 -B - "$WORK/runK2/cases.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
c = d["cases"]["alloc.bs=4k.order=seq.kernel.loop.z0"]
step = next(iter(c["reps"][0]["steps"].values()))
step["all"]["data_written"] += 4096
json.dump(d, open(sys.argv[1], "w"))
PY
expect 1 "$GATE" compare "$WORK/runK1" "$WORK/runK2" --layers exact --out "$WORK/v"
grep -q "alloc.bs=4k.order=seq.kernel.loop.z0 .*data_written: .* (+4,096" "$WORK/out" || fail "no kernel data_written change shown: $(cat "$WORK/out")"
grep -q "meta_written" "$WORK/out" && fail "a kernel metadata count gated: $(cat "$WORK/out")"

if [ "$fails" -ne 0 ]; then
	echo "$fails failures"
	exit 1
fi
echo "gate self-test: all passed"
