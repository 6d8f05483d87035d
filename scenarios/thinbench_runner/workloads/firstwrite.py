"""First writes to a fresh thin device: allocate-on-demand (scenario 1), the allocate half of
the block-size trade-off (5) and the qcow2-style edge cases (6).

Every write is a first write: the cases replay iologs with one write per pool block (front of
the block, or at an edge's offset; shuffled for order=rand). fio's random map would write
every BS piece of a block, and `blockalign=` turns the random map off
(docs/benchmark-method.md)."""
import os
import random

from .. import fiorun, peers
from ..diskio import fsize_alloc, write_iolog
from ..procs import CaseError
from ..units import KiB


def first_write_offsets(n, stride, pos=0, order="seq", seed=0):
    blocks = list(range(n))
    if order == "rand":
        random.Random(seed).shuffle(blocks)
    return [b * stride + pos for b in blocks]


def n_for(scale, stride):
    return max(8, min(scale["n"], scale["range_max"] // stride))


def iolog_for(ctx, target, offs, bs):
    path = os.path.join(ctx.work, f"iolog-{len(ctx.commands)}")
    write_iolog(path, target, offs, bs)
    return path


def run_firstwrite(ctx, jobfile, section, offs, bs, size, zero=False, block=64 * KiB,
                   extra_env=None, thinp_extra=None, step="first-write"):
    """One first-write step (alloc, edge, blocksize) on the case's backend."""
    c = ctx.case
    envv = {"BS": bs, "SIZE": size}
    envv.update(extra_env or {})
    if c.backend == "thinp":
        if c.mode == "direct":
            fiorun.new_direct_pool(ctx)
        o = fiorun.thinp_opts(ctx, c.mode, block, zero,
                              dict({"thinp_dev": 1, "thinp_dev_size": size}, **(thinp_extra or {})))
        envv["IOLOG"] = iolog_for(ctx, "thin", offs, bs)
        job, st, dev = fiorun.fio_step(ctx, step, jobfile, section, o, envv)
        m = fiorun.fio_metrics(job, st, dev, 0, block)
        if c.mode == "direct" and zero:
            fiorun.restore_direct(ctx, m["all"].get("used_blocks", 0) * block)
        return {step: m}
    if c.backend in peers.RAW_FIO:
        target, direct = peers.raw_target(ctx, c.mode, size, written=False)
        envv["IOLOG"] = iolog_for(ctx, target, offs, bs)
        a0 = fsize_alloc(target) if c.mode == "loop" else 0
        job, _, dev = fiorun.fio_step(ctx, step, jobfile, section,
                                      peers.raw_opts(c.backend, direct), envv)
        m = fiorun.fio_metrics(job, None, dev)
        if c.mode == "loop":
            m["all"]["alloc_bytes"] = fsize_alloc(target) - a0
        return {step: m}
    if c.backend in peers.NBD:
        fmt = peers.image_format(c.backend)
        img = os.path.join(ctx.work, f"img.{fmt}")
        peers.new_image(ctx, img, fmt, size)
        nbd = peers.Nbd(ctx, img, fmt, c.mode)
        try:
            envv["IOLOG"] = iolog_for(ctx, "nbd", offs, bs)
            m = peers.nbd_step(ctx, nbd, step, jobfile, section, envv, c.mode)
        finally:
            nbd.close()
        m["all"]["alloc_bytes"] = fsize_alloc(img)
        return {step: m}
    raise CaseError(f"no first-write runner for backend {c.backend}")


def bench_firstwrite(ctx, n, bs, stride, pos=0, size=None, flush=None, step="first-write"):
    """The same first writes through `qemu-img bench` on a fresh qcow2 or raw image."""
    c = ctx.case
    fmt = peers.image_format(c.backend)
    img = os.path.join(ctx.work, f"img.{fmt}")
    size = size or n * stride
    peers.new_image(ctx, img, fmt, size)
    return {step: peers.qemu_bench(ctx, step, img, fmt, c.mode, n, bs, stride, pos, flush=flush)}


# scenario 1
def sc_alloc(ctx):
    c, sc = ctx.case, ctx.env.scale
    bs, order = c.params["bs"], c.params["order"]
    stride = max(bs, 64 * KiB)
    n = n_for(sc, stride)
    size = n * stride
    if c.backend in peers.QEMU_BENCH:
        return bench_firstwrite(ctx, n, bs, stride)
    if order == "stream":
        return run_stream(ctx, bs, size)
    offs = first_write_offsets(n, stride, 0, order, ctx.env.args.seed + ctx.rep)
    return run_firstwrite(ctx, "01-alloc.fio", "first-write", offs, bs, size,
                          zero=c.params.get("zero", False))


def run_stream(ctx, bs, size):
    """A contiguous stream of BS writes (no iolog): writes straddle block boundaries."""
    c = ctx.case
    envv = {"BS": bs, "SIZE": size, "IOLOG": "/dev/null"}
    if c.backend == "thinp":
        if c.mode == "direct":
            fiorun.new_direct_pool(ctx)
        zero = c.params.get("zero", False)
        o = fiorun.thinp_opts(ctx, c.mode, 64 * KiB, zero,
                              {"thinp_dev": 1, "thinp_dev_size": size})
        job, st, dev = fiorun.fio_step(ctx, "stream", "01-alloc.fio", "stream", o, envv)
        m = fiorun.fio_metrics(job, st, dev)
        if c.mode == "direct" and zero:
            fiorun.restore_direct(ctx, m["all"].get("used_blocks", 0) * 64 * KiB)
        return {"stream": m}
    target, direct = peers.raw_target(ctx, c.mode, size, written=False)
    a0 = fsize_alloc(target) if c.mode == "loop" else 0
    job, _, dev = fiorun.fio_step(ctx, "stream", "01-alloc.fio", "stream",
                                  dict(peers.raw_opts(c.backend, direct), filename=target), envv)
    m = fiorun.fio_metrics(job, None, dev)
    if c.mode == "loop":
        m["all"]["alloc_bytes"] = fsize_alloc(target) - a0
    return {"stream": m}


# scenario 5, the allocate half (the CoW half is cow.sc_cow)
def sc_blocksize(ctx):
    c, sc = ctx.case, ctx.env.scale
    if c.params["op"] == "cow":
        from .cow import sc_cow
        return sc_cow(ctx)
    bs, block = c.params["bs"], c.params["block"]
    stride = max(bs, block)
    n = n_for(sc, stride)
    offs = first_write_offsets(n, stride)
    return run_firstwrite(ctx, "05-blocksize.fio", "alloc", offs, bs, n * stride, zero=False,
                          block=block, step="alloc")


# scenario 6: (write size, offset in the block, stride)
EDGE = {"front": (4 * KiB, 0, 64 * KiB), "middle": (4 * KiB, 32 * KiB, 64 * KiB),
        "cross": (8 * KiB, 60 * KiB, 128 * KiB)}


def sc_edge(ctx):
    c, sc = ctx.case, ctx.env.scale
    bs, pos, stride = EDGE[c.params["pos"]]
    n = n_for(sc, stride)
    size = n * stride
    if c.backend in peers.QEMU_BENCH:
        return bench_firstwrite(ctx, n, bs, stride, pos, size)
    offs = first_write_offsets(n, stride, pos)
    return run_firstwrite(ctx, "06-edge.fio", "first-write", offs, bs, size,
                          zero=c.params.get("zero", False))
