"""direct-lvm on the kernel (`--backend kernel --data-dev DEV`): the seed's procedure on the
disk the user names, once per case — pvcreate, vgcreate, lvcreate of the pool's data (95% of
the VG) and metadata (1%) LVs, lvconvert into a thin pool, the autoextend profile — then thins
and snapshots through `dmsetup message` on the pool's device, as Docker's driver did with
dm.thinpooldev. The disk is checked first: one that holds a filesystem, a partition table or
an LVM label is refused unless --force (docs/kernel-backend.md)."""
import os

from .kernel_setup import REGISTRY, KernelPool, run_q
from .procs import CaseError, sh

PROFILE_DIR = "/etc/lvm/profile"
# the seed's autoextend profile: grow the pool by 20% once it is 80% full
PROFILE = "activation {\n\tthin_pool_autoextend_threshold=80\n\tthin_pool_autoextend_percent=20\n}\n"


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
        sh(["lvcreate", "-q", "--wipesignatures", "y", "-n", "thinpool", vg, "-l", "95%VG"], ctx,
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
