"""Tables and paragraphs shared by report.md and BENCHMARKS.md: the headline (cost per IO,
ratios to raw and qcow2, the kernel column), fill to full, the seed's example."""
from .case import cid
from .kernel_report import kernel_cell, kernel_note
from .kernel_results import KERNEL_NOTE
from .units import KiB, MiB, MODE_LABEL, fbytes, fnum, fratio, thinp_loop_mode


def headline_rows(run):
    """(label, thinp case, step, qcow2 case) for the headline table."""
    out = []
    lm = thinp_loop_mode(run.cases)
    for mode in (lm, "direct"):
        items = [
            ("allocate 4 KiB, zeroing off (Docker preset)", cid("alloc", "thinp", mode, False, bs=4 * KiB, order="seq"), "first-write"),
            ("allocate 4 KiB, zeroing on", cid("alloc", "thinp", mode, True, bs=4 * KiB, order="seq"), "first-write"),
            ("allocate 4 KiB, zeroing on, `thinp_cow=merged`", cid("alloc", "thinp", mode, True, cow="merged", bs=4 * KiB, order="seq"), "first-write"),
            ("allocate 56 KiB, zeroing off", cid("alloc", "thinp", mode, False, bs=56 * KiB, order="seq"), "first-write"),
            ("allocate 64 KiB (whole block)", cid("alloc", "thinp", mode, False, bs=64 * KiB, order="seq"), "first-write"),
            ("allocate 1 MiB", cid("alloc", "thinp", mode, False, bs=MiB, order="seq"), "first-write"),
            ("allocate 4 KiB, random order", cid("alloc", "thinp", mode, False, bs=4 * KiB, order="rand"), "first-write"),
            ("CoW 4 KiB first write", cid("cow", "thinp", mode, None, bs=4 * KiB, order="seq"), "first"),
            ("CoW 4 KiB first write, `thinp_cow=merged`", cid("cow", "thinp", mode, None, cow="merged", bs=4 * KiB, order="seq"), "first"),
            ("CoW 4 KiB, already broken", cid("cow", "thinp", mode, None, bs=4 * KiB, order="seq"), "second"),
            ("CoW 64 KiB first write (whole block)", cid("cow", "thinp", mode, None, bs=64 * KiB, order="seq"), "first"),
            ("overwrite 4 KiB random (steady state)", cid("overwrite", "thinp", mode, None, bs=4 * KiB), "steady"),
            ("read 4 KiB through 16 snapshots", cid("chain", "thinp", mode, None, depth=16), "read"),
            ("4 KiB first write + fsync each", cid("commit", "thinp", mode, False, fsync=1), "first-write"),
        ]
        for label, i, step in items:
            if i in run.cases and run.row(i, step):
                out.append((label, mode, i, step))
    return out



def headline_table(run, with_cmd=False):
    lines = ["| workload | mode | thinp µs/IO | × raw | × raw, p50 | qcow2 µs/IO | qcow2 × raw | "
             "thinp ÷ qcow2 | kernel dm-thin |" + (" reproduce |" if with_cmd else ""),
             "|---|---|---|---|---|---|---|---|---|" + ("---|" if with_cmd else "")]
    rep = run.env.get("options", {}).get("repeat", 3)
    for label, mode, i, step in headline_rows(run):
        r = run.row(i, step)
        q = r.get("qcow2_case")
        qr = run.row(q, step) if q else None
        lines.append("| " + " | ".join([
            label, MODE_LABEL[mode], fnum(r.get("median_us")), fratio(r),
            f"{r['ratio_raw_p50']:.2f}×" if r.get("ratio_raw_p50") is not None else "—",
            fnum(qr.get("median_us")) if qr else "—", fratio(qr) if qr else "—",
            fratio(r, "ratio_qcow2"),
            "— (libthinp's own policy)" if run.cases[i]["params"].get("cow") else
            kernel_cell(run, i, step) if run.kernel else "— ¹"]
            + ([f"`scenarios/run --only '^{i.replace('.', chr(92) + '.')}$' --repeat {rep}`"]
               if with_cmd else [])) + " |")
    lines.append("")
    lines.append("µs/IO: mean time per IO (fsyncs included where there are any), median of the "
                 "repetitions. × raw: median [min–max] of the per-repetition ratios of those "
                 "means; × raw, p50: the same for the median IO latency (fsyncs not included), "
                 "which stalls of a busy machine move less (not for fsync rows). qcow2: "
                 "`qemu-img bench` (no p50); its × raw is against `qemu-img bench` on a raw image, "
                 "so it is the format's own cost. thinp ÷ qcow2 also compares two harnesses: "
                 "qemu's block layer adds its own per-request cost even on a raw image (with "
                 "cache=writeback each request goes through a thread pool), so compare the two "
                 "× raw columns for the cost of the formats themselves.")
    lines.append("")
    if run.kernel:
        lines.append(kernel_note(run))
    else:
        lines.append(f"¹ kernel dm-thin: {run.kernel_error or KERNEL_NOTE}.")
    return "\n".join(lines)



def fill_text(run):
    L = []
    lm = thinp_loop_mode(run.cases)
    i = cid("fill", "thinp", lm, None, nospace="error-fio")
    if i in run.cases and run.row(i, "fill"):
        L.append(f"- **fio view, {MODE_LABEL[lm]}, error mode**: {fnum(run.extra(i, 'fill', 'ios'))} first "
                 f"writes (one per block of a range 1.25× the pool), "
                 f"{fnum(run.extra(i, 'fill', 'errors'))} of them refused with ENOSPC; "
                 f"provision {fnum(run.get(i, 'median_us', 'fill', 'write_provision'))} µs, then "
                 f"overwrites at 100% {fnum(run.get(i, 'median_us', 'at-full', 'write_overwrite'))} µs "
                 "(engine classes).")
    for mode in ("loop", "direct"):
        for ns in ("error", "queue"):
            i = cid("fill", "thinp-tool", mode, None, nospace=ns)
            if i not in run.cases or not run.row(i, "fill"):
                continue
            g = lambda k, cls="all": run.extra(i, "fill", k, cls)
            lat = lambda cls: run.get(i, "median_us", "fill", cls)
            s = (f"- **{MODE_LABEL[mode]}, {ns} mode** ({fnum(g('pool_blocks'))} blocks, low water "
                 f"{fnum(g('low_water_blocks'))}): the low-water event fired at timeline IO "
                 f"{fnum(g('low_water_io'))} ({fnum(g('low_water_ms'))} ms; the timeline counts the "
                 f"overwrites at 1/8 full too), the pool was full at IO "
                 f"{fnum(g('full_io'))} ({fnum(g('full_ms'))} ms). Provision "
                 f"{fnum(lat('provision'))} µs; overwrite at 1/8 full {fnum(lat('overwrite_12'))} µs, "
                 f"at 100% {fnum(lat('overwrite_100'))} µs; the first write needing a block at 100% "
                 f"returned ENOSPC after {fnum(g('first_refusal_us'))} µs"
                 + (f" (no_space_timeout {fnum(g('timeout_ms'))} ms)" if ns == "queue" else "")
                 + (f", later ones after {fnum(lat('need_block_at_100'))} µs"
                    if lat("need_block_at_100") is not None else ""))
            if g("resume_us") is not None:
                s += (f"; a write queued at 100% completed {fnum(g('resume_us') / 1e3)} ms later, "
                      "when the pool grew (resize after 100 ms)")
            L.append(s + ".")
    return "\n".join(L)



def seed_text(run):
    lm = thinp_loop_mode(run.cases)
    t = cid("seed", "thinp", lm, None, update="32k")
    o = cid("seed", "overlayfs", "loop", None, update="32k")
    L = []
    for i, name in ((t, f"block-level CoW (thinp, {MODE_LABEL[lm]})"),
                    (cid("seed", "thinp", "direct", None, update="32k"),
                     "block-level CoW (thinp, direct-lvm)"),
                    (o, "file-level copy-up (overlayfs)"),
                    (cid("seed", "raw-file", "loop", None, update="32k"),
                     "in place, no CoW (the file itself)")):
        r = run.row(i, "update")
        if not r or r.get("median_us") is None:
            if i in run.cases:
                errs = {x.get("error") for x in run.cases[i]["reps"] if x.get("error")}
                L.append(f"- {name}: not measured ({'; '.join(sorted(errs))})")
            continue
        copied = run.extra(i, "update", "copied")
        L.append(f"- {name}: {fnum(r['median_us'] / 1e3)} ms for the 32 KiB update incl. fsync "
                 f"[{fnum(r['min_us'] / 1e3)}–{fnum(r['max_us'] / 1e3)}], copied {fbytes(copied)}")
    return "\n".join(L)
