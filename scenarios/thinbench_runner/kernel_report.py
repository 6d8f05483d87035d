"""The kernel's part of report.md and BENCHMARKS.md: the section (ratios within the VM beside
libthinp's, host reference, what the kernel dir says besides costs, autoextend), the charts,
and the headline's kernel cell. Every fact about the kernel and its VM comes from the run's
kernel dir (kernel_results, kernel_facts); one the dir does not hold is left out."""
import os

from . import kernel_facts
from .gnuplot import Chart, categorical
from .kernel_tables import ratio_tables
from .kernel_results import (KERNEL_CASE_TEXT, KERNEL_DIR, KERNEL_ENGINES, KERNEL_RATIO_CASES,
                             KERNEL_SETUPS, emulated, kernel_ratio, kernel_rows, kernel_spread)
from .units import KiB, MODE_LABEL, bs_bytes, human

KERNEL_COLORS = {"provision": ("#1f77b4", "#74a9cf"), "cow": ("#d62728", "#fc9272"),
                 "cow-overwrite": ("#2ca02c", "#a1d99b")}


def chart_kernel(run):
    """Per setup: the kernel's ratios beside libthinp's, both measured in the same VM."""
    k = run.kernel
    if not k:
        return []
    out = []
    for setup in k["setups"]:
        mode = KERNEL_SETUPS[setup]
        c = Chart(run, f"kernel-ratios-{mode}",
                  f"{setup} in one qemu VM ({k['accel'] or 'accelerator unknown'}"
                  f"{', emulated' if emulated(k) else ''}): kernel dm-thin vs libthinp, "
                  "mean write latency ÷ overwrite (same engine, same size)",
                  "write size", "÷ overwrite mean (log scale" +
                  (f"; median of {k['reps']} repetitions, bars: min–max)" if k["reps"] > 1
                   else ")"))
        bars = k["reps"] > 1
        for case in KERNEL_RATIO_CASES:
            for n, engine in enumerate(KERNEL_ENGINES):
                pts = []
                for bs in k["bs"]:
                    sp = kernel_spread(k, setup, engine, bs, case)
                    x = bs_bytes(bs) // KiB
                    pts.append((x, None) if not sp else (x,) + sp[:3] if bars else (x, sp[0]))
                st = (f"linespoints lw {3 if engine == 'kernel' else 2} "
                      f"pt {7 if engine == 'kernel' else 6} ps 1.4 "
                      f"dt {1 if engine == 'kernel' else 2} lc rgb '{KERNEL_COLORS[case][n]}'")
                c.add(f"{engine}: {KERNEL_CASE_TEXT[case]}", pts, st, errorbars=bars)
        c.settings = categorical(c) + [
            "set logscale y 2", "set format y '%g'",
            "set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 1 lc rgb 'black'"]
        r = c.render()
        if r:
            out.append(r)
    return out


def autoextend_lines(text):
    """The autoextend check of kernel_perf-guest.sh (direct-lvm, the profile in its first
    line) in words."""
    if not text:
        return ["No autoextend.txt in the kernel results: the check did not run or was not "
                "copied."]
    prof = kernel_facts.autoextend_profile(text)
    kv = {}
    for line in text.splitlines():
        for tag in ("below", "above", "after_vgextend"):
            if line.startswith(tag + ":"):
                kv[tag] = dict(w.split("=", 1) for w in line.split(":", 1)[1].split()
                               if "=" in w)

    def num(d, key):
        try:
            return float(d.get(key))
        except (TypeError, ValueError):
            return None
    L = []
    b, a, v = kv.get("below", {}), kv.get("above", {}), kv.get("after_vgextend", {})
    s0 = num(b, "size_mb")
    if b:
        s1 = num(b, "size_after_mb")
        grew = s0 is not None and s1 is not None and s1 > s0
        L.append(f"- Below the threshold (data {b.get('data_percent', '?')} %): `lvextend "
                 f"--use-policies` exit {b.get('lvextend_rc', '?')}, pool {b.get('size_mb', '?')} → "
                 f"{b.get('size_after_mb', '?')} MiB — "
                 + ("**extended below the threshold (unexpected)**" if grew else
                    "not extended, as expected"))
    fired = False
    if a:
        s2 = num(a, "size_mb")
        grew = s0 is not None and s2 is not None and s2 > s0
        fired |= grew
        why = ""
        m = [l for l in text.splitlines() if l.startswith("above_lvextend_output:")]
        if m and not grew:
            why = " (" + m[0].split(":", 1)[1].strip().split("  ")[0].strip() + ")"
        L.append(f"- Above it (after writing {a.get('wrote_mb', '?')} MiB: data "
                 f"{a.get('data_percent', '?')} %): exit {a.get('lvextend_rc', '?')}, pool "
                 f"{a.get('size_mb', '?')} MiB — " +
                 ("extended by the policy" if grew else
                  f"the policy asked for an extension, the volume group had no room{why}"))
    if v:
        s3 = num(v, "size_mb")
        grew = s0 is not None and s3 is not None and s3 > s0 and v.get("lvextend_rc") == "0"
        fired |= grew
        L.append(f"- After `vgextend` with a spare disk: exit {v.get('lvextend_rc', '?')}, pool "
                 f"{b.get('size_mb', '?')} → {v.get('size_mb', '?')} MiB (data "
                 f"{v.get('data_percent', '?')} %) — " +
                 (("extended by the policy" + (f"'s {prof[1]} %" if prof else ""))
                  if grew else "not extended"))
    if not L:
        return ["autoextend.txt has no below/above lines: see the raw text."]
    above = f" above {prof[0]} %" if prof else " above the threshold"
    L.insert(0, "**Autoextend " + (f"fired**{above} (and not below)." if fired and not (
        b and (num(b, "size_after_mb") or 0) > (s0 or 0)) else "did not fire as expected.**"))
    return L


def kernel_cell(run, i, step):
    """The headline's kernel column for case I, STEP: the VM's kernel ratio and libthinp's."""
    k = run.kernel
    c = run.cases.get(i)
    if not k or not c:
        return "—"
    p, scen = c["params"], c["scenario"]
    bs = human(p.get("bs")) if p.get("bs") else None
    case = {("alloc", "first-write"): "provision", ("cow", "first"): "cow",
            ("cow", "second"): "cow-overwrite"}.get((scen, step))
    if not case or not bs or (scen == "alloc" and p.get("zero")):
        return "—"
    setup = MODE_LABEL[c["mode"]]
    kr = kernel_ratio(k, setup, "kernel", bs, case)
    lr = kernel_ratio(k, setup, "libthinp", bs, case)
    if kr is None:
        return "—"
    return f"{kr:.2f}× ow (libthinp {lr:.2f}×) ²" if lr is not None else f"{kr:.2f}× ow ²"


ORDER_TEXT = {
    "alternate": "the kernel's and libthinp's repetitions alternate in the same boot",
    "kernel first": "all kernel repetitions ran before all libthinp ones",
    "libthinp first": "all libthinp repetitions ran before all kernel ones",
}


def order_sentence(f):
    """How the engines' repetitions were ordered in each set-up (times.tsv), or ''."""
    parts = [f"{s}: {ORDER_TEXT[o]}" + ("" if o == "alternate" else " (minutes apart)")
             for s, o in f["order"].items()]
    if not parts:
        return ""
    return " " + "; ".join(parts) + " (times.tsv; why: docs/vm-harness.md)."


def setup_sentence(f):
    """The two set-ups, with the pools' block size and zeroing as the kernel's tables say."""
    t = f["tables"]
    lo = f" ({kernel_facts.block_text(t['loop-lvm'])})" if "loop-lvm" in t else ""
    di = f" ({kernel_facts.block_text(t['direct-lvm'])})" if "direct-lvm" in t else ""
    return (f"loop-lvm: Docker's loop preset, loop devices over sparse files{lo}; "
            f"direct-lvm: the seed's LVM thin pool on a virtio disk{di}.")


def checks_lines(f):
    """The pool-block checks per set-up (both engines on one line), in words; [] without
    them."""
    ch = f["checks"]
    if not ch:
        return []
    L = []
    for setup in dict.fromkeys(s for s, _ in ch):
        parts, bad = [], []
        for engine in ("kernel", "libthinp"):
            c = ch.get((setup, engine))
            if c:
                parts.append(f"{engine} {c['ok']} of {c['n']}")
                bad += [f"{engine} {case} {bs} r{rep}: {got} blocks, expected {exp}"
                        for case, bs, rep, got, exp in c["bad"][:6]]
        L.append(f"- {setup}: " + ", ".join(parts) + " case repetitions as implied" +
                 ("; not: " + "; ".join(bad) if bad else "") + ".")
    return L


def kernel_section(run, prefix="", charts_made=()):
    """The report's section on the kernel (a list of markdown lines); PREFIX is put before
    every link (BENCHMARKS.md links into the run dir)."""
    k = run.kernel
    L = ["## Kernel dm-thin in a VM, beside libthinp", ""]
    if not k:
        if run.kernel_error:
            L += [f"The run has a `{KERNEL_DIR}/` dir, but its results cannot be used: "
                  f"{run.kernel_error}", ""]
        return L
    f = kernel_facts.facts(k)
    acc = k["accel"] or "unknown"
    src = run.env.get("kernel_dm_thin") or ""
    L.append(("**The guest was emulated** (qemu " + acc.upper() + ", software emulation"
              if emulated(k) else f"**The guest ran under {acc.upper()}**") +
             (f"; accelerator from {k['accel_source']}" if k["accel_source"] else
              "; no accel.txt: accelerator unknown, treated as emulated") +
             (f" — {k['accel_reason']}" if k["accel_reason"] else "") + "). "
             "Absolute IOPS and latencies in the VM are not comparable with the host numbers "
             "of this report, nor between the two set-ups; only **ratios within the VM** are "
             "shown: a case's mean write latency ÷ the overwrite mean of the same engine, "
             "set-up and write size, on the same device, in the same boot.")
    L.append("")
    if k["reps"] > 1:
        L.append(f"**{k['reps']} repetitions** of every case in the VM, each on a fresh thin "
                 "and a fresh snapshot; a ratio is taken inside one repetition (against that "
                 "repetition's overwrite) and shown as the **median [min–max]** over the "
                 "repetitions." + order_sentence(f))
    else:
        L.append("**One measurement per case** in the VM (kernel_perf's CSV has no repetitions, "
                 "or they were set to 1): under TCG a single ratio can be far off (`make vm-perf` "
                 "repeats every case 3 times by default); no spread is shown.")
    L.append("")
    vt, g = k["vm_times"], k["guest"]
    L.append((f"Source: {src}. " if src else "") +
             f"Harness: `tests/vm/kernel_perf.sh{' --quick' if k['quick'] else ''}"
             f"{' --reps ' + str(k['reps']) if k['has_reps'] else ''}`; guest "
             f"kernel {g.get('kernel', '?')}, "
             f"{g.get('fio', 'fio ?')}, {g.get('cpus', '?')} vCPUs ({k['accel_detail'] or '?'}); "
             f"VM wall time {vt.get('wall_s', '?')} s. QD1, direct=1, fio replaying a seeded "
             "shuffled log of writes into distinct pool blocks; the same log for the kernel "
             "and for libthinp (fio's thinp engine) on the same backing. " + setup_sentence(f) +
             " Files: "
             f"[kernel.csv]({prefix}kernel.csv) (these ratios, with the VM's mean latencies), "
             f"[{KERNEL_DIR}/kernel_perf.csv]({prefix}{KERNEL_DIR}/kernel_perf.csv) (every "
             "case: IOPS, mean/p50/p99)" +
             (f", [{KERNEL_DIR}/summary.md]({prefix}{KERNEL_DIR}/summary.md) (tables, block "
              "checks)" if os.path.exists(os.path.join(run.dir, KERNEL_DIR, "summary.md"))
              else "") + ".")
    L.append("")
    L.append("*libthinp, host* is this run's libthinp on the host for reference — a different "
             "machine (not emulated), workload and layout (64 KiB blocks in both modes; "
             "direct-lvm there is a loop device with direct I/O, not LVM): the median [min–max] "
             "over repetitions of (provision: `alloc` random order, zeroing off; CoW: `cow` "
             "first pass; overwrite after CoW: its second pass) ÷ `overwrite` steady state, "
             "same mode and size; — where the run has no such case.")
    L.append("")
    L += ratio_tables(run, kernel_rows(run), prefix, charts_made)
    checks = checks_lines(f)
    if checks:
        L += ["### Pool blocks allocated, kernel and libthinp", "",
              "Pool data blocks each case used (the pool's status before and after it: "
              f"`{KERNEL_DIR}/checks.tsv`) against what its writes imply (one block per write "
              "and per pool block it covers for provision and CoW, none for the overwrites; "
              "the writes counted in the iologs, the block size from the kernel's pool table):",
              ""] + checks + [""]
    prof = f["autoextend_profile"]
    L.append("### Autoextend (direct-lvm" + (f", profile threshold {prof[0]} %, extend by "
                                             f"{prof[1]} %" if prof else "") + ")")
    L.append("")
    L.append("dmeventd does not run in the guest, so the check runs `lvextend --use-policies` "
             "itself (what dmeventd's thin plugin calls) below and above "
             + (f"{prof[0]} %" if prof else "the threshold") + " data use.")
    L.append("")
    L += autoextend_lines(k["autoextend"])
    if k["autoextend"]:
        L += ["", f"Raw: [{KERNEL_DIR}/autoextend.txt]({prefix}{KERNEL_DIR}/autoextend.txt)."]
    L.append("")
    return L
