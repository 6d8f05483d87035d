"""The seed's memory claim (scenario 11c): "Launching n copies of the same container loads n
copies of its files into memory." n containers of the run's image each read the same file set
(DK_MEM bytes, 16 files) once with cat, after a sync and `echo 3 > /proc/sys/vm/drop_caches`.
The page cache this adds is counted twice:

  cgroup   the cats run in a fresh memory cgroup, whose page cache (memory.stat: v1 `cache`,
           v2 `file`) holds the pages they brought in: the containers' own copies of the
           files, and nothing of any other process (the number the verdict uses)
  Cached   the growth of /proc/meminfo's Cached across the reads: machine-wide, so it also
           holds what the layers below read (the pool's data file, for the driver) and
           whatever else ran meanwhile

  thinp-docker  n containers (Docker's driver on libthinp): each its own ext4 on its own thin
                snapshot, so each reads the files into its own page cache; below them the
                pool's data file is read through the page cache as well (loop-lvm), once for
                the blocks the snapshots share
  overlayfs     n overlays over the same lower tree: the files' pages belong to the lower
                inodes, shared by every container

copies = page cache / DK_MEM, per repetition."""
import os
import subprocess
import time

from ..docker_env import image, overlay_mount, overlay_umount
from ..procs import CLEANUP, CaseError, fmt_cmd
from ..units import KiB


def cached_bytes():
    for line in open("/proc/meminfo"):
        if line.startswith("Cached:"):
            return int(line.split()[1]) * KiB
    raise CaseError("no Cached line in /proc/meminfo")


def drop_caches(ctx):
    ctx.commands.append("sync; echo 3 > /proc/sys/vm/drop_caches")
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError as e:
        raise CaseError(f"skipped: cannot drop the page cache ({e})")


class MemCgroup:
    """A fresh memory cgroup (v1 or v2) for the readers; gone at the case's or the run's end."""

    def __init__(self, tag):
        v1 = "/sys/fs/cgroup/memory"
        v2 = "/sys/fs/cgroup"
        if os.path.exists(os.path.join(v1, "cgroup.procs")):
            base, self.key = v1, "cache"
        elif "memory" in read(os.path.join(v2, "cgroup.controllers")):
            base, self.key = v2, "file"
        else:
            raise CaseError("skipped: no memory cgroup (neither v1 nor v2 with memory)")
        self.path = os.path.join(base, f"thinbench-{os.getpid()}-{tag}")
        try:
            os.mkdir(self.path)
        except OSError as e:
            raise CaseError(f"skipped: cannot make a memory cgroup {self.path}: {e}")
        CLEANUP.calls.append(self.remove)

    def join(self):
        """(in the child, before exec) move this process into the cgroup"""
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))

    def cache(self):
        for line in read(os.path.join(self.path, "memory.stat")).splitlines():
            k, v = line.split()
            if k == self.key:
                return int(v)
        raise CaseError(f"no {self.key} in {self.path}/memory.stat")

    def remove(self):
        try:
            os.rmdir(self.path)
        except OSError:
            pass


def read(path):
    try:
        return open(path).read()
    except OSError:
        return ""


def cat_all(ctx, cg, paths):
    """cat PATHS > /dev/null in a child inside the cgroup CG."""
    cmd = ["cat", "--", *paths]
    ctx.commands.append(f"(in memory cgroup {cg.path}) {fmt_cmd(cmd[:3])} ... > /dev/null "
                        f"({len(paths)} files)")
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                       preexec_fn=cg.join)
    if p.returncode:
        raise CaseError(f"cat exited {p.returncode}: {p.stderr.strip()[-300:]}")


def sc_dmemory(ctx):
    env, c = ctx.env, ctx.case
    if not env.root:
        raise CaseError("skipped: not root (mounts, loop devices, FUSE, drop_caches)")
    if c.backend == "overlayfs" and not env.overlay_ok:
        raise CaseError(f"skipped: {env.overlay_reason}")
    img = image(env)
    n = c.params["n"]
    tops, undo = [], []
    try:
        for k in range(n):
            if c.backend == "thinp-docker":
                d = img.driver
                ident = d.new_id(f"m{n}-r{ctx.rep}-")
                d.create(ctx, ident, img.top)
                undo.append(lambda d=d, i=ident: d.remove(ctx, i))
                tops.append(d.get(ctx, ident))
                undo.append(lambda d=d, i=ident: d.put(ctx, i))
            else:
                m = overlay_mount(ctx, img.lower, f"ctr{k + 1}")
                undo.append(lambda m=m: overlay_umount(m))
                tops.append(m)
        names = [name for name, _ in img.memfiles]
        total = sum(size for _, size in img.memfiles)
        cg = MemCgroup(f"{ctx.case.cid}.r{ctx.rep}")
        undo.append(cg.remove)
        drop_caches(ctx)
        c0, g0 = cached_bytes(), cg.cache()
        t0 = time.perf_counter_ns()
        cat_all(ctx, cg, [os.path.join(t, name) for t in tops for name in names])
        t1 = time.perf_counter_ns()
        grown, own = cached_bytes() - c0, cg.cache() - g0
    finally:
        for f in reversed(undo):
            f()
    per = (t1 - t0) / 1e3 / n
    return {"read": {"all": {"ios": n, "bytes": n * total, "cost_us": per, "lat_mean_us": per,
                             "page_cache": own, "copies": own / total,
                             "cached_growth": grown, "cached_copies": grown / total,
                             "file_set": total}}}

