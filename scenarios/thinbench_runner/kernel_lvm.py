"""direct-lvm on the kernel (`--backend kernel --data-dev DEV`): the seed's procedure on the
disk the user names, once per case — pvcreate, vgcreate, lvcreate of the pool's data (95% of
the VG) and metadata (1%) LVs, lvconvert into a thin pool, the autoextend profile — then thins
and snapshots through `dmsetup message` on the pool's device, as Docker's driver did with
dm.thinpooldev. Where dmeventd is installed the pool is monitored (`lvchange --monitor y`), so
its thin plugin applies the profile as on a real host; a dmeventd the runner started is stopped
again with the pool. The disk is checked first: one that holds a filesystem, a partition table
or an LVM label is refused unless --force (docs/kernel-backend.md)."""
import os
import shutil
import signal
import subprocess
import time

from .kernel_setup import REGISTRY, REMOVE, KernelPool, run_q
from .procs import CaseError, fmt_cmd, sh

PROFILE_DIR = "/etc/lvm/profile"
# the seed's autoextend profile: grow the pool by 20% once it is 80% full
THRESHOLD, PERCENT = 80, 20
PROFILE = (f"activation {{\n\tthin_pool_autoextend_threshold={THRESHOLD}\n"
           f"\tthin_pool_autoextend_percent={PERCENT}\n}}\n")
DMEVENTD_PIDFILE = "/run/dmeventd.pid"


def dmeventd_path():
    """dmeventd's binary (Debian: package dmeventd), or None."""
    return shutil.which("dmeventd") or next(
        (p for p in ("/usr/sbin/dmeventd", "/sbin/dmeventd") if os.access(p, os.X_OK)), None)


def dmeventd_pid():
    """The pid of the running dmeventd (its pid file; a zombie counts as gone), or None."""
    try:
        with open(DMEVENTD_PIDFILE) as f:
            pid = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if alive(pid, "dmeventd") else None


def alive(pid, comm):
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return False
    # (pid (comm) state ...: a recycled pid has another comm, an exited one state Z)
    return st[st.index("(") + 1:st.rindex(")")] == comm and st[st.rindex(")") + 2] != "Z"


def stop_dmeventd(pid):
    """SIGTERM to the dmeventd the runner started (once nothing is monitored it exits), then
    SIGKILL if it is still there after 10 s."""
    pid = int(pid)
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        if not alive(pid, "dmeventd"):
            return ""
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return ""
        end = time.monotonic() + wait
        while time.monotonic() < end and alive(pid, "dmeventd"):
            time.sleep(0.1)
    return f"dmeventd {pid} did not exit" if alive(pid, "dmeventd") else ""


def unmonitor(lv):
    rc, _, err = run_q(["lvchange", "-q", "--monitor", "n", lv], timeout=120)
    if rc == 0 or run_q(["lvs", lv])[0] != 0:  # (a VG already gone took the monitoring along)
        return ""
    return f"lvchange --monitor n {lv}: {err.strip()}"


# the kinds of REGISTRY entries a direct-lvm pool adds (removed newest first, as all entries):
# the pool's monitoring before the dmeventd that does it, both before the VG
REMOVE.update({"monitor": unmonitor, "dmeventd": stop_dmeventd})


def disk_refusal(dev, force):
    """None when DEV may be used, else the message to exit 2 with."""
    if not os.path.exists(dev):
        return f"--data-dev {dev} does not exist: name the disk direct-lvm may destroy"
    rc, out, err = run_q(["blkid", "-p", "-o", "export", dev])
    if rc == 2 and not out.strip():  # (blkid: nothing found)
        return None
    if rc not in (0, 2):
        return f"--data-dev {dev}: blkid -p failed ({err.strip() or rc}); is it a readable disk?"
    tags = dict(line.split("=", 1) for line in out.split() if "=" in line)
    if force:
        return None
    kind = ("an LVM label" if tags.get("TYPE") == "LVM2_member" else
            f"a filesystem ({tags['TYPE']})" if "TYPE" in tags else
            f"a partition table ({tags['PTTYPE']})" if "PTTYPE" in tags else "a signature")
    seen = " ".join(f"{k}={v}" for k, v in tags.items() if k in ("TYPE", "PTTYPE", "USAGE"))
    return (f"--data-dev {dev} holds {kind} (blkid -p: {seen or out.strip()}); direct-lvm "
            "destroys it: name an unused disk, or add --force to wipe it")


class LvmPool(KernelPool):
    """A thin pool made by LVM on the run's --data-dev; the counters read its data and
    metadata LVs (vg-thinpool_tdata, vg-thinpool_tmeta: dm-linear devices, /sys/block/dm-N)."""
    # the data LV's share of the VG (the seed's 95%VG)
    DATA_PCT = 95

    def _create(self):
        ctx = self.ctx
        disk = ctx.env.args.data_dev
        vg = f"tb{os.getpid()}r{ctx.rep}"
        self.vg = vg
        # (the disk was checked at the start, --force included: -ff -y wipes what is there)
        sh(["pvcreate", "-q", "-ff", "-y", disk], ctx, what="pvcreate")
        REGISTRY.add("pv", disk)
        sh(["vgcreate", "-q", vg, disk], ctx, what="vgcreate")
        REGISTRY.add("vg", vg)
        sh(["lvcreate", "-q", "--wipesignatures", "y", "-n", "thinpool", vg, "-l",
            f"{self.DATA_PCT}%VG"], ctx,
           what="lvcreate thinpool")
        sh(["lvcreate", "-q", "--wipesignatures", "y", "-n", "thinpoolmeta", vg, "-l", "1%VG"],
           ctx, what="lvcreate thinpoolmeta")
        sh(["lvconvert", "-q", "-y", "--zero", "y" if self.zero else "n", "-c",
            f"{self.block // 1024}K", "--thinpool", f"{vg}/thinpool", "--poolmetadata",
            f"{vg}/thinpoolmeta"], ctx, what="lvconvert")
        os.makedirs(PROFILE_DIR, exist_ok=True)
        prof = os.path.join(PROFILE_DIR, f"{vg}-thinpool.profile")
        with open(prof, "w") as f:
            f.write(PROFILE)
        REGISTRY.add("file", prof)
        sh(["lvchange", "-q", "--metadataprofile", f"{vg}-thinpool", f"{vg}/thinpool"], ctx,
           what="lvchange profile")
        sh(["lvchange", "-q", "-ay", f"{vg}/thinpool"], ctx, check=False)
        self.lv = f"{vg}/thinpool"
        self.monitored = bool(dmeventd_path()) and self._monitor()
        p = sh(["dmsetup", "table"], ctx, what="dmsetup table")
        pools = [ln.split(":")[0] for ln in p.stdout.splitlines()
                 if ln.startswith(vg + "-") and " thin-pool " in ln]
        if len(pools) != 1:
            raise CaseError(f"lvconvert left {len(pools)} thin-pool devices in {vg}: {p.stdout}")
        self.name = pools[0]
        self.table = sh(["dmsetup", "table", self.name], ctx).stdout.strip()
        # (LVM doubles the '-' of names inside a VG or LV name in dm names: ours have none)
        self.loops = {"data": f"/dev/mapper/{vg}-thinpool_tdata",
                      "metadata": f"/dev/mapper/{vg}-thinpool_tmeta"}
        for k, d in self.loops.items():
            if not os.path.exists(d):
                raise CaseError(f"no {k} LV {d} after lvconvert")

    def _monitor(self):
        """Monitoring through dmeventd, started first when none runs (and then stopped with
        the pool): its thin plugin checks the pool's use on dm events and every 10 s, and past
        50% runs `lvextend --use-policies` at every 5% more (lvm.conf's
        activation/monitoring=0 in the VM is overridden by --monitor y)."""
        ctx = self.ctx
        if dmeventd_pid() is None:
            cmd = [dmeventd_path()]
            ctx.commands.append(fmt_cmd(cmd))
            # (it forks and its parent exits once the daemon is ready; no pipes it could hold)
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=60)
            pid = dmeventd_pid()
            if p.returncode != 0 or pid is None:
                raise CaseError(f"dmeventd exited {p.returncode} and runs "
                                f"{'as ' + str(pid) if pid else 'not'} ({DMEVENTD_PIDFILE})")
            REGISTRY.add("dmeventd", str(pid))
        sh(["lvchange", "-q", "--monitor", "y", self.lv], ctx, what="lvchange --monitor y")
        REGISTRY.add("monitor", self.lv)
        return True

    def lv_state(self):
        """The pool LV's size now: {bytes, extents, extent_bytes, monitor (lvs seg_monitor)}."""
        # (seg_monitor asks dmeventd only where lvm's monitoring is on: the VM's lvm.conf has
        # it off)
        p = sh(["lvs", "--config", "activation/monitoring=1", "--noheadings", "--units", "b",
                "--nosuffix", "-o", "lv_size,vg_extent_size,seg_monitor", self.lv], None,
               what="lvs")
        f = p.stdout.split()
        size, ext = int(f[0]), int(f[1])
        return {"bytes": size, "extents": size // ext, "extent_bytes": ext,
                "monitor": " ".join(f[2:])}
