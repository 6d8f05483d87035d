#!/usr/bin/env bash
# BENCHMARKS.md's performance-goal rows that come from the micro-benchmarks `make bench` puts
# in the run dir: lock scope (bench_threads.txt), lookup cost at 10k / 1M / 10M mappings
# (bench_metadata.json, from the real bench_metadata at a tiny size plus a synthetic 10M
# entry), the commit's writes and waits (commit_syscalls.txt). A synthetic run dir with no
# cases: every case row says "not measured", the file rows carry the files' numbers and the
# verdict the goal's threshold gives; without the files they say "not measured" too.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
mkdir -p "$BUILD"
WORK=$(mktemp -d "$BUILD/scenarios-goals.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
SEED=${THINP_SEED:-1}
echo "seed $SEED (THINP_SEED: bench_metadata's seed)"
RUN=$WORK/run
mkdir -p "$RUN"
echo '{}' >"$RUN/env.json"
echo '{"schema": 1, "cases": {}}' >"$RUN/cases.json"

page() { python3 -B "$ROOT/scenarios/benchmarks" --stdout "$RUN"; }
row() { # row PATTERN: the goals table's row matching PATTERN (exactly one)
	local n
	n=$(page | grep -c -- "$1" || true)
	if [ "$n" -ne 1 ]; then
		{ # (on stderr: the caller captures stdout)
			echo "FAIL: $n rows match '$1'"
			page | sed -n '/## Performance goals/,/## Charts/p'
		} >&2
		exit 1
	fi
	page | grep -- "$1"
}
expect() { # expect PATTERN TEXT...: the row matching PATTERN holds every TEXT
	local r
	r=$(row "$1")
	shift
	for t in "$@"; do
		case "$r" in
		*"$t"*) ;;
		*)
			echo "FAIL: row '$r' lacks '$t'"
			exit 1
			;;
		esac
	done
}

echo "== without the micro-benchmarks' files"
expect "2 threads ≥ 1.80× one thread" "not in this run" "**not measured**"
expect "lookup at 10M mappings ≤ 1.50×" "not in this run" "**not measured**"
expect "≤ 3 writes and ≤ 2 waits" "not in this run" "**not measured**"
expect "merged-policy CoW 4 KiB" "**not measured**"
expect "1 MiB first write, direct-lvm" "**not measured**"

echo "== bench_threads.txt, commit_syscalls.txt: goals met"
cat >"$RUN/bench_threads.txt" <<'EOF'
bench_threads: seed 1 (THINP_SEED), 3 repetitions
RESULT overwrite mem: 1 thread 1000000 ops/s, 2 threads 1900000 ops/s, 2/1 ratio 1.90 [1.85-1.95] (median [min-max] of 3)
RESULT provision mem: 1 thread 500000 ops/s, 2 threads 600000 ops/s, 2/1 ratio 1.20 [1.10-1.30] (median [min-max] of 3)
EOF
echo "per 4 KiB first write + fsync (64 vs 128 writes): writes=3.00 waits=1.00" \
	>"$RUN/commit_syscalls.txt"
expect "2 threads ≥ 1.80× one thread" "1.90× [1.85–1.95]" "1,000,000 → 1,900,000 ops/s" "**met**"
expect "provision, mem (no goal)" "1.20× [1.10–1.30]" "**measured**"
expect "≤ 3 writes and ≤ 2 waits" "3.00 writes, 1.00 waits" "**met**"

echo "== the same files: goals not met"
sed -i 's/2\/1 ratio 1.90 \[1.85-1.95\]/2\/1 ratio 1.60 [1.55-1.70]/' "$RUN/bench_threads.txt"
echo "per 4 KiB first write + fsync (64 vs 128 writes): writes=9.80 waits=3.20" \
	>"$RUN/commit_syscalls.txt"
expect "2 threads ≥ 1.80× one thread" "1.60× [1.55–1.70]" "**not met**"
expect "≤ 3 writes and ≤ 2 waits" "9.80 writes, 3.20 waits" "**not met**"

echo "== bench_metadata.json: the real program at 10k, a synthetic 10M entry"
TOOL=$BUILD/tests/tools/bench_metadata
if [ ! -x "$TOOL" ]; then
	echo "FAIL: $TOOL is not built (make)"
	exit 1
fi
"$TOOL" --max 10000 --order seq --lookups 20000 --seed "$SEED" --dir "$WORK" \
	--json "$WORK/small.json" >"$WORK/small.txt"
cat "$WORK/small.txt"
# the 10M entry: the 10k one with its ns per lookup scaled by FACTOR
mk10m() {
	python3 - "$WORK/small.json" "$RUN/bench_metadata.json" "$1" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["order"] == "seq" and d["complete"] and len(d["sizes"]) == 1, d
s = dict(d["sizes"][0])
assert s["mappings"] == 10000 and s["lookups"] == 20000 and s["ns_per_lookup"] > 0, s
big = dict(s, mappings=10000000, ns_per_lookup=s["ns_per_lookup"] * float(sys.argv[3]),
           lookup_misses=0, rss_mib=700.0, rss_mib_per_million=70.0, meta_mib=315.0,
           cache_blocks=93126)
d["sizes"].append(big)
json.dump(d, open(sys.argv[2], "w"))
PY
}
mk10m 1.25
expect "lookup at 10M mappings ≤ 1.50×" "1.25×" "RSS 700 MiB at 10M = 70.0 MiB per million" \
	"93,126 blocks" "sequential fill" "**met**"
mk10m 30
expect "lookup at 10M mappings ≤ 1.50×" "30.00×" "**not met**"
echo "== bench_metadata refuses a bad --order, naming it"
rc=0
"$TOOL" --order sideways 2>"$WORK/err" >/dev/null || rc=$?
if [ "$rc" -ne 2 ] || ! grep -q "order sideways: use --order random or --order seq" "$WORK/err"; then
	echo "FAIL: --order sideways: exit $rc, said: $(cat "$WORK/err")"
	exit 1
fi
echo "PASS"
