#!/bin/bash
# Docker's transaction protocol under kills: `thinp docker create` and `remove` (each run in
# the process that holds the pool) are killed with SIGKILL at every rename (the metadata
# files), every fsync/fdatasync (file and pool commits) and every pwrite/pwritev (metadata
# blocks) of its main thread in turn — strace injects the signal at the Nth call, N = 1, 2, ... until the
# command completes. After each kill the driver is reopened (which rolls back an open
# transaction) and must show a pool Docker could use:
#   - the device is there completely or not at all (a kill in a remove finishes it);
#   - the pool's thins are exactly the devices its metadata files name;
#   - no device's transaction id is above the pool's;
#   - nothing is left mounted; `thinp check` and thin_check find the metadata clean.
set -euo pipefail
THINP=${THINP:-impl/cli/thinp}
THINP=$(realpath "$THINP")
[ "$(id -u)" = 0 ] || { echo "FAIL: needs root (mounts, loop devices, FUSE)"; exit 1; }
command -v strace >/dev/null || { echo "FAIL: needs strace (a test dependency)"; exit 1; }
tmp=$(mktemp -d)
R=$tmp/root
cleanup() {
	"$THINP" docker cleanup "$R" >/dev/null 2>&1 || true
	grep -o " $R/[^ ]*" /proc/self/mountinfo 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; tail -5 "$R/thinbench/daemon.log" >&2 || true; exit 1; }
docker() { "$THINP" docker "$@"; }

docker init "$R" --storage-opt dm.fs=ext4 --storage-opt dm.basesize=64M \
	--storage-opt dm.loopdatasize=1G --storage-opt dm.loopmetadatasize=32M >/dev/null 2>&1 ||
	fail "init"
docker create "$R" img || fail "create img"

ids_of_files() {
	find "$R/metadata" -type f ! -name deviceset-metadata ! -name transaction-metadata ! -name '.*' \
		-exec cat {} + | grep -o '"device_id":[0-9]*' | cut -d: -f2 | sort -n | tr '\n' ' '
}

# after a kill: reopen, then every invariant
verify() {
	local what=$1
	docker ls "$R" >"$tmp/ls" 2>"$tmp/err" || { cat "$tmp/err"; fail "$what: reopen (ls)"; }
	grep -q " $R/" /proc/self/mountinfo && fail "$what: mounts left: $(grep " $R/" /proc/self/mountinfo)"
	local have want
	have=$("$THINP" thin ls "$R/devicemapper" --noheadings -o DEV | awk '{print $1}' | sort -n | tr '\n' ' ')
	want=$(ids_of_files)
	[ "$have" = "$want" ] || fail "$what: thins in the pool ($have) vs metadata files ($want)"
	local pool_txn
	pool_txn=$("$THINP" pool status "$R/devicemapper" --fields | sed -n 's/^transaction_id=//p')
	find "$R/metadata" -type f ! -name deviceset-metadata ! -name transaction-metadata ! -name '.*' \
		-exec cat {} + | grep -o '"transaction_id":[0-9]*' | cut -d: -f2 | while read -r t; do
		[ "$t" -le "$pool_txn" ] || fail "$what: a device's transaction id $t > the pool's $pool_txn"
	done
	"$THINP" check "$R/devicemapper/metadata" >/dev/null 2>"$tmp/err" || { cat "$tmp/err"; fail "$what: thinp check"; }
	if command -v thin_check >/dev/null; then
		thin_check "$R/devicemapper/metadata" >/dev/null 2>&1 || fail "$what: thin_check"
	fi
}

kills=0
# run_killed SYSCALLS N ARGS...: the command killed at the Nth call of SYSCALLS; 0 if it
# completed, 1 if it was killed
run_killed() {
	local calls=$1 n=$2
	shift 2
	local rc=0
	# (strace dies of its tracee's signal: in a subshell, so bash reports no "Killed")
	# (LeakSanitizer cannot run under ptrace: an ASan build's leak check is off for these runs)
	{ (ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 strace -o /dev/null -e trace="$calls" -e inject="$calls":signal=SIGKILL:when="$n" \
		"$THINP" docker "$@" >/dev/null 2>"$tmp/run.err"); } 2>/dev/null || rc=$?
	# strace exits with the tracee's status: 128+9 when the kill landed
	[ "$rc" = 137 ] && return 1
	[ "$rc" = 0 ] || { cat "$tmp/run.err" >&2; fail "docker $* (not killed at $calls #$n) failed with $rc"; }
	return 0
}

for calls in rename fsync,fdatasync pwrite64,pwritev,pwritev2; do
	for op in create remove; do
		n=1
		while :; do
			[ $n -le 300 ] || fail "$op still killed at call $n of $calls"
			if [ $op = create ]; then
				docker exists "$R" c >/dev/null && { docker remove "$R" c || fail "reset: remove c"; }
				done=0; run_killed "$calls" $n create "$R" c --parent img || done=1
			else
				docker exists "$R" c >/dev/null || { docker create "$R" c --parent img || fail "reset: create c"; }
				done=0; run_killed "$calls" $n remove "$R" c || done=1
			fi
			if [ $done = 1 ]; then
				kills=$((kills + 1))
				verify "$op killed at $calls #$n"
				n=$((n + 1))
				continue
			fi
			verify "$op completed"
			if [ $op = create ]; then
				docker exists "$R" c >/dev/null || fail "create completed but c does not exist"
			else
				docker exists "$R" c >/dev/null && fail "remove completed but c exists"
			fi
			echo "docker_crash: $op: killed at each of $((n - 1)) $calls calls, then completed"
			break
		done
	done
done
[ $kills -ge 10 ] || fail "only $kills kills landed: the injection does not reach the commands"
echo "docker_crash: $kills kills, each reopened clean"
echo "PASS"
