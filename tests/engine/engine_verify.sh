#!/usr/bin/env bash
# fio write+verify through the thinp engine: every rw pattern (write, randwrite, rw, randrw)
# x block sizes 4k..1m (sections of tests/engine/verify.fio) x iodepth 1 and 16 x one process
# or 4 threads sharing the pool; plus one run with thinp_mode=direct + direct=1 (O_DIRECT).
# Each run: fio exits 0, every job read back all it wrote with crc32c intact, and the engine's
# per-class counts add up to fio's own IO counts. Runs go PARALLEL at a time, each on its own
# pool (fio mostly sleeps between stonewalled sections); their logs follow in order.
source "$(dirname "$0")/lib.sh"

PARALLEL=${PARALLEL:-4}
export SIZE=$((8 << 20))

run() { # run NAME RW DEPTH JOBS THREAD MODE DIRECT  (a subshell: its exports stay in it)
	local name=$1
	export RW=$2 DEPTH=$3 JOBS=$4 THREAD=$5 MODE=$6 DIRECT=$7
	export POOL=$WORK/$name.pool OUT=$WORK/$name.stats
	mkdir -p "$OUT"
	local t0=$SECONDS
	step "$name: rw=$RW iodepth=$DEPTH numjobs=$JOBS thread=$THREAD mode=$MODE direct=$DIRECT"
	must_fio "$name" "$JOBS_DIR/verify.fio"
	$CHECK verify "$WORK/$name.json" "$OUT" "$RW" "$SIZE"
	rm -rf "$POOL"
	echo "  ($((SECONDS - t0))s)"
}

names=()
spawn() { # spawn NAME ARGS...: run in the background, at most PARALLEL at once
	while [ "$(jobs -rp | wc -l)" -ge "$PARALLEL" ]; do
		wait -n || true
	done
	names+=("$1")
	(run "$@" >"$WORK/$1.log" 2>&1; echo $? >"$WORK/$1.rc") &
}

for rw in write randwrite rw randrw; do
	for depth in 1 16; do
		spawn "$rw-d$depth-j1" "$rw" "$depth" 1 0 loop 0
		spawn "$rw-d$depth-j4" "$rw" "$depth" 4 1 loop 0
	done
done
spawn direct-randrw-d16-j4 randrw 16 4 1 direct 1
wait

failed=0
for n in "${names[@]}"; do
	cat "$WORK/$n.log"
	[ "$(cat "$WORK/$n.rc" 2>/dev/null)" = 0 ] || { echo "FAIL: run $n"; failed=1; }
done
[ "$failed" -eq 0 ] || exit 1

# The pool's own devices: O_DIRECT exactly in thinp_mode=direct (seen in /proc/PID/fdinfo of
# the running fio; thread=1 keeps the engine in fio's own process). No clock decides when to
# look or how long fio runs: the engine's "formatted a new pool" line, printed while the pool
# is open, says when to look; fio runs time_based (the runtime only bounds a test that died)
# until its trigger file appears after the checks, which ends the job normally (exit 0).
for mode in direct loop; do
	step "thinp_mode=$mode: O_DIRECT on the data and metadata files $([ $mode = direct ] && echo on || echo off)"
	pool=$WORK/odirect-$mode out=$WORK/odirect-$mode.out stop=$WORK/odirect-$mode.stop
	"$FIO" --ioengine=external:"$ENGINE" --thinp_pool="$pool" --thinp_create=1 \
		--thinp_data_size=64m --thinp_metadata_size=16m --thinp_mode=$mode --direct=1 \
		--thread --rw=randwrite --bs=4k --size=8m --time_based --runtime=600 --name=odirect \
		--verify_state_save=0 --trigger-file="$stop" \
		--output-format=json --output="$WORK/odirect-$mode.json" >"$out" 2>&1 &
	pid=$!
	bg_pid "$pid"
	wait_for_line "$out" 'thinp: formatted a new pool on' "$pid" ||
		{ cat "$out"; echo "FAIL: fio exited before the pool was open"; exit 1; }
	want=$([ $mode = direct ] && echo 1 || echo 0)
	rc=0
	$CHECK odirect "$pid" "$pool/data" "$want" || rc=$?
	$CHECK odirect "$pid" "$pool/metadata" "$want" || rc=$?
	touch "$stop"
	wait "$pid" || { cat "$out"; echo "FAIL: fio exited non-zero"; exit 1; }
	[ $rc -eq 0 ] || exit 1
	$CHECK fio "$WORK/odirect-$mode.json"
done
echo "PASS"
