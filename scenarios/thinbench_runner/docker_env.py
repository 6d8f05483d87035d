"""What the Docker-driver scenarios share: a driver home (ROOT) driven through `thinp docker`
(Docker's devicemapper driver on libthinp, impl/graph), an image of real host files, the same
image extracted on the host file system as overlayfs' lower dir, and a plain directory as the
data volume. Everything is given back at the end of the run, also on Ctrl-C or a signal
(CLEANUP: `thinp docker cleanup ROOT`, then any mount still under the scratch dir)."""
import json
import os
import random
import shutil
import subprocess
import time

from .procs import CLEANUP, CaseError, fmt_cmd, log
from .units import MiB

# Docker's loop-lvm set-up with its defaults where they matter here (64 KiB blocks, block
# zeroing off, ext4 as the base's file system, which dm.fs picks when xfs is missing); the
# base device and the pool smaller than Docker's 10 GiB / 100 GiB, which only bounds them.
STORAGE_OPTS = ["dm.fs=ext4", "dm.basesize=2G", "dm.loopdatasize=8G",
                "dm.loopmetadatasize=256M", "dm.no_warn_on_loop_devices=true"]
# where the image's real files come from (as tests/cli/docker_driver.sh picks them)
HOST_TREES = ("/usr/share/doc", "/usr/share/perl5", "/usr/lib/python3", "/usr/share/locale",
              "/usr/share/zoneinfo")
HOST_FILE_MAX = 256 * 1024


_HOST_FILES = []


def host_files(seed, nbytes, salt):
    """A seeded pick of regular files under HOST_TREES adding up to about NBYTES (the trees
    are walked once per run)."""
    if not _HOST_FILES:
        for top in HOST_TREES:
            for d, _, names in os.walk(top):
                for f in names:
                    p = os.path.join(d, f)
                    if os.path.isfile(p) and not os.path.islink(p) and \
                            0 < os.path.getsize(p) < HOST_FILE_MAX:
                        _HOST_FILES.append(p)
        _HOST_FILES.sort()
    files = list(_HOST_FILES)
    if not files:
        raise CaseError("no host files under " + ", ".join(HOST_TREES) + " to build an image of")
    rnd = random.Random(f"{seed}-{salt}")
    rnd.shuffle(files)
    out, total = [], 0
    for p in files:
        if total >= nbytes:
            break
        out.append(p)
        total += os.path.getsize(p)
    return out


def copy_files(paths, dst):
    """Copy PATHS into DST under their own path (usr/share/...); the bytes copied."""
    n = 0
    for p in paths:
        t = os.path.join(dst, p.lstrip("/"))
        os.makedirs(os.path.dirname(t), exist_ok=True)
        shutil.copyfile(p, t)
        n += os.path.getsize(p)
    return n


def write_data(path, size, seed):
    """SIZE bytes of seeded random data (not compressible, not zero: the pool stores them)."""
    rnd = random.Random(f"{seed}-{path.rsplit('/', 1)[-1]}")
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 * MiB)
            f.write(rnd.randbytes(n))
            left -= n


def sync_dir(path):
    """syncfs(2) of the file system holding PATH (Python has no os.syncfs)."""
    p = subprocess.run(["sync", "-f", path], stderr=subprocess.PIPE, text=True)
    if p.returncode:
        raise CaseError(f"sync -f {path} exited {p.returncode}: {p.stderr.strip()}")


def unmount_under(top):
    """Lazily unmount whatever is still mounted below TOP (deepest first): a daemon that did
    not stop leaves its mounts."""
    top = top.rstrip("/") + "/"
    mps = []
    try:
        for line in open("/proc/self/mountinfo"):
            mp = line.split()[4].replace("\\040", " ")
            if mp.startswith(top):
                mps.append(mp)
    except OSError:
        return
    for mp in sorted(mps, key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], stderr=subprocess.DEVNULL)


class Driver:
    """One driver home ROOT through the CLI; every command is logged in the case's list."""

    def __init__(self, cli, root):
        self.cli, self.root = cli, root
        self.n = 0

    def run(self, ctx, *args, what=None):
        cmd = [self.cli, "docker", *args]
        if ctx is not None:
            ctx.commands.append(fmt_cmd(cmd))
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if p.returncode:
            raise CaseError(f"{what or 'thinp docker ' + args[0]} exited {p.returncode}: "
                            f"{(p.stderr or p.stdout).strip()[-600:]}")
        return p.stdout

    def init(self, ctx):
        opts = []
        for o in STORAGE_OPTS:
            opts += ["--storage-opt", o]
        self.run(ctx, "init", self.root, *opts)
        # (registered before any mount exists: a failed run still stops the daemon; the calls
        # run last first: the daemon's cleanup, then whatever it left mounted)
        CLEANUP.calls.append(lambda: unmount_under(self.root))
        CLEANUP.calls.append([self.cli, "docker", "cleanup", self.root])

    def cleanup(self, ctx=None):
        """Docker's Cleanup (the daemon stops), then any mount it left; never raises."""
        try:
            self.run(ctx, "cleanup", self.root)
        except CaseError as e:
            log(f"docker: {e}")
        unmount_under(self.root)

    def new_id(self, prefix):
        self.n += 1
        return f"{prefix}{self.n}"

    def create(self, ctx, ident, parent=None):
        self.run(ctx, "create", self.root, ident, *(["--parent", parent] if parent else []))

    def get(self, ctx, ident):
        return self.run(ctx, "get", self.root, ident).strip()

    def put(self, ctx, ident):
        self.run(ctx, "put", self.root, ident)

    def remove(self, ctx, ident):
        self.run(ctx, "remove", self.root, ident)

    def pool_blocks(self, ctx=None):
        """(used data blocks, used metadata blocks) from the pool's status (a commit first)."""
        cmd = [self.cli, "pool", "status", os.path.join(self.root, "devicemapper"), "--fields"]
        if ctx is not None:
            ctx.commands.append(fmt_cmd(cmd))
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if p.returncode:
            raise CaseError(f"thinp pool status exited {p.returncode}: {p.stderr.strip()}")
        f = dict(line.split("=", 1) for line in p.stdout.split() if "=" in line)
        return int(f["used_data_blocks"]), int(f["used_meta_blocks"])

    def stats(self, ctx, reset=False):
        """The pool's per-class counters ({class: {ops, data_bytes_written, ...}})."""
        out = self.run(ctx, "stats", self.root, "--format", "json",
                       *(["--reset"] if reset else []))
        return json.loads(out)["classes"]


class DockerImage:
    """The run's image, built once on first use: layer 1 real host files (seeded pick), layer
    2 the data files (the file the update workloads change, the seed's big file, the memory
    scenario's file set); the same tree on the host file system (overlayfs' lower dir); a
    volume dir holding the same data files."""

    def __init__(self, env):
        self.env = env
        sc = env.scale
        self.seed = env.args.seed
        self.dir = os.path.join(env.tmp, "docker")
        self.driver = Driver(env.cli, os.path.join(self.dir, "root"))
        self.lower = os.path.join(self.dir, "lower")
        self.volume = os.path.join(self.dir, "volume")
        self.top = None
        self.data = {"update": sc["dk_update"], "seed": sc["dk_seed"]}
        self.memfiles = [(f"mem/set{i:02d}", sc["dk_mem"] // 16) for i in range(16)]

    def build(self):
        if self.top:
            return
        t0 = time.time()
        os.makedirs(self.lower)
        os.makedirs(self.volume)
        d = self.driver
        d.init(None)
        files = host_files(self.seed, self.env.scale["dk_layer"], "image")
        copy_files(files, self.lower)
        self.write_datafiles(self.lower)
        names = [os.path.join("data", n) for n in self.data] + [n for n, _ in self.memfiles]
        for ident, fill in (("img-files", lambda p: copy_files(files, p)),
                            ("img-data", lambda p: self.copy_datafiles(p, names))):
            d.create(None, ident, self.top)
            p = d.get(None, ident)
            fill(p)
            sync_dir(p)
            d.put(None, ident)
            self.top = ident
        self.copy_datafiles(self.volume, [os.path.join("data", n) for n in self.data])
        os.sync()
        log(f"docker: image built ({time.time() - t0:.1f} s): ROOT {d.root}, lower dir "
            f"{self.lower}, volume {self.volume}")

    def copy_datafiles(self, top, names):
        for n in names:
            os.makedirs(os.path.dirname(os.path.join(top, n)), exist_ok=True)
            shutil.copyfile(os.path.join(self.lower, n), os.path.join(top, n))

    def write_datafiles(self, top):
        os.makedirs(os.path.join(top, "data"), exist_ok=True)
        os.makedirs(os.path.join(top, "mem"), exist_ok=True)
        for name, size in self.data.items():
            write_data(os.path.join(top, "data", name), size, self.seed)
        for name, size in self.memfiles:
            write_data(os.path.join(top, name), size, self.seed)


def image(env):
    """The run's shared image (built on first use)."""
    if getattr(env, "docker_image", None) is None:
        env.docker_image = DockerImage(env)
    env.docker_image.build()
    return env.docker_image


def overlay_mount(ctx, lower, name="ovl"):
    """A fresh overlay of LOWER in the case's work dir (upper and work on the host file
    system): its merged dir; unmounted at the case's end or the run's."""
    t = os.path.join(ctx.work, name)
    for sub in ("upper", "work", "merged"):
        os.makedirs(os.path.join(t, sub), exist_ok=True)
    merged = os.path.join(t, "merged")
    cmd = ["mount", "-t", "overlay", "overlay", "-o",
           f"lowerdir={lower},upperdir={t}/upper,workdir={t}/work", merged]
    ctx.commands.append(fmt_cmd(cmd))
    p = subprocess.run(cmd, stderr=subprocess.PIPE, text=True)
    if p.returncode:
        raise CaseError(f"mount overlay exited {p.returncode}: {p.stderr.strip()}")
    CLEANUP.mounts.append(merged)
    return merged


def overlay_umount(merged):
    subprocess.run(["umount", merged], stderr=subprocess.DEVNULL)
    if merged in CLEANUP.mounts:
        CLEANUP.mounts.remove(merged)
