#!/usr/bin/env bash
# The kernel part of scenarios/run without booting a VM:
#  1. bad --kernel-results dirs (missing, no CSV, wrong header, a non-number, no rows, no
#     overwrite to divide by) and conflicting options stop the runner at once, non-zero, with a
#     message naming the problem, before any case runs;
#  2. a tiny host run (SCENARIOS_SCALE=tiny, --repeat 2) with --kernel-results
#     tests/fixtures/kernel_perf (a real `make vm-perf` output, see its ORIGIN.md): kernel.csv's
#     ratios equal those computed here from the fixture's CSV (and agree with its own
#     ratio_to_overwrite), the host ratios equal those computed from cases.json, the report has
#     the kernel section (emulated, TCG, autoextend) and the headline's kernel column, the kernel
#     charts are non-empty PNG/SVG holding the same ratios, every link resolves;
#  3. --report rebuilds keep the kernel section; --report --kernel-results merges into an
#     existing run, falls back to the CSV's accel column without accel.txt, and a bad dir
#     leaves the run untouched;
#  4. --kernel with a stand-in for tests/vm/kernel_perf.sh (SCENARIOS_KERNEL_PERF): its output
#     and the guest console's progress are relayed; a failing VM part is recorded as a failed
#     case, the host cases and the report survive, the exit status is 1; the VM's temp dir goes.
# Needs fio, gnuplot, qemu-img/qemu-nbd and the built engine and CLI (make), like
# scenarios_tiny.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
FIX=$ROOT/tests/fixtures/kernel_perf
FIXR=$ROOT/tests/fixtures/kernel_perf_reps
if grep -qs -- -fsanitize "$BUILD/.build-flags"; then
	echo "SKIP: sanitizer build ($BUILD); the benchmark runner needs the plain build"
	exit 0
fi
mkdir -p "$BUILD"
WORK=$(mktemp -d "$BUILD/scenarios-kernel-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export SCENARIOS_SCALE=tiny
RUN=$ROOT/scenarios/run
ONLY=(--only '^alloc\.bs=4k\.order=rand\.thinp\.loop\.z0$' --only '^cow\.bs=4k\.order=rand\.thinp\.loop$'
	--only '^overwrite\.bs=4k\.thinp\.loop$')

fail() {
	echo "FAIL: $*"
	exit 1
}

# expect_error NAME PATTERN CMD...: CMD exits 2 quickly, says PATTERN, creates no run dir
expect_error() {
	local name=$1 pat=$2 rc=0
	shift 2
	"$@" >"$WORK/$name.log" 2>&1 || rc=$?
	[ "$rc" -eq 2 ] || { cat "$WORK/$name.log"; fail "$name: exit $rc, expected 2"; }
	grep -q -- "$pat" "$WORK/$name.log" || { cat "$WORK/$name.log"; fail "$name: no '$pat' in the message"; }
	[ ! -e "$WORK/never" ] || fail "$name: the runner created its output dir"
	echo "  ok: $name: $(grep -m1 -- "$pat" "$WORK/$name.log" | cut -c1-150)"
}

echo "== bad kernel results are refused up front"
mkdir -p "$WORK/bad/empty" "$WORK/bad/header" "$WORK/bad/number" "$WORK/bad/norows" "$WORK/bad/noow"
head -n1 "$FIX/kernel_perf.csv" | sed 's/lat_mean_us/latency/' >"$WORK/bad/header/kernel_perf.csv"
sed '3s/,486\.9,/,fast,/' "$FIX/kernel_perf.csv" >"$WORK/bad/number/kernel_perf.csv"
grep -q ',fast,' "$WORK/bad/number/kernel_perf.csv" || fail "the fixture changed: fix the sed above"
head -n1 "$FIX/kernel_perf.csv" >"$WORK/bad/norows/kernel_perf.csv"
grep -v ',overwrite,' "$FIX/kernel_perf.csv" >"$WORK/bad/noow/kernel_perf.csv"
expect_error missing "no such directory" "$RUN" --kernel-results "$WORK/bad/nonexistent" --out "$WORK/never" "${ONLY[@]}"
expect_error nocsv "has no kernel_perf.csv" "$RUN" --kernel-results "$WORK/bad/empty" --out "$WORK/never" "${ONLY[@]}"
expect_error header "lacks column(s) lat_mean_us" "$RUN" --kernel-results "$WORK/bad/header" --out "$WORK/never" "${ONLY[@]}"
expect_error number "line 3: lat_mean_us 'fast' is not a number" "$RUN" --kernel-results "$WORK/bad/number" --out "$WORK/never" "${ONLY[@]}"
expect_error norows "no result rows" "$RUN" --kernel-results "$WORK/bad/norows" --out "$WORK/never" "${ONLY[@]}"
expect_error noow "no case has an overwrite row" "$RUN" --kernel-results "$WORK/bad/noow" --out "$WORK/never" "${ONLY[@]}"
expect_error both "exclude each other" "$RUN" --kernel --kernel-results "$FIX" --out "$WORK/never" "${ONLY[@]}"

echo "== tiny host run + the fixture (--kernel-results)"
"$RUN" --repeat 2 --out "$WORK/run" --tmp "$WORK" --kernel-results "$FIX" "${ONLY[@]}" 2>&1 | tail -n 2

check() { # check RUNDIR FIXTUREDIR [ACCEL_SOURCE]
	python3 -B - "$1" "$2" "$ROOT" "${3:-accel.txt}" <<'EOF'
import csv, json, os, re, statistics, sys
out, fix, root, accel_src = sys.argv[1:5]
sys.path.insert(0, os.path.join(root, "scenarios"))
from thinbench_runner import kernel_results, rundata
bad = []

# the fixture, read here independently of the runner (thinbench_runner)
rows = list(csv.DictReader(open(os.path.join(fix, "kernel_perf.csv"))))
lat = {(r["setup"], r["engine"], r["bs"], r["case"]): float(r["lat_mean_us"]) for r in rows}
given = {(r["setup"], r["engine"], r["bs"], r["case"]): r["ratio_to_overwrite"] for r in rows}
want = {}
for (s, e, bs, c), v in lat.items():
    if c != "overwrite" and (s, e, bs, "overwrite") in lat:
        want[(s, e, bs, c)] = v / lat[(s, e, bs, "overwrite")]
if len(want) != 36:
    bad.append(f"the fixture gives {len(want)} ratios, expected 36 (2 setups x 2 engines x 3 bs x 3)")
for key, v in want.items():  # the script's own ratio (from unrounded means, 2 decimals)
    if abs(v - float(given[key])) > 0.005 + 0.005 * v:
        bad.append(f"{key}: {v:.4f} from lat_mean_us, {given[key]} in ratio_to_overwrite")

# host ratios, from cases.json: per repetition, cost(case) / cost(overwrite), median
cases = json.load(open(os.path.join(out, "cases.json")))["cases"]
def cost(cid, step):
    return {r["rep"]: r["steps"][step]["all"]["cost_us"] for r in cases[cid]["reps"]
            if r["status"] == "ok"}
ow = cost("overwrite.bs=4k.thinp.loop", "steady")
host = {}
for case, (cid, step) in {"provision": ("alloc.bs=4k.order=rand.thinp.loop.z0", "first-write"),
                          "cow": ("cow.bs=4k.order=rand.thinp.loop", "first"),
                          "cow-overwrite": ("cow.bs=4k.order=rand.thinp.loop", "second")}.items():
    a = cost(cid, step)
    rs = [a[r] / ow[r] for r in a if r in ow]
    if len(rs) != 2:
        bad.append(f"host {case}: {len(rs)} repetitions with both cases, expected 2")
    host[case] = (statistics.median(rs), min(rs), max(rs), f"{cid}:{step}")

# kernel.csv: one row per setup x bs x ratio case, values as computed above
kc = list(csv.DictReader(open(os.path.join(out, "kernel.csv"))))
if list(kc[0].keys()) != kernel_results.KERNEL_CSV_COLUMNS:
    bad.append(f"kernel.csv header {list(kc[0].keys())}")
if len(kc) != 18:
    bad.append(f"kernel.csv has {len(kc)} rows, expected 18")
close = lambda a, b: abs(a - b) <= 1e-5 * max(1, abs(b))
for r in kc:
    s, bs, c = r["setup"], r["bs"], r["case"]
    for col, e in (("kernel_ratio", "kernel"), ("libthinp_vm_ratio", "libthinp")):
        if not close(float(r[col]), want[(s, e, bs, c)]):
            bad.append(f"kernel.csv {s} {bs} {c} {col} {r[col]} != {want[(s, e, bs, c)]:.6g}")
    if not close(float(r["libthinp_vs_kernel"]),
                 want[(s, "libthinp", bs, c)] / want[(s, "kernel", bs, c)]):
        bad.append(f"kernel.csv {s} {bs} {c}: libthinp_vs_kernel {r['libthinp_vs_kernel']}")
    if r["accel"] != "tcg":
        bad.append(f"kernel.csv {s} {bs} {c}: accel {r['accel']!r}")
    if s == "loop-lvm" and bs == "4k":
        m, lo, hi, hc = host[c]
        if not (close(float(r["host_ratio"]), m) and close(float(r["host_ratio_min"]), lo)
                and close(float(r["host_ratio_max"]), hi)) or r["host_case"] != hc \
                or r["host_overwrite_case"] != "overwrite.bs=4k.thinp.loop:steady":
            bad.append(f"kernel.csv loop-lvm 4k {c}: host {r['host_ratio']} "
                       f"[{r['host_ratio_min']}-{r['host_ratio_max']}] {r['host_case']}, "
                       f"expected {m:.6g} [{lo:.6g}-{hi:.6g}] {hc}")
    elif r["host_ratio"] != "":
        bad.append(f"kernel.csv {s} {bs} {c}: host ratio {r['host_ratio']} without a host case")

# report.md: the section, its statements, its numbers, the headline's kernel column
rep = open(os.path.join(out, "report.md")).read()
sec = rep.split("## Kernel dm-thin in a VM, beside libthinp", 1)
if len(sec) != 2:
    bad.append("report.md has no kernel section")
    sec = ["", ""]
sec = sec[1].split("\n## ", 1)[0]
for text in ("**The guest was emulated** (qemu TCG", f"accelerator from {accel_src}",
             "only **ratios within the VM**", "### loop-lvm", "### direct-lvm") + (
                 ("guest kernel 6.1.0-56-amd64", "VM wall time 135.7 s")
                 if accel_src == "accel.txt" else ()):
    if text not in sec:
        bad.append(f"kernel section: no {text!r}")
if accel_src == "accel.txt":
    for text in ("**Autoextend fired** above 80 %", "not extended, as expected",
                 "968.00 → 1164.00 MiB", "Insufficient free space"):
        if text not in sec:
            bad.append(f"kernel section: no {text!r} (autoextend)")
elif "No autoextend.txt" not in sec:
    bad.append("kernel section: does not say autoextend.txt is missing")
for (s, e, bs, c), v in want.items():
    if e != "kernel":
        continue
    l = want[(s, "libthinp", bs, c)]
    part = sec.split(f"### {s}", 1)[1].split("###", 1)[0]
    line = f"| {bs} | {kernel_results.KERNEL_CASE_TEXT[c]} | {v:.2f}× | {l:.2f}× | {l / v:.2f}× | "
    if line not in part:
        bad.append(f"kernel section {s}: no row {line!r}")
for c, (m, lo, hi, _) in host.items():
    cell = f"| {m:.2f}× [{lo:.2f}–{hi:.2f}] |"
    if f"| 4k | {kernel_results.KERNEL_CASE_TEXT[c]} |" not in rep or cell not in sec:
        bad.append(f"kernel section: no host cell {cell} for {c}")
k, l = want[("loop-lvm", "kernel", "4k", "provision")], want[("loop-lvm", "libthinp", "4k", "provision")]
head = [x for x in rep.splitlines() if x.startswith("| allocate 4 KiB, random order | loop-lvm")]
if not head or not head[0].endswith(f"| {k:.2f}× ow (libthinp {l:.2f}×) ² |"):
    bad.append(f"headline kernel column: {head}")
if "² kernel dm-thin:" not in rep or kernel_results.KERNEL_NOTE in rep:
    bad.append("report.md: no footnote for the kernel column, or still the 'not measured' note")

# charts: PNG + SVG, and the .dat holds the same ratios
for mode, setup in (("loop", "loop-lvm"), ("direct", "direct-lvm")):
    for ext, magic in (("png", b"\x89PNG"), ("svg", b"<?xml")):
        p = os.path.join(out, "charts", f"kernel-ratios-{mode}.{ext}")
        if not os.path.exists(p) or os.path.getsize(p) < 1000:
            bad.append(f"chart {p} missing or empty")
        elif not open(p, "rb").read(8).startswith(magic):
            bad.append(f"chart {p} is not a {ext}")
    dat = open(os.path.join(out, "charts", f"kernel-ratios-{mode}.dat")).read()
    got = sorted(float(x.split()[1]) for x in dat.splitlines()
                 if x.strip() and not x.startswith("#"))
    exp = sorted(v for (s, e, bs, c), v in want.items() if s == setup)
    if len(got) != len(exp) or not all(close(a, b) for a, b in zip(got, exp)):
        bad.append(f"chart kernel-ratios-{mode}.dat: {got} != {exp}")

# links resolve; summary.csv's schema is unchanged; env.json says where the figures came from
links = re.findall(r"\]\(([^)\s]+)\)", rep)
for x in links:
    if not re.match(r"[a-z]+://", x) and not os.path.exists(os.path.normpath(os.path.join(out, x.split("#")[0]))):
        bad.append(f"report.md link {x} does not resolve")
for x in ("kernel.csv", "kernel/kernel_perf.csv", "charts/kernel-ratios-loop.png"):
    if x not in links:
        bad.append(f"report.md does not link {x}")
if next(csv.reader(open(os.path.join(out, "summary.csv")))) != rundata.CSV_COLUMNS:
    bad.append("summary.csv header changed")
if "merged from" not in json.load(open(os.path.join(out, "env.json")))["kernel_dm_thin"]:
    bad.append("env.json kernel_dm_thin does not say where the figures came from")
if bad:
    print("FAIL:\n  " + "\n  ".join(bad))
    sys.exit(1)
print(f"  ok: {len(kc)} kernel.csv rows, {len(want)} ratios checked, host ratios, charts, "
      f"{len(links)} links")
EOF
}
check "$WORK/run" "$FIX"
cmp -s "$FIX/kernel_perf.csv" "$WORK/run/kernel/kernel_perf.csv" || fail "kernel/kernel_perf.csv is not the fixture's"

echo "== --report keeps it; --report --kernel-results merges into a run; bad dirs leave it alone"
"$RUN" --report "$WORK/run" >/dev/null 2>&1
check "$WORK/run" "$FIX"
cp -r "$WORK/run" "$WORK/run2"
rm -rf "$WORK/run2/kernel" "$WORK/run2/kernel.csv"
"$RUN" --report "$WORK/run2" >/dev/null 2>&1
grep -q 'kernel dm-thin: not measured in this run: `scenarios/run --kernel`' "$WORK/run2/report.md" ||
	fail "without kernel/, the report lacks the note"
! grep -q 'Kernel dm-thin in a VM' "$WORK/run2/report.md" || fail "without kernel/, a kernel section"
[ ! -e "$WORK/run2/kernel.csv" ] || fail "without kernel/, a kernel.csv"
mkdir "$WORK/fix-noaccel"
cp "$FIX/kernel_perf.csv" "$WORK/fix-noaccel/"
"$RUN" --report "$WORK/run2" --kernel-results "$WORK/fix-noaccel" >/dev/null 2>&1
check "$WORK/run2" "$WORK/fix-noaccel" kernel_perf.csv
cp "$WORK/run2/report.md" "$WORK/report2.md"
expect_error report-bad "lacks column(s)" "$RUN" --report "$WORK/run2" --kernel-results "$WORK/bad/header"
cmp -s "$WORK/report2.md" "$WORK/run2/report.md" || fail "a refused merge changed the report"
cmp -s "$WORK/fix-noaccel/kernel_perf.csv" "$WORK/run2/kernel/kernel_perf.csv" || fail "a refused merge changed kernel/"
expect_error report-kernel "only rebuilds" "$RUN" --report "$WORK/run2" --kernel

echo "== repetitions: kernel_perf_report.py aggregates per-repetition rows (synthetic values)"
# provision in 4 repetitions, the overwrite missing in rep 2 (so 3 ratios: 2, 4, 1); cow in 2
# (ratios 3 and 6: an even count, the median is their mean). Expected lines computed by hand.
mkdir -p "$WORK/synth"
cat >"$WORK/synth/kernel_perf_reps.csv" <<'EOF'
setup,engine,case,bs,rep,iops,lat_mean_us,lat_p50_us,lat_p99_us,ratio_to_overwrite,accel
loop-lvm,kernel,provision,4k,1,100.0,200.0,150.0,900.0,2.0000,tcg
loop-lvm,kernel,overwrite,4k,1,200.0,100.0,80.0,500.0,1.0000,tcg
loop-lvm,kernel,cow,4k,1,60.0,300.0,250.0,1200.0,3.0000,tcg
loop-lvm,kernel,provision,4k,2,50.0,400.0,300.0,1000.0,,tcg
loop-lvm,kernel,provision,4k,3,120.0,160.0,100.0,700.0,4.0000,tcg
loop-lvm,kernel,overwrite,4k,3,500.0,40.0,30.0,100.0,1.0000,tcg
loop-lvm,kernel,cow,4k,3,70.0,240.0,200.0,1000.0,6.0000,tcg
loop-lvm,kernel,provision,4k,4,80.0,300.0,200.0,800.0,1.0000,tcg
loop-lvm,kernel,overwrite,4k,4,300.0,300.0,250.0,900.0,1.0000,tcg
EOF
python3 -B "$ROOT/tests/vm/kernel_perf_report.py" "$WORK/synth" --from-reps >/dev/null
cat >"$WORK/synth/expected.csv" <<'EOF'
setup,engine,case,bs,iops,lat_mean_us,lat_p50_us,lat_p99_us,ratio_to_overwrite,accel,reps,ratio_min,ratio_max
loop-lvm,kernel,provision,4k,90.0,250.0,175.0,850.0,2.0000,tcg,4,1.0000,4.0000
loop-lvm,kernel,overwrite,4k,300.0,100.0,80.0,500.0,1.0000,tcg,3,1.0000,1.0000
loop-lvm,kernel,cow,4k,65.0,270.0,225.0,1100.0,4.5000,tcg,2,3.0000,6.0000
EOF
diff "$WORK/synth/expected.csv" "$WORK/synth/kernel_perf.csv" || fail "synthetic repetitions: kernel_perf.csv differs (above)"
grep -q '| 4k | provision | 2.00 \[1.00–4.00\] | – | 2.00 · – · 4.00 · 1.00 | – |' "$WORK/synth/summary.md" ||
	fail "synthetic repetitions: summary.md lacks the provision row with its range and per-rep values"
grep -q '| kernel | 4k | cow | 2 | 65 | 270 | 225 | 1100 | \*\*4.50 \[3.00–6.00\]\*\* |' "$WORK/synth/summary.md" ||
	fail "synthetic repetitions: summary.md lacks the cow row"
rc=0
python3 -B "$ROOT/tests/vm/kernel_perf_report.py" "$WORK/bad/empty" --from-reps >"$WORK/noreps.log" 2>&1 || rc=$?
[ "$rc" -ne 0 ] && grep -q 'kernel_perf_reps.csv does not exist' "$WORK/noreps.log" ||
	{ cat "$WORK/noreps.log"; fail "--from-reps without kernel_perf_reps.csv: exit $rc"; }
echo "  ok: medians, ranges, even counts, a missing overwrite; summary rows"
cp -r "$WORK/run" "$WORK/run3"
"$RUN" --report "$WORK/run3" --kernel-results "$WORK/synth" >/dev/null 2>&1
python3 -B - "$WORK/run3" <<'EOF' || fail "synthetic repetitions merged: see above"
import csv, os, sys
out = sys.argv[1]
kc = {(r["setup"], r["bs"], r["case"]): r for r in csv.DictReader(open(os.path.join(out, "kernel.csv")))}
bad = []
want = {"provision": ("2", "1", "4", "4"), "cow": ("4.5", "3", "6", "2")}
for c, (m, lo, hi, n) in want.items():
    r = kc.get(("loop-lvm", "4k", c))
    got = r and (r["kernel_ratio"], r["kernel_ratio_min"], r["kernel_ratio_max"], r["kernel_reps"])
    if got != (m, lo, hi, n) or r["libthinp_vm_ratio"] != "" or r["libthinp_vm_reps"] != "":
        bad.append(f"kernel.csv loop-lvm 4k {c}: {got}, expected {(m, lo, hi, n)}")
if len(kc) != 2:  # (cow-overwrite has no row: no ratio for it)
    bad.append(f"kernel.csv: {len(kc)} rows, expected 2")
rep = open(os.path.join(out, "report.md")).read()
for line in ("| 4k | provision ÷ overwrite | 2.00× [1.00–4.00] | — | — |",
             "| 4k | CoW ÷ overwrite | 4.50× [3.00–6.00] | — | — |",
             "**4 repetitions** of every case in the VM",
             "`tests/vm/kernel_perf.sh --quick --reps 4`"):
    if line not in rep:
        bad.append(f"report.md: no {line!r}")
dat = [l.split() for l in open(os.path.join(out, "charts", "kernel-ratios-loop.dat"))
       if l.strip() and not l.startswith("#")]
if sorted(dat) != sorted([["0", "2", "1", "4"], ["0", "4.5", "3", "6"]]):
    bad.append(f"kernel-ratios-loop.dat: {dat}")
if "yerrorbars" not in open(os.path.join(out, "charts", "kernel-ratios-loop.gp")).read():
    bad.append("kernel-ratios-loop.gp draws no error bars")
print("FAIL:\n  " + "\n  ".join(bad) if bad else "  ok: merged: kernel.csv medians, ranges, reps; report cells; chart bars")
sys.exit(1 if bad else 0)
EOF

echo "== repetitions: a real 3-repetition run (tests/fixtures/kernel_perf_reps)"
mkdir "$WORK/fixr-regen"
cp "$FIXR"/* "$WORK/fixr-regen/"
rm "$WORK/fixr-regen/kernel_perf.csv"
python3 -B "$ROOT/tests/vm/kernel_perf_report.py" "$WORK/fixr-regen" --from-reps >/dev/null
cmp -s "$FIXR/kernel_perf.csv" "$WORK/fixr-regen/kernel_perf.csv" ||
	fail "kernel_perf_report.py --from-reps does not give the fixture's kernel_perf.csv back"
for what in reps ratio_min ratio_outside ratio_partial; do
	mkdir -p "$WORK/bad/r-$what"
	case $what in
	reps) sed '2s/,3,\([0-9.]*\),\([0-9.]*\)$/,three,\1,\2/' "$FIXR/kernel_perf.csv" ;;
	ratio_min) sed '1s/,ratio_min//; 2,$s/,[0-9.]*\(,[0-9.]*\)$/\1/' "$FIXR/kernel_perf.csv" ;;
	ratio_outside) sed '2s/,[0-9.]*$/,0.0100/' "$FIXR/kernel_perf.csv" ;;
	ratio_partial) sed '2s/,\([0-9.]*\),\([0-9.]*\)$/,,\2/' "$FIXR/kernel_perf.csv" ;;
	esac >"$WORK/bad/r-$what/kernel_perf.csv"
	cmp -s "$FIXR/kernel_perf.csv" "$WORK/bad/r-$what/kernel_perf.csv" && fail "the fixture changed: fix the sed for $what"
done
expect_error bad-reps "reps 'three' is not a positive integer" "$RUN" --kernel-results "$WORK/bad/r-reps" --out "$WORK/never" "${ONLY[@]}"
expect_error no-ratio-min "lacks ratio_min" "$RUN" --kernel-results "$WORK/bad/r-ratio_min" --out "$WORK/never" "${ONLY[@]}"
expect_error ratio-outside "is not within \[ratio_min" "$RUN" --kernel-results "$WORK/bad/r-ratio_outside" --out "$WORK/never" "${ONLY[@]}"
expect_error ratio-partial "must be all given or all empty" "$RUN" --kernel-results "$WORK/bad/r-ratio_partial" --out "$WORK/never" "${ONLY[@]}"
cp -r "$WORK/run" "$WORK/run4"
"$RUN" --report "$WORK/run4" --kernel-results "$FIXR" >/dev/null 2>&1
python3 -B - "$WORK/run4" "$FIXR" "$ROOT" <<'EOF' || fail "the 3-repetition fixture: see above"
import csv, os, statistics, sys
out, fix, root = sys.argv[1:4]
sys.path.insert(0, os.path.join(root, "scenarios"))
from thinbench_runner import kernel_results, rundata
bad = []
close = lambda a, b, tol=1e-5: abs(a - b) <= tol * max(1, abs(b))
# per repetition, read here independently of both scripts
reps = list(csv.DictReader(open(os.path.join(fix, "kernel_perf_reps.csv"))))
lat = {(r["setup"], r["engine"], r["bs"], r["case"], int(r["rep"])): float(r["lat_mean_us"]) for r in reps}
per = {}
for (s, e, bs, c, n), v in lat.items():
    ow = lat.get((s, e, bs, "overwrite", n))
    if ow is None:
        continue
    # the script's ratio is from unrounded means (4 decimals); the CSV's latencies are
    # rounded to 0.1 µs, which bounds how far v / ow can be from it
    given = float(next(r["ratio_to_overwrite"] for r in reps if (r["setup"], r["engine"], r["bs"],
                       r["case"], int(r["rep"])) == (s, e, bs, c, n)))
    if abs(v / ow - given) > given * (0.05 / v + 0.05 / ow) * 1.01 + 0.00005:
        bad.append(f"rep {n} {s} {e} {bs} {c}: ratio {given} but {v}/{ow} = {v / ow:.4f}")
    per.setdefault((s, e, bs, c), []).append(given)
nrep = {len(v) for v in per.values()}
if nrep != {3} or len(per) != 48:
    bad.append(f"the fixture: {len(per)} cases with ratios, repetitions {nrep} (expected 48, {{3}})")
want = {k: (statistics.median(v), min(v), max(v)) for k, v in per.items()}
agg = {(r["setup"], r["engine"], r["bs"], r["case"]): r
       for r in csv.DictReader(open(os.path.join(fix, "kernel_perf.csv")))}
for key, (m, lo, hi) in want.items():
    r = agg[key]
    if (float(r["ratio_to_overwrite"]), float(r["ratio_min"]), float(r["ratio_max"]), r["reps"]) != (m, lo, hi, "3"):
        bad.append(f"kernel_perf.csv {key}: {r['ratio_to_overwrite']} [{r['ratio_min']}-{r['ratio_max']}] "
                   f"x{r['reps']}, expected {m} [{lo}-{hi}] x3")
    ml = statistics.median(lat[key + (n,)] for n in (1, 2, 3))
    if not close(float(r["lat_mean_us"]), ml):
        bad.append(f"kernel_perf.csv {key}: lat_mean_us {r['lat_mean_us']}, median {ml}")
spread = sum(1 for k, (m, lo, hi) in want.items() if k[3] != "overwrite" and hi > lo)
if not spread:
    bad.append("no ratio of the fixture varies across repetitions (not a real run?)")
# merged: kernel.csv, report cells
kc = list(csv.DictReader(open(os.path.join(out, "kernel.csv"))))
if list(kc[0].keys()) != kernel_results.KERNEL_CSV_COLUMNS or len(kc) != 18:
    bad.append(f"kernel.csv: {len(kc)} rows, header {list(kc[0].keys())}")
sec = open(os.path.join(out, "report.md")).read().split("## Kernel dm-thin in a VM, beside libthinp", 1)[-1]
for r in kc:
    s, bs, c = r["setup"], r["bs"], r["case"]
    cells = []
    for pre, e in (("kernel", "kernel"), ("libthinp_vm", "libthinp")):
        m, lo, hi = want[(s, e, bs, c)]
        got = tuple(float(r[pre + x]) for x in ("_ratio", "_ratio_min", "_ratio_max"))
        if not all(close(a, b) for a, b in zip(got, (m, lo, hi))) or r[pre + "_reps"] != "3":
            bad.append(f"kernel.csv {s} {bs} {c} {pre}: {got} x{r[pre + '_reps']}, expected {(m, lo, hi)} x3")
        cells.append(f"{m:.2f}× [{lo:.2f}–{hi:.2f}]")
    ratio = want[(s, "libthinp", bs, c)][0] / want[(s, "kernel", bs, c)][0]
    if not close(float(r["libthinp_vs_kernel"]), ratio):
        bad.append(f"kernel.csv {s} {bs} {c}: libthinp_vs_kernel {r['libthinp_vs_kernel']}, expected {ratio:.6g}")
    line = f"| {bs} | {kernel_results.KERNEL_CASE_TEXT[c]} | {cells[0]} | {cells[1]} | {ratio:.2f}× | "
    if line not in sec.split(f"### {s}", 1)[1].split("###", 1)[0]:
        bad.append(f"report {s}: no row {line!r}")
for text in ("**3 repetitions** of every case in the VM", "all kernel repetitions ran before all "
             "libthinp ones", "`tests/vm/kernel_perf.sh --reps 3`"):
    if text not in sec:
        bad.append(f"report: no {text!r}")
k, l = want[("loop-lvm", "kernel", "4k", "provision")][0], want[("loop-lvm", "libthinp", "4k", "provision")][0]
head = [x for x in open(os.path.join(out, "report.md")).read().splitlines()
        if x.startswith("| allocate 4 KiB, random order | loop-lvm")]
if not head or not head[0].endswith(f"| {k:.2f}× ow (libthinp {l:.2f}×) ² |"):
    bad.append(f"headline kernel column (medians): {head}")
print("FAIL:\n  " + "\n  ".join(bad) if bad else
      f"  ok: {len(per)} cases x 3 repetitions: medians and ranges in kernel_perf.csv, kernel.csv "
      f"and the report ({spread} ratios vary across repetitions)")
sys.exit(1 if bad else 0)
EOF

echo "== --kernel with a stand-in VM script: progress relayed, success and failure recorded"
cat >"$WORK/fake_kperf.sh" <<'EOF'
# stand-in for tests/vm/kernel_perf.sh: FAKE_MODE=ok copies the fixture; fail leaves a job log
set -eu
[ "${1:-}" = --quick ] || { echo "fake: expected --quick, got '$*'" >&2; exit 9; }
[ -n "${KP_OUT:-}" ] && [ -x "$THINP" ] && [ -f "$THINP_IOENGINE" ] || { echo "fake: env" >&2; exit 9; }
rm -rf "$KP_OUT"
mkdir -p "$KP_OUT"
echo "vm: accelerator: tcg — fake" >&2
c=$(mktemp -d "$TMPDIR/thinbench-vm.XXXXXX") # where ci/vm/run.sh keeps the guest console
printf 'guest: fake\nkperf: [1.00] loop-lvm kernel bs=4k\n' >"$c/vm.console"
sleep 3
if [ "$FAKE_MODE" = ok ]; then
	cp "$FAKE_FIX"/* "$KP_OUT/"
	printf '# Kernel dm-thin vs libthinp, per-write cost in one VM\n\n| a table |\n'
	echo "kernel_perf: $KP_OUT/kernel_perf.csv, $KP_OUT/summary.md"
	exit 0
fi
echo "kperf: FATAL: no dm-thin-pool" >"$KP_OUT/job.log"
echo "kernel_perf: the VM job failed (run.sh exit 1)" >&2
exit 1
EOF
mkdir -p "$WORK/tmp"
for mode in ok fail; do
	rc=0
	TMPDIR=$WORK/tmp SCENARIOS_KERNEL_PERF=$WORK/fake_kperf.sh FAKE_MODE=$mode FAKE_FIX=$FIX \
		"$RUN" --kernel --repeat 1 --out "$WORK/k-$mode" --tmp "$WORK" \
		--only '^overwrite\.bs=4k\.thinp\.loop$' >"$WORK/k-$mode.log" 2>&1 || rc=$?
	log=$WORK/k-$mode.log
	grep -q '    | vm: accelerator: tcg — fake' "$log" || { cat "$log"; fail "$mode: the script's output is not relayed"; }
	grep -q '    vm| kperf: \[1.00\] loop-lvm kernel bs=4k' "$log" || { cat "$log"; fail "$mode: the guest console is not followed"; }
	! grep -q '| a table |' "$log" || fail "$mode: the summary tables were relayed"
	grep -q '^overwrite.bs=4k.thinp.loop,.*,ok,[0-9]*$' "$WORK/k-$mode/summary.csv" || fail "$mode: the host case is lost"
	[ -s "$WORK/k-$mode/kernel/kernel_perf.log" ] || fail "$mode: no kernel/kernel_perf.log"
	[ -z "$(ls -A "$WORK/tmp")" ] || fail "$mode: the VM temp dir was left: $(ls "$WORK/tmp")"
	if [ "$mode" = ok ]; then
		[ "$rc" -eq 0 ] || { tail -n 20 "$log"; fail "ok: exit $rc"; }
		grep -q '^kernel.set=quick.kernel-perf.vm,kernel,kernel-perf,vm,set=quick,.*,ok,[0-9]*$' "$WORK/k-ok/summary.csv" ||
			fail "ok: summary.csv has no ok row for the VM run"
		grep -q 'Kernel dm-thin in a VM' "$WORK/k-ok/report.md" || fail "ok: no kernel section"
		grep -q 'measured in a qemu VM by this run' "$WORK/k-ok/report.md" || fail "ok: the origin is not stated"
		grep -q 'KP_OUT=.*kernel bash .*fake_kperf.sh --quick' "$WORK/k-ok/commands.md" || fail "ok: commands.md lacks the VM command"
	else
		[ "$rc" -eq 1 ] || { tail -n 20 "$log"; fail "fail: exit $rc, expected 1"; }
		grep -q 'FAILED: .*fake_kperf.sh exited 1; .*has no kernel_perf.csv.*job.log.*kernel/kernel_perf.log' "$log" ||
			{ tail -n 20 "$log"; fail "fail: no FAILED line naming the exit and the missing CSV"; }
		grep -q '^kernel.set=quick.kernel-perf.vm,.*,failed 1/1,[0-9]*$' "$WORK/k-fail/summary.csv" ||
			fail "fail: summary.csv does not record the failed VM run"
		grep -q '`kernel.set=quick.kernel-perf.vm`: failed 1/1' "$WORK/k-fail/report.md" ||
			fail "fail: report.md does not list the failed VM run"
		grep -q 'results cannot be used: .*has no kernel_perf.csv' "$WORK/k-fail/report.md" ||
			fail "fail: report.md does not say why there are no kernel figures"
		grep -q '^| overwrite 4k thinp loop-lvm' "$WORK/k-fail/report.md" || fail "fail: the host table is lost"
	fi
	echo "  ok: $mode: exit $rc"
done
echo "PASS"
