"""scenarios/run — thinbench's benchmark runner (issue #5; `make bench` runs it).

Measures what dm-thin-style thin provisioning costs (libthinp through the fio engine
ioengine/thinp.so) against the raw backing store and qcow2, on the same machine, in the same
run: every case runs --repeat times, the repetitions interleaved (rep 1 of every case, then rep
2, ...), and every ratio is taken inside one repetition, then summarised (median [min-max]).

  scenarios/run                     quick matrix (make bench; <= 10 min on 2 cores)
  scenarios/run --full              every scenario, every size, both modes
  scenarios/run --list [--full]     show the matrix (case ids) and exit
  scenarios/run --only 'cow\\.' --repeat 5 --out /tmp/r
  scenarios/run --data-dev /dev/sdX --metadata-dev /dev/sdY   direct-lvm on your devices
                                    (THEIR CONTENTS ARE DESTROYED)
  scenarios/run --report DIR        rebuild summary.csv, charts and report.md of a run
  scenarios/run --backend kernel    the same cases on the kernel's dm-thin (root, device-mapper;
                                    loop-lvm as Docker set it up; docs/kernel-backend.md)
  scenarios/run --kernel            also run `make vm-bench` (libthinp and the kernel twins in
                                    a qemu VM; tens of minutes under TCG) into OUT/kernel/
  scenarios/run --kernel-results VMRUN                   merge a finished `make vm-bench` run
  scenarios/run --report DIR --kernel-results VMRUN      ... into an existing run

Kernel dm-thin: the report's kernel section pairs every kernel twin (...kernel.loop,
...kernel.direct) with libthinp's same case, step by step: from the run's own rows (a
--backend libthinp,kernel run, or make vm-bench's), or from a VM run merged as OUT/kernel/
(its cases.json, env.json, vm/). Where the kernel ran emulated (vm/accel.txt), only ratios
(÷ overwrite, ÷ raw) are shown; the bytes per IO on the data and metadata devices side by
side; loop-lvm ÷ direct-lvm on both backends; OUT/kernel.csv (docs/kernel-backend.md). With
--kernel the VM run is one row (kernel.vm-bench.vm) whose status records a failure of the VM
part; the run then goes on and exits 1 at the end.

Modes: loop-lvm = the pool on sparse files behind buffered loop devices (thinp_losetup=1, root;
Docker's default); without root its twin ....thinp.file... (the files through the page cache,
no loop device) runs instead, and the notes say so; direct-lvm = O_DIRECT on block devices
(thinp_mode=direct) — loop devices made with
`losetup --direct-io=on` over preallocated files when root can, else preallocated files
opened with O_DIRECT (env.json says which).

Environment: THINP_ENGINE (default ioengine/thinp.so), THINP (the CLI), THINP_FILL (the
fill-to-full driver the Makefile builds from scenarios/tools/fill.c; default
$BUILD/bin/thinp-fill), BUILD (build dir, default build), FIO, SCENARIOS_SCALE
(tiny|quick|full: sizes; tests use tiny), TMPDIR (scratch:
must be a real filesystem, default /var/tmp; the VM's disk images go under TMPDIR or /tmp, as
with `make vm-bench`), SCENARIOS_KERNEL_TIMEOUT (bound on the VM part, default 4500 s),
SCENARIOS_KERNEL_BENCH (the script --kernel runs, default ci/vm/bench.sh; tests put a
stand-in there).
"""
import argparse
import json
import os

from . import plan_cases, report
from .abrun import run_ab
from .case import SCALES
from .environment import git
from .kernel_backend import (BACKENDS, IOENGINES, OPTIONS as KERNEL_OPTIONS, matrix_for,
                             select_direct)
from .kernel_lvm import disk_refusal
from .kernel_setup import host_refusal
from .kernel_vm import check_kernel_results, kernel_meta, kernel_origin, merge_kernel
from .matrix import select
from .procs import log
from .runner import default_out, relativize, run


def parser():
    ap = argparse.ArgumentParser(
        prog="scenarios/run", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=next(p for p in __doc__.split("\n\n") if p.startswith("Kernel dm-thin:")) +
        "\n\nCase ids look like alloc.bs=4k.order=seq.thinp.loop.z0 (see --list).")
    ap.add_argument("--full", action="store_true", help="the whole matrix (default: quick)")
    ap.add_argument("--only", action="append", metavar="PATTERN",
                    help="run only cases whose id matches PATTERN (regular expression or glob; "
                         "repeatable); their baselines come along")
    ap.add_argument("--exclude", action="append", metavar="PATTERN",
                    help="drop the cases whose id matches PATTERN, baselines included "
                         "(e.g. the qemu peers where qemu-img is missing; repeatable)")
    ap.add_argument("--repeat", type=int, default=3, metavar="N",
                    help="repetitions per case, interleaved (default 3)")
    ap.add_argument("--out", metavar="DIR", help="output dir (default "
                    "results/<date>-<host>-<commit>)")
    ap.add_argument("--data-dev", metavar="DEV", help="direct-lvm data device (destroyed)")
    ap.add_argument("--metadata-dev", metavar="DEV", help="direct-lvm metadata device "
                    "(destroyed)")
    ap.add_argument("--list", action="store_true", help="show the selected cases and exit")
    ap.add_argument("--kernel", action="store_true",
                    help="also run make vm-bench (ci/vm/bench.sh: libthinp and the kernel "
                         "twins, tiny scale, in a qemu VM; builds the VM image first if needed; "
                         "tens of minutes under TCG), after the host cases; its rows go to "
                         "OUT/kernel/")
    ap.add_argument("--kernel-results", metavar="DIR",
                    help="merge a finished `make vm-bench` run dir (its kernel twins and "
                         "libthinp's rows beside them) instead of booting the VM; with --report, "
                         "into that existing run")
    ap.add_argument("--scale", choices=sorted(SCALES), default=None,
                    help="sizes (default: quick, full with --full; env SCENARIOS_SCALE)")
    ap.add_argument("--tmp", metavar="DIR", help="scratch parent dir (default $TMPDIR or "
                    "/var/tmp; must support O_DIRECT)")
    ap.add_argument("--seed", type=int, default=1, help="random seed of the iologs (default 1)")
    ap.add_argument("--report", metavar="DIR", help="only rebuild the summary, charts and "
                    "report of the run in DIR")
    ap.add_argument("--backend", default="libthinp", metavar="LIST",
                    help="libthinp (default: libthinp's matrix and its peers), kernel (the "
                         "kernel's dm-thin: root and device-mapper needed) or both, "
                         "comma-separated (one run dir)")
    ap.add_argument("--kernel-ioengine", choices=IOENGINES, default="psync",
                    help="fio's engine on the kernel's thin devices (direct=1; default psync)")
    ap.add_argument("--force", action="store_true",
                    help="with --backend kernel --data-dev: use the disk even though it holds a "
                         "filesystem, partition table or LVM label (destroyed)")
    ap.add_argument("--no-report", action="store_true",
                    help="the cases only (cases.json, env.json): no summary, charts or report "
                         "(no gnuplot needed; make one later with --report DIR)")
    ap.add_argument("--ab-base-engine", metavar="SO",
                    help="A/B run for the regression gate: every engine case once with this "
                         "base engine and once with THINP_ENGINE per repetition, into OUT/base "
                         "and OUT/new (abrun.py; ci/gate compare OUT/base OUT/new)")
    return ap


def backends(args, ap):
    """--backend's list, checked; exits 2 (with the fix) when the kernel cannot be reached."""
    bs = [b.strip() for b in args.backend.split(",") if b.strip()]
    bad = [b for b in bs if b not in BACKENDS]
    if bad or not bs:
        ap.error(f"--backend {args.backend!r}: unknown {', '.join(bad) or 'empty list'} "
                 f"(use {', '.join(BACKENDS)} or both, comma-separated)")
    return bs


def refuse_kernel(args):
    """Exit 2 unless this host can run the kernel cases (after --list: listing needs none)."""
    why = disk_refusal(args.data_dev, args.force) if args.data_dev else None
    why = why or host_refusal()
    if why:
        log("scenarios/run: " + why)
        raise SystemExit(2)


def rebuild(args, ap):
    """--report DIR: rebuild a run's files (merging --kernel-results DIR first)."""
    if args.kernel:
        ap.error("--report only rebuilds: merge the VM's rows with --kernel-results VMRUN "
                 "(a `make vm-bench` run dir under results/)")
    for f in ("env.json", "cases.json"):
        if not os.path.isfile(os.path.join(args.report, f)):
            ap.error(f"--report {args.report}: no {f} there (not a scenarios/run output dir)")
    if args.kernel_results:
        merge_kernel(args.kernel_results, args.report)
        ep = os.path.join(args.report, "env.json")
        info = json.load(open(ep))
        info["kernel_dm_thin"] = kernel_origin(args)
        json.dump(info, open(ep, "w"), indent=1)
    report.build(args.report)
    relativize(args.report)
    return 0


def list_cases(args, cases):
    for c in cases:
        print(f"{c.cid:60s} {'quick' if c.quick else 'full '}  {c.label}")
    for p in plan_cases.selected(args):
        print(f"{p:60s} quick  planning case (once, after the repetitions)")
    if args.kernel:
        km = kernel_meta(args)
        print(f"{km['id']:60s} quick  {km['label']} (--kernel; "
              "once, after the host cases)")
    print(f"{len(cases)} cases x {args.repeat} repetitions"
          f" ({'full' if args.full else 'quick'} matrix, {args.scale} sizes)")
    return 0


def main(argv):
    ap = parser()
    args = ap.parse_args(argv)
    args.scale = args.scale or os.environ.get("SCENARIOS_SCALE") or \
        ("full" if args.full else "quick")
    if args.scale not in SCALES:
        ap.error(f"unknown scale {args.scale}")
    if args.kernel and args.kernel_results:
        ap.error("--kernel (boot the VM) and --kernel-results DIR (use its finished output) "
                 "exclude each other")
    if args.kernel_results:
        check_kernel_results(args.kernel_results)
    if args.report:
        return rebuild(args, ap)
    args.backends = backends(args, ap)
    if bool(args.data_dev) != bool(args.metadata_dev) and \
            (args.metadata_dev or "libthinp" in args.backends):
        ap.error("--data-dev and --metadata-dev go together (--backend kernel alone takes "
                 "--data-dev only: LVM splits it)")
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")

    KERNEL_OPTIONS["ioengine"] = args.kernel_ioengine
    cases = select(matrix_for(args.backends), args)
    no_direct = None
    if "kernel" in args.backends:
        cases, no_direct = select_direct(cases, args.backends, args.data_dev)
    if args.list:
        return list_cases(args, cases)
    if no_direct:
        log("scenarios/run: " + no_direct)
        raise SystemExit(2)
    if "kernel" in args.backends:
        refuse_kernel(args)
    if not cases and not plan_cases.selected(args):
        log("scenarios/run: no case matches --only " + " ".join(args.only or []))
        return 2
    commit = git("rev-parse", "--short", "HEAD") or "nogit"
    out = os.path.abspath(args.out or default_out(commit))
    if args.ab_base_engine:
        return run_ab(args, argv, cases, out)
    return run(args, argv, cases, out)
