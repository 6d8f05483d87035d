#!/usr/bin/env bash
# make vm-bench: scenarios/run's libthinp and kernel cases in one boot of the VM (the kernel's
# dm-thin is reached only there on a host without device-mapper), merged into one run dir on
# the host, whose report is built here (docs/kernel-backend.md).
#
# Usage: ci/vm/bench.sh [--out DIR] [--repeat N] [--only PATTERN]... [--timeout S]
#   --out DIR        the run dir (default results/<date>-vm-<commit>)
#   --repeat N       repetitions per case (default 1: TCG is slow)
#   --only PATTERN   narrow the cases (scenarios/run --only; default: every scenario that has
#                    a kernel twin, libthinp and kernel, loop-lvm and direct-lvm, with the raw
#                    baselines; and the kernel's autoextend case on the direct-lvm disk)
#   --timeout S      the VM's bound (default 3600 s)
# direct-lvm: the guest gets two more virtual disks, ddisk (1 GiB) and mdisk (128 MiB), as
# --data-dev and --metadata-dev: the kernel's twins make the seed's LVM thin pool on ddisk,
# libthinp's direct cases use both disks raw (the same kind of disk, one after the other).
# Environment: THINP, THINP_IOENGINE (the binaries put in the guest), VM_ACCEL, VM_BENCH_RUN_ARGS
#   (more scenarios/run options, e.g. --kernel-ioengine io_uring).
# The VM's own files (console.log, vm-times.txt: boot and job times, accel.txt) land in
# DIR/vm/.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out="" repeat=1 timeout=3600 only=()
while [ $# -gt 0 ]; do
	case $1 in
	--out) out=${2:?--out needs DIR}; shift 2 ;;
	--repeat) repeat=${2:?--repeat needs N}; shift 2 ;;
	--only) only+=("${2:?--only needs PATTERN}"); shift 2 ;;
	--timeout) timeout=${2:?--timeout needs seconds}; shift 2 ;;
	-h | --help) awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; exit 0 ;;
	*) echo "bench.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
done
[[ $repeat =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: bad --repeat '$repeat' (a count >= 1)" >&2; exit 2; }
commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo nogit)
out=$(realpath -m "${out:-$repo/results/$(date +%F)-vm-$commit}")
[ "${#only[@]}" -gt 0 ] || only=('^(alloc|cow|overwrite|blocksize|edge|commit)\..*\.(thinp|kernel)\.(loop|direct)(\.z[01])?$'
	'^autoextend\.kernel\.direct$')

# the guest has fio but no qemu-img (the qemu peers) and no floor driver
args="--backend libthinp,kernel --scale tiny --repeat $repeat"
args+=" --exclude \\.(qcow2|raw)-(bench|nbd)\\. --exclude \\.floor\\."
args+=" --data-dev /dev/disk/by-id/virtio-ddisk --metadata-dev /dev/disk/by-id/virtio-mdisk"
for p in "${only[@]}"; do
	[[ $p != *[[:space:]]* ]] || { echo "bench.sh: --only '$p': no spaces in a pattern" >&2; exit 2; }
	args+=" --only $p"
done
args+=" ${VM_BENCH_RUN_ARGS:-}"

bash "$here/build.sh"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/thinbench-vm-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=ci/vm/lib.sh
. "$here/lib.sh"
vm_copy_scenarios "$repo" "$tmp/scenarios"
rc=0
bash "$here/run.sh" "$here/bench-guest.sh" --disk 2G:scratch --disk 1G:ddisk \
	--disk 128M:mdisk --file "$tmp/scenarios" \
	--env "BENCH_ARGS=$args" --timeout "$timeout" --out "$tmp/vm" || rc=$?
if [ ! -f "$tmp/vm/run/cases.json" ]; then
	echo "bench.sh: the guest wrote no cases.json (exit $rc); see $out/vm/console.log" >&2
	mkdir -p "$out"
	rm -rf "$out/vm"
	cp -r "$tmp/vm" "$out/vm"
	exit 1
fi
mkdir -p "$out"
rm -rf "$out/vm"
cp -r "$tmp/vm/run/." "$out/"
rm -rf "$tmp/vm/run"
cp -r "$tmp/vm" "$out/vm"
# the summary, charts and report (the guest's paths are relative already: relativize)
"$repo/scenarios/run" --report "$out" || rc=1
cat "$out/vm/vm-times.txt"
for f in left-dm.txt left-loop.txt; do
	if [ -s "$out/vm/$f" ] && ! grep -qx "No devices found" "$out/vm/$f"; then
		echo "bench.sh: the guest run left devices behind ($f):" >&2
		cat "$out/vm/$f" >&2
		rc=1
	fi
done
echo "bench.sh: run dir $out (exit $rc)"
exit "$rc"
