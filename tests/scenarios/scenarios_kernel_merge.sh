#!/usr/bin/env bash
# The report's kernel section from a `make vm-bench` run, without booting a VM:
#  1. bad --kernel-results dirs (missing, the removed kernel_perf harness's output, a run with
#     no kernel case) and conflicting options stop the runner at once (exit 2), naming the
#     problem, before any case runs;
#  2. --report on tests/fixtures/kernel_vmbench (a trimmed real make vm-bench run, see its
#     ORIGIN.md): every kernel step beside libthinp's in kernel.csv and in the report's tables
#     (where the time goes: libthinp's window named, the whole job in this run from before
#     the engine's io_phase; the same with seeded IO-phase fields: the IO phase, THINP_SEED)
#     — ratios to overwrite and to raw, bytes per IO on the data and metadata devices,
#     loop-lvm ÷ direct-lvm on both backends — equal the figures this test computes from the
#     fixture's cases.json itself; emulated (vm/accel.txt: TCG): no absolute times;
#  3. the same rows merged into a host run (--report RUN --kernel-results VMRUN): RUN/kernel/
#     holds the VM run's cases.json, env.json and vm/, the section and the headline's kernel
#     cells are the same figures; without vm/ (the kernel on its host) the absolute times show;
#  4. --kernel with a stand-in for ci/vm/bench.sh (SCENARIOS_KERNEL_BENCH): its run merged and
#     reported; a failing VM part is a failed case, the host case survives, exit 1.
# Needs fio and gnuplot (the host run of part 4: one raw case), like scenarios_tiny.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
FIX=$ROOT/tests/fixtures/kernel_vmbench
if grep -qs -- -fsanitize "$BUILD/.build-flags"; then
	echo "SKIP: sanitizer build ($BUILD); the benchmark runner needs the plain build"
	exit 0
fi
mkdir -p "$BUILD"
WORK=$(mktemp -d "$BUILD/scenarios-kernel-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export SCENARIOS_SCALE=tiny
RUN=$ROOT/scenarios/run
ONLY=(--only '^overwrite\.bs=4k\.raw-psync\.loop$')

fail() {
	echo "FAIL: $*"
	exit 1
}

# expect_error NAME PATTERN CMD...: CMD exits 2, says PATTERN, creates no run dir
expect_error() {
	local name=$1 pat=$2 rc=0
	shift 2
	"$@" >"$WORK/$name.log" 2>&1 || rc=$?
	[ "$rc" -eq 2 ] || { cat "$WORK/$name.log"; fail "$name: exit $rc, expected 2"; }
	grep -q -- "$pat" "$WORK/$name.log" || { cat "$WORK/$name.log"; fail "$name: no '$pat' in the message"; }
	[ ! -e "$WORK/never" ] || fail "$name: the runner created its output dir"
	echo "  ok: $name: $(grep -m1 -- "$pat" "$WORK/$name.log" | cut -c1-150)"
}

# the fixture without its kernel cases: a host run to merge into
strip_kernel() { # SRC DST
	mkdir -p "$2"
	cp "$1/env.json" "$2/"
	python3 -B - "$1/cases.json" "$2/cases.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
d["cases"] = {i: c for i, c in d["cases"].items() if c["backend"] != "kernel"}
json.dump(d, open(sys.argv[2], "w"))
EOF
}

echo "== bad kernel results are refused up front"
mkdir -p "$WORK/bad/kperf"
echo "setup,engine,case,bs,iops,lat_mean_us,lat_p50_us,lat_p99_us,ratio_to_overwrite,accel" \
	>"$WORK/bad/kperf/kernel_perf.csv"
strip_kernel "$FIX" "$WORK/bad/nokernel"
expect_error missing "has no cases.json" "$RUN" --kernel-results "$WORK/bad/nonexistent" --out "$WORK/never" "${ONLY[@]}"
expect_error kperf "removed tests/vm/kernel_perf.sh" "$RUN" --kernel-results "$WORK/bad/kperf" --out "$WORK/never" "${ONLY[@]}"
expect_error nokernel "no kernel case" "$RUN" --kernel-results "$WORK/bad/nokernel" --out "$WORK/never" "${ONLY[@]}"
expect_error both "exclude each other" "$RUN" --kernel --kernel-results "$FIX" --out "$WORK/never" "${ONLY[@]}"

# check RUNDIR SRCDIR EMULATED: RUNDIR's kernel.csv and report.md against the figures computed
# here from SRCDIR's cases.json (the run that holds the kernel rows)
check() {
	python3 -B - "$@" <<'EOF'
import csv, json, math, os, re, statistics, sys
out, src, emu = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
cases = json.load(open(os.path.join(src, "cases.json")))["cases"]
bad = []
# (a run whose steps carry the devices' time fields must show them)
want_time = any("data_busy_ms" in st.get("all", {}) for c in cases.values() if c["backend"] == "kernel"
                for r in c["reps"] for st in r.get("steps", {}).values())

def reps(cid, step, key):
    return {r["rep"]: r["steps"][step]["all"][key] for r in cases.get(cid, {}).get("reps", [])
            if r.get("status") == "ok" and step in r.get("steps", {})
            and key in r["steps"][step]["all"]}

def ratio(a, b, sa, sb):
    x, y = reps(a, sa, "cost_us"), reps(b, sb, "cost_us")
    rs = [x[r] / y[r] for r in x if r in y and y[r]]
    return statistics.median(rs) if rs else None

def per_io(cid, step, keys):
    ios = reps(cid, step, "ios")
    vs = [reps(cid, step, k) for k in keys]
    xs = [sum(v.get(r, 0) for v in vs) / ios[r] for r in ios if any(r in v for v in vs)]
    return statistics.median(xs) if xs else None

def hum(bs):
    for u, n in (("m", 1 << 20), ("k", 1024)):
        if bs % n == 0:
            return f"{bs // n}{u}"
    return str(bs)

want = []
for kid, c in cases.items():
    if c["backend"] != "kernel":
        continue
    tid = re.sub(r"\.kernel\.(loop|direct)", r".thinp.\1", kid)
    for step in c["reps"][0]["steps"]:
        w = {"kernel_case": kid, "thinp_case": tid, "step": step, "mode": c["mode"]}
        for side, cid, be in (("kernel", kid, "kernel"), ("thinp", tid, "thinp")):
            ow = f"overwrite.bs={hum(c['params']['bs'])}.{be}.{c['mode']}" if c["params"].get("bs") else None
            w[f"{side}_us"] = statistics.median(reps(cid, step, "cost_us").values()) if reps(cid, step, "cost_us") else None
            w[f"{side}_ratio_overwrite"] = ratio(cid, ow, step, "steady") if ow in cases else None
            raw = [b for b in cases[cid]["baselines"] if cases[b]["backend"].startswith("raw")]
            bsteps = list(cases[raw[0]]["reps"][0]["steps"]) if raw else []
            w[f"{side}_ratio_raw"] = (ratio(cid, raw[0], step, step if step in bsteps else bsteps[0])
                                      if raw else None)
            w[f"{side}_data_read_per_io"] = per_io(cid, step, ["data_read"])
            w[f"{side}_data_written_per_io"] = per_io(
                cid, step, ["data_written"] + (["data_zeroed"] if side == "thinp" else []))
            w[f"{side}_meta_written_per_io"] = per_io(cid, step, ["meta_written"])
        want.append(w)
if not any(w["mode"] == "loop" for w in want) or not any(w["mode"] == "direct" for w in want):
    bad.append("the fixture lacks loop-lvm or direct-lvm kernel rows")

rows = {(r["kernel_case"], r["step"]): r for r in csv.DictReader(open(os.path.join(out, "kernel.csv")))}
if len(rows) != len(want):
    bad.append(f"kernel.csv: {len(rows)} rows, want {len(want)}")
for w in want:
    r = rows.get((w["kernel_case"], w["step"]))
    if not r:
        bad.append(f"kernel.csv: no row for {w['kernel_case']} {w['step']}")
        continue
    for k, v in w.items():
        if k == "mode":
            continue
        got = r[k]
        if isinstance(v, float) or isinstance(v, int) and not isinstance(v, bool):
            if got == "" or not math.isclose(float(got), v, rel_tol=1e-5, abs_tol=1e-9):
                bad.append(f"kernel.csv {w['kernel_case']} {w['step']} {k}: {got}, want {v:.6g}")
        elif (v or "") != got:
            bad.append(f"kernel.csv {w['kernel_case']} {w['step']} {k}: {got!r}, want {v!r}")

rep = open(os.path.join(out, "report.md")).read()
m = re.search(r"^## Kernel dm-thin beside libthinp\n(.*?)(?=^## )", rep, re.S | re.M)
sec = m.group(1) if m else ""
if not sec:
    bad.append("report.md: no kernel section")
fr = lambda x: "—" if x is None else f"{x:.2f}×"

def fb(x):
    if x is None:
        return "—"
    if x == 0:
        return "0"
    if x >= 1024 and abs(x / 1024 - round(x / 1024)) < 0.05:
        return f"{x / 1024:.0f} KiB"
    return f"{x:.0f}" if x >= 10 else f"{x:.1f}"

def same(a, b):
    return a is not None and b is not None and abs(a - b) <= 0.005 * max(abs(a), abs(b), 1)

agree = n = 0
for w in want:
    short = w["kernel_case"].replace(f".kernel.{w['mode']}", "")
    cells = [f"`{short}`", w["step"]]
    cost = "| " + " | ".join(cells) + " | "
    if f"{cost}" not in sec:
        bad.append(f"report: no row for {short} {w['step']}")
    tail = " | ".join([fr(w["kernel_ratio_overwrite"]), fr(w["thinp_ratio_overwrite"]),
                       fr(w["kernel_ratio_raw"]), fr(w["thinp_ratio_raw"])])
    if not emu:
        tail += " | " + " | ".join(f"{x:.1f}" if x else "—" for x in (w["kernel_us"], w["thinp_us"]))
    if not re.search(re.escape(cost) + r"\d+ \| " + re.escape(tail) + r" \|", sec):
        bad.append(f"report cost row {short} {w['step']}: want ... {tail}")
    bcells = []
    for k in ("data_read", "data_written", "meta_written"):
        a, b = w[f"kernel_{k}_per_io"], w[f"thinp_{k}_per_io"]
        bcells.append(f"{fb(a)} / {fb(b)}" + (" =" if same(a, b) else ""))
    line = cost + " | ".join(bcells) + " |"
    if line not in sec:
        bad.append(f"report bytes row: want {line!r}")
    if all(w[f"{s}_{k}_per_io"] is not None for s in ("kernel", "thinp") for k in ("data_read", "data_written")):
        n += 1
        agree += same(w["kernel_data_read_per_io"], w["thinp_data_read_per_io"]) and \
            same(w["kernel_data_written_per_io"], w["thinp_data_written_per_io"])
if f"the same bytes read and written per IO in {agree} of {n} steps" not in sec:
    bad.append(f"report: no data-device agreement '{agree} of {n}'")
if emu != ("**The kernel ran emulated**" in sec) or emu == ("kernel µs" in sec):
    bad.append(f"report: emulated={emu}, but the section says otherwise")

# the seed's claim: loop ÷ direct per backend, from the medians of both set-ups
for side, name in (("kernel", "kernel dm-thin"), ("thinp", "libthinp")):
    rs = []
    for w in want:
        if w["mode"] != "loop":
            continue
        lid = w["kernel_case"] if side == "kernel" else w["thinp_case"]
        did = lid.replace(f".{side}.loop", f".{side}.direct")
        a, b = reps(lid, w["step"], "cost_us"), reps(did, w["step"], "cost_us")
        if a and b:
            rs.append(statistics.median(a.values()) / statistics.median(b.values()))
    if not rs:
        bad.append(f"{name}: no step in both set-ups")
        continue
    g = math.exp(sum(map(math.log, rs)) / len(rs))
    line = (f"- **{name}**: loop-lvm slower in {sum(r > 1 for r in rs)} of {len(rs)} steps; "
            f"loop-lvm ÷ direct-lvm geometric mean {g:.2f}× (from {min(rs):.2f}× to {max(rs):.2f}×).")
    if line not in sec:
        bad.append(f"report claim: want {line!r}")
# issue 11's fidelity: class ÷ overwrite per repetition (provision and CoW at 4/64 KiB)
def fx(xs):
    if not xs:
        return "—"
    m, lo, hi = statistics.median(xs), min(xs), max(xs)
    return f"{m:.2f}×" + ("" if lo == hi else f" [{lo:.2f}–{hi:.2f}]")

def rep_ratio(cid, oid, step):
    a, b = reps(cid, step, "cost_us"), reps(oid, "steady", "cost_us")
    return {r: a[r] / b[r] for r in a if b.get(r)}

setup = {"loop": "loop-lvm", "direct": "direct-lvm"}
fid = {}
gaps_seen = 0
for w in want:
    c = cases[w["kernel_case"]]
    if c["scenario"] not in ("alloc", "cow") or c["params"].get("bs") not in (4096, 65536):
        continue
    bs = hum(c["params"]["bs"])
    kr = rep_ratio(w["kernel_case"], f"overwrite.bs={bs}.kernel.{w['mode']}", w["step"])
    tr = rep_ratio(w["thinp_case"], f"overwrite.bs={bs}.thinp.{w['mode']}", w["step"])
    q = [tr[r] / kr[r] for r in kr if r in tr]
    ok = None if not q else 0.75 <= statistics.median(q) <= 1.25
    fid.setdefault(w["mode"], []).append(ok)
    short = w["kernel_case"].replace(f".kernel.{w['mode']}", "")
    line = (f"| {setup[w['mode']]} | `{short}` | {w['step']} | {fx(list(kr.values()))} | "
            f"{fx(list(tr.values()))} | {fx(q)} | "
            f"{'—' if ok is None else 'yes' if ok else '**no**'} |")
    if line not in sec:
        bad.append(f"report fidelity row: want {line!r}")
    r = rows.get((w["kernel_case"], w["step"]), {})
    if q and (r.get("within_25pct") != ("yes" if ok else "no") or
              not math.isclose(float(r.get("thinp_vs_kernel_overwrite") or "nan"),
                               statistics.median(q), rel_tol=1e-5)):
        bad.append(f"kernel.csv fidelity {short} {w['step']}: {r.get('thinp_vs_kernel_overwrite')} "
                   f"{r.get('within_25pct')}, want {statistics.median(q):.6g}")
    # the gap split by part: data busy, metadata busy, the rest, each per IO ÷ the same
    # backend's overwrite of the same repetition; libthinp's − the kernel's, medians
    def parts(cid, oid):
        ios, cost = reps(cid, w["step"], "ios"), reps(cid, w["step"], "cost_us")
        db, mb = reps(cid, w["step"], "data_busy_ms"), reps(cid, w["step"], "meta_busy_ms")
        ow = reps(oid, "steady", "cost_us")
        out = {}
        for r in cost:
            if ios.get(r) and r in db and r in mb and ow.get(r):
                d, mm = db[r] * 1000 / ios[r], mb[r] * 1000 / ios[r]
                out[r] = (d / ow[r], mm / ow[r], (cost[r] - d - mm) / ow[r])
        return out
    kp = parts(w["kernel_case"], f"overwrite.bs={bs}.kernel.{w['mode']}")
    tp = parts(w["thinp_case"], f"overwrite.bs={bs}.thinp.{w['mode']}")
    both = [r for r in kp if r in tp]
    if both:
        d3 = [statistics.median(tp[r][i] - kp[r][i] for r in both) for i in range(3)]
        gap = statistics.median(sum(tp[r]) - sum(kp[r]) for r in both)
        most = ("data device", "metadata device", "rest (CPU)")[
            max(range(3), key=lambda i: abs(d3[i]))]
        line = (f"| {setup[w['mode']]} | `{short}` | {w['step']} | {gap:+.2f} | " +
                " | ".join(f"{x:+.2f}" for x in d3) + f" | {most} |")
        gaps_seen += 1
        if line not in sec:
            bad.append(f"report gap row: want {line!r}")
judged = [x for m in ("loop", "direct") for x in fid.get(m, []) if x is not None]
line = (f"**{sum(judged)} of {len(judged)} provision/CoW steps within ±25% of the kernel's "
        "class ÷ overwrite ratio** (" + ", ".join(
            f"{setup[m]} {sum(x for x in fid[m] if x is not None)} of "
            f"{sum(x is not None for x in fid[m])}" for m in ("loop", "direct")
            if any(x is not None for x in fid.get(m, []))) + ").")
if not judged or line not in sec:
    bad.append(f"report: no fidelity count line {line!r}")

if not gaps_seen or "Where each gap comes from, measured" not in sec:
    bad.append(f"report: no fidelity gap split ({gaps_seen} rows recomputed)")

# metadata bytes per commit, both sides, within ±10%
cm = {}
for w in want:
    pc = {}
    for side in ("kernel", "thinp"):
        mw, nc = reps(w[f"{side}_case"], w["step"], "meta_written"), reps(w[f"{side}_case"], w["step"], "commits")
        xs = [mw[r] / nc[r] for r in mw if nc.get(r)]
        pc[side] = statistics.median(xs) if xs else None
    a, b = pc["kernel"], pc["thinp"]
    q = b / a if a and b is not None else None
    ok = None if q is None else 0.9 <= q <= 1.1
    if ok is not None:
        cm.setdefault(w["mode"], []).append(ok)
    short = w["kernel_case"].replace(f".kernel.{w['mode']}", "")
    f0 = lambda x: "—" if x is None else f"{x:.0f}"
    line = (f"| `{short}` | {w['step']} | {f0(a)} | {f0(b)} | {'—' if q is None else f'{q:.2f}×'} | "
            f"{'—' if ok is None else 'yes' if ok else '**no**'} |")
    if line not in sec:
        bad.append(f"report commit row: want {line!r}")
nj = sum(len(v) for v in cm.values())
line = f"**Within ±10% in {sum(sum(v) for v in cm.values())} of {nj} steps** ("
if nj and line not in sec:
    bad.append(f"report: no per-commit count {line!r}")

# where the time goes: per IO µs, median over repetitions, kernel / libthinp
def split(cid, step):
    ios, cost = reps(cid, step, "ios"), reps(cid, step, "cost_us")
    db, mb = reps(cid, step, "data_busy_ms"), reps(cid, step, "meta_busy_ms")
    rr = [r for r in cost if ios.get(r) and r in db and r in mb]
    if not rr:
        return None
    t = [cost[r] for r in rr]
    d = [db[r] * 1e3 / ios[r] for r in rr]
    m = [mb[r] * 1e3 / ios[r] for r in rr]
    rest = [a - b - c for a, b, c in zip(t, d, m)]
    win = reps(cid, step, "window_ms")
    w = [win[r] * 1e3 / ios[r] for r in rr]
    # libthinp's busy times over its IO phase (every repetition) or, older runs, the whole job
    ph = reps(cid, step, "devtime_io_phase")
    kind = "IO phase" if all(ph.get(r) for r in rr) else "whole job"
    return [statistics.median(x) for x in (t, d, m, rest, w)] + [kind]

def u(x):
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.1f}"
nt, kinds = 0, set()
for w in want:
    a, b = split(w["kernel_case"], w["step"]), split(w["thinp_case"], w["step"])
    if not a or not b:
        continue
    nt += 1
    short = w["kernel_case"].replace(f".kernel.{w['mode']}", "")
    cells = [f"`{short}`", w["step"], f"{u(a[0])} / {u(b[0])}"]
    for i in (1, 2, 3):
        cells.append(f"{u(a[i])}" + (f" ({a[i] / a[0]:.0%})" if a[0] else "") + " / " +
                     f"{u(b[i])}" + (f" ({b[i] / b[0]:.0%})" if b[0] else ""))
    cells.append(f"{u(a[4])} / {u(b[4])} ({b[5]})")
    line = "| " + " | ".join(cells) + " |"
    if line not in sec:
        bad.append(f"report time row: want {line!r}")
    kinds.add(b[5])
if want_time and not nt:
    bad.append("report: no step with the devices' time fields on both sides")
# the paragraph names libthinp's window: its IO phase, or the whole job of an older run
note = {frozenset({"IO phase"}): "libthinp's: its IO phase alone, first IO to last",
        frozenset({"whole job"}): "libthinp's: the whole job (this run's engine did not count "
                                  "its IO phase)"}.get(frozenset(kinds), "libthinp's: its IO phase in ")
if nt and note not in sec:
    bad.append(f"report: the time paragraph does not say {note!r}")

# summary.csv: libthinp's rows carry ratio_kernel (libthinp ÷ its twin, per repetition, median)
# when the twins are the run's own; kernel_us only natively
if os.path.realpath(out) == os.path.realpath(src):
    srows = {(r["case"], r["step"]): r for r in csv.DictReader(open(os.path.join(out, "summary.csv")))
             if r["class"] == "all"}
    for w in want:
        r = srows.get((w["thinp_case"], w["step"]))
        x, y = reps(w["thinp_case"], w["step"], "cost_us"), reps(w["kernel_case"], w["step"], "cost_us")
        rs = [x[k] / y[k] for k in x if y.get(k)]
        if not r or not rs:
            continue
        if r["ratio_kernel"] == "" or not math.isclose(float(r["ratio_kernel"]), statistics.median(rs), rel_tol=1e-5):
            bad.append(f"summary.csv {w['thinp_case']} {w['step']} ratio_kernel {r['ratio_kernel']!r}, "
                       f"want {statistics.median(rs):.6g}")
        if emu != (r["kernel_us"] == ""):
            bad.append(f"summary.csv {w['thinp_case']} kernel_us {r['kernel_us']!r} (emulated {emu})")
print("FAIL:\n  " + "\n  ".join(bad[:30]) if bad else
      f"  ok: {len(want)} kernel steps ({agree} of {n} with the same data-device bytes per IO) "
      "in kernel.csv and the report as computed from cases.json")
sys.exit(1 if bad else 0)
EOF
}

echo "== --report on the fixture (a make vm-bench run): the kernel section from its own rows"
cp -r "$FIX" "$WORK/vm"
"$RUN" --report "$WORK/vm" >"$WORK/vm.log" 2>&1 || { cat "$WORK/vm.log"; fail "--report on the fixture"; }
check "$WORK/vm" "$WORK/vm" 1
grep -q "^Measured in a qemu VM (TCG" "$WORK/vm/report.md" || fail "the report does not say where the kernel ran"
grep -q "^- \*\*kernel dm-thin\*\*: in a qemu VM (TCG.*; this run's kernel twins — see" "$WORK/vm/report.md" ||
	fail "the report's kernel bullet does not say the rows are the run's own"

echo "== the same with libthinp's IO-phase counters (io_phase): that window, named"
# every libthinp step of the fixture as the engine's io_phase would record it: seeded busy
# times and windows no larger than the whole job's, devtime_io_phase set
cp -r "$FIX" "$WORK/vmph"
seed=${THINP_SEED:-$(date +%s)}
echo "  THINP_SEED=$seed"
python3 -B - "$WORK/vmph/cases.json" "$seed" <<'EOF'
import json, random, sys
r = random.Random(int(sys.argv[2]))
d = json.load(open(sys.argv[1]))
n = 0
for c in d["cases"].values():
    if c["backend"] != "thinp":
        continue
    for rp in c["reps"]:
        for st in rp.get("steps", {}).values():
            a = st.get("all", {})
            if "data_busy_ms" not in a or "window_ms" not in a:
                continue
            a["devtime_io_phase"] = 1
            a["job_window_ms"] = a["window_ms"]
            a["window_ms"] = round(a["window_ms"] * r.uniform(0.3, 0.9), 3)
            for k in ("data_busy_ms", "meta_busy_ms"):
                a[k] = r.randint(0, int(a[k]))
            n += 1
assert n, "no libthinp step with time fields in the fixture"
json.dump(d, open(sys.argv[1], "w"))
print(f"  {n} libthinp steps given IO-phase counters")
EOF
"$RUN" --report "$WORK/vmph" >"$WORK/vmph.log" 2>&1 || { cat "$WORK/vmph.log"; fail "--report with io_phase"; }
check "$WORK/vmph" "$WORK/vmph" 1

echo "== merged into a host run (--report RUN --kernel-results VMRUN)"
strip_kernel "$FIX" "$WORK/host"
"$RUN" --report "$WORK/host" --kernel-results "$WORK/vm" >"$WORK/host.log" 2>&1 ||
	{ cat "$WORK/host.log"; fail "--report --kernel-results"; }
for f in cases.json env.json vm/accel.txt; do
	[ -f "$WORK/host/kernel/$f" ] || fail "merge: no kernel/$f"
done
check "$WORK/host" "$WORK/vm" 1
grep -q "the \`make vm-bench\` run vm (merged with \`--kernel-results\`)" "$WORK/host/report.md" ||
	fail "merge: the report does not name the merged run"
python3 -B - "$WORK/host" <<'EOF' || fail "merge: headline kernel cells"
import json, os, statistics, sys
d = sys.argv[1]
cases = json.load(open(os.path.join(d, "kernel", "cases.json")))["cases"]
cost = lambda i: {r["rep"]: r["steps"]["steady"]["all"]["cost_us"] for r in cases[i]["reps"]}

def raw(i):  # the median over repetitions of cost / the raw baseline's cost
    a, b = cost(i), cost(next(x for x in cases[i]["baselines"] if x.startswith("overwrite.bs=4k.raw")))
    return statistics.median(a[r] / b[r] for r in a)
cell = (f"| {raw('overwrite.bs=4k.kernel.loop'):.2f}× raw "
        f"(libthinp {raw('overwrite.bs=4k.thinp.loop'):.2f}×) ² |")
head = [l for l in open(os.path.join(d, "report.md")) if l.startswith("| overwrite 4 KiB random (steady state) | loop-lvm")]
if not head or not head[0].rstrip().endswith(cell):
    print(f"FAIL: headline {head}, want ...{cell}")
    sys.exit(1)
print(f"  ok: headline kernel cell {cell}")
EOF

echo "== the kernel on its host (no vm/): absolute times"
cp -r "$FIX" "$WORK/native"
rm -rf "$WORK/native/vm"
"$RUN" --report "$WORK/native" >"$WORK/native.log" 2>&1 || { cat "$WORK/native.log"; fail "--report native"; }
check "$WORK/native" "$WORK/native" 0

echo "== --kernel with a stand-in VM bench: merged on success, a failed case otherwise"
cat >"$WORK/fake_bench.sh" <<'EOF'
# stand-in for ci/vm/bench.sh: FAKE_MODE=ok writes the fixture as its run dir
set -eu
[ "${1:-}" = --out ] && [ -n "${2:-}" ] || { echo "fake: expected --out DIR, got '$*'" >&2; exit 9; }
[ -x "$THINP" ] && [ -f "$THINP_IOENGINE" ] || { echo "fake: env" >&2; exit 9; }
echo "vm: accelerator: tcg — fake"
if [ "$FAKE_MODE" = ok ]; then
	cp -r "$FAKE_FIX" "$2"
	exit 0
fi
echo "bench.sh: the guest wrote no cases.json (exit 1)" >&2
exit 1
EOF
mkdir -p "$WORK/tmp"
for mode in ok fail; do
	rc=0
	TMPDIR=$WORK/tmp SCENARIOS_KERNEL_BENCH=$WORK/fake_bench.sh FAKE_MODE=$mode FAKE_FIX=$FIX \
		"$RUN" --kernel --repeat 1 --out "$WORK/k-$mode" --tmp "$WORK" "${ONLY[@]}" \
		>"$WORK/k-$mode.log" 2>&1 || rc=$?
	log=$WORK/k-$mode.log
	grep -q '    | vm: accelerator: tcg — fake' "$log" || { cat "$log"; fail "$mode: the script's output is not relayed"; }
	grep -q '^overwrite.bs=4k.raw-psync.loop,.*,ok,[0-9]*$' "$WORK/k-$mode/summary.csv" || fail "$mode: the host case is lost"
	[ -z "$(ls -A "$WORK/tmp")" ] || fail "$mode: the VM temp dir was left: $(ls "$WORK/tmp")"
	if [ "$mode" = ok ]; then
		[ "$rc" -eq 0 ] || { tail -n 20 "$log"; fail "ok: exit $rc"; }
		grep -q '^kernel.vm-bench.vm,kernel,kernel-vm,vm,.*,ok,[0-9]*$' "$WORK/k-ok/summary.csv" ||
			fail "ok: summary.csv has no ok row for the VM run"
		grep -q 'measured in a qemu VM by this run' "$WORK/k-ok/report.md" || fail "ok: the origin is not stated"
		check "$WORK/k-ok" "$WORK/k-ok/kernel" 1
	else
		[ "$rc" -eq 1 ] || { tail -n 20 "$log"; fail "fail: exit $rc, expected 1"; }
		grep -q 'FAILED: .*fake_bench.sh exited 1; .*has no cases.json' "$log" ||
			{ tail -n 20 "$log"; fail "fail: no FAILED line naming the exit and the missing run"; }
		grep -q '^kernel.vm-bench.vm,.*,failed 1/1,[0-9]*$' "$WORK/k-fail/summary.csv" ||
			fail "fail: summary.csv does not record the failed VM run"
		! grep -q '^## Kernel dm-thin beside libthinp' "$WORK/k-fail/report.md" ||
			fail "fail: a kernel section without kernel rows"
	fi
	echo "  ok: $mode: exit $rc"
done
echo "PASS"
