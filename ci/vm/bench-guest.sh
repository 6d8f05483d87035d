#!/usr/bin/env bash
# The guest half of `make vm-bench` (ci/vm/bench.sh runs it through ci/vm/run.sh): scenarios/run
# from $IN/scenarios (a copy of the repo's) on an ext4 scratch disk, the libthinp and the
# kernel cases in one run, into $OUT/run (cases.json, env.json, fio/; no report: the host
# builds it). Environment: BENCH_ARGS (scenarios/run's options, set by bench.sh).
set -euo pipefail

die() {
	echo "bench-guest: $*" >&2
	exit 1
}
disk=/dev/disk/by-id/virtio-scratch
[ -b "$disk" ] || die "no scratch disk ($disk)"
for d in ddisk mdisk; do # (direct-lvm: --data-dev, --metadata-dev)
	[ -b "/dev/disk/by-id/virtio-$d" ] || die "no $d disk (/dev/disk/by-id/virtio-$d)"
done
mkfs.ext4 -q -F "$disk" || die "mkfs.ext4 $disk"
mkdir -p /scratch
mount "$disk" /scratch || die "mount $disk"
trap 'cd /; umount /scratch 2>/dev/null || true' EXIT

[ -x "$IN/scenarios/run" ] || die "no scenarios/run in \$IN"
export THINP_ENGINE=${THINP_IOENGINE:?the fio engine is not in the guest (make engine)}
python3 --version
read -r -a args <<<"${BENCH_ARGS:-}"
rc=0
python3 "$IN/scenarios/run" --no-report --tmp /scratch --out "$OUT/run" "${args[@]}" || rc=$?
# what a run leaves behind must be nothing (the host checks these files)
dmsetup ls >"$OUT/left-dm.txt" 2>&1 || true
losetup -a >"$OUT/left-loop.txt" 2>&1 || true
exit "$rc"
