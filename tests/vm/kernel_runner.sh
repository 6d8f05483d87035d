#!/usr/bin/env bash
# scenarios/run --backend kernel on the real dm-thin, in the VM (tests/vm/kernel_runner-guest.sh;
# part of make vm-test): its set-up and clean-up — runs interrupted by SIGINT/SIGTERM/SIGHUP
# right after a seeded set-up step leave no dm device, loop device or LV behind — and a tiny
# run's kernel rows with the device counters dm-thin's rules fix exactly; then direct-lvm on a
# second disk: refused while it holds ext4 (no --force), an interrupted LVM set-up leaves no
# PV/VG/LV, a tiny run's rows.
# Seeded: THINP_SEED (default: from the clock; printed, with the line that reruns it) picks
# the steps (two of the 12 set-up steps of the two cases, one of them SIGINT).
# Artifacts: build/vm/kernel_runner/ (VM_KR_OUT): job.log, int-*.log, run/, console.log.
# Environment: VM_KR_TIMEOUT (900 s), VM_ACCEL.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
res=${VM_KR_OUT:-$repo/build/vm/kernel_runner}
seed=${THINP_SEED:-$(date +%s)}
echo "kernel_runner: THINP_SEED=$seed (rerun: THINP_SEED=$seed bash tests/vm/kernel_runner.sh)"
# the cases: a CoW case (2 loop devices, pool, create_thin, thin 1, create_snap, thin 2: 7
# steps) and a first-write case (5 steps); the runner's seeded order decides which comes first
only='^cow\.bs=4k\.order=seq\.kernel\.loop$ ^alloc\.bs=4k\.order=seq\.kernel\.loop\.z0$'

steps=$(python3 -c "
import random
r = random.Random($seed)
a, b = r.sample(range(1, 13), 2)
print(f'{a}:INT {b}:' + r.choice(['TERM', 'HUP']))")
# direct-lvm's alloc case: pv, vg, the profile, dmeventd, monitoring, create_thin, thin 1 (7
# steps where dmeventd is installed, as in the VM image)
donly='^alloc\.bs=4k\.order=seq\.kernel\.direct\.z0$ ^cow\.bs=4k\.order=seq\.kernel\.direct$'
dstep=$(python3 -c "import random; print(random.Random($seed + 1).randint(1, 7))"):INT
echo "kernel_runner: interrupting at steps $steps (of 12); direct-lvm at $dstep"

rm -rf "$res"
mkdir -p "$res"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/thinbench-kr.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=ci/vm/lib.sh
. "$repo/ci/vm/lib.sh"
vm_copy_scenarios "$repo" "$tmp/scenarios"
bash "$repo/ci/vm/build.sh"
rc=0
bash "$repo/ci/vm/run.sh" "$repo/tests/vm/kernel_runner-guest.sh" --disk 1G:scratch \
	--disk 512M:ddisk --file "$tmp/scenarios" --env "KR_STEPS=$steps" --env "KR_ONLY=$only" \
	--env "KR_DSTEP=$dstep" --env "KR_DONLY=$donly" \
	--timeout "${VM_KR_TIMEOUT:-900}" --out "$res" || rc=$?
grep -E '^(FAIL|ok|interrupt|direct|==|cow|alloc)' "$res/job.log" 2>/dev/null || true
cat "$res/vm-times.txt" 2>/dev/null || true
if [ "$rc" != 0 ]; then
	echo "kernel_runner: FAILED (exit $rc; THINP_SEED=$seed; artifacts in $res)"
	exit 1
fi
echo "kernel_runner: PASS"
