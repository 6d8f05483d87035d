"""The peers libthinp is compared with, on the same store in the same run
(docs/benchmark-method.md): the raw backing store through fio, qcow2 and raw images through
`qemu-img bench` (in-process, like the engine) and through qemu-nbd + fio's nbd engine.
(overlayfs, the seed's file-level peer, is in workloads/seed.py.)"""
import os
import re
import shutil
import subprocess
import tempfile
import time

from . import fiorun
from .diskio import fsize_alloc, prep_written
from .procs import CLEANUP, CaseError, children_io, fmt_cmd, proc_io, sh
from .units import KiB

QEMU_BENCH = ("qcow2-bench", "raw-bench")
NBD = ("qcow2-nbd", "raw-nbd")
RAW_FIO = ("raw-psync", "raw-io_uring")


def image_format(backend):
    """'qcow2' or 'raw': the image format of a qemu backend."""
    return "qcow2" if backend.startswith("qcow2") else "raw"


# -- the raw backing store through fio --------------------------------------------------------
def raw_target(ctx, mode, size, written):
    """The raw backing store for a baseline: loop-lvm -> a file in the scratch dir (sparse,
    or written when WRITTEN), buffered; direct-lvm -> the direct data device, O_DIRECT."""
    if mode == "direct":
        return ctx.env.direct["data"], 1
    path = os.path.join(ctx.work, "raw.img")
    if written:
        prep_written(path, size, mode)
    else:
        with open(path, "w") as f:
            f.truncate(size)
    return path, 0


def raw_opts(backend, direct):
    return {"ioengine": "io_uring" if backend == "raw-io_uring" else "psync",
            "direct": direct}


# -- qemu ---------------------------------------------------------------------------------------
def qemu_cache(mode):
    return (["-t", "writeback", "-i", "threads"] if mode == "loop" else
            ["-t", "none", "-i", "native"])


def qemu_bench(ctx, step, img, fmt, mode, count, size, stepsz, offset=0, write=True,
               flush=None):
    """`qemu-img bench` (in-process, QD1): time / count is the mean latency."""
    cmd = ["qemu-img", "bench", "-f", fmt, "-c", str(count), "-d", "1", "-s", str(size),
           "-S", str(stepsz), "-o", str(offset)] + qemu_cache(mode)
    if write:
        cmd += ["-w", "--pattern=0xa5"]
    if flush:
        cmd += [f"--flush-interval={flush}"]
    cmd.append(img)
    a0 = fsize_alloc(img)
    r0, w0 = children_io()
    p = sh(cmd, ctx, what="qemu-img bench")
    r1, w1 = children_io()
    m = re.search(r"Run completed in ([0-9.]+) seconds", p.stdout)
    if not m:
        raise CaseError(f"qemu-img bench: no run time in its output: {p.stdout[-300:]}")
    secs = float(m.group(1))
    with open(os.path.join(ctx.fio_dir, f"r{ctx.rep}-{step}.txt"), "w") as f:
        f.write(fmt_cmd(cmd) + "\n" + p.stdout)
    nbytes = count * size
    lat = secs / count * 1e6
    return {"all": {"dir": "write" if write else "read", "ios": count, "bytes": nbytes,
                    "lat_mean_us": lat, "cost_us": lat, "iops": count / secs if secs else 0,
                    "mbps": nbytes / secs / 1e6 if secs else 0,
                    "dev_read": r1 - r0, "dev_written": w1 - w0,
                    "alloc_bytes": fsize_alloc(img) - a0}}


def qcow2_create(ctx, path, size, backing=None):
    cmd = ["qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=65536"]
    if backing:
        cmd += ["-b", backing, "-F", "qcow2"]
    cmd += [path, str(size)]
    sh(cmd, ctx, what="qemu-img create")


def new_image(ctx, path, fmt, size):
    """A fresh, empty image: qcow2, or a sparse raw file."""
    if fmt == "qcow2":
        qcow2_create(ctx, path, size)
    else:
        with open(path, "w") as f:
            f.truncate(size)


def image_fill(ctx, img, fmt, size, mode, offset=0, pattern=0x5a):
    """Write SIZE bytes of an image at OFFSET, 64 KiB at a time (like prep_written), through
    qemu-img bench (fast; allocates every cluster) in the cache mode the case will use."""
    sh(["qemu-img", "bench", "-f", fmt, "-w", "-c", str(size // (64 * KiB)), "-d", "4",
        "-s", str(64 * KiB), "-o", str(offset), f"--pattern={pattern:#x}"] + qemu_cache(mode)
       + [img], ctx, what="qemu-img bench (fill)")


def written_image(ctx, fmt, size, mode, overlay=False):
    """An image whose SIZE bytes are all written: qcow2 (filled through qemu-img bench; with
    OVERLAY, a fresh overlay on top of it is returned instead: the CoW peer), or raw (a
    pre-written file, as prep_written)."""
    if fmt != "qcow2":
        img = os.path.join(ctx.work, "base.raw" if overlay else "img.raw")
        prep_written(img, size, mode)
        return img
    base = os.path.join(ctx.work, "base.qcow2" if overlay else "img.qcow2")
    qcow2_create(ctx, base, size)
    image_fill(ctx, base, "qcow2", size, mode)
    if not overlay:
        return base
    img = os.path.join(ctx.work, "overlay.qcow2")
    qcow2_create(ctx, img, size, backing=base)
    return img


def short_tmp_dir():
    """$TMPDIR when a socket path under it fits sun_path, else /tmp."""
    t = tempfile.gettempdir()
    return t if len(t) < 60 else "/tmp"


class Nbd:
    """qemu-nbd on a unix socket (a child of the runner; killed by pid on exit)."""

    def __init__(self, ctx, img, fmt, mode):
        # A unix socket path must fit sun_path (108 bytes): a deep work dir (a CI checkout,
        # --tmp under a long path) would not, so the socket lives in its own short temp dir.
        self.sockdir = tempfile.mkdtemp(prefix="tb-nbd-", dir=short_tmp_dir())
        CLEANUP.dirs.append(self.sockdir)
        self.sock = os.path.join(self.sockdir, "nbd.sock")
        cache = ["--cache=writeback", "--aio=threads"] if mode == "loop" else \
            ["--cache=none", "--aio=native"]
        cmd = ["qemu-nbd", "-k", self.sock, "-t", "-e", "4", "-f", fmt] + cache + [img]
        ctx.commands.append(fmt_cmd(cmd) + " &")
        self.p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True)
        CLEANUP.procs.append(self.p)
        t0 = time.time()
        while not os.path.exists(self.sock):
            if self.p.poll() is not None:
                raise CaseError(f"qemu-nbd exited {self.p.returncode}: {self.p.stderr.read()}")
            if time.time() - t0 > 10:
                raise CaseError("qemu-nbd did not create its socket in 10 s")
            time.sleep(0.01)
        self.uri = f"nbd+unix:///?socket={self.sock}"

    def io(self):
        return proc_io(self.p.pid)

    def close(self):
        self.p.terminate()
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        CLEANUP.procs.remove(self.p)
        shutil.rmtree(self.sockdir, ignore_errors=True)
        CLEANUP.dirs.remove(self.sockdir)


def nbd_step(ctx, nbd, step, jobfile, section, envvars, mode):
    io0 = nbd.io()
    job, _, _ = fiorun.fio_step(ctx, step, jobfile, section,
                                {"ioengine": "nbd", "uri": nbd.uri}, envvars, stats=False)
    io1 = nbd.io()
    m = fiorun.fio_metrics(job)
    # the server's own IO: exact block-layer bytes with O_DIRECT (cache=none), what it handed
    # to the page cache otherwise (docs/benchmark-method.md)
    if mode == "direct":
        m["all"]["dev_read"] = io1.get("read_bytes", 0) - io0.get("read_bytes", 0)
        m["all"]["dev_written"] = io1.get("write_bytes", 0) - io0.get("write_bytes", 0)
    else:
        m["all"]["dev_read"] = io1.get("rchar", 0) - io0.get("rchar", 0)
        m["all"]["dev_written"] = io1.get("wchar", 0) - io0.get("wchar", 0)
    return m


def nbd_steps(ctx, img, fmt, steps):
    """Serve IMG through qemu-nbd for the (step, jobfile, section, envvars) STEPS, in order:
    {step: metrics}."""
    nbd = Nbd(ctx, img, fmt, ctx.case.mode)
    try:
        return {s: nbd_step(ctx, nbd, s, jf, sec, envv, ctx.case.mode)
                for s, jf, sec, envv in steps}
    finally:
        nbd.close()
