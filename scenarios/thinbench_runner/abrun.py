"""scenarios/run --ab-base-engine SO: two fio engines measured in one run, for the regression
gate's timing layer (ci/gate compare OUT/base OUT/new; ci/README.md).

Timings taken minutes apart on a shared machine differ by more than a 30% regression (the
load moves between the runs). So both sides run in the same repetition, one right after
the other: in each repetition every case that goes through the engine (backend thinp) runs
once with the base engine and once with the new one (THINP_ENGINE), base first in odd
repetitions and new first in even ones (ABBA: a drift within a repetition favours neither
side). Every other case (raw, qcow2, the kernel: the engine does not touch them) runs once
per repetition and its record goes to both sides. The two sides are complete run
directories (OUT/base, OUT/new: cases.json, env.json, summary.csv, report) whose cases.json
"ab" object names the pair, so the gate compares them repetition by repetition."""
import copy
import json
import os
import secrets
import shutil
import time

from . import report
from .environment import Env
from .kernel_backend import describe as kernel_describe
from .matrix import baseline_ids, rep_order
from .procs import CLEANUP, install_signals, log
from .runner import list_failed, relativize, run_rep, save_cases
from .units import fmt_eta

SIDES = ("base", "new")
ENGINE_BACKENDS = ("thinp",)  # the cases whose fio jobs load the engine under test


def uses_engine(case):
    return case.backend in ENGINE_BACKENDS


def first_side(rep):
    """ABBA: base first in odd repetitions, new first in even ones."""
    return SIDES if rep % 2 else SIDES[::-1]


def one_rep(env, c, rep, out, failed, what):
    """One repetition of case C into run dir OUT for side WHAT (runner.run_rep; a failure and
    SCENARIOS_FAIL's match are keyed WHAT:CASE)."""
    log(f"    {what}: {c.label} rep {rep}")
    return run_rep(env, c, rep, out, failed, key=f"{what}:{c.cid}")


def copy_case_files(c, src, dst):
    """A shared case's fio reports and statistics, into the other side's run dir."""
    safe = c.cid.replace("/", "_")
    for sub in ("fio", "stats"):
        s = os.path.join(src, sub, safe)
        if os.path.isdir(s):
            shutil.copytree(s, os.path.join(dst, sub, safe), dirs_exist_ok=True)


def run_ab(args, argv, cases, out):
    """Run CASES into OUT/base and OUT/new; the exit status (0, 1 when a repetition failed,
    2 bad usage, 130 interrupted)."""
    env = Env(args)
    base_so = os.path.abspath(args.ab_base_engine)
    if not os.path.isfile(base_so):
        log(f"scenarios/run: --ab-base-engine {args.ab_base_engine}: no such file (give the "
            "base build's fio engine, e.g. BASE_BUILD/thinp.so from `make ENGINE_SO=...`)")
        return 2
    if args.kernel or args.kernel_results:
        log("scenarios/run: --ab-base-engine measures the host's cases; the VM part (--kernel, "
            "--kernel-results) has no A/B form: drop it")
        return 2
    if not any(uses_engine(c) for c in cases):
        log("scenarios/run: --ab-base-engine: no selected case goes through the engine "
            f"(backends {', '.join(ENGINE_BACKENDS)}): select some with --only")
        return 2
    engines = {"base": base_so, "new": env.engine}
    env.check_tools(cases)
    install_signals()
    dirs = {s: os.path.join(out, s) for s in SIDES}
    pair = secrets.token_hex(8)  # names the pair: the gate refuses sides of two runs
    ab = {s: dict(pair=pair, side=s, peer=os.path.join("..", o), repeat=args.repeat,
                  engines=engines, engine_backends=list(ENGINE_BACKENDS))
          for s, o in zip(SIDES, SIDES[::-1])}
    results = {}
    failed = []
    t_start = time.time()
    try:
        env.setup(cases, out)
        by_id = {x.cid: x for x in cases}
        for s in SIDES:
            os.makedirs(dirs[s], exist_ok=True)
            info = env.describe(cases, argv)
            info.update(output=dirs[s], engine=engines[s])
            if "kernel" in getattr(args, "backends", ()):
                info["kernel_backend"] = kernel_describe()
            json.dump(info, open(os.path.join(dirs[s], "env.json"), "w"), indent=1)
            results[s] = {c.cid: dict(c.meta(), reps=[], baselines=baseline_ids(c, by_id))
                          for c in cases}
        log(f"scenarios/run: A/B {len(cases)} cases x {args.repeat} repetitions, base engine "
            f"{base_so}, new {env.engine} -> {out}/{{base,new}}")
        for rep in range(1, args.repeat + 1):
            order = first_side(rep)
            for c in rep_order(cases, args.seed + rep):
                if uses_engine(c):
                    for s in order:
                        env.engine = engines[s]
                        rec = one_rep(env, c, rep, dirs[s], failed, s)
                        rec["ab_first"] = order[0]
                        results[s][c.cid]["reps"].append(rec)
                    env.engine = engines["new"]
                else:
                    rec = one_rep(env, c, rep, dirs["base"], failed, "shared")
                    rec["ab_shared"] = True
                    copy_case_files(c, dirs["base"], dirs["new"])
                    for s in SIDES:
                        results[s][c.cid]["reps"].append(copy.deepcopy(rec))
            for s in SIDES:
                save_cases(dirs[s], results[s], ab=ab[s])
            log(f"scenarios/run: repetition {rep}/{args.repeat} done "
                f"({fmt_eta(time.time() - t_start)})")
    except KeyboardInterrupt as e:
        log(f"\nscenarios/run: interrupted ({e or 'Ctrl-C'}); cleaning up")
        CLEANUP.run()
        for s in results:
            save_cases(dirs[s], results[s], ab=ab[s], interrupted=True)
        return 130
    finally:
        CLEANUP.run()
    for s in SIDES:
        if not getattr(args, "no_report", False):
            report.build(dirs[s])
        relativize(dirs[s])
    log(f"scenarios/run: A/B done in {fmt_eta(time.time() - t_start)}; compare with "
        f"ci/gate compare {dirs['base']} {dirs['new']} --layers timing")
    return list_failed(failed)
