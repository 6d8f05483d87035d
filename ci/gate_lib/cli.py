"""ci/gate's commands. Exit 0 pass, 1 regression (or a measurement that failed), 2 usage
or bad input."""
import argparse
import json
import os
import sys

from . import measure, model, report, verdict

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_BASELINE = os.path.normpath(os.path.join(HERE, "..", "baseline", "gate.json"))
LAYERS = ("exact", "instructions", "timing")
MEASURED = ("exact", "instructions")  # what check/update/measure measure


def layers_arg(s):
    got = [x for x in s.split(",") if x]
    bad = [x for x in got if x not in LAYERS]
    if bad or not got:
        what = f"unknown layer {', '.join(bad)}" if bad else f"no layer in {s!r}"
        raise argparse.ArgumentTypeError(f"{what}: choose from {','.join(LAYERS)}")
    return got


def tolerance_arg(s):
    try:
        v = float(s)
    except ValueError:
        v = -1
    if not 0 <= v < 100:
        raise argparse.ArgumentTypeError(f"tolerance {s!r}: a percentage, 0 <= T < 100 (e.g. 1)")
    return v


def seed_default():
    s = os.environ.get("THINP_SEED", "1")
    if not s.isdigit():
        raise model.BadInput(f"THINP_SEED={s!r}: not a number (unset it or give e.g. 1)")
    return int(s)


def parser():
    p = argparse.ArgumentParser(prog="ci/gate", description="thinbench's regression gate "
                                "(ci/README.md): exact counters and instruction counts per case")
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp, measures=True):
        sp.add_argument("--layers", type=layers_arg,
                        default=list(MEASURED if measures else LAYERS),
                        help="comma-separated: exact,instructions" +
                             ("" if measures else ",timing (timing: scenarios/run directories "
                              "only)") + " (default all)")
        if measures:
            sp.add_argument("--build", default=os.environ.get("BUILD", "build"),
                            help="build directory with tests/tools/gate_trace (default $BUILD "
                                 "or build)")

    def verdict_opts(sp):
        sp.add_argument("--tolerance", type=tolerance_arg, default=1.0,
                        help="instruction layer: %% change allowed either way (default 1)")
        sp.add_argument("--out", help="directory for verdict.md, junit.xml, verdict.json")
        sp.add_argument("--alpha", type=float, default=0.05,
                        help="timing layer: the rank test's significance level (default 0.05)")
        sp.add_argument("--min-effect", type=float, default=10.0,
                        help="timing layer: smallest change of the median ratio to raw that "
                             "counts, in %% (default 10)")

    c = sub.add_parser("compare", help="compare two measurements or scenarios/run directories")
    c.add_argument("base")
    c.add_argument("new")
    common(c, measures=False)
    verdict_opts(c)

    k = sub.add_parser("check", help="measure this build and compare with the baseline")
    common(k)
    verdict_opts(k)
    k.add_argument("--baseline", default=DEFAULT_BASELINE)
    k.add_argument("--save", help="also write this build's measurement to this file")

    u = sub.add_parser("update", help="measure this build and write it as the baseline")
    common(u)
    u.add_argument("--baseline", default=DEFAULT_BASELINE)
    u.add_argument("--seed", type=int, help="default: the old baseline's, else $THINP_SEED or 1")

    m = sub.add_parser("measure", help="measure this build into a JSON file")
    common(m)
    m.add_argument("--seed", type=int)
    m.add_argument("-o", "--output", required=True)
    m.add_argument("cases", nargs="*", help="default: every case of the trace driver")
    return p


def write_json(path, d):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(d, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(path + ".tmp", path)


def notes_for(base, new, layers):
    notes = []
    if "seed" in new:
        notes.append(f"seed {new['seed']} (THINP_SEED)")
    if "timing" in layers and not ("run_cases" in base and "run_cases" in new):
        notes.append("timing layer: not applied (it needs two scenarios/run directories)")
    tb, tn = base.get("toolchain", {}), new.get("toolchain", {})
    if "instructions" in layers and tb and tn and tb != tn:
        notes.append(f"instruction counts from different toolchains: base {tb}, new {tn}")
    return notes


def run(args):
    if args.cmd != "compare" and "timing" in args.layers:
        raise model.BadInput("the timing layer compares scenarios/run directories: use "
                             "`ci/gate compare BASE_RUN NEW_RUN --layers timing`")
    if args.cmd == "compare":
        base, new = model.load_any(args.base), model.load_any(args.new)
        title = "thinbench gate: compare"
    elif args.cmd == "check":
        base = model.load_measurement(args.baseline)
        new = measure.measure(args.build, base.get("seed", 1), args.layers,
                              env=None)
        if args.save:
            write_json(args.save, new)
        title = f"thinbench gate: check against {args.baseline}"
    elif args.cmd == "update":
        seed = args.seed
        if seed is None and os.path.exists(args.baseline):
            seed = model.load_measurement(args.baseline).get("seed")
        new = measure.measure(args.build, seed if seed is not None else seed_default(),
                              args.layers)
        write_json(args.baseline, new)
        print(f"ci/gate: wrote {args.baseline}: {len(new['cases'])} cases, seed {new['seed']}, "
              f"layers {','.join(args.layers)}; review it with git diff")
        return 0
    else:
        new = measure.measure(args.build, args.seed if args.seed is not None else seed_default(),
                              args.layers, args.cases)
        write_json(args.output, new)
        print(f"ci/gate: wrote {args.output}: {len(new['cases'])} cases, seed {new['seed']}")
        return 0
    rows = verdict.compare(base, new, args.layers, args.tolerance, args.alpha, args.min_effect)
    report.write_all(rows, title, args.out, notes_for(base, new, args.layers))
    return 1 if verdict.failed(rows) else 0


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        return run(args)
    except model.BadInput as e:
        print(f"ci/gate: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        print(f"ci/gate: {e}", file=sys.stderr)
        return 1
