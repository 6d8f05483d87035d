#!/usr/bin/env bash
# Failure paths of the thinp engine: bad option values stop fio with the engine's message;
# libthinp errors (ENOSPC, read-only pool, ...) reach fio as IO errors with the right errno and
# a message naming the cause; a second process opening a busy pool gets a clear error; the
# options table is what `fio --enghelp` lists; fio-src.sh refuses a mismatched fio source.
source "$(dirname "$0")/lib.sh"

P=$WORK/pool
base=(--ioengine=external:"$ENGINE" --thinp_pool="$P" --thinp_create=1 --thinp_data_size=64m
	--thinp_metadata_size=16m --rw=write --bs=64k --size=4m --name=job)

step "bad option values: fio exits non-zero with the engine's message, before any job runs"
must_fail blocksize 'thinp: thinp_block_size=102400 is invalid' "${base[@]}" --thinp_block_size=100k
must_fail blocksize-big 'thinp_block_size=.* is invalid' "${base[@]}" --thinp_block_size=2g
must_fail mode 'valid values: loop' "${base[@]}" --thinp_mode=bogus
must_fail discard 'valid values: passdown' "${base[@]}" --thinp_discard=always
must_fail dev 'thinp: thinp_dev=x1 is invalid' "${base[@]}" --thinp_dev=x1
must_fail dev-range 'thinp_dev=16777216 is invalid' "${base[@]}" --thinp_dev=16777216
must_fail snap 'thinp_snapshot_of=-1 is invalid' "${base[@]}" --thinp_snapshot_of=-1
must_fail metasize 'thinp_metadata_size=.* is invalid: dm-thin metadata is at most 16g' \
	"${base[@]}" --thinp_metadata_size=17g
must_fail workers 'thinp_workers=5000 is invalid' "${base[@]}" --thinp_workers=5000
[ ! -e "$P" ] || { echo "FAIL: a rejected job created $P"; exit 1; }

step "missing or inconsistent setup: the job fails with the reason"
must_fail absent 'no pool at .*set thinp_create=1' "${base[@]}" --thinp_create=0
# a pool (64m = 1024 blocks) with device 1 half filling it, for the rest of the tests
must_fio fill "${base[@]}" --thinp_dev=1 --size=32m
must_fail nopool 'no pool given: set thinp_pool' --ioengine=external:"$ENGINE" --rw=write \
	--size=1m --name=job
must_fail fsync-on-close 'fsync_on_close .* use end_fsync=1' "${base[@]}" --fsync_on_close=1
must_fail nrfiles 'nrfiles=2: a job does IO to one thin device' "${base[@]}" --nrfiles=2
must_fail snap-self 'names thinp_dev itself' "${base[@]}" --thinp_dev=3 --thinp_snapshot_of=3
must_fail snap-noorigin 'cannot snapshot thin device 7 into 8: .*does not exist' \
	"${base[@]}" --thinp_dev=8 --thinp_snapshot_of=7
must_fail snap-exists 'thin device 1 already exists' "${base[@]}" --thinp_dev=1 --thinp_snapshot_of=8
must_fail percent 'in percent need thinp_dev_size' "${base[@]}" --offset=10%
must_fail blocksize-mismatch "data block size is 128 sectors, not the 256 requested" \
	"${base[@]}" --thinp_block_size=128k
must_fail half-pool 'exists but .* does not: refusing to create a pool' \
	--ioengine=external:"$ENGINE" --thinp_data="$P/data" --thinp_metadata="$WORK/other-meta" \
	--thinp_create=1 --rw=write --size=1m --name=job

step "out of data space, thinp_no_space=error: ENOSPC (28) at once, naming the cause"
# device 1 uses half the pool; device 2 wants 64m more
rc=0
run_fio nospace "${base[@]}" --thinp_dev=2 --size=64m --thinp_no_space=error || rc=$?
[ $rc -ne 0 ] || { echo "FAIL: fio exited 0"; exit 1; }
$CHECK fio "$WORK/nospace.json" --error 28
grep -q 'failed: No space left on device: out of data space' "$WORK/nospace.err" ||
	{ echo "FAIL: no ENOSPC cause in the engine's message"; exit 1; }

step "thinp_no_space=queue: the write waits thinp_no_space_timeout, then ENOSPC"
rc=0
run_fio nospace-queue "${base[@]}" --thinp_dev=3 --size=64m --thinp_no_space_timeout=300 || rc=$?
[ $rc -ne 0 ] || { echo "FAIL: fio exited 0"; exit 1; }
$CHECK fio "$WORK/nospace-queue.json" --error 28
grep -q 'no resize within the no_space_timeout' "$WORK/nospace-queue.err" ||
	{ echo "FAIL: no timeout cause in the engine's message"; exit 1; }

step "read-only pool: overwrites work, a write needing a new block gets EROFS (30)"
rc=0
run_fio readonly "${base[@]}" --thinp_dev=1 --size=40m --thinp_read_only=1 || rc=$?
[ $rc -ne 0 ] || { echo "FAIL: fio exited 0"; exit 1; }
$CHECK fio "$WORK/readonly.json" --error 30
grep -q 'Read-only file system: the pool is read-only' "$WORK/readonly.err" ||
	{ echo "FAIL: no read-only cause in the engine's message"; exit 1; }

step "two processes on one pool: the second gets a clear error, the first runs on"
rc=0
"$FIO" "${base[@]}" --thinp_dev=1 --rw=randwrite --size=8m --time_based --runtime=2 \
	--numjobs=2 --output-format=json --output="$WORK/two.json" >"$WORK/two.out" 2>&1 || rc=$?
sed 's/^/  [two] /' "$WORK/two.out"
[ $rc -ne 0 ] || { echo "FAIL: fio exited 0"; exit 1; }
grep -q 'Device or resource busy (another process has this pool open' "$WORK/two.out" ||
	{ echo "FAIL: no busy-pool message"; exit 1; }
python3 - "$WORK/two.json" <<'PY'
import json, sys
t = open(sys.argv[1]).read()
jobs = json.loads(t[t.find("\n{") + 1:] if not t.startswith("{") else t)["jobs"]
ok = [j for j in jobs if j["error"] == 0 and j["write"]["total_ios"] > 0]
busy = [j for j in jobs if j["error"] == 16]
if len(ok) != 1 or len(busy) != 1:
    sys.exit(f"FAIL: expected one job running and one EBUSY, got {[j['error'] for j in jobs]}")
print("  ok: one job ran, the other got EBUSY")
PY

step "fio --enghelp lists every option with its help"
"$FIO" --enghelp="$ENGINE" >"$WORK/help.out" 2>&1
for o in thinp_pool thinp_data thinp_metadata thinp_mode thinp_create thinp_data_size \
	thinp_metadata_size thinp_block_size thinp_zero thinp_cow thinp_discard thinp_no_space \
	thinp_no_space_timeout thinp_commit_interval thinp_cache thinp_read_only thinp_dev \
	thinp_dev_size thinp_snapshot_of thinp_prefill thinp_stats thinp_workers; do
	grep -Eq "^$o +: .{20}" "$WORK/help.out" || { cat "$WORK/help.out"; echo "FAIL: $o missing"; exit 1; }
done
n=$(grep -c '^thinp_' "$WORK/help.out")
[ "$n" -eq 23 ] || { cat "$WORK/help.out"; echo "FAIL: $n options listed, expected 23"; exit 1; }
echo "  ok: 23 options"

step "fio-src.sh refuses a fio source of another version"
fake=$WORK/fake-fio
mkdir -p "$fake"
printf 'DEF_VER=fio-0.1\n' >"$fake/FIO-VERSION-GEN"
touch "$fake/fio.h" "$fake/ioengines.h"
rc=0
FIO_SRC=$fake bash "$ENGINE_ROOT/ioengine/fio-src.sh" >"$WORK/src.out" 2>&1 || rc=$?
cat "$WORK/src.out"
if [ $rc -ne 1 ] || ! grep -q "refusing to build: the fio source in $fake is 'fio-0.1' but the installed fio is '$("$FIO" --version)'" "$WORK/src.out"; then
	echo "FAIL: fio-src.sh exited $rc without the refusal"
	exit 1
fi
echo "PASS"
