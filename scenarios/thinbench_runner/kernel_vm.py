"""Kernel dm-thin beside libthinp: tests/vm/kernel_perf.sh in a qemu VM (--kernel), or its
finished output merged (--kernel-results DIR). The run keeps that dir as OUT/kernel/
(kernel_results reads it). The VM and its harness: docs/vm-harness.md."""
import glob
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from . import ROOT
from .kernel_results import KERNEL_DIR, KERNEL_NOTE, KernelDataError, load_kernel
from .procs import CLEANUP, fmt_cmd, kill_group, log
from .units import fmt_eta

KERNEL_PERF = os.path.join(ROOT, "tests", "vm", "kernel_perf.sh")


def kernel_script():
    """The script --kernel runs (SCENARIOS_KERNEL_PERF: tests put a stand-in there)."""
    return os.environ.get("SCENARIOS_KERNEL_PERF") or KERNEL_PERF


def kernel_origin(args):
    """env.json's kernel_dm_thin: where the run's kernel figures come from."""
    if getattr(args, "kernel", False):
        return "measured in a qemu VM by this run (`scenarios/run --kernel`)"
    if getattr(args, "kernel_results", None):
        return (f"merged from {os.path.abspath(args.kernel_results)} (`--kernel-results`; "
                "tests/vm/kernel_perf.sh output, measured separately)")
    return KERNEL_NOTE


def kernel_meta(args):
    """The VM run as one entry of cases.json (one repetition; no steps: its numbers are in
    kernel/ and kernel.csv), so that its failure is recorded like any case's."""
    kset = "full" if args.full else "quick"
    return {"id": f"kernel.set={kset}.kernel-perf.vm", "scenario": "kernel",
            "backend": "kernel-perf", "mode": "vm", "params": {"set": kset},
            "group": f"kernel.set={kset}", "quick": True, "baselines": [],
            "label": "kernel dm-thin vs libthinp in a qemu VM (tests/vm/kernel_perf.sh"
                     f"{'' if args.full else ' --quick'})"}


def check_kernel_results(d):
    """Exit 2 with the reason when D is not a usable kernel_perf output dir."""
    try:
        load_kernel(d)
    except KernelDataError as e:
        log(f"scenarios/run: --kernel-results: {e}")
        sys.exit(2)


def merge_kernel(src, out):
    """Copy the kernel_perf output dir SRC into the run as OUT/kernel/ (replacing one there)."""
    dst = os.path.join(out, KERNEL_DIR)
    if os.path.realpath(src) == os.path.realpath(dst):
        return dst
    if os.path.lexists(dst):
        log(f"scenarios/run: replacing the run's {KERNEL_DIR}/ with {src}")
        shutil.rmtree(dst)
    shutil.copytree(src, dst, symlinks=True)
    log(f"scenarios/run: kernel results merged from {src} into {dst}")
    return dst


def follow_console(tmp, state):
    """New lines of the guest console that ci/vm/run.sh writes under TMP (its temp dir's
    vm.console): the guest job's progress ('kperf: [uptime] ...'). Best effort: [] if the file
    is not there (yet)."""
    paths = glob.glob(os.path.join(tmp, "thinbench-vm.*", "vm.console"))
    if not paths:
        return []
    path = paths[0]
    if state.get("path") != path:
        state.update(path=path, pos=0, rest="")
    try:
        with open(path, "rb") as f:
            f.seek(state["pos"])
            data = f.read()
    except OSError:
        return []
    state["pos"] += len(data)
    text = state["rest"] + data.decode("utf-8", "replace")
    lines = text.split("\n")
    state["rest"] = lines.pop()
    return [l.strip("\r ") for l in lines if l.startswith(("kperf:", "guest:"))]


def run_kernel(env, out, meta):
    """Run tests/vm/kernel_perf.sh (boots the VM; builds its image first if needed) with
    KP_OUT=OUT/kernel, relaying its output and the guest's progress, with a heartbeat. Returns
    the repetition record for cases.json (status failed, with the reason, when the script fails,
    times out or leaves no usable kernel_perf.csv)."""
    args = env.args
    script = kernel_script()
    kout = os.path.join(out, KERNEL_DIR)
    cmd = ["bash", script] + ([] if args.full else ["--quick"])
    # the VM's temp dirs (disk images, initramfs) where they would go anyway (TMPDIR or /tmp),
    # inside one dir of ours: removed on exit, and its guest console can be followed
    ktmp = tempfile.mkdtemp(prefix="thinbench-kernel-", dir=os.environ.get("TMPDIR") or "/tmp")
    CLEANUP.dirs.append(ktmp)
    cenv = dict(os.environ, KP_OUT=kout, THINP=os.path.abspath(env.cli),
                THINP_IOENGINE=env.engine, TMPDIR=ktmp)
    # (kernel_perf.sh's own VM timeout defaults to 300 + 300 s per repetition, 3 repetitions)
    kreps = os.environ.get("KP_REPS") or "3"
    kp_timeout = os.environ.get("KP_TIMEOUT") or (300 + 300 * int(kreps) if kreps.isdigit() else 1200)
    limit = float(os.environ.get("SCENARIOS_KERNEL_TIMEOUT") or float(kp_timeout) + 900)
    rec = {"rep": 1, "status": "ok", "commands": [fmt_cmd(cmd, {"KP_OUT": kout})]}
    logpath = os.path.join(out, "kernel_perf.log")
    log(f"[kernel] {meta['label']} -> {kout}")
    log("    boots a qemu VM (TCG here: several minutes); its output follows")
    t0 = time.time()
    p = subprocess.Popen(cmd, cwd=ROOT, env=cenv, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         errors="replace", start_new_session=True)
    CLEANUP.groups.append(p)
    with open(logpath, "w") as lf:
        timed_out = relay(p, lf, ktmp, t0, limit)
    rc = p.wait()
    CLEANUP.groups.remove(p)
    rec["secs"] = round(time.time() - t0, 3)
    os.makedirs(kout, exist_ok=True)
    shutil.move(logpath, os.path.join(kout, "kernel_perf.log"))
    problems = []
    if timed_out:
        problems.append(f"timed out after {fmt_eta(limit)} (SCENARIOS_KERNEL_TIMEOUT)")
    elif rc:
        problems.append(f"{os.path.relpath(script, ROOT)} exited {rc}")
    try:
        load_kernel(kout)
    except KernelDataError as e:
        problems.append(str(e))
    if problems:
        rec["status"] = "failed"
        rec["error"] = "; ".join(problems) + f" (its output: {KERNEL_DIR}/kernel_perf.log)"
        log(f"    FAILED: {rec['error']}")
    else:
        log(f"    kernel part done in {fmt_eta(rec['secs'])}")
    return rec


def relay(p, lf, ktmp, t0, limit):
    """Copy P's output to LF and, but for its closing summary tables, to the log; follow the
    guest console under KTMP; a heartbeat every 30 s of silence; stop P after LIMIT seconds
    (returns True then)."""
    lines = queue.Queue()

    def reader():
        for line in p.stdout:
            lines.put(line)
        lines.put(None)
    threading.Thread(target=reader, daemon=True).start()
    state, last, in_summary = {}, time.time(), False
    while True:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            line = ""
        if line is None:
            return False
        if line:
            lf.write(line)
            lf.flush()
            t = line.rstrip("\n")
            # (the script prints its summary.md at the end: kernel/summary.md has it)
            if t.startswith("# Kernel dm-thin vs libthinp"):
                in_summary = True
                log("    | (its summary tables: kernel/summary.md)")
            elif in_summary and t.startswith("kernel_perf:"):
                in_summary = False
            if not in_summary:
                log("    | " + t)
                last = time.time()
        for t in follow_console(ktmp, state):
            log("    vm| " + t)
            last = time.time()
        now = time.time()
        if now - t0 > limit:
            log(f"    the VM part is still running after {fmt_eta(limit)}: stopping it")
            kill_group(p)
            return True
        if now - last >= 30:
            log(f"    ... still running ({fmt_eta(now - t0)} so far)")
            last = now
