"""The seed's claims, measured: one row per claim (claim, what this run measured, verdict,
rule, the command that reproduces it), and a few more computed comparisons. Every verdict is
a rule over the run's numbers with a named threshold below; the rule printed beside the
verdict is written from the same constant, so the page states the threshold it used."""
from .case import cid
from .units import KiB, MiB, MODE_LABEL, fbytes, fnum, fratio, fspread, thinp_loop_mode

# A ratio above this is a cost that matters ("adds latency", "performs worse"): 10 % more
# than the same write on the raw store, beyond what the p50 ratios of identical runs move.
MATERIAL_RATIO = 1.10
# "A noticeable impact": half as much again as the raw write.
NOTICEABLE_RATIO = 1.50
# "Operates directly on the block": an overwrite of a provisioned block within this of raw.
DIRECT_WITHIN_RATIO = 1.50
# Reads "do not slow down with depth": 16 snapshots deep within this of one snapshot deep.
FLAT_DEPTH_RATIO = 1.25
# Byte and block counts are the library's exact counters: equal means equal (to this much).
EXACT_BYTES = 1
EXACT_BLOCKS = 1e-9
# direct-lvm cost ÷ loop-lvm cost above this: loop-lvm is the faster mode.
LOOP_FASTER_ABOVE = 1.0
# Goals of the CoW policies (issue #14), 4 KiB CoW on direct-lvm: the merged policy within
# this of the floor (one 64 KiB read + one 64 KiB write on the same store) and of qcow2; the
# kernel policy (its extra 4 KiB write included) within this of the floor.
MERGED_FLOOR_GOAL = 1.15
MERGED_QCOW2_GOAL = 0.80
KERNEL_FLOOR_GOAL = 1.30


def x(r):
    """'1.10×' for a threshold ratio."""
    return f"{r:.2f}×"


def rr(r, what="raw"):
    """'1.91× [1.19–2.25] raw (p50: 1.24×)': mean-based ratio and the p50-based one."""
    s = fratio(r) + " " + what
    if r.get("ratio_raw_p50") is not None:
        s += f" (p50: {r['ratio_raw_p50']:.2f}×)"
    return s


def modes_verdict(holds_in, n):
    if not holds_in:
        return "not measurable here"
    if len(holds_in) == n:
        return "holds"
    return "holds in " + " and ".join(holds_in) + " only"


def key_ratio(r):
    """The ratio a verdict uses: the p50 one when there is one (robust against the stalls of a
    shared machine), else the mean-based one."""
    return r.get("ratio_raw_p50") if r.get("ratio_raw_p50") is not None else r.get("ratio_raw")


def loop_variant(run):
    """(lm, tm): libthinp's loop-lvm variant in RUN ("loop": loop devices; "file": the file
    variant of a run without root) and MODE -> the thinp id's mode for that store mode."""
    lm = thinp_loop_mode(run.cases)
    return lm, (lambda m: lm if m == "loop" else m)


def claims(run, rel):
    """(claim, what was measured, verdict, rule, reproduce) rows."""
    out = []
    lm, tm = loop_variant(run)
    pair_ratio = lambda a, b, sa, sb=None: run.pair_ratio(a, b, sa, sb)
    fr = fspread
    rep = run.env.get("options", {}).get("repeat", 3)

    def only(*pats):
        return "scenarios/run " + " ".join(f"--only '{p}'" for p in pats) + f" --repeat {rep}"

    # 1. a 56 KB write allocates one 64 KB block
    i = cid("alloc", "thinp", lm, False, bs=56 * KiB, order="seq")
    r = run.row(i, "first-write")
    if r and r.get("alloc_per_io") is not None:
        bpi, api = r.get("blocks_per_io"), r.get("alloc_per_io")
        ok = abs(bpi - 1) < EXACT_BLOCKS and abs(api - 64 * KiB) < EXACT_BYTES
        meas = (f"56 KiB first writes at a block start: {bpi:.3g} pool block touched and "
                f"{fbytes(api)} of pool space allocated per write (thinp, {MODE_LABEL[lm]}, "
                "64 KiB blocks)")
        st = cid("alloc", "thinp", lm, False, bs=56 * KiB, order="stream")
        sr = run.row(st, "stream")
        if sr and sr.get("blocks_per_io") is not None:
            meas += (f"; a contiguous stream of 56 KiB writes straddles block boundaries: "
                     f"{sr['blocks_per_io']:.3g} blocks touched per write, "
                     f"{fbytes(sr.get('alloc_per_io'))} allocated per write")
        out.append(("“A 56 KB write allocates one 64 KB block” (a write < 64 KB still allocates "
                    "a whole 64 KB block)", meas, "holds" if ok else "does not hold",
                    "blocks/write = 1 and allocated/write = 64 KiB", only("^alloc\\.bs=56k\\.")))
    # 2. > 64 KB uses multiple blocks
    rows = []
    for bs in (128 * KiB, MiB):
        i = cid("alloc", "thinp", lm, False, bs=bs, order="seq")
        r = run.row(i, "first-write")
        if r and r.get("alloc_per_io") is not None:
            rows.append((bs, r["alloc_per_io"]))
    if rows:
        ok = all(abs(a - bs) < EXACT_BYTES for bs, a in rows)
        out.append(("“Writing more than 64KB of data uses multiple 64KB blocks”",
                    "; ".join(f"{fbytes(bs)} writes: {fbytes(a)} allocated per write "
                              f"({a / (64 * KiB):.3g} blocks)" for bs, a in rows),
                    "holds" if ok else "does not hold", "allocated/write = write size",
                    only("^alloc\\.bs=128k\\.", "^alloc\\.bs=1m\\.")))
    # 3. CoW granularity 64 KB / a 32 KB update copies one 64 KB block, not the file
    t = cid("seed", "thinp", lm, None, update="32k")
    o = cid("seed", "overlayfs", "loop", None, update="32k")
    tc = run.extra(t, "update", "copied") if t in run.cases else None
    oc = run.extra(o, "update", "copied") if o in run.cases else None
    if tc is not None:
        meas = f"block-level CoW (thinp) copied {fbytes(tc)}"
        size = run.env.get("options", {}).get("sizes", {}).get("seed")
        if oc is not None:
            tr = pair_ratio(o, t, "update")
            meas += (f"; overlayfs copy-up copied {fbytes(oc)} (the whole {fbytes(size)} file) "
                     f"and took {fr(tr)} the time of the block-level update")
            verdict = "holds" if tc == 64 * KiB and oc >= size else "does not hold"
        else:
            errs = {x.get("error") for x in run.cases.get(o, {}).get("reps", []) if x.get("error")}
            meas += "; overlayfs not measured (" + "; ".join(sorted(errs)) + ")"
            verdict = "holds (block side only)" if tc == 64 * KiB else "does not hold"
        out.append(("“Updating 32KB of a 1GB file copies a single 64KB block”, not the file "
                    "(file-level CoW copies the entire 1GB file)", meas, verdict,
                    "thinp copied = 64 KiB and overlayfs copied ≥ file size", only("^seed\\.")))
    i = cid("cow", "thinp", lm, None, bs=4 * KiB, order="seq")
    r = run.row(i, "first")
    if r and r.get("read_amp") is not None:
        copied = r["read_amp"] * (r.get("bytes_per_io") or 0)
        out.append(("“All copy-on-write operations have a 64KB granularity”",
                    f"a 4 KiB first write to a snapshot copies {fbytes(copied)} (read from the "
                    f"shared block) and writes {r['data_w_amp']:.3g}× the bytes requested",
                    "holds" if abs(copied - 64 * KiB) < EXACT_BYTES else "does not hold",
                    "bytes copied per 4 KiB CoW write = 64 KiB", only("^cow\\.bs=4k\\.order=seq\\.")))
    # 4. allocate-on-demand adds latency (small writes)
    parts, holds_in = [], []
    for mode in ("loop", "direct"):
        i = cid("alloc", "thinp", tm(mode), False, bs=4 * KiB, order="seq")
        r = run.row(i, "first-write")
        ow = cid("overwrite", "thinp", tm(mode), None, bs=4 * KiB)
        if r and r.get("ratio_raw") is not None:
            s = f"{MODE_LABEL[tm(mode)]}: 4 KiB first write {fnum(r['median_us'])} µs = {rr(r)}"
            if ow in run.cases:
                s += f", {fr(pair_ratio(i, ow, 'first-write', 'steady'))} a thinp overwrite"
            parts.append(s)
            if key_ratio(r) > MATERIAL_RATIO:
                holds_in.append(MODE_LABEL[tm(mode)])
    if parts:
        out.append(("Allocate-on-demand “may add latency to the application’s read and write "
                    "operations”", "; ".join(parts), modes_verdict(holds_in, len(parts)),
                    f"first write > {x(MATERIAL_RATIO)} the same write on the raw store "
                    "(p50 ratio)",
                    only("^alloc\\.bs=4k\\.order=seq\\.", "^overwrite\\.bs=4k\\.")))
    # 5. CoW has a noticeable impact
    parts, holds_in = [], []
    for mode in ("loop", "direct"):
        i = cid("cow", "thinp", tm(mode), None, bs=4 * KiB, order="seq")
        r = run.row(i, "first")
        if r and r.get("ratio_raw") is not None:
            parts.append(f"{MODE_LABEL[tm(mode)]}: 4 KiB CoW {fnum(r['median_us'])} µs = "
                         f"{rr(r, 'a raw overwrite')}, "
                         f"{fr(pair_ratio(i, i, 'first', 'second'))} the "
                         "second (already broken) pass")
            if key_ratio(r) > NOTICEABLE_RATIO:
                holds_in.append(MODE_LABEL[tm(mode)])
    if parts:
        out.append(("Copy-on-write “can have a noticeable impact on container performance”",
                    "; ".join(parts), modes_verdict(holds_in, len(parts)),
                    f"CoW first write > {x(NOTICEABLE_RATIO)} a raw overwrite (p50 ratio)",
                    only("^cow\\.bs=4k\\.order=seq\\.")))
    # 6. once allocated, IO goes straight to the block
    parts, worst = [], 0
    for mode in ("loop", "direct"):
        for i, step, what in ((cid("overwrite", "thinp", tm(mode), None, bs=4 * KiB), "steady",
                               "4 KiB random overwrite"),
                              (cid("cow", "thinp", tm(mode), None, bs=4 * KiB, order="seq"), "second",
                               "CoW already broken")):
            r = run.row(i, step)
            if r and r.get("ratio_raw") is not None:
                parts.append(f"{MODE_LABEL[tm(mode)]} {what}: {rr(r)}")
                worst = max(worst, key_ratio(r))
    if parts:
        out.append(("“Once a block is allocated … subsequent reads and writes can operate "
                    "directly on that block”", "; ".join(parts),
                    "holds" if worst <= DIRECT_WITHIN_RATIO else "partly: the thin layer still costs "
                    f"up to {worst:.2f}× raw",
                    f"overwrites of provisioned blocks ≤ {x(DIRECT_WITHIN_RATIO)} raw (p50 ratio)",
                    only("^overwrite\\.bs=4k\\.", "^cow\\.bs=4k\\.order=seq\\.")))
    # 7. small writes worse than AUFS (file-level driver)
    i = cid("alloc", "thinp", lm, False, bs=4 * KiB, order="seq")
    r = run.row(i, "first-write")
    c = run.row(cid("cow", "thinp", lm, None, bs=4 * KiB, order="seq"), "first")
    if r and r.get("ratio_raw") is not None:
        meas = (f"new data: a 4 KiB first write costs {rr(r)} — the same write to a sparse "
                "file, which is what a file-level driver does with new data (it writes into the "
                "upper file)")
        if c and c.get("ratio_raw") is not None:
            meas += (f"; changing existing data: a 4 KiB CoW costs {rr(c, 'raw')} — an overwrite of "
                     "the file, while a file-level driver copies the whole file up once (seed "
                     "row below)")
        out.append(("“Containers that perform lots of small block writes (<64KB) can perform "
                    "worse with devicemapper than with AUFS”", meas,
                    "holds for small writes of new data" if key_ratio(r) > MATERIAL_RATIO else
                    "does not hold for new data",
                    f"thinp ({MODE_LABEL[lm]}, Docker preset) first write > {x(MATERIAL_RATIO)} a file "
                    "write (p50 ratio)",
                    only("^alloc\\.bs=4k\\.order=seq\\.", "^cow\\.bs=4k\\.order=seq\\.")))
    # 8. loop-lvm slower than direct-lvm
    parts, faster_loop = [], []
    for label, a_args, step in (("4 KiB allocate", dict(scenario="alloc", zero=False, bs=4 * KiB,
                                                        order="seq"), "first-write"),
                                ("4 KiB CoW", dict(scenario="cow", zero=None, bs=4 * KiB,
                                                   order="seq"), "first"),
                                ("4 KiB overwrite", dict(scenario="overwrite", zero=None,
                                                         bs=4 * KiB), "steady"),
                                ("4 KiB allocate + fsync each",
                                 dict(scenario="commit", zero=False, fsync=1), "first-write")):
        a = dict(a_args)
        scen, zero = a.pop("scenario"), a.pop("zero")
        lo, di = cid(scen, "thinp", lm, zero, **a), cid(scen, "thinp", "direct", zero, **a)
        if lo in run.cases and di in run.cases:
            t = pair_ratio(di, lo, step)
            if t:
                parts.append(f"{label}: direct-lvm {fr(t)} {MODE_LABEL[lm]}")
                faster_loop.append(t[0] > LOOP_FASTER_ABOVE)
    if parts:
        kernel_loop = bool(run.kernel and "loop-lvm" in run.kernel["setups"])
        v = ((f"does not hold for libthinp: its loop-lvm through loop devices (buffered, as "
              "Docker's; the loop driver's hop and the files' page cache) is faster per IO "
              "than direct-lvm (O_DIRECT), fsync every write included" if lm == "loop" else
              f"not measured as Docker ran it: this run had no loop devices (not root), and "
              f"libthinp's {MODE_LABEL[lm]} (the pool's files through the page cache, without "
              "the loop driver) is faster per IO than direct-lvm (O_DIRECT), fsync every write "
              "included") + (". The kernel section below measures dm-thin's own loop-lvm"
                             if kernel_loop else "")
             if all(faster_loop) else
             "holds" if not any(faster_loop) else "mixed: see the ratios")
        out.append(("“loop-lvm … suffers from poor performance”; direct-lvm is for production",
                    "; ".join(parts), v, f"direct-lvm cost / {MODE_LABEL[lm]} cost, same run, "
                    f"per repetition (> {LOOP_FASTER_ABOVE:g}: {MODE_LABEL[lm]} faster)",
                    only("^alloc\\.bs=4k\\.order=seq\\.thinp", "^cow\\.bs=4k\\.order=seq\\.thinp",
                         "^overwrite\\.bs=4k\\.thinp", "^commit\\.fsync=1\\.thinp")))
    # 9. reads follow pointers down the stack
    parts = []
    for mode in ("loop", "direct"):
        for backend, name in (("thinp", "thinp"), ("qcow2-bench", "qcow2")):
            a, b = cid("chain", backend, mode, None, depth=16), cid("chain", backend, mode, None,
                                                                    depth=1)
            if a in run.cases and b in run.cases:
                parts.append(f"{name} {MODE_LABEL[tm(mode)]}: depth 16 = "
                             f"{fr(pair_ratio(a, b, 'read'))} depth 1")
    if parts:
        thin = [pair_ratio(cid("chain", "thinp", tm(m), None, depth=16),
                           cid("chain", "thinp", tm(m), None, depth=1), "read")
                for m in ("loop", "direct")]
        flat = all(t and t[0] < FLAT_DEPTH_RATIO for t in thin if t)
        out.append(("Reads through image layers: the driver “follows the pointer” down the "
                    "snapshot stack", "; ".join(parts),
                    "reads do not slow down with depth in dm-thin (every snapshot has its own "
                    "complete mapping)" if flat else "reads slow down with depth",
                    f"thinp depth-16 read < {x(FLAT_DEPTH_RATIO)} depth-1", only("^chain\\.")))
    # 10. zeroing
    parts = []
    for mode in ("loop", "direct"):
        a = cid("alloc", "thinp", tm(mode), True, bs=4 * KiB, order="seq")
        b = cid("alloc", "thinp", tm(mode), False, bs=4 * KiB, order="seq")
        if a in run.cases and b in run.cases:
            r = run.row(a, "first-write")
            parts.append(f"{MODE_LABEL[tm(mode)]}: zeroing on = "
                         f"{fr(pair_ratio(a, b, 'first-write'))} zeroing off, "
                         f"{r.get('bytes_amp', 0):.3g}× bytes written (zeroes included)")
    if parts:
        out.append(("Docker’s loop-lvm preset `skip_block_zeroing` (the kernel zeroes a new "
                    "block before a partial write by default)", "; ".join(parts), "measured",
                    "—", only("^alloc\\.bs=4k\\.order=seq\\.thinp")))
    return out


def p50_ratio(run, a, b, step_a, step_b):
    """Median [min, max] over repetitions of A's p50 latency ÷ B's (the floor's first step:
    the sum of its read's and its write's p50), each within one repetition: robust against
    the stalls a busy machine adds to means."""
    x = run.rep_values(a, step_a, "all", "lat_p50_us")
    y = run.rep_values(b, step_b, "all", "lat_p50_us")
    rs = sorted(x[r] / y[r] for r in x if r in y and y[r])
    return (rs[len(rs) // 2] if len(rs) % 2 else (rs[len(rs) // 2 - 1] + rs[len(rs) // 2]) / 2,
            rs[0], rs[-1]) if rs else None


def cow_policy_lines(run):
    """The CoW/zeroing policies against the floor and qcow2, per mode: markdown bullets."""
    out = []
    _, tm = loop_variant(run)
    for mode in ("loop", "direct"):
        floor = cid("cow", "floor", mode, None, bs=4 * KiB, order="seq")
        if floor not in run.cases:
            continue
        fl, flw = run.row(floor, "first"), run.row(floor, "write")
        parts = []
        if fl and fl.get("median_us") is not None:
            parts.append(f"floor {fnum(fl['median_us'])} µs (64 KiB read "
                         f"{fnum(run.get(floor, 'median_us', 'read'))} µs + 64 KiB write "
                         f"{fnum(flw.get('median_us') if flw else None)} µs)")
        q = cid("cow", "qcow2-bench", mode, None, bs=4 * KiB, order="seq")
        if q in run.cases and run.pair_ratio(q, floor, "first"):
            # (qcow2's image is a file on the scratch file system; direct-lvm's store may be a
            # loop device over one: the floor is measured on the pool's store, not qcow2's)
            parts.append(f"qcow2 CoW 4 KiB (`qemu-img bench`, its own image file) = "
                         f"{fspread(run.pair_ratio(q, floor, 'first'))} floor")
        for pol, goal_f, goal_q in (("kernel", KERNEL_FLOOR_GOAL, None),
                                    ("merged", MERGED_FLOOR_GOAL, MERGED_QCOW2_GOAL)):
            i = cid("cow", "thinp", tm(mode), None, cow=pol, bs=4 * KiB, order="seq")
            r = run.row(i, "first")
            if not r or r.get("median_us") is None:
                continue
            f = run.pair_ratio(i, floor, "first")
            s = (f"{pol} CoW 4 KiB {fnum(r['median_us'])} µs = {fspread(f)} floor "
                 f"(p50: {fspread(p50_ratio(run, i, floor, 'first', 'first'))}), "
                 f"{fratio(r, 'ratio_qcow2')} qcow2 (data read {fbytes((r.get('read_amp') or 0) * 4 * KiB)}, "
                 f"written {fbytes((r.get('data_w_amp') or 0) * 4 * KiB)} per CoW)")
            if mode == "direct":
                goals = [f"≤ {x(goal_f)} floor: " + ("met" if f and f[0] <= goal_f else "not met")]
                if goal_q is not None:
                    q = r.get("ratio_qcow2")
                    goals.append(f"≤ {x(goal_q)} qcow2: " +
                                 ("met" if q is not None and q <= goal_q else "not met"))
                s += " — goal " + ", ".join(goals)
            parts.append(s)
        for pol in ("kernel", "merged"):
            i = cid("alloc", "thinp", tm(mode), True, cow=pol, bs=4 * KiB, order="seq")
            r = run.row(i, "first-write")
            if not r or r.get("median_us") is None:
                continue
            f = run.pair_ratio(i, floor, "first-write", "write")
            parts.append(f"{pol} 4 KiB first write with zeroing {fnum(r['median_us'])} µs = "
                         f"{fspread(f)} the floor's 64 KiB write (p50: "
                         f"{fspread(p50_ratio(run, i, floor, 'first-write', 'write'))}), "
                         f"{fratio(r, 'ratio_qcow2')} qcow2")
        if parts:
            out.append(f"- **CoW/zeroing policy, {MODE_LABEL[tm(mode)]}** (`thinp_cow`; "
                       "per-repetition ratios of mean latencies, median [min–max]; the goals "
                       "are judged on these): " + "; ".join(parts) + ".")
    return out


def observations(run):
    """A few more computed comparisons the headline table implies."""
    out = cow_policy_lines(run)
    _, tm = loop_variant(run)
    parts = []
    for mode in ("loop", "direct"):
        r = run.row(cid("alloc", "thinp", tm(mode), False, bs=MiB, order="seq"), "first-write")
        if r and r.get("ratio_raw") is not None:
            parts.append(f"{MODE_LABEL[tm(mode)]} {rr(r)}")
    if parts:
        out.append("- **Multi-block writes**: a 1 MiB first write (16 blocks) costs "
                   + "; ".join(parts) + ". Per-class and per-size numbers: the latency chart "
                   "above and the report's scenario 1 table.")
    parts = []
    for mode in ("loop", "direct"):
        i = cid("commit", "thinp", tm(mode), False, fsync=1)
        r = run.row(i, "first-write")
        if r and r.get("ratio_raw") is not None:
            fl = run.row(i, "first-write", "flush")
            parts.append(f"{MODE_LABEL[tm(mode)]}: {fnum(r['median_us'])} µs per write = {fratio(r)} "
                         f"raw + fsync, {fratio(r, 'ratio_qcow2')} qcow2 with a flush per write"
                         + (f"; one flush (commit) {fnum(fl['median_us'])} µs" if fl else ""))
    if parts:
        out.append("- **Commit cost** (4 KiB first writes, fsync after each): " + "; ".join(parts)
                   + ".")
    return out
