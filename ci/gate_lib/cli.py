"""ci/gate's commands. Exit 0 pass, 1 regression (or a measurement that failed), 2 usage
or bad input."""
import argparse
import json
import os
import sys

from . import measure, model, report, timing, verdict

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
        # compare's default is None: all layers, the timing layer only where it applies
        sp.add_argument("--layers", type=layers_arg,
                        default=list(MEASURED) if measures else None,
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
        # 15, for A/B runs of 20 repetitions: on a loaded 2-core machine their unchanged
        # rows stayed well below it and ~30% slowdowns well above (ci/README.md); smaller
        # regressions are the instruction layer's to catch
        sp.add_argument("--min-effect", type=float, default=timing.MIN_EFFECT,
                        help="timing layer: smallest change (new / base) that counts, in %% "
                             f"(default {timing.MIN_EFFECT:g})")
        sp.add_argument("--timing-stat", choices=sorted(timing.STATS), default="p10",
                        help="timing layer: each step's 10th-percentile IO latency (p10, "
                             "default), its median (p50) or its mean cost per IO (mean)")
        sp.add_argument("--unpaired", action="store_true",
                        help="timing layer: two ordinary runs (Mann-Whitney on the ratios to "
                             "raw) instead of the two sides of one A/B run (scenarios/run "
                             "--ab-base-engine)")

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


def timing_mode(args, base, new):
    """Whether (and how) compare applies the timing layer: asked for explicitly it must
    apply (else a BadInput); by default only to the two sides of one A/B run."""
    runs = "run_cases" in base and "run_cases" in new
    if args.layers is not None:
        if "timing" in args.layers and not runs:
            raise model.BadInput("--layers timing compares two scenarios/run directories "
                                 "(OUT/base and OUT/new of `scenarios/run --ab-base-engine`)")
        return args.layers
    args.layers = list(LAYERS)
    if not runs or args.unpaired or (base.get("run_ab") and new.get("run_ab")):
        return args.layers
    args.layers.remove("timing")
    args.timing_note = ("timing layer: not applied (two ordinary runs: it pairs the sides of "
                        "one `scenarios/run --ab-base-engine` run; --unpaired compares these)")
    return args.layers


def notes_for(base, new, layers, args=None):
    notes = [args.timing_note] if getattr(args, "timing_note", None) else []
    if "seed" in new:
        notes.append(f"seed {new['seed']} (THINP_SEED)")
    if "timing" in layers and not ("run_cases" in base and "run_cases" in new):
        notes.append("timing layer: not applied (it needs two scenarios/run directories)")
    elif "timing" in layers:
        notes.append("timing layer: " + ("unpaired (Mann-Whitney on the ratios to raw of two "
                                         "runs: hints on a shared machine)"
                                         if getattr(args, "unpaired", False) else
                                         "paired (the sides of one A/B run, per repetition)"))
    tb, tn = base.get("toolchain", {}), new.get("toolchain", {})
    if "instructions" in layers and tb and tn and tb != tn:
        notes.append(f"instruction counts from different toolchains: base {tb}, new {tn}")
    return notes


def run(args):
    if args.cmd != "compare" and args.layers is not None and "timing" in args.layers:
        raise model.BadInput("the timing layer compares scenarios/run directories: use "
                             "`ci/gate compare BASE_RUN NEW_RUN --layers timing`")
    if args.cmd == "compare":
        base, new = model.load_any(args.base), model.load_any(args.new)
        timing_mode(args, base, new)
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
    rows = verdict.compare(base, new, args.layers, args.tolerance, args.alpha, args.min_effect,
                           args.timing_stat, not args.unpaired)
    report.write_all(rows, title, args.out, notes_for(base, new, args.layers, args))
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
