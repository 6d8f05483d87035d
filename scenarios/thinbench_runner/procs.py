"""Running things, and giving back everything a run takes from the machine.

Every resource the run creates is registered in CLEANUP and released on exit, on Ctrl-C and
on SIGTERM/SIGHUP (they raise KeyboardInterrupt, see install_signals): loop devices, qemu-nbd
processes, the VM's process group, the Docker driver's daemons (`thinp docker cleanup`), overlay
mounts, scratch dirs.
"""
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys


def log(msg, end="\n"):
    sys.stderr.write(msg + end)
    sys.stderr.flush()


class CaseError(Exception):
    """One case's repetition failed (recorded, and the run goes on); a message starting with
    'skipped:' records a skip instead."""


class Cleanup:
    def __init__(self):
        self.loops, self.procs, self.mounts, self.dirs = [], [], [], []
        self.groups = []  # children started in their own session: their process group goes
        # commands that give back what a tool holds (a driver daemon's mounts, its pool):
        # run before the mounts and dirs go
        self.calls = []
        self.done = False

    def run(self):
        if self.done:
            return
        self.done = True
        for p in self.groups:
            kill_group(p)
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for c in reversed(self.calls):  # (an argv list, or a function)
            try:
                if callable(c):
                    c()
                else:
                    subprocess.run(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   timeout=120)
            except (OSError, subprocess.TimeoutExpired):
                pass
        for m in reversed(self.mounts):
            subprocess.run(["umount", m], stderr=subprocess.DEVNULL)
        for dev in reversed(self.loops):
            subprocess.run(["losetup", "-d", dev], stderr=subprocess.DEVNULL)
        for d in reversed(self.dirs):
            shutil.rmtree(d, ignore_errors=True)


CLEANUP = Cleanup()


def kill_group(p, grace=30):
    """Stop child P (leader of its own process group: the VM's scripts, qemu) and everything
    it started: SIGTERM (ci/vm/run.sh then stops qemu and removes its temp files), SIGKILL
    after GRACE seconds."""
    if p.poll() is not None:
        return
    try:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(grace)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()


def on_signal(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def install_signals():
    """SIGINT, SIGTERM and SIGHUP unwind the run like Ctrl-C, so CLEANUP runs."""
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)


def children_io():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_inblock * 512, r.ru_oublock * 512


def proc_io(pid):
    d = {}
    try:
        for line in open(f"/proc/{pid}/io"):
            k, v = line.split(":")
            d[k.strip()] = int(v)
    except OSError:
        pass
    return d


def fmt_cmd(cmd, env=None):
    pre = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in (env or {}).items())
    return (pre + " " if pre else "") + " ".join(shlex.quote(str(c)) for c in cmd)


def sh(cmd, ctx, check=True, env=None, what=None):
    """Run CMD (a list); log it to the case's command list; raise CaseError on failure."""
    if ctx is not None:
        ctx.commands.append(fmt_cmd(cmd, env))
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    p = subprocess.run(cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, cwd=ctx.work if ctx else None)
    if check and p.returncode != 0:
        raise CaseError(f"{what or cmd[0]} exited {p.returncode}: "
                        f"{(p.stderr or p.stdout).strip()[-600:]}")
    return p


def rm_f(p):
    try:
        os.unlink(p)
    except FileNotFoundError:
        pass
