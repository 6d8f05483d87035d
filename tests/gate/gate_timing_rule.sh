#!/usr/bin/env bash
# The timing layer's decision rule on a fixed A/B pair (tests/fixtures/gate-timing: 20
# repetitions, one libthinp case per effect, each case's pairs spread +-21% around its effect
# as unchanged pairs are under load, no randomness): with the defaults (20 pairs, 15% minimum
# effect) +17% and +25% are regressed, -17% improved, +12% (significant, below the minimum)
# inconclusive, 0% unchanged, exit 1. The fixture is what make.py writes. The first 10
# repetitions alone: the same verdicts, and each row says it has fewer pairs than the 20 the
# minimum effect is set for. The minimum effect still counts: --min-effect 20 makes +17%
# inconclusive.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
GATE=${GATE:-$ROOT/ci/gate}
FIX=$ROOT/tests/fixtures/gate-timing
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "seed: none (a fixed fixture)"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# verdicts DIR: "EFFECT=VERDICT" per timing row, sorted, one line
verdicts() {
	python3 -B -c "import json,sys; print(' '.join(sorted(r['case'].split('.')[1] + '=' + r['verdict'] for r in json.load(open(sys.argv[1]))['rows'] if r['layer'] == 'timing')))" "$1/verdict.json"
}

# check NAME WANT_EXIT WANT_VERDICTS BASE NEW [ARGS...]
check() {
	local name=$1 want=$2 wantv=$3 base=$4 new=$5 rc=0 got
	shift 5
	"$GATE" compare "$base" "$new" --layers timing --out "$WORK/v-$name" "$@" >"$WORK/out-$name" 2>&1 || rc=$?
	got=$(verdicts "$WORK/v-$name")
	echo "  $name: exit $rc, $got"
	[ "$rc" = "$want" ] || { fail "$name: exit $rc, expected $want"; cat "$WORK/out-$name"; }
	[ "$got" = "$wantv" ] || { fail "$name: verdicts '$got', expected '$wantv'"; cat "$WORK/out-$name"; }
}

echo "== the fixture is make.py's output"
cp "$FIX/make.py" "$WORK/make.py"
python3 -B "$WORK/make.py"
for f in base/cases.json base/summary.csv new/cases.json new/summary.csv; do
	cmp -s "$FIX/$f" "$WORK/$f" || fail "$f differs from what make.py writes (rerun it and commit)"
done

echo "== 20 pairs, the defaults"
want="down17=improved same=unchanged up12=inconclusive up17=regressed up25=regressed"
check defaults 1 "$want" "$FIX/base" "$FIX/new"
# each case's effect, estimated exactly (regular expressions: EFFECT=ESTIMATE)
for e in 'up17=[+]17[.]0%' 'up25=[+]25[.]0%' 'down17=-17[.]0%' 'same=[+-]0[.]0%' 'up12=[+]12[.]0%'; do
	grep -Eq "cow[.]${e%%=*}[.]thinp[.]loop [|] first [|] timing [|] .* new/base ${e#*=}" "$WORK/out-defaults" ||
		fail "${e%%=*}: effect ${e#*=} not shown: $(grep "cow[.]${e%%=*}[.]" "$WORK/out-defaults")"
done
grep -q "fewer pairs than" "$WORK/out-defaults" && fail "20 pairs flagged as too few"

echo "== the minimum effect counts"
check min-effect-20 1 "down17=inconclusive same=unchanged up12=inconclusive up17=inconclusive up25=regressed" \
	"$FIX/base" "$FIX/new" --min-effect 20

echo "== 10 pairs: the same verdicts, flagged"
for s in base new; do
	mkdir -p "$WORK/ten/$s"
	cp "$FIX/$s/summary.csv" "$WORK/ten/$s/"
	python3 -B - "$FIX/$s/cases.json" "$WORK/ten/$s/cases.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for c in d["cases"].values():
    c["reps"] = c["reps"][:10]
d["ab"]["repeat"] = 10
json.dump(d, open(sys.argv[2], "w"))
PY
done
check ten 1 "$want" "$WORK/ten/base" "$WORK/ten/new"
n=$(grep -c "fewer pairs than the 20 the minimum effect is set for (--repeat 20)" "$WORK/out-ten" || true)
[ "$n" = 5 ] || fail "10 pairs: $n of 5 rows say they have fewer pairs than the minimum effect is set for"

if [ "$fails" -ne 0 ]; then
	echo "$fails failures"
	exit 1
fi
echo "gate timing rule: all passed"
