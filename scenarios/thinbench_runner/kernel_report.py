"""The kernel's part of report.md and BENCHMARKS.md: the section (the kernel twins' steps
beside libthinp's: cost, bytes per IO on each device, loop-lvm ÷ direct-lvm on both), the
headline's kernel cell and its footnote. Every figure comes from the run with the kernel rows
(kernel_results.kernel_of: the run itself or its merged kernel/ dir)."""
import statistics

from . import kernel_autoextend, kernel_facts, kernel_fidelity as kf
from .kernel_results import KERNEL_DIR, MODE_SETUP, emulated
from .kernel_tables import (bytes_table, claim_lines, claim_table, cost_table, data_agreement,
                            meta_ratios)


def pair_of(k, i, step):
    """The step pair whose libthinp side is case I's STEP, or None."""
    return next((p for p in k["pairs"] if p["thinp_case"] == i and p["step"] == step), None)


def kernel_cell(run, i, step):
    """The headline's kernel column for libthinp's case I, STEP: its kernel twin's cost."""
    k = run.kernel
    p = pair_of(k, i, step) if k else None
    if not p or p["kernel_ratio_raw"] is None:
        return "—"
    if emulated(k):
        return (f"{p['kernel_ratio_raw']:.2f}× raw (libthinp {p['thinp_ratio_raw']:.2f}×) ²"
                if p["thinp_ratio_raw"] is not None else f"{p['kernel_ratio_raw']:.2f}× raw ²")
    return f"{p['kernel_us']:.1f} µs, {p['kernel_ratio_raw']:.2f}× raw ²"


def kernel_note(run):
    """The headline's footnote ² for the kernel column."""
    k = run.kernel
    if emulated(k):
        return ("² kernel dm-thin: the same case's kernel twin (`...kernel.loop` / "
                "`...kernel.direct`), its cost ÷ its raw baseline, and libthinp's same ratio, "
                f"both measured in one qemu VM boot ({(k['accel'] or 'accelerator unknown').upper()}"
                ", emulated): only ratios compare with the columns to the left. See the kernel "
                "section.")
    return ("² kernel dm-thin: the same case's kernel twin (`...kernel.loop` / "
            "`...kernel.direct`) measured " + ("in this run" if k["run"].dir == run.dir else
                                               "in the merged run") +
            " natively: its mean µs per IO and × its raw baseline. See the kernel section.")


def source_sentence(run, k, prefix):
    """Where the rows are: this run, or the merged VM run in kernel/."""
    if k["run"].dir == run.dir:
        return ("The kernel twins ran in this run, interleaved with libthinp's cases in each "
                "repetition: their rows are in [summary.csv](" + prefix + "summary.csv) and "
                "[kernel.csv](" + prefix + "kernel.csv).")
    src = run.env.get("kernel_dm_thin") or "a separate run"
    return (f"The kernel twins and libthinp's cases beside them come from {src}; that run's "
            f"cases.json, env.json and vm/ are in [{KERNEL_DIR}/]({prefix}{KERNEL_DIR}/), the "
            f"pairs in [kernel.csv]({prefix}kernel.csv). They are compared with each other, "
            "not with this run's host rows.")


def kernel_section(run, prefix=""):
    """The report's section on the kernel (a list of markdown lines); PREFIX is put before
    every link (BENCHMARKS.md links into the run dir)."""
    k = run.kernel
    L = ["## Kernel dm-thin beside libthinp", ""]
    if not k:
        if run.kernel_error:
            L += [f"The run's kernel rows cannot be used: {run.kernel_error}", ""]
        return L
    emu = emulated(k)
    reps = k["reps"]
    L.append(f"Measured {kernel_facts.where(k)}. " + source_sentence(run, k, prefix))
    L.append("")
    fe = kernel_facts.fio_engine(k)
    L.append("Every kernel case is the twin of libthinp's case of the same scenario, "
             "parameters and set-up: the same job file, section, iolog and sizes, stock fio "
             f"({fe or 'psync'}, direct=1) on `/dev/mapper/<thin>` of a real dm-thin pool "
             "(docs/kernel-backend.md). Pools: " +
             "; ".join(f"{MODE_SETUP.get(m, m)}: {t}" for m, t in
                       sorted(kernel_facts.pool_tables(k).items())) + ".")
    L.append("")
    if emu:
        L.append("**The kernel ran emulated**, so absolute times mean nothing beside a host's "
                 "and are not shown: each step's cost is given as the ratio of its mean "
                 "latency to the same backend's overwrite steady state (same set-up and write "
                 "size) and to the case's raw baseline, each ratio taken inside one repetition "
                 "of the same boot" + (f", median of {reps} repetitions." if reps > 1 else
                                       " (one repetition: under TCG a single ratio can be far "
                                       "off)."))
    else:
        L.append("The kernel ran natively: the mean µs per IO (median of "
                 f"{reps} repetition{'s' if reps > 1 else ''}) are shown beside the ratios.")
    L.append("")
    for setup in k["setups"]:
        L += [f"### {setup}: cost", ""] + cost_table(k, setup) + [""]
    if "loop-lvm" in k["setups"]:
        L += ["— where the twin has no overwrite case of its write size. The raw baseline of "
              "loop-lvm is fio on the backing file through the page cache (buffered, as "
              "Docker's loop devices were); the kernel's IO goes with direct=1 through dm-thin "
              "and the loop driver, so its × raw there holds that hop too; direct-lvm's raw "
              "baseline is the data disk itself, O_DIRECT.", ""]
    L += fidelity_section(k)
    ok, n, bad = data_agreement(k)
    mr = meta_ratios(k)
    L += ["### Bytes per IO on the devices", "",
          "The kernel's from the `/sys/block` counters of the devices dm-thin's bios reached "
          "(loop-lvm: the two loop devices; direct-lvm: the pool's `_tdata` and `_tmeta` LVs), "
          "libthinp's from its exact counters (data written includes its zeroing, as the "
          "kernel's does); `=` where the two agree within 0.5%. "
          f"**Data device: the same bytes read and written per IO in {ok} of {n} steps**" +
          (" (not: " + "; ".join(bad[:12]) + (" …" if len(bad) > 12 else "") + ")." if bad
           else ".") +
          (f" Metadata: the kernel wrote a median {statistics.median(mr):.2f}× libthinp's bytes "
           f"per IO (from {mr[0]:.2f}× to {mr[-1]:.2f}×, {len(mr)} steps where both wrote "
           "some); the kernel also commits on its 1 s timer, which fires more often per IO "
           "the slower the machine." if mr else ""), ""]
    for setup in k["setups"]:
        L += [f"#### {setup}", ""] + bytes_table(k, setup) + [""]
    L += commit_section(k) + time_section(k)
    lines, ld = claim_lines(k)
    L += ["### The seed's claim: loop-lvm performs poorly vs direct-lvm", "",
          "Each step's mean latency in loop-lvm ÷ the same step in direct-lvm, per backend "
          "(> 1: loop-lvm slower)" + (", in the same emulated boot: loop-lvm's files sit on "
                                      "ext4 on one virtual disk, direct-lvm uses another "
                                      "virtual disk of the same kind." if emu else "."), ""]
    L += lines + [""]
    if ld["kernel"] or ld["thinp"]:
        L += claim_table(ld) + [""]
    L += autoextend_section(k)
    return L


def autoextend_section(k):
    """What LVM's autoextend profile did to the kernel's direct-lvm pool (the run's
    autoextend.kernel.direct case); nothing without the case."""
    seen = kernel_autoextend.seen(k["run"].cases)
    if not seen:
        return []
    return ["### direct-lvm: LVM's autoextend profile", "",
            "The seed's profile (grow by 20% at 80% full) on the kernel's LVM thin pool: one thin "
            "filled below, then above the threshold (case `autoextend.kernel.direct`; "
            "docs/kernel-backend.md).", ""] + [f"- {s}" for s in seen] + [""]


def reps_words(rows):
    n = max((r["reps"] for r in rows), default=0)
    return (f"median of the per-repetition ratios over {n} repetitions, [min–max] beside it"
            if n > 1 else "one repetition: under TCG a single ratio can be far off")


def fidelity_section(k):
    """Issue 11's class ÷ overwrite target: provision and CoW at 4 and 64 KiB, both set-ups."""
    rows = kf.fidelity_rows(k)
    if not rows:
        return []
    return ["### Fidelity: class ÷ overwrite, kernel and libthinp", "",
            "Each provision (first write, zeroing off and on) and CoW step (first write to a "
            "shared block, second pass) at 4 KiB and 64 KiB: its mean latency ÷ the same "
            "backend's overwrite steady state of the same set-up and write size, inside one "
            "repetition of the same boot; libthinp's ratio ÷ the kernel's in the same "
            f"repetition ({reps_words(rows)}). The target (issue 11): within ±25%, judged on "
            "the median. " + kf.count_line(rows, k["setups"]), ""] + kf.fidelity_table(rows) + [
            ""] + gap_section(rows)


def gap_section(rows):
    """The fidelity gaps split into the time table's parts (nothing without time fields)."""
    gaps = kf.gap_table(rows)
    if len(gaps) <= 2:
        return []
    return ["Where each gap comes from, measured: per repetition, each backend's step per IO "
            "split into the time its data device was busy, its metadata device was busy and "
            "the rest (CPU: mapping, locks, copies, emulation), each ÷ the same backend's "
            "overwrite mean latency, so the three parts add up to its class ÷ overwrite "
            "ratio; libthinp's part − the kernel's, median over repetitions (in overwrites; "
            "> 0: libthinp spends more there). The parts' medians need not add up to the "
            "gap's median.", ""] + gaps + [""]


def commit_section(k):
    """Metadata bytes per commit beside each other (issue 11's ±10% target)."""
    rows = kf.commit_rows(k)
    judged, per, none = kf.commit_count(rows, k["setups"])
    if not rows:
        return []
    L = ["### Metadata bytes per commit", "",
         "Each step's metadata bytes written ÷ its commits (median over repetitions). "
         "libthinp counts its commits; the kernel's are counted from flushes: loop-lvm's "
         "metadata loop device takes two per commit (persistent-data's two phases); "
         "direct-lvm's `_tmeta` is a dm-linear LV that accounts no flushes, so its commits "
         "are counted on the disk under it, which `_tdata` shares: three flushes per commit "
         "there (dm-thin flushes the data device before each commit, then the metadata "
         "device's two). " +
         (f"**Within ±10% in {sum(r[4] for r in judged)} of {len(judged)} steps** (" +
          ", ".join(per) + ")." if judged else "No step has commits on both sides.") +
         (" No kernel commit count in " + ", ".join(none) + " (no flush seen)." if none
          else "") +
         (" Emulated, the kernel's 1 s timer can commit during a slow step: the same "
          "changes split over more commits, fewer bytes each (docs/kernel-backend.md)."
          if emulated(k) else ""), ""]
    for setup in k["setups"]:
        L += [f"#### {setup}", ""] + kf.commit_table(rows, setup) + [""]
    return L


def time_section(k):
    """Per IO: total latency, data and metadata devices' busy time, the rest."""
    rows = kf.time_rows(k)
    if not rows:
        return []
    busy, io = kf.window_check(rows)
    L = ["### Where the time goes", "",
         "Per IO, median over repetitions, kernel / libthinp (µs, the share of the total in "
         "brackets): the step's mean latency; the time its data and its metadata device were "
         "busy (`/sys/block` io_ticks over the counted window ÷ the step's IOs: loop-lvm's "
         "loop devices on both backends; direct-lvm's `_tdata`/`_tmeta` LVs for the kernel, "
         "the raw disks for libthinp); the rest, total − both, is CPU: mapping lookups, "
         "locks, copies, and here the emulation; the counted window ÷ the IOs last. The "
         "devices' counters cover that window, which can hold more than the IOs (" +
         kf.kernel_window_note(rows) + "; " + kf.window_note(rows) + "; the "
         "table's last column names it), so a busy time can exceed the "
         "IOs' latency — device work off the IOs' path — and the rest then goes below 0. " +
         (f"Checked: no device was busy longer than its window (at most {busy:.0%} of it), "
          if busy is not None and busy <= 1.0 else
          f"**A device was busy {busy:.0%} of its window: a counter is wrong**, "
          if busy is not None else "") +
         (f"and fio's IOs took at most {io:.0%} of it." if io is not None and io <= 1.0 else
          f"and fio's IOs took {io:.0%} of the window: **the window is wrong**." if io
          is not None else ""), ""]
    for setup in k["setups"]:
        L += [f"#### {setup}", ""] + kf.time_table(rows, setup) + [""]
    return L
