"""Commit cost (scenario 7): 4 KiB first writes with an fsync every N writes, the fsyncs'
share included in the cost per write. A stride job, not an iolog: fio ignores fsync= while
it replays an iolog."""
from .. import fiorun, peers
from ..units import KiB
from .firstwrite import bench_firstwrite


def sc_commit(ctx):
    c, sc = ctx.case, ctx.env.scale
    f, bs, stride = c.params["fsync"], 4 * KiB, 64 * KiB
    n = sc["commit_n"]
    size = n * stride
    if c.backend in peers.QEMU_BENCH:
        return bench_firstwrite(ctx, n, bs, stride, flush=f)
    envv = {"BS": bs, "SKIP": stride - bs, "SIZE": size, "IOSIZE": n * bs, "FSYNC": f}
    if c.backend == "thinp":
        if c.mode == "direct":
            fiorun.new_direct_pool(ctx)
        o = fiorun.thinp_opts(ctx, c.mode, 64 * KiB, c.params.get("zero", False),
                              {"thinp_dev": 1, "thinp_dev_size": size,
                               "thinp_commit_interval": 0})
        job, st, dev = fiorun.fio_step(ctx, "first-write", "07-commit.fio", "first-write", o,
                                       envv)
        return {"first-write": fiorun.fio_metrics(job, st, dev)}
    target, direct = peers.raw_target(ctx, c.mode, size, written=False)
    job, _, dev = fiorun.fio_step(ctx, "first-write", "07-commit.fio", "first-write",
                                  dict(peers.raw_opts(c.backend, direct), filename=target), envv)
    return {"first-write": fiorun.fio_metrics(job, None, dev)}
