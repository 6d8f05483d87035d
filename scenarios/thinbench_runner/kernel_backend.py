"""`scenarios/run --backend kernel`: the libthinp cases of the first-write, CoW, overwrite,
block-size, edge and commit scenarios run again on the kernel's dm-thin, with stock fio
(direct=1) on the thin devices of a loop-lvm pool made as Docker made it (kernel_setup), each
step's device and pool deltas beside fio's own figures (kernel_counters). The workload is the
same as libthinp's: the same job files, sections, iologs (offsets), sizes and set-up steps
(origin written whole, then a snapshot; overwrite's range written first).
docs/kernel-backend.md."""
import os
import time

from . import fiorun, kernel_autoextend
from .case import Case
from .kernel_counters import Snapshot, device_metrics, io_end
from .kernel_lvm import LvmPool
from .kernel_setup import DOCKER_LOW_WATER, KernelPool, run_q
from .matrix import baseline_ids, build_matrix
from .units import KiB
from .workloads.firstwrite import EDGE, first_write_offsets, iolog_for, n_for

BACKEND = "kernel"
BACKENDS = ("libthinp", "kernel")
# the scenarios whose libthinp cases have a kernel twin (loop-lvm; the CoW policy variants
# are libthinp's own and have none)
SCENARIOS = ("alloc", "cow", "overwrite", "blocksize", "edge", "commit")
IOENGINES = ("psync", "libaio", "io_uring")
# set from --kernel-ioengine by cli.main (one engine per run; env.json records it)
OPTIONS = {"ioengine": "psync"}


def kernel_cases(matrix):
    """The kernel twin of every libthinp case of SCENARIOS: the same scenario, mode,
    parameters, quick flag and group (so it has the same baselines and sits beside its twin
    in a repetition's order). direct-lvm twins run on --data-dev only (select_direct)."""
    out = []
    for c in matrix:
        if c.backend != "thinp" or c.scenario not in SCENARIOS or c.params.get("cow"):
            continue
        out.append(Case(c.scenario, BACKEND, c.mode, c.params, c.quick, RUNNERS[c.scenario],
                        group=c.group))
    return out


def select_direct(cases, backends, data_dev):
    """CASES without the kernel's direct-lvm cases when there is no --data-dev (and, in a
    kernel-only run, without the direct-lvm baselines, whose raw store is that disk too); a
    message for exit 2 when that leaves no kernel case of a selection that had some."""
    if data_dev:
        if "libthinp" not in backends:
            cases = [c for c in cases if c.backend == BACKEND or c.mode != "direct"]
        return cases, None
    kd = [c for c in cases if c.backend == BACKEND and c.mode == "direct"]
    keep = [c for c in cases if c not in kd and
            ("libthinp" in backends or c.mode != "direct")]
    if kd and not any(c.backend == BACKEND for c in keep):
        return keep, ("direct-lvm on the kernel needs --data-dev DEV: the disk the seed's LVM "
                      "procedure takes over (pvcreate, vgcreate, lvcreate, lvconvert; its "
                      "contents are destroyed)")
    return keep, None


def matrix_for(backends):
    """The cases of a run on BACKENDS (a subset of BACKENDS): libthinp's matrix as it was, the
    kernel twins, and for a kernel-only run the kernel cases' own baselines."""
    lib = build_matrix()
    # (the autoextend case is the kernel's own: LVM's policy on its direct-lvm pool)
    kern = kernel_cases(lib) + [kernel_autoextend.case()]
    if "libthinp" in backends:
        return lib + (kern if BACKEND in backends else [])
    by_id = {c.cid: c for c in lib}
    need = {b for k in kern for b in baseline_ids(k, by_id)}
    return [c for c in lib if c.cid in need] + kern


# -- one measured step ------------------------------------------------------------------------
def fio_opts(dev=None):
    o = {"ioengine": OPTIONS["ioengine"], "direct": 1}
    if dev:
        o["filename"] = dev
    return o


def measured(ctx, pool, step, jobfile, section, envv, dev=None):
    """Run one fio step on POOL's thin; its metrics with the device and pool deltas."""
    before = Snapshot(pool)
    c0 = time.monotonic()
    job, _, rusage = fiorun.fio_step(ctx, step, jobfile, section, fio_opts(dev), envv)
    end = io_end(pool)
    # (the time fields' counted interval: from the opening Snapshot's counters, after its
    # sync and commit, to the last IO; the closing sync and status commit are not in it)
    rusage["window_ms"] = round((time.monotonic() - c0) * 1e3, 1)
    after = Snapshot(pool)
    m = fiorun.fio_metrics(job, None, rusage)
    m["all"].update(device_metrics(pool, before, after, m["all"]["ios"], pool.block, end))
    return m


def unmeasured(ctx, step, jobfile, section, envv, dev):
    fiorun.fio_step(ctx, step, jobfile, section, fio_opts(dev), envv)


def with_pool(ctx, fn, block=64 * KiB, zero=False, pool_class=None):
    cls = pool_class or (LvmPool if ctx.case.mode == "direct" else KernelPool)
    pool = cls(ctx, block, zero)
    try:
        return fn(pool)
    finally:
        pool.close()


# -- the scenarios ------------------------------------------------------------------------------
def firstwrite(ctx, jobfile, section, offs, bs, size, zero=False, block=64 * KiB,
               step="first-write"):
    def go(pool):
        dev = pool.create_thin(1, size)
        envv = {"BS": bs, "SIZE": size, "IOLOG": iolog_for(ctx, dev, offs, bs)}
        return {step: measured(ctx, pool, step, jobfile, section, envv)}
    return with_pool(ctx, go, block, zero)


def k_alloc(ctx):
    c, sc = ctx.case, ctx.env.scale
    bs, order = c.params["bs"], c.params["order"]
    stride = max(bs, 64 * KiB)
    n = n_for(sc, stride)
    size = n * stride
    zero = c.params.get("zero", False)
    if order == "stream":
        def go(pool):
            dev = pool.create_thin(1, size)
            envv = {"BS": bs, "SIZE": size, "IOLOG": "/dev/null"}
            return {"stream": measured(ctx, pool, "stream", "01-alloc.fio", "stream", envv, dev)}
        return with_pool(ctx, go, 64 * KiB, zero)
    offs = first_write_offsets(n, stride, 0, order, ctx.env.args.seed + ctx.rep)
    return firstwrite(ctx, "01-alloc.fio", "first-write", offs, bs, size, zero)


def k_edge(ctx):
    c, sc = ctx.case, ctx.env.scale
    bs, pos, stride = EDGE[c.params["pos"]]
    n = n_for(sc, stride)
    offs = first_write_offsets(n, stride, pos)
    return firstwrite(ctx, "06-edge.fio", "first-write", offs, bs, n * stride,
                      c.params.get("zero", False))


def k_blocksize(ctx):
    c, sc = ctx.case, ctx.env.scale
    if c.params["op"] == "cow":
        return k_cow(ctx)
    bs, block = c.params["bs"], c.params["block"]
    stride = max(bs, block)
    n = n_for(sc, stride)
    return firstwrite(ctx, "05-blocksize.fio", "alloc", first_write_offsets(n, stride), bs,
                      n * stride, False, block, step="alloc")


def k_cow(ctx):
    """thin 1 written whole (the image layer), snapshot 2 of it (origin suspended), the first
    pass on 2, then (not for the block-size cases) the second: libthinp's thinp_cow steps."""
    c, sc = ctx.case, ctx.env.scale
    bs = c.params["bs"]
    block = c.params.get("block", 64 * KiB)
    stride = max(bs, block)
    n = n_for(sc, stride)
    size = n * stride
    blocksize = c.scenario == "blocksize"
    jobfile = "05-blocksize.fio" if blocksize else "02-cow.fio"
    first = "cow" if blocksize else "first"
    offs = first_write_offsets(n, stride, 0, c.params.get("order", "seq"),
                               ctx.env.args.seed + ctx.rep)

    def go(pool):
        d1 = pool.create_thin(1, size)
        envv = {"BS": bs, "SIZE": size, "IOLOG": "/dev/null"}
        unmeasured(ctx, "origin", jobfile, "origin", envv, d1)
        d2 = pool.snapshot(2, 1, size)
        envv = dict(envv, IOLOG=iolog_for(ctx, d2, offs, bs))
        out = {"first": measured(ctx, pool, "first", jobfile, first, envv)}
        if not blocksize:
            out["second"] = measured(ctx, pool, "second", jobfile, "second", envv)
        return out
    return with_pool(ctx, go, block)


def k_overwrite(ctx):
    """The range written whole first (libthinp: thinp_prefill, not counted), then the random
    overwrites."""
    c, sc = ctx.case, ctx.env.scale
    bs = c.params["bs"]
    size, iosize = sc["ow_range"], min(sc["ow_ios"] * bs, sc["ow_range"] // 2)

    def go(pool):
        dev = pool.create_thin(1, size)
        unmeasured(ctx, "prefill", "02-cow.fio", "origin",
                   {"BS": bs, "SIZE": size, "IOLOG": "/dev/null"}, dev)
        envv = {"BS": bs, "SIZE": size, "IOSIZE": iosize}
        return {"steady": measured(ctx, pool, "steady", "03-overwrite.fio", "steady", envv, dev)}
    return with_pool(ctx, go)


def k_commit(ctx):
    """4 KiB first writes with an fsync every N: each fsync of the thin device is a
    REQ_PREFLUSH bio, on which dm-thin commits (its 1 s timer commits too: the kernel has no
    thinp_commit_interval=0)."""
    c, sc = ctx.case, ctx.env.scale
    f, bs, stride = c.params["fsync"], 4 * KiB, 64 * KiB
    n = sc["commit_n"]
    size = n * stride
    envv = {"BS": bs, "SKIP": stride - bs, "SIZE": size, "IOSIZE": n * bs, "FSYNC": f}

    def go(pool):
        dev = pool.create_thin(1, size)
        return {"first-write": measured(ctx, pool, "first-write", "07-commit.fio",
                                        "first-write", envv, dev)}
    return with_pool(ctx, go, 64 * KiB, c.params.get("zero", False))


RUNNERS = {"alloc": k_alloc, "cow": k_cow, "overwrite": k_overwrite, "blocksize": k_blocksize,
           "edge": k_edge, "commit": k_commit}



def describe():
    """env.json's account of the kernel side: engine, preset, the kernel and tools."""
    ver = run_q(["dmsetup", "version"])[1].split("\n")
    return {"ioengine": OPTIONS["ioengine"], "direct": 1,
            "loop_lvm": "sparse data/metadata files in the case's scratch dir, buffered loop "
                        "devices (losetup), a thin-pool table: <meta> <data> <block sectors> "
                        f"{DOCKER_LOW_WATER} 1 skip_block_zeroing (zeroing cases: 0 features)",
            "kernel": os.uname().release,
            "dmsetup": [x.strip() for x in ver if x.strip()],
            "counters": "the loop devices' /sys/block/<dev>/stat deltas and the pool status's "
                        "used blocks, around each measured fio step"}
