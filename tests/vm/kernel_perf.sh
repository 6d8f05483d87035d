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
# Each case is fio, QD1, direct=1, replaying a seeded iolog of writes into distinct pool
# blocks (a permutation; fio's blockalign does not give distinct blocks). The autoextend check
# (lvextend --use-policies, what dmeventd runs, below and above 80%) is reported too.
# Output: build/vm/kernel_perf/ (KP_OUT): kernel_perf.csv
#   (setup,engine,case,bs,iops,lat_mean_us,lat_p50_us,lat_p99_us,ratio_to_overwrite,accel),
#   summary.md, checks.tsv, autoextend.txt, fio/*.json, console.log, accel.txt, vm-times.txt.
# The guest is emulated (TCG on this machine kind): compare ratios within a setup, not
# absolute figures.
# Usage: bash tests/vm/kernel_perf.sh [--quick]
# Environment: KP_OUT, KP_TIMEOUT (900 s), KP_THIN_MB (256), KP_NIO_4K (1024),
#   KP_NIO_64K (512), KP_NIO_1M (128), KP_SEED (thinbench-kperf), VM_ACCEL, THINP,
#   THINP_IOENGINE.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$repo/tests/vm
res=${KP_OUT:-$repo/build/vm/kernel_perf}
quick=0
for a in "$@"; do
	case $a in
	--quick) quick=1 ;;
	-h | --help) awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; exit 0 ;;
	*) echo "kernel_perf: unknown argument '$a'" >&2; exit 2 ;;
	esac
done
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
bash "$repo/ci/vm/run.sh" "$here/kernel_perf-guest.sh" \
	--disk 2G:scratch --disk 1G:direct --disk 256M:spare --file "$tmp/logs" \
	--env "KP_BS=$bs_list" --env "KP_THIN_MB=$thin_mb" \
	--timeout "${KP_TIMEOUT:-900}" --out "$res" || rc=$?
cp -r "$tmp/logs" "$res/iologs"
if [ "$rc" != 0 ]; then
	echo "kernel_perf: the VM job failed (run.sh exit $rc); see $res/job.log, $res/console.log" >&2
	tail -n 20 "$res/job.log" 2>/dev/null | sed 's/^/  | /' >&2 || true
fi

# ---- CSV + summary ----------------------------------------------------------------------------
python3 - "$res" "$bs_list" "$rc" "$(( $(date +%s) - t_start ))" <<'EOF'
import csv, json, os, sys
res, bs_list, rc, wall = sys.argv[1], sys.argv[2].split(), int(sys.argv[3]), sys.argv[4]
accel_lines = open(f"{res}/accel.txt").read().split("\n") if os.path.exists(f"{res}/accel.txt") else ["?"]
accel = accel_lines[0].strip() or "?"
accel_why = accel_lines[1].strip() if len(accel_lines) > 1 else ""
setups = ["loop-lvm", "direct-lvm"]
engines = ["kernel", "libthinp"]
cases = ["provision", "overwrite", "cow", "cow-overwrite"]
blk = {"loop-lvm": 64 << 10, "direct-lvm": 512 << 10}
size = {"4k": 4096, "64k": 65536, "1m": 1 << 20}
geom = {"loop-lvm": "loop", "direct-lvm": "direct"}

def nlog(setup, bs):
    p = f"{res}/iologs/{geom[setup]}-{bs}.log"
    return sum(1 for l in open(p) if " write " in l) if os.path.exists(p) else None

rows, by = [], {}
for s in setups:
    for e in engines:
        for bs in bs_list:
            for c in cases:
                p = f"{res}/fio/{s}-{e}-{c}-{bs}.json"
                r = None
                try:
                    txt = open(p).read()
                    w = json.loads(txt[txt.index("{"):])["jobs"][0]["write"]
                    cl = w["clat_ns"]
                    r = dict(setup=s, engine=e, case=c, bs=bs, ios=w["total_ios"], iops=w["iops"],
                             mean=cl["mean"] / 1e3, p50=cl["percentile"]["50.000000"] / 1e3,
                             p99=cl["percentile"]["99.000000"] / 1e3)
                except Exception as ex:
                    print(f"kernel_perf: no result for {s} {e} {c} {bs}: {ex}", file=sys.stderr)
                if r:
                    by[(s, e, bs, c)] = r
                    rows.append(r)
for r in rows:
    ow = by.get((r["setup"], r["engine"], r["bs"], "overwrite"))
    r["ratio"] = r["mean"] / ow["mean"] if ow and ow["mean"] else None

with open(f"{res}/kernel_perf.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["setup", "engine", "case", "bs", "iops", "lat_mean_us", "lat_p50_us", "lat_p99_us",
                "ratio_to_overwrite", "accel"])
    for r in rows:
        w.writerow([r["setup"], r["engine"], r["case"], r["bs"], f"{r['iops']:.1f}", f"{r['mean']:.1f}",
                    f"{r['p50']:.1f}", f"{r['p99']:.1f}",
                    "" if r["ratio"] is None else f"{r['ratio']:.2f}", accel])

# checks: pool data blocks used before/after each case vs what distinct-block writes imply
checks = []
if os.path.exists(f"{res}/checks.tsv"):
    for line in open(f"{res}/checks.tsv"):
        f_ = line.split()
        if len(f_) != 6:
            continue
        s, e, c, bs, u0, u1 = f_
        n = nlog(s, bs)
        per = max(1, size[bs] // blk[s])
        exp = n * per if c in ("provision", "cow") else 0
        try:
            got = int(u1) - int(u0)
        except ValueError:
            got = None
        checks.append((s, e, c, bs, got, exp))
# the engine's own classification of the libthinp writes
classes = {}
for s in setups:
    for bs in bs_list:
        for c in cases:
            p = f"{res}/fio/{s}-libthinp-{c}-{bs}-stats.json"
            if os.path.exists(p):
                try:
                    cl = json.load(open(p))["classes"]
                    classes[(s, bs, c)] = {k: v["ios"] for k, v in cl.items() if v.get("ios")}
                except Exception:
                    pass

L = []
L.append("# Kernel dm-thin vs libthinp, per-write cost in one VM\n")
emu = accel.lower() != "kvm"
L.append(f"**Accelerator: {accel}** ({accel_why}). " + (
    "The guest was **emulated** (TCG software emulation, roughly 10x slower than the host): "
    "absolute IOPS and latencies are TCG-bound and only indicative; compare the **ratios within "
    "a setup and engine** (each case's mean latency divided by the overwrite mean at the same "
    "bs, on the same device)." if emu else
    "The guest ran under KVM; still compare ratios rather than absolute figures with the host.") + "\n")
L.append(f"QD1, direct=1, fio replaying seeded iologs of writes into distinct pool blocks; thin "
         f"devices 256 MiB; writes per case: " + ", ".join(
             f"{bs}: loop-lvm {nlog('loop-lvm', bs)}, direct-lvm {nlog('direct-lvm', bs)}" for bs in bs_list) +
         ". loop-lvm: 64k blocks, skip_block_zeroing, loop devices over sparse files on ext4 "
         "(buffered, as Docker's); libthinp there uses thinp_mode=loop on sparse files. direct-lvm: "
         "512K chunks, zeroing off, on a virtio disk (host file, cache=none when possible); libthinp "
         "there uses thinp_mode=direct on linear LVs on the same disk (after the pool is removed). Kernel thin "
         "devices are created by pool messages on the pool device, as Docker's driver does. "
         "clat from fio (for libthinp this includes the whole engine call).\n")
if rc:
    L.append(f"**The VM job did not finish cleanly (run.sh exit {rc}); the tables hold what came back.**\n")
for s in setups:
    L.append(f"## {s}\n")
    L.append("| engine | bs | case | IOPS | mean µs | p50 µs | p99 µs | ÷ overwrite |")
    L.append("|---|---|---|---:|---:|---:|---:|---:|")
    for e in engines:
        for bs in bs_list:
            for c in cases:
                r = by.get((s, e, bs, c))
                if not r:
                    L.append(f"| {e} | {bs} | {c} | – | – | – | – | – |")
                    continue
                ratio = "" if r["ratio"] is None else f"**{r['ratio']:.2f}**"
                L.append(f"| {e} | {bs} | {c} | {r['iops']:.0f} | {r['mean']:.0f} | {r['p50']:.0f} | "
                         f"{r['p99']:.0f} | {ratio} |")
    L.append("")
    L.append("Ratios side by side (mean latency ÷ overwrite mean, same engine, same bs):\n")
    L.append("| bs | case | kernel | libthinp |")
    L.append("|---|---|---:|---:|")
    for bs in bs_list:
        for c in ("provision", "cow", "cow-overwrite"):
            k, l = by.get((s, "kernel", bs, c)), by.get((s, "libthinp", bs, c))
            fmt = lambda r: "–" if not r or r["ratio"] is None else f"{r['ratio']:.2f}"
            L.append(f"| {bs} | {c} | {fmt(k)} | {fmt(l)} |")
    L.append("")
L.append("## Checks\n")
bad = [c for c in checks if c[4] != c[5]]
L.append(f"Pool data blocks allocated per case vs expected (n writes × blocks per write for provision "
         f"and cow, 0 for the overwrites): {len(checks) - len(bad)} of {len(checks)} as expected.")
for s, e, c, bs, got, exp in bad:
    L.append(f"- MISMATCH {s} {e} {c} {bs}: {got} blocks, expected {exp}")
if classes:
    L.append("\nlibthinp engine classes per case (ios):")
    for (s, bs, c), d in sorted(classes.items()):
        L.append(f"- {s} {bs} {c}: " + ", ".join(f"{k} {v}" for k, v in sorted(d.items())))
L.append("\n## Autoextend (direct-lvm, profile threshold 80 / percent 20)\n")
L.append("dmeventd is not running in the guest, so the check runs `lvextend --use-policies "
         "docker/thinpool` itself (what dmeventd's thin plugin calls), once below 80% and once after "
         "filling the pool past 80%.\n")
ae = f"{res}/autoextend.txt"
L.append("```\n" + (open(ae).read().strip() if os.path.exists(ae) else "no autoextend.txt") + "\n```\n")
vt = f"{res}/vm-times.txt"
if os.path.exists(f"{res}/fill.tsv"):
    L.append("Origin fill (256 MiB, 1 MiB sequential, direct): " + "; ".join(
        f"{a} {b} {float(d):.1f} s" for a, b, _, d in (l.split() for l in open(f"{res}/fill.tsv") if l.strip())) + "\n")
L.append(f"VM: {open(vt).read().strip() if os.path.exists(vt) else '?'}; host wall time {wall} s.\n")
open(f"{res}/summary.md", "w").write("\n".join(L))
print("\n".join(L))
EOF
echo "kernel_perf: $res/kernel_perf.csv, $res/summary.md"
exit "$rc"
