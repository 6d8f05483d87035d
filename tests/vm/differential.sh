#!/usr/bin/env bash
# Differential test on seeded, generated traces (tests/vm/gen_trace.py): creates, snapshots
# (of origins and of snapshots), writes of every size class at aligned and unaligned offsets,
# discards, deletes and flushes, applied to the kernel's dm-thin in the VM and to libthinp on
# the host, compared by tests/vm/smoke.sh (status after every step, final status lines,
# device contents, thin_dump normalised and raw, checks, cross-activation). The one-session
# replay must match the kernel byte for byte (VM_SMOKE_STRICT=1: the same data blocks
# allocated); the CLI replay, which reopens the pool per command, only in mappings and
# sharing.
# Two pools per run: Docker's loop preset (64 KiB blocks, skip_block_zeroing) and a 192 KiB
# block pool with zeroing on (a block size that is not a power of two).
# Usage: tests/vm/differential.sh      (make vm-test; make vm-test VM_SCALE=full)
# Environment: VM_SCALE=ci (default: 250 operations per trace, for CI under TCG) or full
#   (2000), DIFF_STEPS (overrides), DIFF_SEED (default: thinbench-1), DIFF_OUT
#   (build/vm/differential), plus what tests/vm/smoke.sh takes (VM_ACCEL, THINP, ...).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$repo/tests/vm
out=${DIFF_OUT:-$repo/build/vm/differential}
case ${VM_SCALE:-ci} in
ci) steps=250 timeout=420 ;;
full) steps=2000 timeout=2400 ;;
*) echo "differential: VM_SCALE must be ci or full, not '${VM_SCALE}'" >&2; exit 2 ;;
esac
steps=${DIFF_STEPS:-$steps}
seed=${DIFF_SEED:-thinbench-1}
command -v python3 >/dev/null || { echo "differential: python3 is needed" >&2; exit 1; }

rm -rf "$out"
mkdir -p "$out"
rc=0
for cfg in "docker-loop 64k off" "zeroing-192k 192k on"; do
	read -r label bs zero <<<"$cfg"
	python3 "$here/gen_trace.py" --seed "$seed-$label" --steps "$steps" --block-size "$bs" \
		--zeroing "$zero" >"$out/$label.trace"
	echo "== differential $label: seed $seed-$label, $steps operations, $bs blocks, zeroing $zero"
	one=0
	VM_SMOKE_TRACE=$out/$label.trace VM_SMOKE_OUT=$out/$label VM_SMOKE_NAME="differential $label" \
		VM_SMOKE_STRICT=1 VM_SMOKE_TIMEOUT=$timeout bash "$here/smoke.sh" >"$out/$label.log" 2>&1 || one=1
	grep -E '^(FAIL|NOTE|differential)|^  model' "$out/$label.log" | cut -c1-300 || true
	if [ "$one" != 0 ]; then
		rc=1
		echo "  (full log: $out/$label.log; the last lines:)"
		tail -n 30 "$out/$label.log" | sed 's/^/  | /'
	fi
done
if [ "$rc" != 0 ]; then
	echo "differential: FAILED (seed $seed; traces and artifacts in $out)"
	exit 1
fi
echo "differential: PASSED ($(cat "$out"/*/summary.txt | grep -c "^PASS") checks)"
