"""The environment of one run: the tools it needs (checked before anything runs), the scratch
dir, the direct-lvm devices, the seed's lower file, and env.json's description of it all."""
import datetime
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile

from . import ROOT
from .case import SCALES
from .diskio import write_pattern
from .kernel_vm import kernel_origin, kernel_script
from .procs import CLEANUP, log
from .units import KiB, human

# scenario 11: Docker's driver through `thinp docker` (workloads/docker_*.py)
DOCKER_SCENARIOS = ("dimage", "dwrite", "dmemory")
QEMU_BACKENDS = {"qcow2-bench", "raw-bench", "qcow2-nbd", "raw-nbd"}
NBD_BACKENDS = {"qcow2-nbd", "raw-nbd"}


class Env:
    def __init__(self, args):
        self.args = args
        self.scale = SCALES[args.scale]
        self.fio = os.environ.get("FIO", "fio")
        self.engine = os.path.abspath(os.environ.get("THINP_ENGINE",
                                                     os.path.join(ROOT, "ioengine", "thinp.so")))
        self.cli = os.environ.get("THINP", os.path.join(ROOT, "impl", "cli", "thinp"))
        self.build = os.environ.get("BUILD", os.path.join(ROOT, "build"))
        # the fill-to-full driver (scenarios/tools/fill.c), built by the Makefile
        self.fill_bin = os.path.abspath(os.environ.get("THINP_FILL") or
                                        os.path.join(self.build, "bin", "thinp-fill"))
        self.root = os.geteuid() == 0
        self.tmp = None
        self.direct = {}  # data, metadata, kind
        self.overlay_ok, self.overlay_reason = False, ""
        self.seed_lower = None

    # -- tools -----------------------------------------------------------------------------
    def check_tools(self, cases):
        need = {"fio": self.fio}
        if not getattr(self.args, "no_report", False):
            need["gnuplot"] = "gnuplot"
        backends = {c.backend for c in cases}
        if backends & QEMU_BACKENDS:
            need["qemu-img"] = "qemu-img"
        if backends & NBD_BACKENDS:
            need["qemu-nbd"] = "qemu-nbd"
        missing = [f"{name} ({exe})" for name, exe in need.items() if not shutil.which(exe)]
        # (the kernel's cases and the raw baselines run stock fio only)
        if not os.path.isfile(self.engine) and \
                any(c.backend != "kernel" and not c.backend.startswith("raw-") for c in cases):
            missing.append(f"the fio engine {self.engine} (run `make engine`)")
        if any(c.scenario in DOCKER_SCENARIOS or (c.scenario == "chain" and
                                                   c.backend == "thinp") for c in cases) and \
                not os.access(self.cli, os.X_OK):
            missing.append(f"the thinp CLI {self.cli} (run `make`)")
        if any(c.scenario == "fill" and c.backend == "thinp-tool" for c in cases) and \
                not os.access(self.fill_bin, os.X_OK):
            missing.append(f"the fill-to-full driver {self.fill_bin} (THINP_FILL; run `make`)")
        if self.args.kernel:
            script = kernel_script()
            if not os.path.isfile(script):
                missing.append(f"the VM benchmark {script}")
            if not os.access(self.cli, os.X_OK):
                missing.append(f"the thinp CLI {self.cli} (run `make`; --kernel puts it in the VM)")
        if missing:
            log("scenarios/run: missing tools:\n  " + "\n  ".join(missing))
            log("  install them with `make deps` (Debian: fio gnuplot-nox qemu-utils) and "
                "build with `make`; `make bench` does both")
            sys.exit(2)
        if backends & NBD_BACKENDS:
            p = subprocess.run([self.fio, "--enghelp"], stdout=subprocess.PIPE, text=True)
            if not re.search(r"^\s*nbd\s*$", p.stdout, re.M):
                log("scenarios/run: this fio has no nbd engine (the qcow2-nbd baseline needs "
                    "it); drop those cases with --only or install a fio built with libnbd")
                sys.exit(2)

    # -- scratch + devices -----------------------------------------------------------------
    def setup(self, cases, out):
        # (absolute: the cases run fio and qemu-img in their own work dirs)
        base = os.path.abspath(self.args.tmp or os.environ.get("TMPDIR") or "/var/tmp")
        os.makedirs(base, exist_ok=True)
        self.tmp = tempfile.mkdtemp(prefix="thinbench-", dir=base)
        CLEANUP.dirs.append(self.tmp)
        if not self.o_direct_ok(self.tmp):
            raise SystemExit(f"scenarios/run: {self.tmp} does not support O_DIRECT (tmpfs?); "
                             "point TMPDIR or --tmp at a disk filesystem")
        # (the kernel's direct-lvm cases make their own pools with LVM on --data-dev)
        modes = {c.mode for c in cases if c.backend != "kernel"}
        if "direct" in modes:
            self.setup_direct()
        if any(c.scenario == "seed" for c in cases):
            self.setup_seed(cases)
        if any(c.scenario in DOCKER_SCENARIOS for c in cases):
            self.check_docker(cases)

    @staticmethod
    def o_direct_ok(d):
        path = os.path.join(d, ".odirect")
        try:
            fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_DIRECT, 0o600)
            os.close(fd)
            return True
        except OSError:
            return False
        finally:
            if os.path.exists(path):
                os.unlink(path)

    def setup_direct(self):
        a, sc = self.args, self.scale
        if a.data_dev:
            self.direct = dict(data=a.data_dev, metadata=a.metadata_dev, kind="user devices",
                               detail=f"--data-dev {a.data_dev} --metadata-dev {a.metadata_dev}")
            for p in (a.data_dev, a.metadata_dev):
                if not os.path.exists(p):
                    raise SystemExit(f"scenarios/run: {p} does not exist")
            log(f"direct-lvm on {a.data_dev} + {a.metadata_dev} (their contents are destroyed)")
            return
        d = os.path.join(self.tmp, "direct")
        os.makedirs(d)
        files = {"data": (os.path.join(d, "data.img"), sc["direct"]),
                 "metadata": (os.path.join(d, "metadata.img"), sc["meta"])}
        log(f"direct-lvm: preallocating and writing {human(sc['direct'])} + {human(sc['meta'])} "
            f"in {d}")
        for path, size in files.values():
            subprocess.run(["fallocate", "-l", str(size), path], check=True)
            # written once, so every later write is an overwrite of a written extent (no
            # unwritten-extent conversion in the measurements)
            write_pattern(path, size, 0, direct=True)
        loops = self.loop_devices(files) if self.root and shutil.which("losetup") else {}
        if loops:
            dio = open(f"/sys/block/{os.path.basename(loops['data'])}/loop/dio").read().strip()
            self.direct = dict(data=loops["data"], metadata=loops["metadata"],
                               kind="loop device (losetup --direct-io=on) over a preallocated, "
                                    "written file",
                               detail=f"{loops['data']} -> {files['data'][0]}, "
                                      f"{loops['metadata']} -> {files['metadata'][0]}, dio={dio}")
        else:
            why = "not root" if not self.root else "losetup unavailable"
            self.direct = dict(data=files["data"][0], metadata=files["metadata"][0],
                               kind=f"preallocated, written files opened with O_DIRECT ({why})",
                               detail=f"{files['data'][0]}, {files['metadata'][0]}")

    @staticmethod
    def loop_devices(files):
        """{name: /dev/loopN} with direct I/O over FILES' paths; {} when losetup refuses one."""
        loops = {}
        for k, (path, _) in files.items():
            p = subprocess.run(["losetup", "--direct-io=on", "--find", "--show", path],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if p.returncode:
                log(f"losetup failed ({p.stderr.strip()}); direct-lvm on the files (O_DIRECT)")
                return {}
            dev = p.stdout.strip()
            CLEANUP.loops.append(dev)
            loops[k] = dev
        return loops

    def setup_seed(self, cases):
        """The lower layer of the overlayfs case: one SIZE-byte file of real data."""
        if not any(c.backend in ("overlayfs", "raw-file") for c in cases):
            return
        if not self.root:
            self.overlay_reason = "not root: cannot mount overlayfs"
        elif "overlay" not in open("/proc/filesystems").read():
            r = subprocess.run(["modprobe", "overlay"], stderr=subprocess.DEVNULL)
            if r.returncode or "overlay" not in open("/proc/filesystems").read():
                self.overlay_reason = "overlayfs is not available in this kernel"
        d = os.path.join(self.tmp, "seed-lower")
        os.makedirs(d)
        self.seed_lower = os.path.join(d, "file")
        log(f"seed: writing the {human(self.scale['seed'])} lower file")
        write_pattern(self.seed_lower, self.scale["seed"], 0x5a, chunk=64 * KiB)
        self.probe_overlay(d)

    def probe_overlay(self, d):
        """Mount one overlay of D now, so a refusal (no CAP_SYS_ADMIN, ...) is a recorded
        reason; overlay_ok says whether overlayfs cases can run."""
        if not self.overlay_reason:
            t = tempfile.mkdtemp(prefix="ovl-probe-", dir=self.tmp)
            for sub in ("u", "w", "m"):
                os.makedirs(os.path.join(t, sub))
            p = subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                                f"lowerdir={d},upperdir={t}/u,workdir={t}/w", f"{t}/m"],
                               stderr=subprocess.PIPE, text=True)
            if p.returncode:
                self.overlay_reason = f"mount -t overlay failed: {p.stderr.strip()}"
            else:
                subprocess.run(["umount", f"{t}/m"])
        self.overlay_ok = not self.overlay_reason

    def check_docker(self, cases):
        """The Docker driver's scenarios: root, /dev/fuse, the CLI; overlayfs for its peers.
        The image itself is built by the first case that needs it (docker_env.image)."""
        if not self.root:
            self.overlay_reason = self.overlay_reason or "not root: cannot mount overlayfs"
        elif not os.path.exists("/dev/fuse"):
            raise SystemExit("scenarios/run: the Docker driver's scenarios need /dev/fuse "
                             "(the driver exposes thin devices through FUSE)")
        if self.overlay_ok or self.overlay_reason:
            return
        if "overlay" not in open("/proc/filesystems").read():
            subprocess.run(["modprobe", "overlay"], stderr=subprocess.DEVNULL)
            if "overlay" not in open("/proc/filesystems").read():
                self.overlay_reason = "overlayfs is not available in this kernel"
        d = tempfile.mkdtemp(prefix="ovl-lower-", dir=self.tmp)
        self.probe_overlay(d)

    # -- env.json --------------------------------------------------------------------------
    def describe(self, cases, argv):
        cpu = None
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = None
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) * KiB
        fs = subprocess.run(["df", "-T", self.tmp], stdout=subprocess.PIPE,
                            text=True).stdout.splitlines()[-1].split()
        virt = ", ".join(x for x in (first_line(["systemd-detect-virt", "--container"]),
                                     first_line(["systemd-detect-virt", "--vm"]))
                         if x and x != "none") or None
        return {
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "host": socket.gethostname(),
            "cpu": cpu, "cpus": os.cpu_count(), "memory_bytes": mem,
            "virtualization": virt,
            "kernel": os.uname().release, "kernel_version": os.uname().version,
            "os": os_name() or "unknown (no os-release)",
            "fio": first_line([self.fio, "--version"]),
            "qemu_img": first_line(["qemu-img", "--version"]),
            "qemu_nbd": first_line(["qemu-nbd", "--version"]),
            "gnuplot": first_line(["gnuplot", "--version"]),
            "engine": self.engine,
            "engine_built_against": None,
            "git_commit": git("rev-parse", "HEAD") or None,
            "git_describe": git("describe", "--always", "--dirty") or None,
            "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
            "command": " ".join(["scenarios/run"] + [shlex.quote(a) for a in argv]),
            "options": {"full": self.args.full, "only": self.args.only,
                        "repeat": self.args.repeat, "scale": self.args.scale,
                        "sizes": self.scale, "seed": self.args.seed},
            "root": self.root,
            "scratch": {"dir": self.tmp, "filesystem": fs[1] if len(fs) > 1 else None,
                        "device": fs[0] if fs else None},
            "loop_lvm": ("libthinp on sparse files in the scratch dir through buffered loop "
                         "devices, opened O_DIRECT (thinp_losetup=1: the loop driver's hop and "
                         "the files' page cache, as Docker's dm-thin; ids ....thinp.loop...)"
                         if self.root else
                         "not root, no loop devices: libthinp's loop-lvm file variant, its "
                         "sparse files through the page cache (thinp_mode=loop; ids "
                         "....thinp.file...)"),
            "direct_lvm": ({"kind": self.direct.get("kind"), "detail": self.direct.get("detail"),
                            "engine": "thinp_mode=direct (O_DIRECT on data and metadata)"}
                           if self.direct else None),
            "overlayfs": ("available" if self.overlay_ok else
                          (self.overlay_reason or "not measured in this run")),
            "kernel_dm_thin": kernel_origin(self.args),
            "cases": len(cases),
        }


def os_name():
    """os-release's PRETTY_NAME, or None where there is none (the VM's guest)."""
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    if line.startswith("PRETTY_NAME="):
                        return line.split("=", 1)[1].strip().strip('"') or None
        except OSError:
            continue
    return None


def first_line(cmd):
    try:
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True).stdout.strip().splitlines()[0]
    except (OSError, IndexError):
        return None


def git(*a):
    try:  # (no git in the VM's guest: scenarios/run runs there from a copy of scenarios/)
        return subprocess.run(["git", "-C", ROOT, *a], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True).stdout.strip()
    except OSError:
        return ""
