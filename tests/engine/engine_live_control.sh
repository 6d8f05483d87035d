#!/usr/bin/env bash
# fio holds a pool directory through the engine and serves DIR/control: a write+verify job
# in queue mode (no error_if_no_space, a no_space_timeout far beyond the test) on a pool
# smaller than what it writes blocks on the full pool; `thinp pool status` from another
# shell sees out_of_data_space, `thinp check` checks the live pool through a metadata
# snapshot, `thinp pool extend` gives it space, and the job then completes: verify OK, fio
# exits 0, the control socket is gone.
source "$(dirname "$0")/lib.sh"
THINP=${THINP:-$ENGINE_ROOT/impl/cli/thinp}
[ -x "$THINP" ] || { echo "FAIL: the thinp CLI $THINP is not built"; exit 1; }
# a job queued on the full pool ignores SIGTERM until its hour-long wait ends: a failing
# test kills it outright before lib.sh's cleanup (--thread: the job is a thread of that one
# process, not a forked child the kill would leave behind)
fio_pid=""
trap '[ -z "$fio_pid" ] || kill -KILL "$fio_pid" 2>/dev/null || true; cleanup' EXIT

P=$WORK/pool
sock=$P/control
# 32 blocks of 64 KiB: the job writes 96
"$THINP" pool create "$P" --data-size 2m --metadata-size 8m

step "a queued job on a full pool waits for an extend from another shell"
"$FIO" --output-format=json --output="$WORK/live.json" --ioengine=external:"$ENGINE" \
	--name=live --thinp_pool="$P" --thinp_dev=1 --thinp_no_space=queue \
	--thinp_no_space_timeout=3600000 --rw=write --bs=64k --size=6m --iodepth=4 --thread \
	--verify=crc32c --verify_fatal=1 --do_verify=1 --verify_state_save=0 \
	2>"$WORK/live.err" &
fio_pid=$!
# the socket appears once fio holds the pool; until then a `thinp pool status` would open
# the pool itself, and fio's open could find it busy
for _ in $(seq 3000); do
	[ -S "$sock" ] && break
	kill -0 "$fio_pid" 2>/dev/null || { cat "$WORK/live.err"; echo "FAIL: fio ended before serving $sock"; exit 1; }
	sleep 0.02
done
[ -S "$sock" ] || { echo "FAIL: fio never served $sock"; exit 1; }
status=""
for _ in $(seq 3000); do # a bound on tries: each waits for fio's engine to answer or not
	if status=$("$THINP" pool status "$P" --noflush 2>"$WORK/status.err"); then
		case $status in *" out_of_data_space "*) break ;; esac
	fi
	kill -0 "$fio_pid" 2>/dev/null || { cat "$WORK/live.err"; echo "FAIL: fio ended before the pool filled"; exit 1; }
	sleep 0.02
done
echo "  status: $status"
case $status in
*" 32/32 - out_of_data_space discard_passdown queue_if_no_space "*) ;;
*) cat "$WORK/status.err"; echo "FAIL: the pool never reported out_of_data_space: '$status'"; exit 1 ;;
esac
[ "$(stat -c %a "$sock")" = 600 ] || { echo "FAIL: $sock has mode $(stat -c %a "$sock")"; exit 1; }
# the live pool's metadata, checked through a snapshot reserved on its socket
"$THINP" check "$P/metadata" || { echo "FAIL: thinp check of the live pool"; exit 1; }
"$THINP" thin status "$P" 1 | grep -q "^4096 " || { echo "FAIL: thin 1 should map 32 blocks: $("$THINP" thin status "$P" 1)"; exit 1; }
"$THINP" pool extend "$P" --data-size 8m || { echo "FAIL: pool extend through the socket"; exit 1; }
rc=0
wait "$fio_pid" || rc=$?
fio_pid=""
sed "s/^/  [live] /" "$WORK/live.err"
[ "$rc" -eq 0 ] || { cat "$WORK/live.json"; echo "FAIL: fio exited $rc after the extend"; exit 1; }
python3 - "$WORK/live.json" <<'EOF'
import json, sys
job = json.load(open(sys.argv[1]))["jobs"][0]
assert job["error"] == 0, job["error"]
assert job["write"]["io_bytes"] == 6 << 20, job["write"]["io_bytes"]
assert job["read"]["io_bytes"] == 6 << 20, job["read"]["io_bytes"]  # the verify pass
print("  fio: wrote and verified %d bytes, error 0" % job["write"]["io_bytes"])
EOF
[ ! -e "$sock" ] || { echo "FAIL: fio left $sock behind"; exit 1; }
"$THINP" pool status "$P" | grep -q '^0 [0-9/]* 96/128 - rw ' ||
	{ echo "FAIL: after the job: $("$THINP" pool status "$P")"; exit 1; }
"$THINP" check "$P/metadata" || { echo "FAIL: thinp check once fio closed the pool"; exit 1; }
echo "PASS"
