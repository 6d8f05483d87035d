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
# one image for both runs (built or checked here, not by two builders at once)
bash "$repo/ci/vm/build.sh"

# one pool configuration: its trace, then smoke.sh (the VM, then libthinp on the host);
# its exit status in $out/$label.rc
one_config() {
	local label=$1 bs=$2 zero=$3 one=0
	python3 "$here/gen_trace.py" --seed "$seed-$label" --steps "$steps" --block-size "$bs" \
		--zeroing "$zero" >"$out/$label.trace"
	VM_SMOKE_TRACE=$out/$label.trace VM_SMOKE_OUT=$out/$label VM_SMOKE_NAME="differential $label" \
		VM_SMOKE_STRICT=1 VM_SMOKE_TIMEOUT=$timeout bash "$here/smoke.sh" >"$out/$label.log" 2>&1 || one=1
	echo "$one" >"$out/$label.rc"
}

# The two configurations run side by side: each VM spends most of its time in one guest
# process after another (dmsetup, dd per operation), so two of them use two host CPUs about
# twice as well as one after the other. Each has its own VM, scratch disks and output dir.
configs=("docker-loop 64k off" "zeroing-192k 192k on")
pids=()
cleanup_configs() {
	local p
	for p in "${pids[@]}"; do kill -- "-$p" 2>/dev/null || true; done
}
trap cleanup_configs EXIT
trap 'exit 130' INT TERM
for cfg in "${configs[@]}"; do
	read -r label bs zero <<<"$cfg"
	echo "== differential $label: seed $seed-$label, $steps operations, $bs blocks, zeroing $zero"
	set -m # (each in its own process group, so an interrupt stops all of its processes)
	one_config "$label" "$bs" "$zero" &
	pids+=($!)
	set +m
done
for p in "${pids[@]}"; do wait "$p" || true; done
pids=()
rc=0
for cfg in "${configs[@]}"; do
	read -r label _ <<<"$cfg"
	grep -E '^(FAIL|NOTE|differential)|^  model' "$out/$label.log" | cut -c1-300 || true
	if [ "$(cat "$out/$label.rc" 2>/dev/null)" != 0 ]; then
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
