#!/usr/bin/env bash
# Docker's devicemapper driver on the kernel's dm-thin (thinp docker --backend kernel), in the
# VM: tests/vm/docker_kernel-guest.sh runs tests/cli/docker_driver.sh with BACKEND=kernel
# there — the same sequence as on the userspace backend (init, a 3-layer image of real files,
# 2 containers, deferred deletion with a file held open, the daemon killed -9 with a
# container mounted, docker info against dm-thin's status, cleanup, thin_check and
# `thinp check` of the pool's metadata, the pool's thins = the metadata files), plus Docker's
# refusal without udev sync; then what only the kernel backend has: `docker resize` of the
# live pool (file, LOOP_SET_CAPACITY, reload) with a container written across it, and
# dm.thinpooldev (taken while unused, kept at cleanup, not resized; a pool with used data or
# a non-zero transaction id refused with Docker's texts). The guest lacks python, pgrep, tune2fs and util-linux blkid and
# the host's files: the layers are picked from a seeded tree of the host's /usr/share/doc
# packed here, the two tools are copied in. The guest kernel has no xfs module: ext4 only.
# Artifacts: build/vm/docker_kernel/ (VM_DK_OUT): job.log, console.log, vm-times.txt.
# Environment: THINP (default impl/cli/thinp), THINP_SEED, VM_DK_TIMEOUT (900 s), VM_ACCEL.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
THINP=${THINP:-$repo/impl/cli/thinp}
res=${VM_DK_OUT:-$repo/build/vm/docker_kernel}
SEED=${THINP_SEED:-$RANDOM}
echo "docker_kernel: THINP_SEED=$SEED"
t_start=$(date +%s.%N)
[ -x "$THINP" ] || { echo "docker_kernel: $THINP not built (make cli)" >&2; exit 1; }
tools=()
for t in tune2fs blkid; do
	p=$(PATH=/usr/sbin:/sbin:$PATH command -v "$t") || { echo "docker_kernel: no $t on the host (e2fsprogs, util-linux)" >&2; exit 1; }
	tools+=(--file "$p")
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/thinbench-dk.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# the files the layers are picked from: 1500 small files of the host's docs
find /usr/share/doc -type f -size -200k | LC_ALL=C sort | awk 'NR <= 1500' >"$tmp/list"
[ "$(wc -l <"$tmp/list")" -ge 300 ] || { echo "docker_kernel: too few files under /usr/share/doc" >&2; exit 1; }
tar -cf "$tmp/tree.tar" -T "$tmp/list" 2>/dev/null

rm -rf "$res"
mkdir -p "$res"
bash "$repo/ci/vm/build.sh"
rc=0
THINP=$THINP bash "$repo/ci/vm/run.sh" "$repo/tests/vm/docker_kernel-guest.sh" \
	--disk 2G:scratch --file "$repo/tests/cli/docker_driver.sh" --file "$tmp/tree.tar" \
	"${tools[@]}" --env "THINP_SEED=$SEED" \
	--timeout "${VM_DK_TIMEOUT:-900}" --out "$res" || rc=$?
grep -E "^docker_driver|^docker_kernel|^FAIL|^PASS" "$res/job.log" 2>/dev/null || true
[ -f "$res/vm-times.txt" ] && echo "docker_kernel: $(cat "$res/vm-times.txt")"
[ -f "$res/accel.txt" ] && echo "docker_kernel: accelerator $(head -n1 "$res/accel.txt")"
echo "docker_kernel: $(awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.0f", b - a}') s in all; artifacts in $res"
if [ "$rc" != 0 ] || ! grep -qx PASS "$res/job.log" 2>/dev/null ||
	! grep -qx "PASS kernel extras" "$res/job.log"; then
	echo "docker_kernel: FAILED (run.sh exit $rc)"
	tail -n 30 "$res/job.log" 2>/dev/null | sed 's/^/  | /' >&2 || true
	exit 1
fi
echo "docker_kernel: PASSED"
