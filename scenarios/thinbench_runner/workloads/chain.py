"""Reads through snapshot chains (scenario 4): a written base, DEPTH snapshots each changing
one slice, then 4 KiB reads (one per 64 KiB block) through the top; the peers: qcow2 backing
chains of the same depth, and the raw store with no chain (depth 0)."""
import os
import subprocess

from .. import fiorun, peers
from ..diskio import prep_written
from ..procs import CaseError, fmt_cmd, rm_f, sh
from ..units import KiB


def sc_chain(ctx):
    c, sc = ctx.case, ctx.env.scale
    depth, bs = c.params["depth"], 4 * KiB
    size = sc["chain"]
    sl = size // 16
    n = size // (64 * KiB)
    envv = {"SIZE": size, "BS": bs, "SKIP": 64 * KiB - bs, "OFF": 0, "LEN": sl,
            "IOSIZE": n * bs}
    if c.backend == "thinp":
        return thinp_chain(ctx, depth, size, sl, envv)
    if c.backend in peers.RAW_FIO:
        target, direct = peers.raw_target(ctx, c.mode, size, written=True)
        job, _, dev = fiorun.fio_step(ctx, "read", "04-chain.fio", "read",
                                      dict(peers.raw_opts(c.backend, direct), filename=target),
                                      envv)
        return {"read": fiorun.fio_metrics(job, None, dev)}
    fmt = peers.image_format(c.backend)
    if fmt == "qcow2":
        prev = os.path.join(ctx.work, "l0.qcow2")
        peers.qcow2_create(ctx, prev, size)
        peers.image_fill(ctx, prev, "qcow2", size, c.mode)
        for i in range(1, depth + 1):
            img = os.path.join(ctx.work, f"l{i}.qcow2")
            peers.qcow2_create(ctx, img, size, backing=prev)
            peers.image_fill(ctx, img, "qcow2", sl, c.mode, ((i - 1) % 16) * sl, 0x33)
            prev = img
        top = prev
    else:
        top = os.path.join(ctx.work, "img.raw")
        prep_written(top, size, c.mode)
    if c.backend.endswith("bench"):
        return {"read": peers.qemu_bench(ctx, "read", top, fmt, c.mode, n, bs, 64 * KiB,
                                         write=False)}
    return peers.nbd_steps(ctx, top, fmt, [("read", "04-chain.fio", "read", envv)])


def thinp_chain(ctx, depth, size, sl, envv):
    c = ctx.case
    if c.mode == "direct":
        fiorun.new_direct_pool(ctx)
    o = fiorun.thinp_opts(ctx, c.mode, 64 * KiB, False, {"thinp_dev_size": size})
    fiorun.fio_step(ctx, "base", "04-chain.fio", "base", dict(o, thinp_dev=1), envv, stats=False)
    rm_f(os.path.join(ctx.fio_dir, f"r{ctx.rep}-base.json"))
    # the layers with the thinp CLI (a few ms each; an fio process costs ~0.3 s): the
    # same steps as the [layer] section of 04-chain.fio
    pool = ([o["thinp_pool"]] if "thinp_pool" in o else
            ["--data", o["thinp_data"], "--metadata", o["thinp_metadata"]])
    piece = os.path.join(ctx.work, "layer.bin")
    with open(piece, "wb") as f:
        f.write(b"\x33" * sl)
    cli = ctx.env.cli
    for i in range(1, depth + 1):
        sh([cli, "thin", "snap", *pool, str(i + 1), str(i)], ctx, what="thinp thin snap")
        write = [cli, "write", *pool, str(i + 1), str(((i - 1) % 16) * sl), str(sl)]
        with open(piece, "rb") as f:
            ctx.commands.append(fmt_cmd(write) + f" < {piece}")
            p = subprocess.run(write, stdin=f, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
        if p.returncode:
            raise CaseError(f"thinp write exited {p.returncode}: {p.stderr.strip()}")
    job, st, dev = fiorun.fio_step(ctx, "read", "04-chain.fio", "read",
                                   dict(o, thinp_dev=depth + 1), envv)
    return {"read": fiorun.fio_metrics(job, st, dev, 0)}
