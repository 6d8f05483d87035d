"""Fill to full (scenario 8), two views. fio's (backend thinp, loop-lvm): one 4 KiB first
write per block of a range 1.25x the pool with error_if_no_space, the refused writes counted,
then overwrites at 100%. The fill-to-full driver's (backend thinp-tool: thinp-fill, built
from scenarios/tools/fill.c by the Makefile, on libthinp directly): the low-water event,
error vs queue at 100%, and a per-IO timeline."""
import json
import os
import shutil
import stat
import subprocess

from .. import fiorun
from ..diskio import write_pattern
from ..procs import CaseError, sh
from ..units import KiB


def sc_fill(ctx):
    c = ctx.case
    if c.backend == "thinp":
        return fio_fill(ctx)
    return driver_fill(ctx)


def fio_fill(ctx):
    c, env = ctx.case, ctx.env
    data = env.scale["fill"]
    block = 64 * KiB
    nblk = data // block
    if c.mode == "direct":
        raise CaseError("fill (fio) runs in loop-lvm only")
    envv = {"BS": 4 * KiB, "SKIP": block - 4 * KiB, "SIZE": data + data // 4, "FILLED": data,
            "FILLSIZE": (data + data // 4) // block * 4 * KiB,
            "IOSIZE": min(nblk, 4096) * 4 * KiB}
    o = fiorun.thinp_opts(ctx, c.mode, block, False,
                          {"thinp_dev": 1, "thinp_no_space": "error",
                           "thinp_dev_size": data + data // 4}, data_size=data)
    job, st, dev = fiorun.fio_step(ctx, "fill", "08-fill.fio", "fill", o,
                                   dict(envv, _allow_error=1))
    m = fiorun.fio_metrics(job, st, dev)
    # ENOSPC is the point here: the refused writes, as fio counted them
    m["all"]["errors"] = job.get("total_err", 0)
    out = {"fill": m}
    job, st, dev = fiorun.fio_step(ctx, "at-full", "08-fill.fio", "at-full", o, envv)
    out["at-full"] = fiorun.fio_metrics(job, st, dev, nblk)
    return out


def driver_fill(ctx):
    c, env = ctx.case, ctx.env
    data = env.scale["fill"]
    block = 64 * KiB
    nblk = data // block
    if c.mode == "direct":
        fiorun.new_direct_pool(ctx)
        dpath, mpath = env.direct["data"], env.direct["metadata"]
        if os.path.exists(dpath) and stat.S_ISBLK(os.stat(dpath).st_mode):
            # a block device is as big as it is: the pool takes it whole, so fill a small file
            # beside it opened O_DIRECT instead (the same O_DIRECT path)
            dpath = os.path.join(ctx.work, "fill-data")
            subprocess.run(["fallocate", "-l", str(data), dpath], check=True)
            write_pattern(dpath, data, 0, direct=True)
    else:
        dpath, mpath = os.path.join(ctx.work, "fill-data"), os.path.join(ctx.work, "fill-meta")
    tl = os.path.join(ctx.work, "timeline.txt")
    summ = os.path.join(ctx.work, "fill.json")
    lw = max(1, nblk // 16)
    cmd = [env.fill_bin, "--data", dpath, "--metadata", mpath, "--mode", c.mode,
           "--data-size", str(data), "--block-size", str(block), "--bs", str(4 * KiB),
           "--low-water", str(lw), "--no-space", c.params["nospace"], "--timeout-ms", "200",
           "--probe", "4", "--timeline", tl, "--summary", summ]
    if c.params["nospace"] == "queue" and c.mode == "loop":
        cmd += ["--resume-ms", "100"]
    sh(cmd, ctx, what="thinp-fill")
    s = json.load(open(summ))
    os.makedirs(ctx.stats_dir, exist_ok=True)
    shutil.copy(summ, os.path.join(ctx.stats_dir, f"r{ctx.rep}-fill.json"))
    if ctx.rep == 1:
        shutil.copy(tl, os.path.join(ctx.stats_dir, "r1-timeline.txt"))
    return {"fill": driver_metrics(s)}


def driver_metrics(s):
    """The driver's summary JSON as {class: metrics}: its phases, and 'all' with the
    provision cost and the events (low water, full, first refusal, resume)."""
    out = {}
    for k in ("provision", "overwrite_12", "need_block_at_100", "overwrite_100"):
        v = s[k]
        if v["count"]:
            out[k] = {"ios": v["count"], "bytes": v["count"] * 4 * KiB,
                      "lat_mean_us": v["mean_ns"] / 1e3, "lat_p50_us": v["p50_ns"] / 1e3,
                      "lat_p99_us": v["p99_ns"] / 1e3, "cost_us": v["mean_ns"] / 1e3}
    a = {"ios": s["provisioned"], "bytes": s["provisioned"] * 4 * KiB,
         "cost_us": out["provision"]["lat_mean_us"], "lat_mean_us": out["provision"]["lat_mean_us"],
         "pool_blocks": s["pool_blocks"], "low_water_blocks": s["low_water_blocks"],
         "low_water_io": s["low_water_io"], "low_water_ms": s["low_water_ms"],
         "full_io": s["full_io"], "full_ms": s["full_ms"],
         "first_refusal_us": s["first_refusal_ns"] / 1e3, "timeout_ms": s["timeout_ms"],
         "resume_us": (s["resume_latency_ns"] / 1e3 if s["resume_latency_ns"] >= 0 else None),
         "ok": s["ok"]}
    out["all"] = a
    return out
