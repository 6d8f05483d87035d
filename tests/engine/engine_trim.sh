#!/usr/bin/env bash
# Trim then read through the thinp engine (tests/engine/trim.fio): whole-block trims unmap
# (reads return zeros, the pool gets its blocks back) with thinp_discard=passdown and
# nopassdown; thinp_discard=ignore and sub-block trims keep the data.
source "$(dirname "$0")/lib.sh"

export POOL=$WORK/pool OUT=$WORK/stats DEV DISCARD
mkdir -p "$OUT"
N=256
section() { # section NAME CHECK-ARGS...
	local name=$1-$DEV-$DISCARD
	must_fio "$name" --section="$1" "$JOBS_DIR/trim.fio"
	$CHECK fio "$WORK/$name.json" --jobs 1
	$CHECK stats "$OUT/$1.json" "${@:2}"
}

for DISCARD in passdown nopassdown; do
	DEV=$([ $DISCARD = passdown ] && echo 1 || echo 2)
	step "thinp_discard=$DISCARD: fill, trim, read zeros"
	section fill --only write_provision_full,read_mapped classes.write_provision_full.ios=$N
	section trim --only discard classes.discard.ios=$N pool.blocks.discard.ops=$N \
		pool.used_data_blocks=0
	section zeros --only read_unmapped classes.read_unmapped.ios=$N
done

DISCARD=ignore DEV=3
step "thinp_discard=ignore: the trims complete, the data stays"
section fill --only write_provision_full,read_mapped classes.write_provision_full.ios=$N
section trim --only discard classes.discard.ios=$N pool.used_data_blocks=$N
section kept --only read_mapped classes.read_mapped.ios=$N

DISCARD=passdown DEV=4
step "4k trims never cover a 64k block: nothing is unmapped"
section fill --only write_provision_full,read_mapped classes.write_provision_full.ios=$N
section trim4k --only discard classes.discard.ios=$((16 * N)) pool.used_data_blocks=$((2 * N))
section kept --only read_mapped classes.read_mapped.ios=$N
echo "PASS"
