#!/usr/bin/env bash
# Run tests, one line per test, keep going after failures.
#
#   ci/run-tests.sh LOGDIR TEST...
#
# A TEST ending in .sh is run with bash (the shell tests); anything else is executed
# directly (Check unit-test binaries). Each test's stdout+stderr goes to LOGDIR/NAME.log;
# logs of failing tests are printed. The last line is exactly "N passed, N failed".
# Exit status: 0 if nothing failed, 1 otherwise.
#
# Environment: THINP and BUILD are passed through to the tests (set by the Makefile);
# TEST_TIMEOUT (seconds, default 900) bounds each test; LOG_LINES (default 400) caps how
# much of a failing log is printed.
set -uo pipefail

logdir=${1:?usage: run-tests.sh LOGDIR TEST...}
shift
timeout_s=${TEST_TIMEOUT:-900}
log_lines=${LOG_LINES:-400}
mkdir -p "$logdir"

passed=0
failed=0
failed_names=()

for t in "$@"; do
	case $t in
	*.sh)
		# tests/cli/pool_cli.sh -> cli-pool_cli; tests/engine/engine_trim.sh -> engine_trim
		dir=$(basename "$(dirname "$t")")
		name=$(basename "$t" .sh)
		case $name in "$dir"_*) ;; *) name="$dir-$name" ;; esac
		cmd=(bash "$t")
		;;
	*)
		name=$(basename "$t")
		cmd=("$t")
		;;
	esac
	log="$logdir/$name.log"
	start=$SECONDS
	timeout -k 10 "$timeout_s" "${cmd[@]}" >"$log" 2>&1 </dev/null
	rc=$?
	secs=$((SECONDS - start))
	if [ "$rc" -eq 0 ]; then
		passed=$((passed + 1))
		printf 'PASS  %-40s %4ss\n' "$name" "$secs"
	else
		failed=$((failed + 1))
		failed_names+=("$name")
		[ "$rc" -eq 124 ] && echo "*** timed out after ${timeout_s}s" >>"$log"
		printf 'FAIL  %-40s %4ss (exit %s)\n' "$name" "$secs" "$rc"
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
