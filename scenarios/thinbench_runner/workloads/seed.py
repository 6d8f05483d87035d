"""The seed's example (scenario 9): update 32 KiB in the middle of a big file. Block-level
CoW (a snapshot of a thin holding the file: one block copied), file-level copy-up (overlayfs,
the file in the lower dir: the whole file copied up, root only) and the update in place (the
file itself, no CoW)."""
import os
import subprocess
import time

from .. import fiorun
from ..diskio import fsize_alloc, pattern_buffer
from ..procs import CLEANUP, CaseError, proc_io, rm_f, sh
from ..units import KiB

UPDATE = 32 * KiB


def sc_seed(ctx):
    c, env = ctx.case, ctx.env
    if c.backend == "thinp":
        return thinp_update(ctx)
    if c.backend == "overlayfs" and not env.overlay_ok:
        raise CaseError(f"skipped: {env.overlay_reason}")
    if c.backend == "raw-file":
        return in_place_update(ctx)
    return overlay_update(ctx)


def thinp_update(ctx):
    c, env = ctx.case, ctx.env
    size = env.scale["seed"]
    if c.mode == "direct":
        fiorun.new_direct_pool(ctx)
    envv = {"SIZE": size, "OFFSET": size // 2}
    o = fiorun.thinp_opts(ctx, c.mode, 64 * KiB, False, {"thinp_dev_size": size})
    _, st, _ = fiorun.fio_step(ctx, "file", "09-seed.fio", "file", dict(o, thinp_dev=1), envv)
    used = st["pool"]["used_data_blocks"]
    rm_f(os.path.join(ctx.fio_dir, f"r{ctx.rep}-file.json"))
    job, st, dev = fiorun.fio_step(ctx, "update", "09-seed.fio", "update",
                                   dict(o, thinp_dev=2, thinp_snapshot_of=1), envv)
    m = fiorun.fio_metrics(job, st, dev, used)
    a = m["all"]
    a["copied"] = a.get("data_read", 0)  # the CoW read the old block: what was copied
    a["time_us"] = a["pool_time_us"]
    a["cost_us"] = a["time_us"]
    return {"update": m}


def timed_update(path, off):
    """open, pwrite 32 KiB at OFF, fsync, close: (t0, t_open, t1) in ns, device bytes written
    by this process meanwhile."""
    buf = pattern_buffer(UPDATE, 0x33)
    io0 = proc_io(os.getpid())
    t0 = time.perf_counter_ns()
    fd = os.open(path, os.O_WRONLY)
    t_open = time.perf_counter_ns()
    os.pwrite(fd, buf, off)
    os.fsync(fd)
    os.close(fd)
    t1 = time.perf_counter_ns()
    io1 = proc_io(os.getpid())
    return t0, t_open, t1, io1.get("write_bytes", 0) - io0.get("write_bytes", 0)


def in_place_update(ctx):
    env = ctx.env
    off = env.scale["seed"] // 2
    ctx.commands.append(f"python3: open({env.seed_lower}, O_WRONLY); pwrite 32k at {off}; "
                        "fsync; close")
    t0, _, t1, dev_w = timed_update(env.seed_lower, off)
    return {"update": {"all": {"ios": 1, "bytes": UPDATE, "time_us": (t1 - t0) / 1e3,
                               "cost_us": (t1 - t0) / 1e3, "lat_mean_us": (t1 - t0) / 1e3,
                               "copied": 0, "dev_written": dev_w}}}


def overlay_update(ctx):
    """overlayfs: the lower dir holds the file; fresh upper/work per repetition."""
    env = ctx.env
    off = env.scale["seed"] // 2
    lower = os.path.dirname(env.seed_lower)
    t = ctx.work
    for sub in ("upper", "work", "merged"):
        os.makedirs(os.path.join(t, sub), exist_ok=True)
    merged = os.path.join(t, "merged")
    mcmd = ["mount", "-t", "overlay", "overlay", "-o",
            f"lowerdir={lower},upperdir={t}/upper,workdir={t}/work", merged]
    sh(mcmd, ctx, what="mount overlay")
    CLEANUP.mounts.append(merged)
    try:
        f = os.path.join(merged, "file")
        ctx.commands.append(f"python3: open({f}, O_WRONLY) [copy-up]; pwrite 32k at {off}; "
                            "fsync; close")
        os.sync()
        t0, t_open, t1, dev_w = timed_update(f, off)
        copied = fsize_alloc(os.path.join(t, "upper", "file"))
    finally:
        subprocess.run(["umount", merged])
        CLEANUP.mounts.remove(merged)
    return {"update": {"all": {"ios": 1, "bytes": UPDATE, "time_us": (t1 - t0) / 1e3,
                               "cost_us": (t1 - t0) / 1e3, "lat_mean_us": (t1 - t0) / 1e3,
                               "copy_up_us": (t_open - t0) / 1e3, "copied": copied,
                               "dev_written": dev_w}}}
