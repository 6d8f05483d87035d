"""Overwrite steady state (scenario 3): random writes to provisioned, exclusive blocks (the
pool prefilled by the engine; the peers' stores written before)."""
from .. import fiorun, peers
from ..procs import CaseError
from ..units import KiB


def sc_overwrite(ctx):
    c, sc = ctx.case, ctx.env.scale
    bs = c.params["bs"]
    size, iosize = sc["ow_range"], min(sc["ow_ios"] * bs, sc["ow_range"] // 2)
    envv = {"BS": bs, "SIZE": size, "IOSIZE": iosize}
    if c.backend == "thinp":
        if c.mode == "direct":
            fiorun.new_direct_pool(ctx)
        o = fiorun.thinp_opts(ctx, c.mode, 64 * KiB, False,
                              {"thinp_dev": 1, "thinp_dev_size": size, "thinp_prefill": 1})
        job, st, dev = fiorun.fio_step(ctx, "steady", "03-overwrite.fio", "steady", o, envv)
        used = size // (64 * KiB)
        return {"steady": fiorun.fio_metrics(job, st, dev, used)}
    if c.backend in peers.RAW_FIO:
        target, direct = peers.raw_target(ctx, c.mode, size, written=True)
        job, _, dev = fiorun.fio_step(ctx, "steady", "03-overwrite.fio", "steady",
                                      dict(peers.raw_opts(c.backend, direct), filename=target),
                                      envv)
        return {"steady": fiorun.fio_metrics(job, None, dev)}
    if c.backend in peers.NBD:
        fmt = peers.image_format(c.backend)
        img = peers.written_image(ctx, fmt, size, c.mode)
        return peers.nbd_steps(ctx, img, fmt, [("steady", "03-overwrite.fio", "steady", envv)])
    raise CaseError(f"no overwrite runner for {c.backend}")
