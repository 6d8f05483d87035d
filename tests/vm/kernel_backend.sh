#!/usr/bin/env bash
# The kernel backend (impl/dm/, `thinp --backend kernel`) against the real dm-thin, in the VM:
# tests/vm/kernel_backend-guest.sh runs in the guest (ci/vm/run.sh) and checks every backend
# operation against dmsetup's own view, in loop-lvm (a pool directory: files + autoclear loop
# devices) and direct (a dm-linear "LV" and a raw virtio disk) set-ups:
#   - pool create/activate/remove, thin create/snap/delete/activate/remove, set-transaction-id,
#     metadata-snap reserve/release (with thin_dump -m of the held root)
#   - tables, status lines (== dmsetup status) and the parsed structs (--fields == the line)
#   - errno meanings: EEXIST (create_thin of an existing id), EBUSY (delete of an active thin,
#     remove of an open device, reserve twice), ENODATA, EINVAL (transaction id, release,
#     block size), ENXIO; libdevmapper's raw log only with -v
#   - growing the data and metadata devices by suspend/reload/resume (losetup -c; lvextend)
#   - deferred removal (the device goes on its last close)
#   - the directory reopened by the userspace backend gives the kernel's status line
# Artifacts: build/vm/kernel_backend/ (VM_KB_OUT): results.txt, timings.txt (seconds per
# command), job.log, console.log, vm-times.txt, accel.txt.
# Usage: tests/vm/kernel_backend.sh   (part of make vm-test; builds the VM image if needed)
# Environment: THINP (default impl/cli/thinp), VM_KB_TIMEOUT (240 s), VM_ACCEL.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$repo/tests/vm
THINP=${THINP:-$repo/impl/cli/thinp}
res=${VM_KB_OUT:-$repo/build/vm/kernel_backend}
t_start=$(date +%s.%N)

[ -x "$THINP" ] || { echo "kernel_backend: $THINP not built (make cli)" >&2; exit 1; }
if ! "$THINP" help pool 2>/dev/null | grep -q -- "--backend"; then
	echo "kernel_backend: $THINP has no kernel backend" >&2
	exit 1
fi

rm -rf "$res"
mkdir -p "$res"
bash "$repo/ci/vm/build.sh"
rc=0
THINP=$THINP bash "$repo/ci/vm/run.sh" "$here/kernel_backend-guest.sh" \
	--disk 1G:scratch --disk 512M:ddata --disk 64M:dmeta \
	--timeout "${VM_KB_TIMEOUT:-240}" --out "$res" || rc=$?

if [ ! -s "$res/results.txt" ]; then
	echo "kernel_backend: FAILED: no results (run.sh exit $rc); see $res/console.log, $res/job.log" >&2
	tail -n 20 "$res/job.log" 2>/dev/null | sed 's/^/  | /' >&2 || true
	exit 1
fi
grep -v '^PASS' "$res/results.txt" || true
n_pass=$(grep -c '^PASS' "$res/results.txt" || true)
n_fail=$(grep -c '^FAIL' "$res/results.txt" || true)
echo "kernel_backend: $n_pass checks passed, $n_fail failed"
[ -f "$res/vm-times.txt" ] && echo "kernel_backend: $(cat "$res/vm-times.txt")"
[ -f "$res/accel.txt" ] && echo "kernel_backend: accelerator $(head -n1 "$res/accel.txt")"
if [ -s "$res/timings.txt" ]; then
	awk '$2 == "section" || $2 == "all" {printf "kernel_backend: guest time %s: %s s\n", $3, $1}' \
		"$res/timings.txt"
	awk '$2 ~ /thinp/ {n++; s += $1; if ($1 > m) {m = $1; w = $0}}
		END {if (n) printf "kernel_backend: %d thinp commands, mean %.3f s, slowest %s\n", n, s / n, w}' \
		"$res/timings.txt"
fi
echo "kernel_backend: $(awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.0f", b - a}') s in all; artifacts in $res"
if [ "$rc" != 0 ] || [ "$n_fail" != 0 ]; then
	echo "kernel_backend: FAILED (run.sh exit $rc)"
	exit 1
fi
echo "kernel_backend: PASSED"
