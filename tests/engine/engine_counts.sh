#!/usr/bin/env bash
# Exact per-class counts from the thinp engine's statistics files (tests/engine/counts.fio):
# 64 MiB thin devices, 64 KiB pool blocks, so 1024 blocks each. Both the per-IO classes
# (classes.*) and the pool's own block-level counters (pool.blocks.*) must match exactly,
# with the exact data-device bytes each class costs.
source "$(dirname "$0")/lib.sh"

export POOL=$WORK/pool OUT=$WORK/stats
mkdir -p "$OUT"
B=65536 N=1024 K4=4096
step "counts.fio"
must_fio counts "$JOBS_DIR/counts.fio"
$CHECK fio "$WORK/counts.json" --jobs 13

s() { $CHECK stats "$OUT/$1.json" "${@:2}"; }

step "4k sequential writes on a fresh device: 1024 provisions (zeroed) + 15360 overwrites"
s seq4k --only write_provision_zero,write_overwrite \
	classes.write_provision_zero.ios=$N classes.write_overwrite.ios=15360 \
	classes.write_provision_zero.data_bytes_zeroed=$((N * B)) \
	classes.write_provision_zero.data_bytes_written=$((N * K4)) \
	classes.write_overwrite.data_bytes_written=$((15360 * K4)) \
	pool.blocks.write_provision_zero.ops=$N pool.blocks.write_overwrite.ops=15360 \
	pool.used_data_blocks=$N pool.block_size=$B errors.write=0
step "4k random writes: the same counts in any order"
s rand4k --only write_provision_zero,write_overwrite \
	classes.write_provision_zero.ios=$N classes.write_overwrite.ios=15360 \
	pool.blocks.write_provision_zero.ops=$N pool.blocks.write_overwrite.ops=15360
step "zeroing off: plain provisions, nothing zeroed"
s nozero --only write_provision,write_overwrite \
	classes.write_provision.ios=$N classes.write_overwrite.ios=15360 \
	classes.write_provision.data_bytes_zeroed=0 pool.zeroing=False
step "iodepth 16: still one provision per block"
s depth16 --only write_provision_zero,write_overwrite \
	classes.write_provision_zero.ios=$N classes.write_overwrite.ios=15360 \
	pool.blocks.write_provision_zero.ops=$N
step "whole-block writes: 1024 full provisions, no zeroing"
s origin --only write_provision_full classes.write_provision_full.ios=$N \
	classes.write_provision_full.data_bytes_zeroed=0 \
	classes.write_provision_full.data_bytes_written=$((N * B))
step "CoW on a snapshot of the fully written origin: exactly one CoW (64k copy) per block"
s cow4k --only write_cow,write_overwrite \
	classes.write_cow.ios=$N classes.write_overwrite.ios=15360 \
	pool.blocks.write_cow.ops=$N pool.blocks.write_cow_full.ops=0 \
	classes.write_cow.data_bytes_read=$((N * B)) \
	classes.write_cow.data_bytes_written=$((N * (B + K4)))
step "whole-block writes to a snapshot: 1024 CoWs without a copy"
s cowfull --only write_cow_full classes.write_cow_full.ios=$N \
	pool.blocks.write_cow_full.ops=$N classes.write_cow_full.data_bytes_read=0 \
	classes.write_cow_full.data_bytes_written=$((N * B))
step "thinp_prefill: every write overwrites (the prefill is not counted, nor its commit)"
# the prefill's metadata is committed before the job, as the kernel runner's status commits
# its prefill: the job's one commit (at close) changes nothing but the superblock
s prefill --only write_overwrite classes.write_overwrite.ios=16384 \
	pool.blocks.write_provision_full.ops=0 pool.blocks.write_provision_zero.ops=0 \
	pool.blocks.commit.ops=1 pool.blocks.commit.meta_bytes_written=$K4
step "fsync=16 + end_fsync: 64 flushes, each committing"
s fsync --only write_provision_full,flush classes.write_provision_full.ios=$N \
	classes.flush.ios=64 pool.blocks.flush.ops=64 'pool.blocks.commit.ops>=64'
step "trim everything: 1024 discards, the blocks go back to the pool"
s trim --only discard classes.discard.ios=$N pool.blocks.discard.ops=$N \
	pool.used_data_blocks=$((8 * N))
step "reads: mapped, shared with a snapshot, unmapped"
s read_mapped --only read_mapped classes.read_mapped.ios=$N classes.read_mapped.data_bytes_read=$((N * B))
s read_shared --only read_shared classes.read_shared.ios=$N
s read_unmapped --only read_unmapped classes.read_unmapped.ios=64 classes.read_unmapped.data_bytes_read=0
echo "PASS"
