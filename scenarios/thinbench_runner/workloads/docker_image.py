"""Image build and container start on Docker's devicemapper driver (libthinp, `thinp docker`)
and on overlayfs (scenario 11a). Each repetition builds a fresh image of DK_LAYERS layers, each
adding a seeded pick of real host files (about DK_LAYER bytes), then starts DK_CONTAINERS
containers of it.

  thinp-docker  a layer: create (a snapshot of the layer below) + get (activate, mount) + copy
                + sync + put (unmount, deactivate); a start: create + get. Pool data and
                metadata blocks used per layer from the pool's status.
  overlayfs     a layer: mkdir + copy + syncfs of the host file system; a start: an overlay
                mount over every layer (fresh upper and work dirs)."""
import os
import shutil
import statistics
import tempfile
import time

from ..docker_env import Driver, copy_files, host_files, overlay_mount, overlay_umount, sync_dir
from ..procs import CaseError


def summary(times_ns, **extra):
    us = [t / 1e3 for t in times_ns]
    m = statistics.mean(us)
    return dict({"ios": len(us), "cost_us": m, "lat_mean_us": m,
                 "lat_p50_us": statistics.median(us), "each_us": [round(x, 1) for x in us]},
                **extra)


def sc_dimage(ctx):
    env, c = ctx.env, ctx.case
    if not env.root:
        raise CaseError("skipped: not root (mounts, loop devices, FUSE)")
    sc = env.scale
    picks = [host_files(env.args.seed, sc["dk_layer"], f"layer{i}")
             for i in range(sc["dk_layers"])]
    if c.backend == "thinp-docker":
        return driver_build(ctx, picks, sc["dk_containers"])
    if not env.overlay_ok:
        raise CaseError(f"skipped: {env.overlay_reason}")
    return overlay_build(ctx, picks, sc["dk_containers"])


def driver_build(ctx, picks, nc):
    # (a short path: the daemon's socket, ROOT/thinbench/driver.sock, must fit in 108 bytes)
    top = tempfile.mkdtemp(prefix="dk", dir=ctx.env.tmp)
    d = Driver(ctx.env.cli, os.path.join(top, "root"))
    try:
        d.init(ctx)
        data0, meta0 = d.pool_blocks(ctx)
        layer_ns, dblocks, mblocks, nbytes = [], [], [], []
        parent = None
        for i, files in enumerate(picks):
            ident = f"layer{i + 1}"
            t0 = time.perf_counter_ns()
            d.create(ctx, ident, parent)
            p = d.get(ctx, ident)
            nbytes.append(copy_files(files, p))
            sync_dir(p)
            d.put(ctx, ident)
            layer_ns.append(time.perf_counter_ns() - t0)
            data1, meta1 = d.pool_blocks(ctx)
            dblocks.append(data1 - data0)
            mblocks.append(meta1 - meta0)
            data0, meta0 = data1, meta1
            parent = ident
        start_ns = []
        for k in range(nc):
            ident = f"ctr{k + 1}"
            t0 = time.perf_counter_ns()
            d.create(ctx, ident, parent)
            d.get(ctx, ident)
            start_ns.append(time.perf_counter_ns() - t0)
        data1, meta1 = d.pool_blocks(ctx)
        for k in range(nc):
            d.put(ctx, f"ctr{k + 1}")
    finally:
        d.cleanup(ctx)
        shutil.rmtree(top, ignore_errors=True)
    layer = summary(layer_ns, bytes=statistics.mean(nbytes),
                    data_blocks=statistics.mean(dblocks), meta_blocks=statistics.mean(mblocks),
                    data_blocks_each=dblocks, meta_blocks_each=mblocks)
    start = summary(start_ns, data_blocks=(data1 - data0) / nc, meta_blocks=(meta1 - meta0) / nc)
    return {"layer": {"all": layer}, "start": {"all": start}}


def overlay_build(ctx, picks, nc):
    layers, layer_ns, nbytes = [], [], []
    for i, files in enumerate(picks):
        p = os.path.join(ctx.work, "layers", f"layer{i + 1}")
        t0 = time.perf_counter_ns()
        os.makedirs(p)
        nbytes.append(copy_files(files, p))
        sync_dir(p)
        layer_ns.append(time.perf_counter_ns() - t0)
        layers.append(p)
    lower = ":".join(reversed(layers))  # (overlayfs: the leftmost lower dir is the top)
    start_ns, mounts = [], []
    try:
        for k in range(nc):
            t0 = time.perf_counter_ns()
            mounts.append(overlay_mount(ctx, lower, f"ctr{k + 1}"))
            start_ns.append(time.perf_counter_ns() - t0)
    finally:
        for m in mounts:
            overlay_umount(m)
    return {"layer": {"all": summary(layer_ns, bytes=statistics.mean(nbytes))},
            "start": {"all": summary(start_ns)}}
