#!/usr/bin/env bash
# LVM's autoextend on the kernel's direct-lvm pool, through scenarios/run's own code path, in
# the VM (tests/vm/kernel_autoextend-guest.sh; part of make vm-test): the case
# autoextend.kernel.direct on a virtual disk (--data-dev) makes the seed's pool with its
# profile (threshold 80, percent 20), monitored by dmeventd, and fills it to 70% then 86%.
# Asserted from the run's rows: below the threshold nothing grows; above it the pool grows by
# exactly the profile's 20% in whole extents (rounded up), by dmeventd, nobody running
# lvextend; the same by `lvextend --use-policies` when dmeventd is absent; a run interrupted
# (SIGINT) at a seeded set-up step exits 130; after every run no dm device, LV, VG, PV label,
# loop device, dmeventd or profile file is left.
# Seeded: THINP_SEED (default: from the clock; printed, with the line that reruns it) picks the
# interrupted step (of the case's 7: pv, vg, profile, dmeventd, monitoring, create_thin, thin).
# Artifacts: build/vm/kernel_autoextend/ (VM_AE_OUT): job.log, run*/, *.log, console.log.
# Environment: VM_AE_TIMEOUT (600 s), VM_ACCEL.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
res=${VM_AE_OUT:-$repo/build/vm/kernel_autoextend}
seed=${THINP_SEED:-$(date +%s)}
echo "kernel_autoextend: THINP_SEED=$seed" \
	"(rerun: THINP_SEED=$seed bash tests/vm/kernel_autoextend.sh)"
step=$(python3 -c "import random; print(random.Random($seed).randint(1, 7))")
echo "kernel_autoextend: interrupting at set-up step $step (of 7)"

rm -rf "$res"
mkdir -p "$res"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/thinbench-ae.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=ci/vm/lib.sh
. "$repo/ci/vm/lib.sh"
vm_copy_scenarios "$repo" "$tmp/scenarios"
bash "$repo/ci/vm/build.sh"
rc=0
bash "$repo/ci/vm/run.sh" "$repo/tests/vm/kernel_autoextend-guest.sh" --disk 256M:scratch \
	--disk 512M:ddisk --file "$tmp/scenarios" --env "AE_STEP=$step" --env "THINP_SEED=$seed" \
	--timeout "${VM_AE_TIMEOUT:-600}" --out "$res" || rc=$?
grep -E '^(FAIL|ok|==|interrupt|  autoextend)' "$res/job.log" 2>/dev/null || true
cat "$res/vm-times.txt" 2>/dev/null || true
if [ "$rc" != 0 ]; then
	echo "kernel_autoextend: FAILED (exit $rc; THINP_SEED=$seed; artifacts in $res)"
	exit 1
fi
# the report's kernel section says what the pool did (from the run's own rows)
python3 "$repo/scenarios/run" --report "$res/run" >"$res/report.log" 2>&1 ||
	{ tail -n 5 "$res/report.log"; echo "kernel_autoextend: FAILED (scenarios/run --report)"; exit 1; }
if ! grep -q "^### direct-lvm: LVM's autoextend profile" "$res/run/report.md" ||
	! grep -Eq '^- repetition 1: .* went from [0-9]+ to [0-9]+ extents .* by dmeventd' "$res/run/report.md"; then
	echo "kernel_autoextend: FAILED (report.md has no autoextend section naming dmeventd)"
	exit 1
fi
grep -A4 "^### direct-lvm: LVM's autoextend profile" "$res/run/report.md" | tail -n 1
echo "kernel_autoextend: PASS"
