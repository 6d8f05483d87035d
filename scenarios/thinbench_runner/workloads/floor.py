"""The CoW floor (a baseline of the 4 KiB CoW cases): the CoW's own data IO on the same store
without the thin layer, a sequential 64 KiB read of a range written just before (as the CoW
case's origin is) and a sequential 64 KiB write of another range (scenarios/jobs/10-floor.fio).
The floor is the sum of the two mean latencies: a CoW that costs the floor does nothing but
read the old block once and write the new one once (what the merged policy issues), so
CoW ÷ floor is the thin layer's own cost and, for the kernel policy, its separate data write."""
from .. import fiorun, peers
from ..units import KiB
from .firstwrite import n_for

BLOCK = 64 * KiB


def sc_floor(ctx):
    c, sc = ctx.case, ctx.env.scale
    n = n_for(sc, max(c.params["bs"], BLOCK))
    size = n * BLOCK
    target, direct = peers.raw_target(ctx, c.mode, 2 * size, written=True)
    envv = {"SIZE": size, "TARGET": target}
    out = {}
    for step in ("origin", "read", "write"):
        job, _, dev = fiorun.fio_step(ctx, step, "10-floor.fio", step,
                                      peers.raw_opts("raw-psync", direct), envv)
        if step != "origin":  # (written as the CoW case's origin is: not reported)
            out[step] = fiorun.fio_metrics(job, None, dev)
    r, w = out["read"]["all"], out["write"]["all"]
    # "first": the step the CoW cases' first pass is compared with, one read plus one write
    # per CoW-sized unit
    both = {"dir": "read+write", "ios": r["ios"], "bytes": r["bytes"] + w["bytes"],
            "errors": r["errors"] + w["errors"]}
    for k in ("lat_mean_us", "lat_p50_us", "lat_p99_us", "cost_us"):
        both[k] = r[k] + w[k]
    out["first"] = {"all": both}
    return out
