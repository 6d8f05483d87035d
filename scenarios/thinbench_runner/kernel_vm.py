"""The kernel's rows from the VM for a run on a host without device-mapper: `--kernel` runs
`make vm-bench` (ci/vm/bench.sh: libthinp's cases and their kernel twins in one boot of a
qemu VM) into the run's kernel/ dir; `--kernel-results VMRUN` merges a finished one. The
kernel section reads that dir's cases.json (kernel_results.kernel_of); the VM:
docs/kernel-backend.md."""
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from . import ROOT
from .kernel_results import KERNEL_DIR, KERNEL_NOTE, KernelDataError, check_dir
from .procs import CLEANUP, fmt_cmd, kill_group, log
from .units import fmt_eta

VM_BENCH = os.path.join(ROOT, "ci", "vm", "bench.sh")
# what a merged VM run keeps: the rows, where and how they ran (fio/, stats/ stay behind)
MERGED = ("cases.json", "env.json", "vm")


def kernel_script():
    """The script --kernel runs (SCENARIOS_KERNEL_BENCH: tests put a stand-in there)."""
    return os.environ.get("SCENARIOS_KERNEL_BENCH") or VM_BENCH


def kernel_origin(args):
    """env.json's kernel_dm_thin: where the run's kernel figures come from."""
    if getattr(args, "kernel", False):
        return "measured in a qemu VM by this run (`scenarios/run --kernel`: make vm-bench)"
    if "kernel" in getattr(args, "backends", ()):
        return "this run's kernel twins (`--backend ...kernel`)"
    if getattr(args, "kernel_results", None):
        return (f"the `make vm-bench` run {os.path.basename(os.path.abspath(args.kernel_results))}"
                " (merged with `--kernel-results`)")
    return KERNEL_NOTE


def kernel_meta(args):
    """The VM run as one entry of cases.json (one repetition; no steps: its rows are in
    kernel/), so that its failure is recorded like any case's."""
    return {"id": "kernel.vm-bench.vm", "scenario": "kernel", "backend": "kernel-vm",
            "mode": "vm", "params": {}, "group": "kernel.vm-bench", "quick": True,
            "baselines": [], "label": "libthinp and kernel dm-thin in a qemu VM (make vm-bench)"}


def check_kernel_results(d):
    """Exit 2 with the reason when D is not a run dir with kernel rows."""
    try:
        check_dir(d)
        from .rundata import Run
        if not Run(d).kernel:
            raise KernelDataError(f"{d}: no kernel case in its cases.json (make vm-bench's "
                                  "run dirs have them)")
    except KernelDataError as e:
        log(f"scenarios/run: --kernel-results: {e}")
        sys.exit(2)


def merge_kernel(src, out):
    """Copy the VM run SRC's cases.json, env.json and vm/ into OUT/kernel/ (replacing one)."""
    dst = os.path.join(out, KERNEL_DIR)
    if os.path.realpath(src) == os.path.realpath(dst):
        return dst
    if os.path.lexists(dst):
        log(f"scenarios/run: replacing the run's {KERNEL_DIR}/ with {src}")
        shutil.rmtree(dst)
    os.makedirs(dst)
    for name in MERGED:
        p = os.path.join(src, name)
        if os.path.isdir(p):
            shutil.copytree(p, os.path.join(dst, name), symlinks=True)
        elif os.path.isfile(p):
            shutil.copy(p, dst)
    log(f"scenarios/run: kernel rows merged from {src} into {dst}")
    return dst


def run_kernel(env, out, meta):
    """Run ci/vm/bench.sh (boots the VM; builds its image first if needed) into a temp dir,
    relaying its output with a heartbeat, and merge its run into OUT/kernel/. Returns the
    repetition record for cases.json (status failed, with the reason, when the script fails,
    times out or leaves no kernel rows)."""
    script = kernel_script()
    ktmp = tempfile.mkdtemp(prefix="thinbench-kernel-", dir=os.environ.get("TMPDIR") or "/tmp")
    CLEANUP.dirs.append(ktmp)
    vrun = os.path.join(ktmp, "run")
    cmd = ["bash", script, "--out", vrun]
    cenv = dict(os.environ, THINP=os.path.abspath(env.cli), THINP_IOENGINE=env.engine,
                TMPDIR=ktmp)
    limit = float(os.environ.get("SCENARIOS_KERNEL_TIMEOUT") or 4500)
    rec = {"rep": 1, "status": "ok", "commands": [fmt_cmd(cmd, {})]}
    log(f"[kernel] {meta['label']} -> {os.path.join(out, KERNEL_DIR)}")
    log("    boots a qemu VM (TCG here: tens of minutes); its output follows")
    t0 = time.time()
    p = subprocess.Popen(cmd, cwd=ROOT, env=cenv, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         errors="replace", start_new_session=True)
    CLEANUP.groups.append(p)
    timed_out = relay(p, t0, limit)
    rc = p.wait()
    CLEANUP.groups.remove(p)
    rec["secs"] = round(time.time() - t0, 3)
    problems = []
    if timed_out:
        problems.append(f"timed out after {fmt_eta(limit)} (SCENARIOS_KERNEL_TIMEOUT)")
    elif rc:
        problems.append(f"{os.path.relpath(script, ROOT)} exited {rc}")
    try:
        check_dir(vrun)
        merge_kernel(vrun, out)
    except KernelDataError as e:
        problems.append(str(e))
    if problems:
        rec["status"] = "failed"
        rec["error"] = "; ".join(problems)
        log(f"    FAILED: {rec['error']}")
    else:
        log(f"    kernel part done in {fmt_eta(rec['secs'])}")
    return rec


def relay(p, t0, limit):
    """Copy P's output to the log, a heartbeat every 30 s of silence; stop P after LIMIT
    seconds (returns True then)."""
    lines = queue.Queue()

    def reader():
        for line in p.stdout:
            lines.put(line)
        lines.put(None)
    threading.Thread(target=reader, daemon=True).start()
    last = time.time()
    while True:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            line = ""
        if line is None:
            return False
        now = time.time()
        if line:
            log("    | " + line.rstrip("\n"))
            last = now
        if now - t0 > limit:
            log(f"    the VM part is still running after {fmt_eta(limit)}: stopping it")
            kill_group(p)
            return True
        if now - last >= 30:
            log(f"    ... still running ({fmt_eta(now - t0)} so far)")
            last = now
