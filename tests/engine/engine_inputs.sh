#!/usr/bin/env bash
# Bad or surprising input never gets a wrong or silent answer from the thinp engine: negative
# or out-of-range sizes and numbers are refused naming the option, the value and the valid
# range, before any file is touched; a failed create leaves nothing that blocks a retry; fio
# options the engine does not honour (direct=, filename=), sub-4 KiB IO in thinp_mode=direct
# and a job range larger than the pool in queue mode each get a warning saying what happens.
source "$(dirname "$0")/lib.sh"

P=$WORK/pool
base=(--ioengine=external:"$ENGINE" --thinp_pool="$P" --thinp_create=1 --thinp_data_size=64m
	--thinp_metadata_size=16m --rw=write --bs=64k --size=1m --name=job)

step "negative and out-of-range sizes and numbers: refused with option, value and range"
must_fail data-neg 'thinp_data_size=-1 is invalid: .*from 65536 to' "${base[@]}" --thinp_data_size=-1
must_fail data-small 'thinp_data_size=4096 is invalid: .*from 65536 to' "${base[@]}" --thinp_data_size=4k
must_fail meta-neg 'thinp_metadata_size=-1048576 is invalid: .*from 262144 to 17179869184' \
	"${base[@]}" --thinp_metadata_size=-1m
must_fail block-neg 'thinp_block_size=-65536 is invalid: .*from 64k to 1g' \
	"${base[@]}" --thinp_block_size=-64k
must_fail cache-neg 'thinp_cache=-1 is invalid: .*from 0 to 4194304' "${base[@]}" --thinp_cache=-1
must_fail cache-big 'thinp_cache=5000000 is invalid: .*from 0 to 4194304' "${base[@]}" \
	--thinp_cache=5000000
must_fail timeout-neg 'thinp_no_space_timeout=-5 is invalid: .*from 1 to 2147483647' \
	"${base[@]}" --thinp_no_space_timeout=-5
must_fail timeout-zero 'thinp_no_space_timeout=0 is invalid: .*from 1 to 2147483647' \
	"${base[@]}" --thinp_no_space_timeout=0
must_fail commit-neg 'thinp_commit_interval=-1 is invalid: .*from 0 to 2147483647' \
	"${base[@]}" --thinp_commit_interval=-1
must_fail devsize-neg 'thinp_dev_size=-1 is invalid: .*from 0 .* to 9223372036854775807' \
	"${base[@]}" --thinp_dev_size=-1
must_fail workers-neg 'thinp_workers=-1 is invalid: .*from 0 to 1024' "${base[@]}" --thinp_workers=-1
[ ! -e "$P" ] || { echo "FAIL: a rejected job created $P"; exit 1; }

step "a failed create leaves nothing that blocks a retry on the same paths"
# a 1t pool of 64k blocks needs more than 256k of metadata for its space map
must_fail create-fails 'cannot create the pool .*No space left on device' "${base[@]}" \
	--thinp_data_size=1t --thinp_metadata_size=256k
for f in data metadata; do
	[ ! -e "$P/$f" ] || { echo "FAIL: the failed create left $P/$f behind"; exit 1; }
done
must_fio create-retry "${base[@]}"
grep -q 'formatted a new pool' "$WORK/create-retry.err" ||
	{ echo "FAIL: the retry did not format a new pool"; exit 1; }
rm -rf "$P"

step "thinp_mode=direct with sub-4 KiB or unaligned IO: one warning with the amplification"
must_fio direct-512 "${base[@]}" --thinp_mode=direct --bs=512
n=$(grep -c 'read-modify-writes' "$WORK/direct-512.err" || true)
[ "$n" -eq 1 ] || { echo "FAIL: expected one read-modify-write warning, got $n"; exit 1; }
grep -q 'bs=512 .*up to 8.0x .*multiples of 4 KiB.*thinp_mode=loop' "$WORK/direct-512.err" ||
	{ echo "FAIL: the warning does not give the amplification and the fix"; exit 1; }
must_fio direct-ba "${base[@]}" --thinp_mode=direct --bs=4k --blockalign=512 --rw=randwrite
grep -q 'ba=512 .*up to 2.0x' "$WORK/direct-ba.err" ||
	{ echo "FAIL: no warning for 4k IO aligned to 512"; exit 1; }
must_fio direct-4k "${base[@]}" --thinp_mode=direct --bs=4k
! grep -q 'read-modify-writes' "$WORK/direct-4k.err" ||
	{ echo "FAIL: a warning for 4 KiB IO"; exit 1; }
must_fio loop-512 "${base[@]}" --bs=512
! grep -q 'read-modify-writes' "$WORK/loop-512.err" ||
	{ echo "FAIL: a warning in thinp_mode=loop"; exit 1; }

step "fio's direct= and filename= are not honoured: a warning says what the engine uses"
must_fio fio-direct "${base[@]}" --direct=1
grep -q "direct=1 is ignored by this engine.*thinp_mode=direct" "$WORK/fio-direct.err" ||
	{ echo "FAIL: no warning for direct=1"; exit 1; }
must_fio fio-filename "${base[@]}" --filename="$WORK/somefile"
grep -q "filename=$WORK/somefile is ignored by this engine.*thinp_pool" "$WORK/fio-filename.err" ||
	{ echo "FAIL: no warning for filename="; exit 1; }
[ ! -e "$WORK/somefile" ] || { echo "FAIL: filename= was created"; exit 1; }
must_fio fio-direct-direct "${base[@]}" --direct=1 --thinp_mode=direct
! grep -q 'direct=1 is ignored' "$WORK/fio-direct-direct.err" ||
	{ echo "FAIL: a direct=1 warning although thinp_mode=direct does what it asks"; exit 1; }
! grep -q 'is ignored by this engine' "$WORK/loop-512.err" ||
	{ echo "FAIL: a warning without direct= or filename="; exit 1; }

step "queue mode, a job range larger than the pool: the wait is announced"
# the pool holds 64m, 1m of it used by thin 0 above
must_fio queue-fits "${base[@]}" --thinp_dev=6 --size=8m
! grep -q 'this job writes up to' "$WORK/queue-fits.err" ||
	{ echo "FAIL: a warning for a job that fits"; exit 1; }
rc=0
run_fio queue-big "${base[@]}" --thinp_dev=5 --size=80m --thinp_no_space_timeout=200 || rc=$?
[ $rc -ne 0 ] || { echo "FAIL: fio exited 0"; exit 1; }
grep -q 'this job writes up to 83886080 bytes but the pool holds 67108864 (57671680 free): writes past that will wait up to 0.2 s for an extend, then fail' \
	"$WORK/queue-big.err" || { echo "FAIL: no warning before the wait"; exit 1; }
rc=0
run_fio error-big "${base[@]}" --thinp_dev=7 --size=80m --thinp_no_space=error || rc=$?
! grep -q 'this job writes up to' "$WORK/error-big.err" ||
	{ echo "FAIL: a queue warning with thinp_no_space=error"; exit 1; }
# the pool is full now, but thin 5 maps its first 8m: overwriting them needs no space
must_fio queue-overwrite "${base[@]}" --thinp_dev=5 --size=8m
! grep -q 'this job writes up to' "$WORK/queue-overwrite.err" ||
	{ echo "FAIL: a warning for overwrites of mapped blocks"; exit 1; }
echo "PASS"
