#!/usr/bin/env bash
# thinp_losetup=1: the pool's files through buffered loop devices (Docker's loop-lvm).
#  - as root: the stats file names the two loops and their counters show the job's writes
#    went through them (their time fields too: busy no longer than fio ran) (the data loop wrote at least what the pool wrote to its data
#    device), and once fio exits no loop is left over the pool's files; the same loops'
#    counters over the IO phase alone (io_phase: no more on any counter than the whole job's,
#    its window no longer than fio ran), and the closing commit outside that phase;
#  - fio killed (SIGKILL) while the loops are attached: they detach themselves all the same;
#  - a second process opening the same pool through loops is refused (busy);
#  - not root (root dropped with setpriv, or a non-root caller): fio refuses, naming the way
#    out.
source "$(dirname "$0")/lib.sh"
fio_pid=""
NR_DIRS=()
trap '[ -z "$fio_pid" ] || kill -KILL "$fio_pid" 2>/dev/null || true; rm -rf "${NR_DIRS[@]}"; cleanup' EXIT

# loops_over DIR
source "$ENGINE_ROOT/tests/support/loops.sh"

# wait (bounded) until no loop device is attached over DIR's files
no_loops_left() {
	local dir=$1 what=$2 left=""
	for _ in $(seq 500); do
		left=$(loops_over "$dir")
		[ -z "$left" ] && break
		sleep 0.02
	done
	[ -z "$left" ] || { echo "FAIL: $what: loop devices left over $dir: $left"; exit 1; }
	echo "  ok: no loop device left over $dir ($what)"
}

if [ "$(id -u)" -ne 0 ]; then
	step "not root: thinp_losetup=1 is refused"
	must_fail nonroot 'thinp_losetup=1 attaches loop devices, which needs root.*drop thinp_losetup' \
		--ioengine=external:"$ENGINE" --name=j --thinp_pool="$WORK/nr" --thinp_create=1 \
		--thinp_losetup=1 --rw=write --bs=4k --size=64k
	echo "PASS (not root: the loop-device runs need root and were not run)"
	exit 0
fi

P=$(readlink -f "$WORK")/pool
step "a job through loop devices: the stats file names them, their counters move"
t0=$(date +%s%N)
must_fio through --ioengine=external:"$ENGINE" --name=j --thinp_pool="$P" --thinp_create=1 \
	--thinp_losetup=1 --thinp_data_size=64m --thinp_metadata_size=8m --thinp_zero=0 \
	--rw=write --bs=64k --size=4m --end_fsync=1 --thinp_stats="$WORK/through.stats.json"
t1=$(date +%s%N)
python3 - "$WORK/through.stats.json" "$P" "$(((t1 - t0) / 1000000))" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
# the loops' /sys/block time fields (ms): a loop cannot be busy longer than fio ran
for role in ("data", "metadata"):
    d = s["pool"]["loop_devices"][role]
    for k in ("read_ticks_ms", "write_ticks_ms", "flush_ticks_ms", "io_ticks_ms",
              "time_in_queue_ms"):
        assert isinstance(d[k], int) and d[k] >= 0, (role, k, d)
    assert d["io_ticks_ms"] <= int(sys.argv[3]) + 1, (role, d, sys.argv[3])
p, pool = s["pool"], sys.argv[2]
assert p["losetup"] is True, p["losetup"]
lo = p["loop_devices"]
assert lo and lo["data"]["device"] and lo["metadata"]["device"], lo
assert lo["data"]["device"] != lo["metadata"]["device"], lo
written = sum(c["data_bytes_written"] + c["data_bytes_zeroed"] for c in p["blocks"].values())
assert written >= 4 << 20, written
# everything the pool wrote to its data device went through the data loop
assert lo["data"]["write_bytes"] >= written, (lo["data"], written)
assert lo["data"]["flushes"] >= 1, lo["data"]
assert lo["metadata"]["write_bytes"] > 0, lo["metadata"]
print(f"  ok: data {lo['data']['device']} wrote {lo['data']['write_bytes']} bytes "
      f"(pool: {written}), metadata {lo['metadata']['device']} "
      f"{lo['metadata']['write_bytes']} bytes")
# the IO phase: the same loops, a part of the whole job on every counter, a window inside
# fio's wall time
ph = p.get("io_phase")
assert ph, ("no io_phase", list(p))
for role in ("data", "metadata"):
    d, w = ph[role], lo[role]
    assert d["device"] == w["device"], (role, d, w)
    for k, v in w.items():
        if k != "device":
            assert isinstance(d[k], int) and 0 <= d[k] <= v, (role, k, d[k], v)
    assert 0 < d["window_ms"] <= int(sys.argv[3]), (role, d["window_ms"], sys.argv[3])
assert ph["data"]["write_bytes"] >= written - (1 << 20), (ph["data"], written)
print(f"  ok: io_phase window {ph['data']['window_ms']:.1f} ms of fio's {sys.argv[3]}, "
      f"data busy {ph['data']['io_ticks_ms']} of {lo['data']['io_ticks_ms']} ms")
EOF
grep -q "through loop devices /dev/loop[0-9]* + /dev/loop[0-9]*" "$WORK/through.err" ||
	{ echo "FAIL: no note naming the loop devices"; exit 1; }
no_loops_left "$P" "after fio exited"

step "the closing commit is outside the IO phase (no flush, no periodic commit)"
C=$(readlink -f "$WORK")/closing
must_fio closing --ioengine=external:"$ENGINE" --name=j --thinp_pool="$C" --thinp_create=1 \
	--thinp_losetup=1 --thinp_data_size=64m --thinp_metadata_size=8m --thinp_zero=0 \
	--thinp_commit_interval=0 --rw=write --bs=64k --size=1m \
	--thinp_stats="$WORK/closing.stats.json"
python3 - "$WORK/closing.stats.json" <<'EOF'
import json, sys
p = json.load(open(sys.argv[1]))["pool"]
job, ph = p["loop_devices"]["metadata"], p["io_phase"]["metadata"]
assert job["write_bytes"] > 0, job
assert ph["write_bytes"] < job["write_bytes"], ("the commit counted in the IO phase", ph, job)
print(f"  ok: metadata written {ph['write_bytes']} bytes in the IO phase, "
      f"{job['write_bytes']} in the whole job")
EOF
no_loops_left "$C" "after fio exited"

step "without thinp_losetup the same pool has no loop device and says so"
must_fio plain --ioengine=external:"$ENGINE" --name=j --thinp_pool="$P" \
	--rw=write --bs=64k --size=1m --thinp_stats="$WORK/plain.stats.json"
python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))["pool"]; assert p["losetup"] is False and p["loop_devices"] is None and p["io_phase"] is None, p' \
	"$WORK/plain.stats.json"

step "a second process cannot open the pool while fio holds it through loops"
S=$(readlink -f "$WORK")/shared
"$FIO" --ioengine=external:"$ENGINE" --name=h --thinp_pool="$S" --thinp_create=1 \
	--thinp_losetup=1 --thinp_data_size=64m --thinp_metadata_size=8m --rw=randwrite \
	--bs=4k --size=32m --time_based --runtime=3600 --thread >"$WORK/holder.out" 2>&1 &
fio_pid=$!
for _ in $(seq 3000); do
	[ "$(loops_over "$S" | grep -c loop)" -ge 2 ] && break
	kill -0 "$fio_pid" 2>/dev/null || { cat "$WORK/holder.out"; echo "FAIL: fio ended early"; exit 1; }
	sleep 0.02
done
for flag in 1 0; do
	must_fail "busy$flag" 'another process has this pool open' --ioengine=external:"$ENGINE" \
		--name=j --thinp_pool="$S" --thinp_losetup=$flag --rw=write --bs=4k --size=64k
done
kill -KILL "$fio_pid"
wait "$fio_pid" 2>/dev/null || true
fio_pid=""
no_loops_left "$S" "after the holder's SIGKILL"

step "fio killed with SIGKILL while the loops are attached: they detach themselves"
K=$(readlink -f "$WORK")/killed
"$FIO" --ioengine=external:"$ENGINE" --name=k --thinp_pool="$K" --thinp_create=1 \
	--thinp_losetup=1 --thinp_data_size=64m --thinp_metadata_size=8m --rw=randwrite \
	--bs=4k --size=32m --time_based --runtime=3600 --thread >"$WORK/killed.out" 2>&1 &
fio_pid=$!
attached=""
for _ in $(seq 3000); do
	attached=$(loops_over "$K")
	[ "$(printf '%s\n' "$attached" | grep -c loop)" -ge 2 ] && break
	kill -0 "$fio_pid" 2>/dev/null || { cat "$WORK/killed.out"; echo "FAIL: fio ended early"; exit 1; }
	sleep 0.02
done
[ "$(printf '%s\n' "$attached" | grep -c loop)" -ge 2 ] ||
	{ cat "$WORK/killed.out"; echo "FAIL: fio never attached two loops over $K"; exit 1; }
echo "  attached: $(echo "$attached" | tr '\n' ' ')"
kill -KILL "$fio_pid"
wait "$fio_pid" 2>/dev/null || true
fio_pid=""
no_loops_left "$K" "after SIGKILL"

if command -v setpriv >/dev/null && id nobody >/dev/null 2>&1; then
	step "root dropped (setpriv to nobody): thinp_losetup=1 is refused"
	# (nobody's own dir and the engine where nobody can read them: the checkout, and $WORK
	# in it, may sit under a 0700 directory)
	source "$ENGINE_ROOT/tests/support/nobody.sh"
	N=$(nobody_scratch)
	NR_DIRS+=("$N")
	NENGINE=$(nobody_stage "$N" "$ENGINE")
	rc=0
	(cd "$N" && setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all \
		"$FIO" --ioengine=external:"$NENGINE" --name=j --thinp_pool="$N/pool" \
		--thinp_create=1 --thinp_losetup=1 --rw=write --bs=4k --size=64k) \
		>"$WORK/nobody.out" 2>&1 || rc=$?
	sed "s/^/  [nobody] /" "$WORK/nobody.out"
	[ "$rc" -ne 0 ] || { echo "FAIL: fio as nobody exited 0"; exit 1; }
	grep -q 'thinp_losetup=1 attaches loop devices, which needs root (uid [0-9]*): run fio as root, or drop thinp_losetup' \
		"$WORK/nobody.out" || { echo "FAIL: the refusal does not name the way out"; exit 1; }
	echo "  ok: exit $rc, the refusal names root and thinp_losetup"
fi
echo PASS
