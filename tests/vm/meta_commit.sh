#!/usr/bin/env bash
# Metadata bytes written per commit, libthinp against the kernel's dm-thin, in one boot of the
# VM (tests/vm/meta_commit-guest.sh; part of make vm-test): scenarios/run --backend
# libthinp,kernel --scale tiny on three loop-lvm cases whose commit points the workload fixes,
# whatever the speed of the emulation — overwrite (the steady step changes no mapping: one
# superblock-only commit), cow 4k seq (its second pass the same), commit fsync=1 (every write
# committed by its flush, or by the timer first: the same blocks either way) — and each step's
# bytes per commit (libthinp: its commit counter; kernel: the metadata device's flushes / 2)
# must agree within 10%. The steps whose commits the kernel's 1 s timer splits (a first write
# under TCG) are printed, not compared (docs/kernel-backend.md). Then the blocks of single
# commits (a 4 KiB first write to a new thin, then one to another block: the metadata file
# diffed around each, tests/vm/commit_blocks.py), kernel and libthinp, must be the same kinds.
# Seeded: THINP_SEED (default: from the clock; printed) is the runner's seed (the iologs).
# Artifacts: build/vm/meta_commit/ (VM_MC_OUT): job.log, run/, console.log.
# Environment: THINP, THINP_IOENGINE (the guest's binaries), VM_MC_TIMEOUT (900 s), VM_ACCEL.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
res=${VM_MC_OUT:-$repo/build/vm/meta_commit}
seed=${THINP_SEED:-$(date +%s)}
echo "meta_commit: THINP_SEED=$seed (rerun: THINP_SEED=$seed bash tests/vm/meta_commit.sh)"
only='^overwrite\.bs=4k\.(thinp|kernel)\.loop$ ^cow\.bs=4k\.order=seq\.(thinp|kernel)\.loop$'
only+=' ^commit\.fsync=1\.(thinp|kernel)\.loop\.z0$'

rm -rf "$res"
mkdir -p "$res"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/thinbench-mc.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=ci/vm/lib.sh
. "$repo/ci/vm/lib.sh"
vm_copy_scenarios "$repo" "$tmp/scenarios"
bash "$repo/ci/vm/build.sh"
rc=0
bash "$repo/ci/vm/run.sh" "$repo/tests/vm/meta_commit-guest.sh" --disk 1G:scratch \
	--file "$tmp/scenarios" --file "$repo/tests/vm/commit_blocks.py" --env "MC_ONLY=$only" --env "THINP_SEED=$seed" \
	--timeout "${VM_MC_TIMEOUT:-900}" --out "$res" || rc=$?
grep -E '^(FAIL|ok|==|pair|kernel|libthinp|  )' "$res/job.log" 2>/dev/null || true
cat "$res/vm-times.txt" 2>/dev/null || true
if [ "$rc" != 0 ]; then
	echo "meta_commit: FAILED (exit $rc; THINP_SEED=$seed; artifacts in $res)"
	exit 1
fi
echo "meta_commit: PASS"
