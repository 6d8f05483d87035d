"""report.md and commands.md of a run, and `build`: everything a run dir gets from its
cases.json and env.json (summary.csv, kernel.csv, charts, commands.md, report.md)."""
import os

from . import ROOT
from .charts import CHART_TEXT, charts
from .docker_report import DOCKER_TITLES, docker_text
from .kernel_facts import where
from .kernel_report import kernel_section
from .kernel_results import KERNEL_DIR, emulated, write_kernel_csv
from .plan_report import section as plan_section
from .report_text import fill_text, headline_table, seed_text
from .rundata import Run, write_csv
from .units import fbytes, fnum, fratio


SCEN_TITLES = [
    ("alloc", "1. Allocate-on-demand (first write to a fresh thin device)"),
    ("cow", "2. Copy-on-write (first write to a snapshot of a written origin; second pass)"),
    ("overwrite", "3. Overwrite steady state (provisioned, exclusive blocks)"),
    ("chain", "4. Reads through snapshot chains"),
    ("blocksize", "5. Block-size trade-off"),
    ("edge", "6. qcow2-style edge cases (4 KiB front / middle, 8 KiB crossing two blocks)"),
    ("commit", "7. Commit cost (fsync every N writes)"),
    ("fill", "8. Fill to full"),
    ("seed", "9. The seed's example: update 32 KiB of a 1 GiB file"),
]



JOBFILE = {"alloc": "01-alloc.fio", "cow": "02-cow.fio", "overwrite": "03-overwrite.fio",
           "chain": "04-chain.fio", "blocksize": "05-blocksize.fio", "edge": "06-edge.fio",
           "commit": "07-commit.fio", "fill": "08-fill.fio", "seed": "09-seed.fio"}



def case_table(run, scenario):
    lines = ["| case | step | median µs/IO [min–max] | p50 µs | p99 µs | IOPS | MB/s | × raw | × qcow2 | "
             "bytes amp | alloc/IO | dominant class (µs) | status |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for cid_, c in run.cases.items():
        if c["scenario"] != scenario:
            continue
        steps = run.steps(cid_) or [""]
        for step in steps:
            r = run.row(cid_, step)
            if r is None:
                continue
            dom = run.dominant_class(cid_, step) if c["backend"].startswith("thinp") else None
            domtxt = "—"
            if dom:
                dr = run.row(cid_, step, dom)
                domtxt = f"{dom} ({fnum(dr.get('median_us'))})"
            med_ = r.get("median_us")
            rng = (f"{fnum(med_)} [{fnum(r.get('min_us'))}–{fnum(r.get('max_us'))}]"
                   if med_ is not None else "—")
            lines.append("| " + " | ".join([
                c["label"], step or "—", rng, fnum(r.get("lat_p50_us")), fnum(r.get("lat_p99_us")),
                fnum(r.get("iops")), fnum(r.get("mbps")), fratio(r), fratio(r, "ratio_qcow2"),
                fnum(r.get("bytes_amp")), fbytes(r.get("alloc_per_io")), domtxt,
                r.get("status", "")]) + " |")
    return "\n".join(lines)



def reproduce(run, scenario):
    ids = [i for i, c in run.cases.items() if c["scenario"] == scenario]
    if not ids:
        return ""
    rep = run.env.get("options", {}).get("repeat", 3)
    scale = run.env.get("options", {}).get("scale", "quick")
    full = " --full" if run.env.get("options", {}).get("full") else ""
    s = (f"scenarios/run{full} --only '^{scenario}\\.' --repeat {rep}"
         + (f" --scale {scale}" if scale not in ("quick", "full") else ""))
    return s



def write_commands(run):
    """commands.md: every case's exact commands (repetition 1), as the runner ran them."""
    lines = ["# Exact commands of this run (repetition 1 of each case)", "",
             "Paths under the scratch dir (`" + str(run.env.get("scratch", {}).get("dir")) +
             "`) existed only during the run; `scenarios/run --only CASE` recreates them.", ""]
    for i, c in run.cases.items():
        r1 = next((r for r in c["reps"] if r["rep"] == 1), None)
        if not r1:
            continue
        lines.append(f"## {i}")
        lines.append("")
        lines.append(f"{c['label']} — status {r1['status']}"
                     + (f": {r1.get('error')}" if r1.get("error") else ""))
        lines.append("")
        lines.append("```sh")
        lines += r1.get("commands", [])
        lines.append("```")
        lines.append("")
    with open(os.path.join(run.dir, "commands.md"), "w") as f:
        f.write("\n".join(lines))



def write_report(run, made):
    e = run.env
    L = []
    L.append(f"# thinbench run {os.path.basename(os.path.abspath(run.dir))}")
    L.append("")
    L.append(f"- **Date**: {e.get('date')}  **Host**: {e.get('host')}  "
             f"**Commit**: `{e.get('git_describe')}`" + (" (dirty tree)" if e.get("git_dirty") else ""))
    L.append(f"- **Machine**: {e.get('cpu')}, {e.get('cpus')} CPUs, "
             f"{fbytes(e.get('memory_bytes'))} RAM, {e.get('virtualization') or 'bare metal?'}; "
             f"kernel {e.get('kernel')}; {e.get('os')}")
    L.append(f"- **Tools**: {e.get('fio')}, {e.get('qemu_img')}, {e.get('gnuplot')}")
    L.append(f"- **Scratch**: `{e.get('scratch', {}).get('dir')}` on "
             f"{e.get('scratch', {}).get('filesystem')} ({e.get('scratch', {}).get('device')})")
    L.append(f"- **loop-lvm**: {e.get('loop_lvm')}")
    for n in e.get("notes") or []:
        L.append(f"- **Note**: {n}")
    dl = e.get("direct_lvm")
    L.append("- **direct-lvm**: " + (f"{dl['kind']} — {dl['detail']}; {dl['engine']}"
                                      if dl else "not measured in this run"))
    L.append(f"- **overlayfs**: {e.get('overlayfs')}")
    if run.kernel:
        k = run.kernel
        src = e.get("kernel_dm_thin") if k["run"] is not run else "this run's kernel twins"
        L.append(f"- **kernel dm-thin**: {where(k)}"
                 f"{' (emulated: ratios only)' if emulated(k) else ''}; {src}"
                 " — see *Kernel dm-thin beside libthinp* below")
    else:
        L.append(f"- **kernel dm-thin**: {run.kernel_error or e.get('kernel_dm_thin')}")
    L.append(f"- **Command**: `{e.get('command')}` ({e.get('options', {}).get('repeat')} "
             f"repetitions, interleaved; {e.get('elapsed_s', '?')} s)")
    L.append("")
    L.append("Files: [summary.csv](summary.csv) (one row per case × step × class), "
             "[env.json](env.json), [cases.json](cases.json) (every repetition), "
             "[commands.md](commands.md) (exact commands), `fio/` (fio JSON), `stats/` "
             "(the engine's per-class JSON), `charts/`" +
             (", [kernel.csv](kernel.csv) (each kernel step beside libthinp's" +
              (f"; the merged VM run's rows in `{KERNEL_DIR}/`" if run.kernel["run"] is not run
               else "") + ")" if run.kernel else "") + ".")
    L.append("")
    L.append("## Method")
    L.append("")
    L.append(
        "Every case runs once per repetition and the repetitions are interleaved (all cases of "
        "repetition 1, then of repetition 2, ...). A case's cost is the mean per IO in one "
        "repetition (fio's total latency `lat`, slat+clat; for `qemu-img bench`, run time / "
        "count; with fsyncs, (write time + fsync time) / writes); the tables show the median "
        "over repetitions and [min–max]. Every ratio (× raw, × qcow2) is taken inside one "
        "repetition between two cases of the same workload, run within seconds of each other "
        "on the same store (each repetition shuffles the order of the workloads and of the "
        "backends inside each workload), then its median [min–max] is shown. Per-class latencies (`write_provision`, `write_cow`, ...) are the "
        "engine's own: time inside the libthinp call, without fio's overhead. *bytes amp* = "
        "(data written + data zeroed + metadata written) / bytes requested, the library's exact "
        "counters; CoW's copy read is in `read_amp` in summary.csv. *alloc/IO* = pool (or file, "
        "or image) space allocated per IO. First-write cases never touch a block twice (iologs: "
        "one write per block). Baselines: *raw* = the same fio job on the backing store (loop-lvm: "
        "a sparse file, buffered; direct-lvm: the data device, O_DIRECT); *qcow2* = 64 KiB "
        "clusters, `qemu-img bench` in-process (cache=writeback/threads for loop-lvm, "
        "cache=none/native for direct-lvm) against `qemu-img bench` on a raw image, and qemu-nbd "
        "on a unix socket + fio's nbd engine against the same on a raw image.")
    L.append("")
    failed = [r for r in run.rows if r.get("status", "ok") != "ok" and r["class"] == "all"]
    if failed:
        L.append("## Failed or skipped cases")
        L.append("")
        seen = set()
        for r in failed:
            if r["case"] in seen:
                continue
            seen.add(r["case"])
            errs = {x.get("error") for x in run.cases[r["case"]]["reps"] if x.get("error")}
            L.append(f"- `{r['case']}`: {r['status']} — {'; '.join(sorted(errs))[:300]}")
        L.append("")
    L.append("## Headline")
    L.append("")
    L.append(headline_table(run))
    L.append("")
    if run.kernel or run.kernel_error:
        L += kernel_section(run)
    if made:
        L.append("## Charts")
        L.append("")
        for m in made:
            L.append(f"### {CHART_TEXT.get(m, m)}")
            L.append("")
            L.append(f"![{CHART_TEXT.get(m, m)}](charts/{m}.png)")
            L.append("")
            L.append(f"[SVG](charts/{m}.svg) · [data](charts/{m}.dat) · [gnuplot](charts/{m}.gp)")
            L.append("")
    for scen, title in SCEN_TITLES:
        if not any(c["scenario"] == scen for c in run.cases.values()):
            continue
        L.append(f"## {title}")
        L.append("")
        L.append(f"Job file: [scenarios/jobs/{JOBFILE[scen]}]({rel_jobs(run)}/{JOBFILE[scen]}). "
                 f"Reproduce: `{reproduce(run, scen)}`.")
        L.append("")
        if scen == "fill":
            L.append(fill_text(run))
            L.append("")
        if scen == "seed":
            L.append(seed_text(run))
            L.append("")
        L.append(case_table(run, scen))
        L.append("")
    for scen, title in DOCKER_TITLES:
        text = docker_text(run, scen)
        if text:  # (links from the page are relative to the repository; here to the run)
            L += [f"## {title}", "", text.replace("](scenarios/jobs/", f"]({rel_jobs(run)}/"),
                  ""]
    L += plan_section(run.dir)
    with open(os.path.join(run.dir, "report.md"), "w") as f:
        f.write("\n".join(L) + "\n")



def rel_jobs(run):
    return os.path.relpath(os.path.join(ROOT, "scenarios", "jobs"), os.path.abspath(run.dir))



def build(d):
    run = Run(d)
    write_csv(run)
    write_kernel_csv(run)
    made = charts(run)
    write_commands(run)
    write_report(run, made)
    return run
