#!/usr/bin/env bash
# thinp_cow through the engine (tests/engine/cow_policy.fio): under each policy the CoW and
# the provision with zeroing keep every byte, and libthinp's exact counters are the policy's:
# per 4 KiB CoW into a shared 64 KiB block, kernel reads 64 KiB and writes 64 KiB + 4 KiB,
# merged reads 64 KiB and writes 64 KiB; per 4 KiB into a new block, kernel zeroes 64 KiB
# (write-zeroes) and writes 4 KiB, merged writes 64 KiB and zeroes nothing. fio --enghelp
# lists the option, and a value that is not a policy is refused.
source "$(dirname "$0")/lib.sh"

N=128
B=65536
K=4096
for COW in kernel merged; do
	export COW POOL=$WORK/pool-$COW OUT=$WORK/stats-$COW
	mkdir -p "$OUT"
	if [ "$COW" = merged ]; then
		cow_written=$((N * B)) prov_written=$((N * B)) prov_zeroed=0
	else
		cow_written=$((N * (B + K))) prov_written=$((N * K)) prov_zeroed=$((N * B))
	fi
	for s in origin cow kept zeroing zeros; do
		step "thinp_cow=$COW: $s"
		must_fio "$COW-$s" --section="$s" "$JOBS_DIR/cow_policy.fio"
		$CHECK fio "$WORK/$COW-$s.json" --jobs 1
	done
	$CHECK stats "$OUT/cow.json" --only write_cow,read_mapped classes.write_cow.ios=$N \
		classes.write_cow.data_bytes_read=$((N * B)) \
		classes.write_cow.data_bytes_written=$cow_written \
		classes.write_cow.data_bytes_zeroed=0
	$CHECK stats "$OUT/zeroing.json" --only write_provision_zero,read_mapped \
		classes.write_provision_zero.ios=$N classes.write_provision_zero.data_bytes_read=0 \
		classes.write_provision_zero.data_bytes_written=$prov_written \
		classes.write_provision_zero.data_bytes_zeroed=$prov_zeroed
done

step "fio --enghelp lists thinp_cow with both values"
"$FIO" --enghelp="$ENGINE" >"$WORK/help.out" 2>&1 || true
grep -Eq "^thinp_cow +: .{20}" "$WORK/help.out" || { echo "FAIL: --enghelp does not list thinp_cow"; exit 1; }

step "thinp_cow=copy is refused"
export COW=copy POOL=$WORK/pool-bad OUT=$WORK/stats-bad
mkdir -p "$OUT"
must_fail bad-cow "copy|thinp_cow" --section=origin "$JOBS_DIR/cow_policy.fio"
echo "PASS"
