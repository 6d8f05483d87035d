#!/usr/bin/env bash
# The kernel's per-write cost beside libthinp's, measured in the same VM in one boot
# (tests/vm/kernel_perf-guest.sh through ci/vm/run.sh):
#   setups:  loop-lvm (Docker's loop preset: sparse files + losetup + dmsetup thin-pool, 64k
#            blocks, skip_block_zeroing) and direct-lvm (the seed's LVM thin pool on a virtio
#            disk: 95%VG/1%VG, lvconvert --zero n -c 512K, autoextend profile 80/20), each with
#            engine kernel (dm-thin) and libthinp (fio's thinp engine on the same backing)
#   cases:   provision (fresh thin), overwrite (the same log again), cow (snapshot of a fully
#            written origin), cow-overwrite (the same log again on the snapshot)
#   sizes:   4k 64k 1m (--quick: 4k 64k)
#   reps:    every case N times (--reps N, KP_REPS; default 3), each repetition on a fresh thin
#            and a fresh snapshot. loop-lvm: both engines' pools side by side, the engines
#            alternating per repetition and size; direct-lvm: the LVM pool and libthinp's LVs do
#            not fit the 1G disk together, so all kernel repetitions run, then all libthinp ones.
# Each case is fio, QD1, direct=1, replaying a seeded iolog of writes into distinct pool
# blocks (a permutation; fio's blockalign does not give distinct blocks). The autoextend check
# (lvextend --use-policies, what dmeventd runs, below and above 80%) is reported too.
# A ratio is a case's mean latency / the overwrite mean of the same repetition, setup, engine
# and bs; the CSV gives its median over the repetitions and the range.
# Output: build/vm/kernel_perf/ (KP_OUT):
#   kernel_perf.csv (setup,engine,case,bs,iops,lat_mean_us,lat_p50_us,lat_p99_us,
#     ratio_to_overwrite,accel,reps,ratio_min,ratio_max: medians over the repetitions, the
#     ratio's min and max; the first ten columns are those of the single-run CSV),
#   kernel_perf_reps.csv (one row per repetition: setup,engine,case,bs,rep,iops,lat_mean_us,
#     lat_p50_us,lat_p99_us,ratio_to_overwrite,accel), summary.md, checks.tsv, times.tsv,
#   autoextend.txt, fio/*-r<rep>.json, console.log, accel.txt, vm-times.txt.
# (tests/vm/kernel_perf_report.py makes the CSVs and summary.md from the guest's output.)
# The guest is emulated (TCG on this machine kind): compare ratios within a setup, not
# absolute figures. Wall time on a 2-core machine of this kind, TCG, 3 repetitions: --quick
# 3 min idle (5 min with other VMs running), the full set 6-7.5 min (ci/vm/README.md).
# Usage: bash tests/vm/kernel_perf.sh [--quick] [--reps N]
# Environment: KP_OUT, KP_REPS (3), KP_TIMEOUT (300 + 300 x reps s), KP_THIN_MB (256),
#   KP_NIO_4K (1024), KP_NIO_64K (512), KP_NIO_1M (128), KP_SEED (thinbench-kperf), VM_ACCEL,
#   THINP, THINP_IOENGINE.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$repo/tests/vm
res=${KP_OUT:-$repo/build/vm/kernel_perf}
quick=0
reps=${KP_REPS:-3}
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1 ;;
	--reps)
		[ $# -ge 2 ] || { echo "kernel_perf: --reps needs a number" >&2; exit 2; }
		reps=$2
		shift
		;;
	--reps=*) reps=${1#--reps=} ;;
	-h | --help) awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; exit 0 ;;
	*) echo "kernel_perf: unknown argument '$1'" >&2; exit 2 ;;
	esac
	shift
done
case $reps in
'' | *[!0-9]* | 0) echo "kernel_perf: --reps / KP_REPS '$reps' is not a positive integer" >&2; exit 2 ;;
esac
bs_list="4k 64k 1m"
[ "$quick" = 1 ] && bs_list="4k 64k"
thin_mb=${KP_THIN_MB:-256}
t_start=$(date +%s)

command -v python3 >/dev/null || { echo "kernel_perf: python3 is needed" >&2; exit 1; }
eng=${THINP_IOENGINE:-$repo/ioengine/thinp.so}
[ -f "$eng" ] || { echo "kernel_perf: $eng not built (make engine)" >&2; exit 1; }
[ -x "${THINP:-$repo/impl/cli/thinp}" ] || { echo "kernel_perf: thinp CLI not built (make cli)" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/thinbench-kperf.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/logs"

# ---- iologs: per geometry (pool block size) and bs, a seeded permutation of distinct
# pool-block slots; a write of bs at the start of each; the same log for kernel and libthinp
python3 - "$tmp/logs" "$thin_mb" "${KP_SEED:-thinbench-kperf}" "${KP_NIO_4K:-1024}" \
	"${KP_NIO_64K:-512}" "${KP_NIO_1M:-128}" $bs_list <<'EOF'
import random, sys
out, thin_mb, seed, n4, n64, n1m = sys.argv[1], int(sys.argv[2]), sys.argv[3], *map(int, sys.argv[4:7])
nio = {"4k": n4, "64k": n64, "1m": n1m}
size = {"4k": 4096, "64k": 65536, "1m": 1 << 20}
for geom, blk in (("loop", 64 << 10), ("direct", 512 << 10)):
    for bs in sys.argv[7:]:
        stride = max(size[bs], blk)
        slots = list(range(thin_mb * (1 << 20) // stride))
        random.Random(f"{seed}-{geom}-{bs}").shuffle(slots)
        n = min(nio[bs], len(slots))
        with open(f"{out}/{geom}-{bs}.log", "w") as f:
            f.write("fio version 2 iolog\nthin add\nthin open\n")
            for s in slots[:n]:
                f.write(f"thin write {s * stride} {size[bs]}\n")
            f.write("thin close\n")
EOF

rm -rf "$res"
mkdir -p "$res"
bash "$repo/ci/vm/build.sh"
rc=0
# (scratch: loop-lvm's sparse files; dm-thin does not reuse a deleted thin's blocks at once, so
# each repetition takes up to ~0.8 GiB more there with both engines: 2G + 1G per repetition)
bash "$repo/ci/vm/run.sh" "$here/kernel_perf-guest.sh" \
	--disk "$((2 + reps))G:scratch" --disk 1G:direct --disk 256M:spare --file "$tmp/logs" \
	--env "KP_BS=$bs_list" --env "KP_THIN_MB=$thin_mb" --env "KP_REPS=$reps" \
	--timeout "${KP_TIMEOUT:-$((300 + 300 * reps))}" --out "$res" || rc=$?
cp -r "$tmp/logs" "$res/iologs"
if [ "$rc" != 0 ]; then
	echo "kernel_perf: the VM job failed (run.sh exit $rc); see $res/job.log, $res/console.log" >&2
	tail -n 20 "$res/job.log" 2>/dev/null | sed 's/^/  | /' >&2 || true
fi

# ---- CSVs + summary (tests/vm/kernel_perf_report.py) -------------------------------------------
python3 "$here/kernel_perf_report.py" "$res" --bs "$bs_list" --rc "$rc" --wall "$(( $(date +%s) - t_start ))" || {
	echo "kernel_perf: kernel_perf_report.py failed on $res" >&2
	[ "$rc" != 0 ] || rc=1
}
echo "kernel_perf: $res/kernel_perf.csv, $res/summary.md"
exit "$rc"
