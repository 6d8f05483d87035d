"""Copy-on-write (scenario 2, and the CoW half of 5): the first write to each block of a
snapshot of a written origin, then a second pass over the same offsets (the CoW already
broken). The peers: the raw store written the same way (an overwrite), a qcow2 overlay on a
written base image, and a written raw image."""
from .. import fiorun, peers
from ..procs import CaseError
from ..units import KiB
from .firstwrite import first_write_offsets, iolog_for, n_for


def sc_cow(ctx):
    c, sc = ctx.case, ctx.env.scale
    bs = c.params["bs"]
    block = c.params.get("block", 64 * KiB)
    order = c.params.get("order", "seq")
    stride = max(bs, block)
    n = n_for(sc, stride)
    size = n * stride
    jobfile = "05-blocksize.fio" if c.scenario == "blocksize" else "02-cow.fio"
    first = "cow" if c.scenario == "blocksize" else "first"
    if c.backend in peers.QEMU_BENCH:
        fmt = peers.image_format(c.backend)
        img = peers.written_image(ctx, fmt, size, c.mode, overlay=True)
        out = {"first": peers.qemu_bench(ctx, "first", img, fmt, c.mode, n, bs, stride)}
        out["second"] = peers.qemu_bench(ctx, "second", img, fmt, c.mode, n, bs, stride)
        return out
    offs = first_write_offsets(n, stride, 0, order, ctx.env.args.seed + ctx.rep)
    envv = {"BS": bs, "SIZE": size}
    if c.backend == "thinp":
        return thinp_cow(ctx, jobfile, first, block, size, offs, envv)
    if c.backend in peers.RAW_FIO:
        target, direct = peers.raw_target(ctx, c.mode, size, written=True)
        envv["IOLOG"] = iolog_for(ctx, target, offs, bs)
        out = {}
        for step, section in (("first", first), ("second", "second")):
            if c.scenario == "blocksize" and step == "second":
                continue
            job, _, dev = fiorun.fio_step(ctx, step, jobfile, section,
                                          peers.raw_opts(c.backend, direct), envv)
            out[step] = fiorun.fio_metrics(job, None, dev)
        return out
    if c.backend in peers.NBD:
        fmt = peers.image_format(c.backend)
        img = peers.written_image(ctx, fmt, size, c.mode, overlay=True)
        envv["IOLOG"] = iolog_for(ctx, "nbd", offs, bs)
        return peers.nbd_steps(ctx, img, fmt, [("first", jobfile, "first", envv),
                                               ("second", jobfile, "second", envv)])
    raise CaseError(f"no cow runner for {c.backend}")


def thinp_cow(ctx, jobfile, first, block, size, offs, envv):
    """Origin (thin 1, written), its snapshot (thin 2): the first pass, then (not for the
    block-size cases) the second."""
    c = ctx.case
    if c.mode == "direct":
        fiorun.new_direct_pool(ctx)
    envv["IOLOG"] = iolog_for(ctx, "thin", offs, c.params["bs"])
    o = fiorun.thinp_opts(ctx, c.mode, block, False)
    job, st, _ = fiorun.fio_step(ctx, "origin", jobfile, "origin",
                                 dict(o, thinp_dev=1, thinp_dev_size=size), envv)
    used = st["pool"]["used_data_blocks"]
    out = {}
    job, st, dev = fiorun.fio_step(ctx, "first", jobfile, first,
                                   dict(o, thinp_dev=2, thinp_snapshot_of=1,
                                        thinp_dev_size=size), envv)
    out["first"] = fiorun.fio_metrics(job, st, dev, used, block)
    used = st["pool"]["used_data_blocks"]
    if c.scenario != "blocksize":
        job, st, dev = fiorun.fio_step(ctx, "second", jobfile, "second",
                                       dict(o, thinp_dev=2, thinp_dev_size=size), envv)
        out["second"] = fiorun.fio_metrics(job, st, dev, used, block)
    return out
