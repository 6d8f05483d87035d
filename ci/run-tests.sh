#!/usr/bin/env bash
# Run tests, one line per test as each ends, keep going after failures.
#
#   ci/run-tests.sh LOGDIR TEST...
#
# A TEST ending in .sh is run with bash (the shell tests); anything else is executed
# directly (Check unit-test binaries). Each test's stdout+stderr goes to LOGDIR/NAME.log;
# logs of failing tests are printed. The last line is exactly "N passed, N failed".
# Exit status: 0 if nothing failed, 1 otherwise.
#
# Tests are independent (each works in its own mktemp -d, seeded), so TEST_JOBS of them
# (default: the number of CPUs) run at once; most are single-threaded and CPU-bound, and a
# serial run left the other core idle. TEST_JOBS=1 runs them one by one, in order.
#
# Environment: THINP and BUILD are passed through to the tests (set by the Makefile);
# TEST_TIMEOUT (seconds, default 900) bounds each test; LOG_LINES (default 400) caps how
# much of a failing log is printed.
set -uo pipefail

logdir=${1:?usage: run-tests.sh LOGDIR TEST...}
shift
timeout_s=${TEST_TIMEOUT:-900}
log_lines=${LOG_LINES:-400}
jobs=${TEST_JOBS:-$(nproc 2>/dev/null || echo 1)}
case $jobs in '' | *[!0-9]* | 0)
	echo "run-tests.sh: TEST_JOBS='$jobs' is not a positive number (e.g. TEST_JOBS=2)" >&2
	exit 2 ;;
esac
mkdir -p "$logdir"
statusdir=$(mktemp -d)
trap 'rm -rf "$statusdir"' EXIT

test_name() {
	case $1 in
	*.sh)
		# tests/cli/pool_cli.sh -> cli-pool_cli; tests/engine/engine_trim.sh -> engine_trim
		local dir name
		dir=$(basename "$(dirname "$1")")
		name=$(basename "$1" .sh)
		case $name in "$dir"_*) ;; *) name="$dir-$name" ;; esac
		echo "$name"
		;;
	*) basename "$1" ;;
	esac
}

# Runs one test; prints its line when it ends and leaves its exit status in statusdir.
run_one() {
	local t=$1 name=$2 log="$logdir/$2.log" start=$SECONDS rc secs
	local cmd=("$t")
	case $t in *.sh) cmd=(bash "$t") ;; esac
	timeout -k 10 "$timeout_s" "${cmd[@]}" >"$log" 2>&1 </dev/null
	rc=$?
	secs=$((SECONDS - start))
	echo "$rc" >"$statusdir/$name"
	if [ "$rc" -eq 0 ]; then
		printf 'PASS  %-40s %4ss\n' "$name" "$secs"
	else
		[ "$rc" -eq 124 ] && echo "*** timed out after ${timeout_s}s" >>"$log"
		printf 'FAIL  %-40s %4ss (exit %s)\n' "$name" "$secs" "$rc"
	fi
}

names=()
running=0
for t in "$@"; do
	name=$(test_name "$t")
	names+=("$name")
	if [ "$running" -ge "$jobs" ]; then
		wait -n
		running=$((running - 1))
	fi
	run_one "$t" "$name" &
	running=$((running + 1))
done
wait

passed=0
failed=0
failed_names=()
for name in "${names[@]+"${names[@]}"}"; do
	if [ "$(cat "$statusdir/$name" 2>/dev/null)" = 0 ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		failed_names+=("$name")
	fi
done

for name in "${failed_names[@]+"${failed_names[@]}"}"; do
	log="$logdir/$name.log"
	n=$(wc -l <"$log")
	echo
	echo "===== $name ($log) ====="
	if [ "$n" -gt "$log_lines" ]; then
		echo "... (last $log_lines of $n lines)"
		tail -n "$log_lines" "$log"
	else
		cat "$log"
	fi
	echo "===== end $name ====="
done

[ "$failed" -eq 0 ] || echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
