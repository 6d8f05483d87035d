"""The kernel's dm-thin set up the way Docker's loop-lvm set it up (docs/kernel-backend.md):
sparse data and metadata files, buffered loop devices over them (`losetup`), a `thin-pool`
table, thin devices and snapshots through `dmsetup message`, the origin suspended around a
snapshot. Everything made is recorded in REGISTRY and removed in reverse order: at the end of
each case, and on an error, Ctrl-C or SIGTERM (procs.CLEANUP calls REGISTRY.teardown).

Also the host checks `--backend kernel` refuses on (exit 2, the fix named)."""
import os
import shutil
import signal
import subprocess
import time

from .procs import CLEANUP, CaseError, log, sh
from .units import KiB

# Docker's loop-lvm preset: 64 KiB blocks, low water mark 32768 blocks, no block zeroing
DOCKER_BLOCK = 64 * KiB
DOCKER_LOW_WATER = 32768
SECTOR = 512
# the env hook the tests use to stop a run at a chosen set-up step (SIGINT to itself)
INTERRUPT_ENV = "SCENARIOS_KERNEL_INTERRUPT"


class Registry:
    """What the kernel cases created, in creation order: ("dm", name), ("loop", /dev/loopN),
    and for direct-lvm ("pv", disk), ("vg", name), ("file", an lvm profile).
    teardown() removes them newest first; a dm device another one still holds is retried
    after its holder is gone (the reverse order already puts thins before their pool)."""

    def __init__(self):
        self.items = []
        self.registered = False
        self.steps = 0

    def add(self, kind, name):
        if not self.registered:  # (once: CLEANUP keeps a list of calls)
            CLEANUP.calls.append(self.teardown)
            self.registered = True
        self.items.append((kind, name))
        self.step(f"{kind} {name}")

    def step(self, what):
        """Count set-up steps; INTERRUPT_ENV=N[:SIG] interrupts the run right after the Nth
        (SIGINT, as a user's Ctrl-C, or SIG: TERM, HUP) by signalling this process: the tests
        check that nothing is left behind, at a step they choose, without racing a timer."""
        self.steps += 1
        want = os.environ.get(INTERRUPT_ENV, "")
        n, _, sig = want.partition(":")
        if n.isdigit() and int(n) == self.steps:
            log(f"scenarios/run: {INTERRUPT_ENV}={want}: SIG{sig or 'INT'} after step "
                f"{self.steps} ({what})")
            os.kill(os.getpid(), getattr(signal, "SIG" + (sig or "INT")))
            time.sleep(5)  # (the handler raises KeyboardInterrupt before this returns)

    def forget(self, kind, name):
        if (kind, name) in self.items:
            self.items.remove((kind, name))

    def teardown(self, upto=0):
        """Remove every item after index UPTO, newest first; the errors of those that would not
        go (after retries), as strings."""
        errors = []
        while len(self.items) > upto:
            kind, name = self.items[-1]
            err = REMOVE[kind](name)
            # (dropped only once tried: a signal in the middle leaves it for CLEANUP)
            self.items.pop()
            if err:
                errors.append(err)
        return errors


REGISTRY = Registry()


def run_q(cmd, timeout=60):
    """CMD's (exit status, stdout, stderr), never raising on a failure of the command."""
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return 127, "", str(e)
    return p.returncode, p.stdout, p.stderr


def remove_dm(name):
    # a device just closed by fio may still be held for a moment (udev-less guests, the
    # kernel's deferred bdev release): dmsetup's own --retry, then a few more tries
    err = ""
    for _ in range(5):
        if run_q(["dmsetup", "info", name])[0] != 0:
            return ""
        rc, _, err = run_q(["dmsetup", "remove", "--retry", name])
        if rc == 0:
            return ""
        time.sleep(0.2)
    return f"dmsetup remove {name}: {err.strip()}"


def remove_vg(vg):  # (its LVs, the pool's included, go with it)
    rc, _, err = run_q(["vgremove", "-ff", "-y", vg], timeout=120)
    return "" if rc == 0 or run_q(["vgs", vg])[0] != 0 else f"vgremove {vg}: {err.strip()}"


def remove_pv(dev):
    rc, _, err = run_q(["pvremove", "-ff", "-y", dev], timeout=120)
    return "" if rc == 0 else f"pvremove {dev}: {err.strip()}"


def remove_file(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    return ""


def detach_loop(dev):
    rc, _, err = run_q(["losetup", "-d", dev])
    if rc != 0 and os.path.exists(f"/sys/block/{os.path.basename(dev)}/loop"):
        return f"losetup -d {dev}: {err.strip()}"
    return ""


REMOVE = {"dm": remove_dm, "loop": detach_loop, "vg": remove_vg, "pv": remove_pv,
          "file": remove_file}


# -- refusals ---------------------------------------------------------------------------------
def host_refusal():
    """None when this host can run the kernel cases, else the message to exit 2 with."""
    if os.geteuid() != 0:
        return ("--backend kernel needs root (it creates loop devices and device-mapper "
                f"devices; this is uid {os.geteuid()}): run it as root (sudo scenarios/run "
                "--backend kernel ...), or without root on this machine through the VM: "
                "make vm-bench")
    missing = [t for t in ("dmsetup", "losetup") if not shutil.which(t)]
    if missing:
        return (f"--backend kernel needs {', '.join(missing)}: install them (Debian: "
                "apt-get install dmsetup util-linux)")
    why = dm_thin_missing()
    if why:
        return (f"--backend kernel: this host has no device-mapper thin-pool target ({why}); "
                "load it with `modprobe dm-thin-pool` (kernel config CONFIG_DM_THIN_PROVISIONING)"
                ", or run the kernel cases in the VM: make vm-bench")
    return None


def dm_thin_missing():
    """'' when the thin-pool target is there (loading the module if it is not yet), else
    what was looked at."""
    if os.path.isdir("/sys/module/dm_thin_pool") and thin_target_listed():
        return ""
    rc, _, err = run_q(["modprobe", "dm-thin-pool"])
    if thin_target_listed():
        return ""
    seen = ["/sys/module/dm_thin_pool absent" if not os.path.isdir("/sys/module/dm_thin_pool")
            else "/sys/module/dm_thin_pool present", "`dmsetup targets` lists no thin-pool"]
    seen.append("modprobe dm-thin-pool: " + (err.strip().splitlines() or ["exit %d" % rc])[-1]
                if rc else "modprobe dm-thin-pool succeeded")
    return "; ".join(seen)


def thin_target_listed():
    rc, out, _ = run_q(["dmsetup", "targets"])
    return rc == 0 and any(line.split()[:1] == ["thin-pool"] for line in out.splitlines())


# -- one case's pool ----------------------------------------------------------------------------
class KernelPool:
    """A loop-lvm pool of CTX's case: WORK/data and WORK/metadata (sparse), two buffered loop
    devices, the thin-pool device; thins made on demand. close() removes what it made."""

    def __init__(self, ctx, block=DOCKER_BLOCK, zero=False, data_size=None):
        self.ctx = ctx
        self.block = block
        self.zero = zero
        self.mark = len(REGISTRY.items)
        sc = ctx.env.scale
        self.data_size = data_size or sc["direct"]
        self.meta_size = sc["meta"]
        self.prefix = f"tb{os.getpid()}-r{ctx.rep}"
        self.name = f"{self.prefix}-pool"
        self.thins = {}
        self.files = {"data": os.path.join(ctx.work, "data"),
                      "metadata": os.path.join(ctx.work, "metadata")}
        try:
            self._create()
        except BaseException:
            self.close()
            raise

    def _create(self):
        for k, size in (("data", self.data_size), ("metadata", self.meta_size)):
            with open(self.files[k], "wb") as f:  # sparse, as Docker's files were
                f.truncate(size)
        self.loops = {}
        for k in ("data", "metadata"):
            # buffered (no --direct-io): Docker attached its files with LOOP_SET_FD only
            p = sh(["losetup", "--find", "--show", self.files[k]], self.ctx, what="losetup")
            dev = p.stdout.strip()
            REGISTRY.add("loop", dev)
            self.loops[k] = dev
        # a fresh pool: the kernel formats metadata whose superblock is all zeros (the sparse
        # file reads as zeros)
        feats = [] if self.zero else ["skip_block_zeroing"]
        table = (f"0 {self.data_size // SECTOR} thin-pool {self.loops['metadata']} "
                 f"{self.loops['data']} {self.block // SECTOR} {DOCKER_LOW_WATER} "
                 f"{len(feats)}{''.join(' ' + f for f in feats)}").strip()
        self.table = table
        sh(["dmsetup", "create", self.name, "--table", table], self.ctx, what="dmsetup create pool")
        REGISTRY.add("dm", self.name)

    def dev(self, tid):
        return f"/dev/mapper/{self.thins[tid]}"

    def message(self, msg):
        sh(["dmsetup", "message", self.name, "0", msg], self.ctx, what=f"dmsetup message {msg}")

    def activate(self, tid, size):
        name = f"{self.prefix}-thin{tid}"
        sh(["dmsetup", "create", name, "--table",
            f"0 {size // SECTOR} thin /dev/mapper/{self.name} {tid}"], self.ctx,
           what=f"dmsetup create thin {tid}")
        REGISTRY.add("dm", name)
        self.thins[tid] = name
        wait_node(self.dev(tid))
        return self.dev(tid)

    def create_thin(self, tid, size):
        self.message(f"create_thin {tid}")
        REGISTRY.step(f"create_thin {tid}")
        return self.activate(tid, size)

    def snapshot(self, tid, origin, size):
        """create_snap TID of ORIGIN: the active origin suspended around the message (its
        in-flight IO flushed and its mappings held still, as Docker's driver and lvm do)."""
        on = self.thins[origin]
        sh(["dmsetup", "suspend", on], self.ctx, what="dmsetup suspend origin")
        try:
            self.message(f"create_snap {tid} {origin}")
        finally:
            sh(["dmsetup", "resume", on], self.ctx, what="dmsetup resume origin")
        REGISTRY.step(f"create_snap {tid} {origin}")
        return self.activate(tid, size)

    def status(self):
        """The pool's status line fields: transaction id, used/total metadata and data."""
        p = sh(["dmsetup", "status", self.name], self.ctx, what="dmsetup status")
        return parse_pool_status(p.stdout)

    def close(self):
        errs = REGISTRY.teardown(self.mark)
        if errs:
            raise CaseError("kernel pool teardown: " + "; ".join(errs))


def parse_pool_status(line):
    """`0 N thin-pool TID USED_META/TOTAL_META USED_DATA/TOTAL_DATA ...` -> dict."""
    f = line.split()
    if len(f) < 6 or f[2] != "thin-pool":
        raise CaseError(f"unexpected thin-pool status: {line.strip()!r}")
    um, tm = (int(x) for x in f[4].split("/"))
    ud, td = (int(x) for x in f[5].split("/"))
    return {"transaction_id": int(f[3]), "used_meta_blocks": um, "total_meta_blocks": tm,
            "used_data_blocks": ud, "total_data_blocks": td, "line": line.strip()}


def wait_node(path, tries=50):
    """Without udev, dmsetup makes the /dev/mapper node itself; with udev it may lag a bit."""
    for _ in range(tries):
        if os.path.exists(path):
            return
        run_q(["dmsetup", "mknodes"])
        time.sleep(0.1)
    raise CaseError(f"{path} did not appear after dmsetup create")
