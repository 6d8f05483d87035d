"""Measuring: the trace driver (BUILD/tests/tools/gate_trace) once for the exact counters,
and once under callgrind for the instructions of each case's measured operations (the
driver runs them inside gate_measure: callgrind zeroes its counters on entry and dumps them
on return, one dump per case in the order the cases run, so setup, pool format and the JSON
printing are not counted)."""
import glob
import json
import os
import re
import shutil
import subprocess
import tempfile

from .model import BadInput, from_trace

DRIVER = os.path.join("tests", "tools", "gate_trace")


def driver_path(build):
    path = os.path.join(build, DRIVER)
    if not os.access(path, os.X_OK):
        raise BadInput(f"{path}: no trace driver: build it (`make`), or point --build (or $BUILD) "
                       f"at the build directory that has it")
    return path


def run_driver(build, seed, cases=(), env=None):
    cmd = [driver_path(build), "--seed", str(seed)] + list(cases)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode == 2:
        raise BadInput(p.stderr.strip())
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {p.returncode}): {p.stderr.strip()}")
    return json.loads(p.stdout)


def list_cases(build):
    p = subprocess.run([driver_path(build), "--list"], capture_output=True, text=True, check=True)
    return p.stdout.split()


def valgrind_version():
    if not shutil.which("valgrind"):
        raise BadInput("valgrind is not installed: the instruction layer needs it "
                       "(`make deps` installs it; or --layers exact)")
    return subprocess.run(["valgrind", "--version"], capture_output=True,
                          text=True).stdout.strip()


def instructions(build, seed, cases, env=None):
    """{case: instructions} of each case's gate_ops_CASE, in one callgrind run."""
    vg = valgrind_version()
    with tempfile.TemporaryDirectory(prefix="gate-cg.") as tmp:
        out = os.path.join(tmp, "cg.out")
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
               "--zero-before=gate_measure", "--dump-after=gate_measure",
               driver_path(build), "--seed", str(seed)] + list(cases)
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if p.returncode != 0:
            raise RuntimeError(f"callgrind run failed (exit {p.returncode}): "
                               f"{p.stderr.strip()[-2000:]}")
        dumps = []  # (part number, instructions) of each gate_measure dump
        for f in glob.glob(out + ".*"):
            text = open(f).read()
            part = re.search(r"^part: (\d+)", text, re.M)
            summ = re.search(r"^summary: (\d+)", text, re.M)
            if part and summ and re.search(r"^desc: Trigger: --dump-after=gate_measure", text,
                                           re.M):
                dumps.append((int(part.group(1)), int(summ.group(1))))
        if len(dumps) != len(cases):
            raise RuntimeError(f"callgrind gave {len(dumps)} counts for {len(cases)} cases (was "
                               f"the driver built with gate_measure?)")
        return {c: n for c, (_, n) in zip(cases, sorted(dumps))}, vg


def measure(build, seed, layers, cases=(), env=None):
    m = from_trace(run_driver(build, seed, cases, env))
    if "instructions" in layers:
        counts, vg = instructions(build, seed, list(m["cases"]), env)
        m["toolchain"]["valgrind"] = vg
        for c, n in counts.items():
            m["cases"][c]["instructions"] = n
    return m
