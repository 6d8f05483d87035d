#!/usr/bin/env bash
# Snapshot-then-verify through the thinp engine (tests/engine/snapshot.fio): write an origin,
# snapshot it in a later fio run and verify the snapshot (verify_only), then diverge both
# sides with CoW writes and check that each keeps exactly its own data; the per-class counts
# show one CoW per 64 KiB block (256 blocks per 16 MiB device).
source "$(dirname "$0")/lib.sh"

export POOL=$WORK/pool OUT=$WORK/stats
mkdir -p "$OUT"
N=256
section() { # section NAME CHECK-ARGS...
	step "$1"
	must_fio "$1" --section="$1" "$JOBS_DIR/snapshot.fio"
	$CHECK fio "$WORK/$1.json" --jobs 1
	$CHECK stats "$OUT/$1.json" "${@:2}"
}

section origin --only write_provision_full,read_mapped \
	classes.write_provision_full.ios=$N classes.read_mapped.ios=$N
section snap --only read_shared classes.read_shared.ios=$N
section rewrite --only write_cow,write_overwrite,read_mapped \
	classes.write_cow.ios=$N classes.write_overwrite.ios=$((2048 - N)) classes.read_mapped.ios=2048 \
	classes.write_cow.data_bytes_read=$((N * 65536))
section holes --only read_mapped classes.read_mapped.ios=2048
section snapcheck --only read_shared classes.read_shared.ios=$N
section snapwrite --only write_cow,write_overwrite,read_mapped \
	classes.write_cow.ios=$N classes.write_overwrite.ios=$((4096 - N)) classes.read_mapped.ios=4096
section origincheck --only read_mapped classes.read_mapped.ios=2048

step "the checks have teeth: the snapshot now holds 0x33, so snapcheck (0xaa) must fail"
if run_fio bad --section=snapcheck "$JOBS_DIR/snapshot.fio"; then
	echo "FAIL: verifying 0xaa on the rewritten snapshot passed"
	exit 1
fi
echo "  ok: fio failed as it should"
echo "PASS"
