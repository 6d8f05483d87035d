"""The run itself: every case once per repetition, the repetitions interleaved, each case's
failure recorded while the run goes on; then the VM part (--kernel), the report, and the run
dir's paths made relative to the repository."""
import datetime
import json
import os
import re
import shutil
import socket
import time

from . import ROOT, plan_cases, report
from .case import Ctx
from .environment import Env
from .kernel_backend import describe as kernel_describe
from .kernel_results import KERNEL_DIR
from .kernel_vm import kernel_meta, merge_kernel, run_kernel
from .matrix import baseline_ids, rep_order
from .procs import CLEANUP, CaseError, install_signals, log
from .units import fmt_eta

TEXT_SUFFIXES = (".json", ".csv", ".md", ".svg", ".txt", ".gp", ".dat", ".log")


def default_out(env_commit):
    date = datetime.date.today().isoformat()
    host = socket.gethostname().split(".")[0]
    return os.path.join(ROOT, "results", f"{date}-{host}-{env_commit}")


# cases.json's layout version ("schema"; ci/gate reads it; absent in runs before it existed)
CASES_SCHEMA = 1


def save_cases(out, results, **extra):
    json.dump(dict({"schema": CASES_SCHEMA, "cases": results}, **extra),
              open(os.path.join(out, "cases.json"), "w"), separators=(",", ":"))


def run(args, argv, cases, out):
    """Run CASES into OUT; the exit status (0, 1 when a case failed, 130 interrupted)."""
    env = Env(args)
    env.check_tools(cases)
    install_signals()
    os.makedirs(out, exist_ok=True)
    if args.kernel_results:
        merge_kernel(args.kernel_results, out)
    elif os.path.isdir(os.path.join(out, KERNEL_DIR)):
        # (an earlier run's kernel figures in a reused --out dir are not this run's)
        log(f"scenarios/run: removing {os.path.join(out, KERNEL_DIR)} of an earlier run")
        shutil.rmtree(os.path.join(out, KERNEL_DIR))
    failed = []
    results = None
    try:
        env.setup(cases, out)
        info = env.describe(cases, argv)
        info["output"] = out
        info["notes"] = list(getattr(args, "notes", []))
        for n in info["notes"]:
            log("scenarios/run: note: " + n)
        if "kernel" in getattr(args, "backends", ()):
            info["kernel_backend"] = kernel_describe()
        json.dump(info, open(os.path.join(out, "env.json"), "w"), indent=1)
        results = {c.cid: dict(c.meta(), reps=[], baselines=baseline_ids(
            c, {x.cid: x for x in cases})) for c in cases}
        t_start = time.time()
        log(f"scenarios/run: {len(cases)} cases x {args.repeat} repetitions -> {out}")
        repetitions(env, args, cases, out, results, failed, t_start)
        failed += plan_cases.run_all(env, args, out)  # (issue #13; libthinp's only)
        if args.kernel:
            km = kernel_meta(args)
            rec = run_kernel(env, out, km)
            results[km["id"]] = dict(km, reps=[rec])
            if rec["status"] == "failed":
                failed.append((km["id"], 1, rec["error"]))
            save_cases(out, results)
        info["elapsed_s"] = round(time.time() - t_start, 1)
        json.dump(info, open(os.path.join(out, "env.json"), "w"), indent=1)
    except KeyboardInterrupt as e:
        log(f"\nscenarios/run: interrupted ({e or 'Ctrl-C'}); cleaning up")
        CLEANUP.run()
        if results:  # what ran so far (no report: `scenarios/run --report DIR` can make one)
            save_cases(out, results, interrupted=True)
        return 130
    finally:
        CLEANUP.run()
    if getattr(args, "no_report", False):
        log("scenarios/run: no report (--no-report); make it with scenarios/run --report " + out)
        return finish(out, failed, t_start)
    report.build(out)
    return finish(out, failed, t_start, "/report.md")


def finish(out, failed, t_start, what=""):
    relativize(out)
    log(f"scenarios/run: done in {fmt_eta(time.time() - t_start)}: {out}{what}")
    return list_failed(failed)


def list_failed(failed):
    """The failed repetitions, listed; the run's exit status (1 when there are any)."""
    if not failed:
        return 0
    log(f"scenarios/run: {len(failed)} case repetitions FAILED:")
    for cid, rep, msg in failed:
        log(f"  {cid} rep {rep}: {msg[:200]}")
    return 1


def run_rep(env, c, rep, out, failed, key=None):
    """One repetition of case C into run dir OUT: its record (status, steps, secs; the
    commands in repetition 1). A failure is appended to FAILED as (KEY, rep, message); KEY
    (default the case id) is also what SCENARIOS_FAIL (a regular expression, for the tests)
    is matched against."""
    key = key or c.cid
    inject = os.environ.get("SCENARIOS_FAIL")
    ctx = Ctx(env, c, rep, out)
    t0 = time.time()
    rec = {"rep": rep, "status": "ok"}
    try:
        if inject and re.search(inject, key):
            raise CaseError("injected failure (SCENARIOS_FAIL, for the tests)")
        rec["steps"] = c.fn(ctx)
    except CaseError as e:
        msg = str(e)
        rec["status"] = "skipped" if msg.startswith("skipped:") else "failed"
        rec["error"] = msg
        if rec["status"] == "failed":
            failed.append((key, rep, msg))
            log(f"    FAILED: {msg}")
        else:
            log(f"    {msg}")
    finally:
        ctx.cleanup()
        os.sync()  # every case starts with a clean page cache
    rec["secs"] = round(time.time() - t0, 3)
    if rep == 1:  # (the same every repetition, bar scratch paths)
        rec["commands"] = ctx.commands
    return rec


def repetitions(env, args, cases, out, results, failed, t_start):
    """Every case once per repetition, in rep_order; cases.json rewritten after each
    repetition. SCENARIOS_FAIL (a regular expression, for the tests) fails the cases it
    matches."""
    total = len(cases) * args.repeat
    done = 0
    last = {}
    for rep in range(1, args.repeat + 1):
        order = rep_order(cases, args.seed + rep)
        for k, c in enumerate(order):
            done += 1
            rem = [last.get(x.cid) for x in order[k:]] + \
                  [last.get(x.cid) for x in cases] * (args.repeat - rep)
            known = [r for r in rem if r is not None]
            avg = (time.time() - t_start) / max(1, done - 1)
            eta = sum(known) + avg * (len(rem) - len(known))
            log(f"[{done}/{total}] {c.label} rep {rep}/{args.repeat} … "
                f"eta {fmt_eta(eta)}")
            rec = run_rep(env, c, rep, out, failed)
            last[c.cid] = rec["secs"]
            results[c.cid]["reps"].append(rec)
        save_cases(out, results)


def relativize(out):
    """A run is committed as a reference: write this checkout's paths
    relative to the repository root, so no machine's paths are recorded
    (commands then run from the root, as `make bench` does)."""
    root = ROOT.rstrip("/") + "/"
    for d, _, files in os.walk(out):
        for f in files:
            if not f.endswith(TEXT_SUFFIXES):
                continue
            path = os.path.join(d, f)
            with open(path, encoding="utf-8", errors="surrogateescape") as fh:
                text = fh.read()
            if root not in text and ROOT not in text:
                continue
            # only absolute paths: a relative link that climbs to / and back down into the
            # checkout (a run dir outside it) holds ROOT too, after its "..", and stays
            text = re.sub(r"(?<![\w.])" + re.escape(root), "", text)
            text = re.sub(r"(?<![\w.])" + re.escape(ROOT) + r"(?![\w.-])", ".", text)
            with open(path, "w", encoding="utf-8", errors="surrogateescape") as fh:
                fh.write(text)
