"""BENCHMARKS.md from one run of scenarios/run (`scenarios/benchmarks RUN_DIR`).

Every number and every finding on the page comes from RUN_DIR's files (cases.json, env.json,
the kernel dir, the micro-benchmarks' bench_threads.txt, bench_metadata.json and
commit_syscalls.txt): nothing is typed by hand, and what the run does not hold the page does not
say. Verdicts on the seed's claims are rules over those numbers, with named thresholds
(claims.py), the rule printed next to each verdict.

  scenarios/benchmarks results/2026-11-27-host-abc1234     # rewrite BENCHMARKS.md
  scenarios/benchmarks --stdout RUN_DIR                     # print instead
"""
import argparse
import glob
import os
import sys

from . import ROOT
from .charts import CHART_TEXT
from .claims import claims, observations
from .docker_claims import docker_claims
from .docker_report import DOCKER_TITLES, docker_text
from .goals import goal_rows
from .kernel_report import kernel_section
from .kernel_results import KERNEL_NOTE
from .plan_report import section as plan_section
from .report_text import fill_text, headline_table, seed_text
from .rundata import Run
from .units import fbytes


def page(run, d, rel):
    """The page's markdown for the run in D, linked as REL from the page."""
    e = run.env
    command = (e.get("command") or "").strip()
    command = ("`make bench` (`scenarios/run`, the quick matrix)" if command == "scenarios/run"
               else f"`{command}`")
    L = ["# thinbench benchmarks", "",
         f"Every number on this page comes from one run, [`{rel}/`]({rel}/report.md), and was "
         f"written here by `scenarios/benchmarks {rel}` from that run's files "
         f"([summary.csv]({rel}/summary.csv), [cases.json]({rel}/cases.json)). "
         "Nothing is typed by hand: to refresh, run `make bench` and then "
         "`scenarios/benchmarks results/<new run>`.", "",
         "## Machine", "",
         f"{e.get('cpu')}, {e.get('cpus')} CPUs, {fbytes(e.get('memory_bytes'))} RAM "
         f"({e.get('virtualization') or 'no hypervisor detected'}); kernel {e.get('kernel')}; "
         f"{e.get('os')}; {e.get('fio')}; {e.get('qemu_img')}. Scratch: "
         f"{e.get('scratch', {}).get('filesystem')} on {e.get('scratch', {}).get('device')}. "
         f"Commit `{e.get('git_describe')}`{' (dirty tree)' if e.get('git_dirty') else ''}, "
         f"{e.get('date')}.", "",
         "- **loop-lvm**: " + str(e.get("loop_lvm")),
         *[f"- **Note**: {n}" for n in e.get("notes") or []],
         "- **direct-lvm**: " + (f"{e['direct_lvm']['kind']}; {e['direct_lvm']['engine']}"
                                 if e.get("direct_lvm") else "not measured"),
         "- **overlayfs**: " + str(e.get("overlayfs")),
         "- **kernel dm-thin**: " + str(e.get("kernel_dm_thin")), "",
         "## Method", "",
         f"{command}: {len(run.cases)} cases × {e.get('options', {}).get('repeat')} "
         "repetitions, interleaved (every case once per repetition), "
         f"{e.get('elapsed_s', '?')} s. A case's cost is the mean time per IO in one repetition "
         "(fio's total latency; `qemu-img bench`: run time / count; with fsyncs their share is "
         "included); tables give the median over repetitions. Every ratio is computed inside "
         "one repetition between two cases of the same run on the same store, then summarised "
         "as median [min–max] over repetitions. *raw* = the same fio job on the backing store "
         "(loop-lvm: a sparse file through the page cache — libthinp's loop-lvm reaches its own "
         "files through loop devices; direct-lvm: the data device with "
         "O_DIRECT); *qcow2* = 64 KiB clusters through `qemu-img bench` (in-process, like the "
         "engine) and, where marked, qemu-nbd + fio's nbd engine. First-write cases never write "
         "a block twice (iologs with one write per block). Byte counts are libthinp's exact "
         "per-class counters (the engine's `thinp_stats`). Details, every table and every exact "
         f"command: [{rel}/report.md]({rel}/report.md), [{rel}/commands.md]({rel}/commands.md); "
         "job files: [scenarios/jobs/](scenarios/jobs/).", "",
         "## Headline: cost per IO, ratios to raw and to qcow2", "",
         headline_table(run, with_cmd=True), "",
         "qcow2 × raw is qcow2 against `qemu-img bench` on a raw image in the same mode; thinp "
         "÷ qcow2 compares the engine's per-IO cost with `qemu-img bench`'s (both in-process, "
         "QD1). Each row's command reruns that case with its baselines (`--only` brings them "
         "along); all of it: `make bench`. Case ids: "
         f"[{rel}/summary.csv]({rel}/summary.csv).", "",
         "## The seed's claims, measured", "",
         "The seed is Docker's devicemapper storage-driver guide. One row per claim; the "
         "verdict follows from the rule shown (its threshold included), applied to this run's "
         "numbers.", "",
         "| claim (seed) | measured in this run | verdict | rule | reproduce |",
         "|---|---|---|---|---|"]
    for claim, meas, verdict, rule, cmd in claims(run, rel) + docker_claims(run):
        # (a pipe inside a table cell, even in a code span, must be escaped in GFM)
        cells = [x.replace("|", "\\|") for x in (claim, meas, verdict, rule, cmd)]
        L.append("| {} | {} | **{}** | {} | `{}` |".format(*cells))
    L += ["", "## Performance goals (issue #14)", "",
          "Each goal with this run's number: the matrix's cases (ratios per repetition, median "
          "[min–max]) and the micro-benchmarks `make bench` runs after the matrix into the run "
          "dir (lock scope, lookup cost at 10k / 1M / 10M mappings, the commit's syscalls).", "",
          "| goal | measured in this run | verdict | source |", "|---|---|---|---|"]
    for row in goal_rows(run):
        L.append("| {} | {} | **{}** | {} |".format(*[c.replace("|", "\\|") for c in row]))
    L += ["", "## Charts", ""]
    for name, text in CHART_TEXT.items():
        png = os.path.join(d, "charts", name + ".png")
        if os.path.exists(png):
            L += [f"### {text}", "", f"![{text}]({rel}/charts/{name}.png)", "",
                  f"[SVG]({rel}/charts/{name}.svg) · [data]({rel}/charts/{name}.dat)", ""]
    obs = observations(run)
    if obs:
        L += ["## Other observations (same run)", ""] + obs + [""]
    fill, seed = fill_text(run), seed_text(run)
    if fill:
        L += ["## Fill to full", "", fill, ""]
    if seed:
        L += ["## The seed's example: 32 KiB update of a 1 GiB file", "", seed, ""]
    for scen, title in DOCKER_TITLES:
        text = docker_text(run, scen)
        if text:
            L += [f"## {title}", "", text, ""]
    if run.kernel:  # the run's kernel section (its own twins or a merged VM run's)
        L += kernel_section(run, prefix=rel + "/")
    L += plan_section(d, rel + "/", ROOT)
    # What `make vm-test` checks is not in any run's files, so the page points to where the
    # project states it instead of restating numbers this run did not measure.
    L += ["The kernel's behaviour beyond costs (libthinp agreeing with dm-thin byte for byte, "
          "and the kernel findings of the VM tests) is checked by `make vm-test`, not by this "
          "run: see [docs/dm-thin-behaviour.md](docs/dm-thin-behaviour.md#measured-on-a-real-kernel).",
          ""]
    L += ["## Not measured yet", ""]
    if not run.kernel:
        L.append(f"- The kernel's dm-thin: {run.kernel_error or KERNEL_NOTE}.")
    L += ["- Queue depth > 1, and numjobs > 1 (the engine supports both; the matrix is QD1, "
          "the Docker-ish case the seed talks about).", ""]
    return "\n".join(L) + "\n"


def main(argv):
    ap = argparse.ArgumentParser(prog="scenarios/benchmarks", description=__doc__.split("\n")[0])
    ap.add_argument("run", nargs="?", help="run directory (default: newest results/*/)")
    ap.add_argument("--stdout", action="store_true")
    ap.add_argument("--output", default=os.path.join(ROOT, "BENCHMARKS.md"))
    a = ap.parse_args(argv)
    d = a.run
    if not d:
        runs = sorted(p for p in glob.glob(os.path.join(ROOT, "results", "*", "report.md")))
        if not runs:
            ap.error("no run under results/ (run `make bench` first)")
        d = os.path.dirname(runs[-1])
    run = Run(d)
    rel = os.path.relpath(os.path.abspath(d), os.path.dirname(os.path.abspath(a.output)))
    text = page(run, d, rel)
    if a.stdout:
        sys.stdout.write(text)
    else:
        open(a.output, "w").write(text)
        print(f"wrote {a.output} from {d}")
    return 0
