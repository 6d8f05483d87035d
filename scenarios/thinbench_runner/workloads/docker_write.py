"""File-level writes inside a container (scenario 11b): fio's psync engine, an fsync after
every write (scenarios/jobs/11-docker.fio), on files in

  thinp-docker  a fresh container of the run's image (Docker's devicemapper driver on
                libthinp: an ext4 thin snapshot, mounted by `thinp docker get`); the pool's
                per-class counters (`thinp docker stats`, reset before fio) beside fio's
                latency: what each file-level write became in the pool
  overlayfs     a fresh overlay over the same image tree on the host file system (the
                file-level driver: the first open for writing of a lower file copies it up)
  raw-volume    a plain directory of the host file system holding the same data files (a
                data volume: no storage driver at all)

Workloads: small (new 4 KiB files), append (4 KiB appends to a new file), update (4 KiB random
updates of a file from the image), seed (one 32 KiB update in the middle of the image's big
file). fio's latency leaves its file opens out, so the job's wall time (elapsed_us) is kept
too: overlayfs' copy-up happens in the open."""
import os
import shutil
import time

from .. import fiorun
from ..docker_env import image, overlay_mount, overlay_umount
from ..procs import CaseError
from ..units import KiB

JOB = "11-docker.fio"


def sc_dwrite(ctx):
    env, c = ctx.env, ctx.case
    if not env.root:
        raise CaseError("skipped: not root (mounts, loop devices, FUSE)")
    if c.backend == "overlayfs" and not env.overlay_ok:
        raise CaseError(f"skipped: {env.overlay_reason}")
    img = image(env)
    wl = c.params["wl"]
    if c.backend == "thinp-docker":
        d = img.driver
        ident = d.new_id(f"w{wl}-r{ctx.rep}-")
        d.create(ctx, ident, img.top)
        try:
            top = d.get(ctx, ident)
            try:
                d.stats(ctx, reset=True)
                out = run_fio(ctx, top, wl)
                cls = pool_classes(d.stats(ctx))
                out["write"].update(cls)
                add_pool_totals(out["write"]["all"], cls)
            finally:
                d.put(ctx, ident)
        finally:
            d.remove(ctx, ident)
        return out
    if c.backend == "overlayfs":
        merged = overlay_mount(ctx, img.lower)
        try:
            return run_fio(ctx, merged, wl)
        finally:
            overlay_umount(merged)
    # a data volume: the image's data files in place (updates need them), new files in a
    # fresh dir of this repetition
    top = os.path.join(ctx.work, "volume")
    os.makedirs(top)
    os.symlink(os.path.join(img.volume, "data"), os.path.join(top, "data"))
    try:
        return run_fio(ctx, top, wl)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def run_fio(ctx, top, wl):
    sc = ctx.env.scale
    os.makedirs(os.path.join(top, "new"), exist_ok=True)
    envv = {"DIR": top, "SEED": ctx.env.args.seed + ctx.rep, "NRFILES": sc["dk_small"],
            "SIZE": {"append": sc["dk_ios"] * 4 * KiB, "update": sc["dk_update"]}.get(wl, 0),
            "IOSIZE": sc["dk_ios"] * 4 * KiB, "OFFSET": sc["dk_seed"] // 2}
    t0 = time.perf_counter_ns()
    job, _, dev = fiorun.fio_step(ctx, "write", JOB, wl, {}, envv, stats=False)
    elapsed = (time.perf_counter_ns() - t0) / 1e3
    m = fiorun.fio_metrics(job, None, dev)
    m["all"]["elapsed_us"] = elapsed
    return {"write": m}


def pool_classes(classes):
    """The pool's counters as classes of the step (no latency: the pool times nothing here)."""
    out = {}
    for name, c in classes.items():
        if c.get("ops"):
            out[name] = {"ios": c["ops"], "bytes": c["bytes_requested"],
                         "data_read": c["data_bytes_read"],
                         "data_written": c["data_bytes_written"],
                         "data_zeroed": c["data_bytes_zeroed"],
                         "meta_written": c["meta_bytes_written"]}
    return out


def add_pool_totals(all_, cls):
    """The pool's bytes for the step's file-level bytes (fio's): data and metadata written,
    and what copy-on-write read (the shared blocks copied)."""
    for k in ("data_written", "data_zeroed", "meta_written"):
        all_[k] = sum(c[k] for c in cls.values())
    all_["data_read"] = sum(c["data_read"] for n, c in cls.items() if n.startswith("write_"))
    all_["copied"] = all_["data_read"]
