"""The kernel section's tables, one row per step of a kernel twin beside libthinp's same step:
the cost (ratios where the kernel ran emulated, absolute µs too where it ran natively), the
bytes per IO each device saw, and loop-lvm ÷ direct-lvm per backend (the seed's claim)."""
import math

from .kernel_results import emulated, loop_direct

SAME = 0.005  # bytes per IO within 0.5% of each other count as the same (counters round)


def short(p):
    """The case without its backend and mode: alloc.bs=4k.order=seq.z0."""
    return p["kernel_case"].replace(f".kernel.{p['mode']}", "")


def fr(x):
    return "—" if x is None else f"{x:.2f}×"


def fb(x):
    """Bytes per IO, whole or in KiB."""
    if x is None:
        return "—"
    if x == 0:
        return "0"
    if x >= 1024 and abs(x / 1024 - round(x / 1024)) < 0.05:
        return f"{x / 1024:.0f} KiB"
    return f"{x:.0f}" if x >= 10 else f"{x:.1f}"


def same(a, b):
    if a is None or b is None:
        return None
    return abs(a - b) <= SAME * max(abs(a), abs(b), 1)


def cost_table(k, setup):
    """Per step: the kernel's and libthinp's cost; emulated: ÷ overwrite and ÷ raw only."""
    emu = emulated(k)
    head = ("| case | step | IOs | kernel ÷ overwrite | libthinp ÷ overwrite | kernel ÷ raw | "
            "libthinp ÷ raw |" + ("" if emu else " kernel µs | libthinp µs | libthinp ÷ kernel |"))
    L = [head, "|---|---|---:|---:|---:|---:|---:|" + ("" if emu else "---:|---:|---:|")]
    for p in k["pairs"]:
        if p["setup"] != setup:
            continue
        cells = [f"`{short(p)}`", p["step"], f"{p['ios']:.0f}" if p["ios"] else "—",
                 fr(p["kernel_ratio_overwrite"]), fr(p["thinp_ratio_overwrite"]),
                 fr(p["kernel_ratio_raw"]), fr(p["thinp_ratio_raw"])]
        if not emu:
            us = lambda x: "—" if x is None else f"{x:.1f}"
            cells += [us(p["kernel_us"]), us(p["thinp_us"]), fr(p["thinp_vs_kernel"])]
        L.append("| " + " | ".join(cells) + " |")
    return L


def bytes_table(k, setup):
    """Per step: bytes per IO on the data device (read, written) and the metadata device
    (written), kernel / libthinp; '=' where they are the same."""
    L = ["| case | step | data read/IO, kernel / libthinp | data written/IO | "
         "metadata written/IO |", "|---|---|---:|---:|---:|"]
    for p in k["pairs"]:
        if p["setup"] != setup:
            continue
        cells = [f"`{short(p)}`", p["step"]]
        for key in ("data_read", "data_written", "meta_written"):
            a, b = p[f"kernel_{key}_per_io"], p[f"thinp_{key}_per_io"]
            cells.append(f"{fb(a)} / {fb(b)}" + (" =" if same(a, b) else ""))
        L.append("| " + " | ".join(cells) + " |")
    return L


def data_agreement(k):
    """(steps whose data-device bytes per IO, read and written, are the same on both, steps
    with both sides' counters, the ones that differ)."""
    n, ok, bad = 0, 0, []
    for p in k["pairs"]:
        r = same(p["kernel_data_read_per_io"], p["thinp_data_read_per_io"])
        w = same(p["kernel_data_written_per_io"], p["thinp_data_written_per_io"])
        if r is None or w is None:
            continue
        n += 1
        if r and w:
            ok += 1
        else:
            bad.append(f"`{short(p)}` {p['setup']} {p['step']}")
    return ok, n, bad


def meta_ratios(k):
    """The kernel's metadata bytes per IO ÷ libthinp's, for the steps where both wrote some."""
    return sorted(p["kernel_meta_written_per_io"] / p["thinp_meta_written_per_io"]
                  for p in k["pairs"] if p["kernel_meta_written_per_io"] and
                  p["thinp_meta_written_per_io"])


def gmean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def claim_lines(k):
    """loop-lvm ÷ direct-lvm per backend: how many steps loop-lvm was slower in, the
    geometric mean and range, and the steps."""
    ld = loop_direct(k)
    L = []
    for side, name in (("kernel", "kernel dm-thin"), ("thinp", "libthinp")):
        xs = ld[side]
        if not xs:
            L.append(f"- {name}: no step ran in both set-ups.")
            continue
        rs = [r for _, _, r in xs]
        slower = sum(1 for r in rs if r > 1)
        L.append(f"- **{name}**: loop-lvm slower in {slower} of {len(rs)} steps; loop-lvm ÷ "
                 f"direct-lvm geometric mean {gmean(rs):.2f}× (from {min(rs):.2f}× to "
                 f"{max(rs):.2f}×).")
    return L, ld


def claim_table(ld):
    """Per step, loop-lvm ÷ direct-lvm on each backend."""
    keys = list(dict.fromkeys((c, s) for side in ld.values() for c, s, _ in side))
    by = {side: {(c, s): r for c, s, r in xs} for side, xs in ld.items()}
    L = ["| case | step | kernel: loop ÷ direct | libthinp: loop ÷ direct |", "|---|---|---:|---:|"]
    for c, s in keys:
        L.append(f"| `{c}` | {s} | {fr(by['kernel'].get((c, s)))} | "
                 f"{fr(by['thinp'].get((c, s)))} |")
    return L
