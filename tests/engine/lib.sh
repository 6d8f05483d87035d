# shellcheck shell=bash disable=SC2034  # (sourced: its variables are used by the caller)
# Shared by tests/engine/engine_*.sh: locate the engine, make a scratch dir, run fio.
#
# Environment: BUILD (the build dir, from the Makefile), THINP_ENGINE (default
# ioengine/thinp.so), FIO (default fio). Scratch space lives under $BUILD, not /tmp: the
# pools must sit on a real filesystem (O_DIRECT, fallocate) and be cleaned with the build.
set -euo pipefail

ENGINE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$ENGINE_ROOT/build}
ENGINE=$(readlink -f "${THINP_ENGINE:-$ENGINE_ROOT/ioengine/thinp.so}" 2>/dev/null || true)
FIO=${FIO:-fio}
JOBS_DIR=$ENGINE_ROOT/tests/engine
CHECK="python3 $JOBS_DIR/check.py"

if [ -z "$ENGINE" ] || [ ! -f "$ENGINE" ]; then
	echo "FAIL: the fio engine ${THINP_ENGINE:-ioengine/thinp.so} is not built; 'make engine' says why"
	exit 1
fi

mkdir -p "$BUILD"
WORK=$(mktemp -d "$BUILD/engine-test.XXXXXX")
BG_PIDS=()
cleanup() { # fio runs started with bg_pid are stopped before their scratch dir goes
	local p
	for p in "${BG_PIDS[@]}"; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT
export ENGINE WORK
# fio drops files (verify state, ...) in its working directory
cd "$WORK"

step() { echo "== $*"; }

# run_fio NAME [fio args...]: fio with JSON output in $WORK/NAME.json and the engine's lines in
# $WORK/NAME.err (both echoed to the log); returns fio's exit status.
run_fio() {
	local name=$1
	shift
	local rc=0
	"$FIO" --output-format=json --output="$WORK/$name.json" "$@" 2>"$WORK/$name.err" || rc=$?
	sed "s/^/  [$name] /" "$WORK/$name.err"
	return "$rc"
}

# must_fio NAME [fio args...]: run_fio that must exit 0.
must_fio() {
	local name=$1 rc=0
	run_fio "$@" || rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "FAIL: fio ($name) exited $rc; its report:"
		cat "$WORK/$name.json"
		exit 1
	fi
}

# must_fail NAME PATTERN [fio args...]: fio must exit non-zero and say PATTERN (grep -E) on
# stdout or stderr.
must_fail() {
	local name=$1 pattern=$2 rc=0
	shift 2
	"$FIO" "$@" >"$WORK/$name.out" 2>&1 || rc=$?
	sed "s/^/  [$name] /" "$WORK/$name.out"
	if [ "$rc" -eq 0 ]; then
		echo "FAIL: fio ($name) exited 0, expected a failure"
		exit 1
	fi
	if ! grep -Eq -- "$pattern" "$WORK/$name.out"; then
		echo "FAIL: fio ($name) exited $rc but did not say /$pattern/"
		exit 1
	fi
	echo "  ok: exit $rc with /$pattern/"
}

# bg_pid PID: a background fio that the exit trap stops (for runs the test ends itself).
bg_pid() { BG_PIDS+=("$1"); }

# wait_for_line FILE PATTERN PID: wait until FILE has a line matching PATTERN (grep -E), polling
# without a deadline; fails only when process PID has exited without printing it.
wait_for_line() {
	local file=$1 pattern=$2 pid=$3
	until grep -Eq -- "$pattern" "$file" 2>/dev/null; do
		if ! kill -0 "$pid" 2>/dev/null; then
			grep -Eq -- "$pattern" "$file" 2>/dev/null
			return
		fi
		sleep 0.1
	done
}
