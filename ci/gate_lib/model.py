"""The gate's measurement model and the readers that produce it.

A measurement is JSON: {"schema": SCHEMA, "source": ..., "seed": ..., "toolchain": {...},
"cases": {CASE: {"exact": {CLASS: {COUNTER: int}}, "instructions": int or absent}}}.
Baselines (ci/baseline/*.json) are measurements. Every reader refuses what it cannot read
with a BadInput naming the file, what is wrong and the fix (the CLI exits 2 on it)."""
import json
import os
import sys

SCHEMA = 1
# what a scenarios/run directory must hold for the exact layer
RUN_FILES = ("cases.json", "summary.csv")
# the runner's cases.json schema versions this reader understands (absent = 0: before the
# field existed; its layout is the same as 1's)
RUN_SCHEMAS = (0, 1)
# summary.csv's layout versions (its last column "schema"; absent = 0, the same layout less
# that column)
SUMMARY_SCHEMAS = (0, 1)


class BadInput(Exception):
    pass


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise BadInput(f"{path}: no such file")
    except (OSError, ValueError) as e:
        raise BadInput(f"{path}: not readable JSON ({e})")


def check_schema(path, d):
    if not isinstance(d, dict) or "schema" not in d:
        raise BadInput(f"{path}: no \"schema\" field: not a gate measurement or baseline "
                       f"(make one with `ci/gate measure` or `ci/gate update`)")
    if d["schema"] != SCHEMA:
        raise BadInput(f"{path}: schema {d['schema']!r}, this gate reads schema {SCHEMA}: "
                       f"regenerate it with this gate (`ci/gate update` for the baseline)")
    if not isinstance(d.get("cases"), dict):
        raise BadInput(f"{path}: no \"cases\" object")
    for name, c in d["cases"].items():
        if not isinstance(c, dict) or not isinstance(c.get("exact", {}), dict):
            raise BadInput(f"{path}: case {name!r} is malformed (expected an \"exact\" object)")
    return d


def load_measurement(path):
    return check_schema(path, load_json(path))


def from_trace(trace):
    """The trace driver's JSON (ci/gate_trace.c) as a measurement: its per-class counters,
    plus a "case" class with the case's own counts (IOs, errors, allocations = data blocks in
    use, metadata blocks in use, commits, metadata blocks written per commit)."""
    cases = {}
    for name, c in trace["cases"].items():
        classes = {k: dict(v) for k, v in c["classes"].items()}
        commit = classes.get("commit", {})
        commits = commit.get("ops", 0)
        own = {"ios": c["ios"], "errors": c["errors"], "allocations": c["used_data_blocks"],
               "meta_blocks_used": c["used_meta_blocks"], "commits": commits}
        if commits:
            own["meta_blocks_per_commit"] = round(
                commit.get("meta_bytes_written", 0) / 4096 / commits, 6)
        classes["case"] = own
        cases[name] = {"exact": classes}
    return {"schema": SCHEMA, "source": "gate_trace", "seed": trace["seed"],
            "toolchain": {"compiler": trace.get("compiler", "?")}, "cases": cases}


def _runner_counters():
    """compare.py's choice of what in a runner's cases.json is a counter (not a timing)."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "..", "scenarios"))
    from thinbench_runner.compare import counters
    return counters


def check_summary_schema(path):
    """summary.csv's "schema" column (absent = 0) must be one this gate reads, the same on
    every row."""
    import csv
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    seen = {r.get("schema") or "0" for r in rows} or {"0"}
    bad = sorted(s for s in seen if not s.isdigit() or int(s) not in SUMMARY_SCHEMAS)
    if bad or len(seen) > 1:
        raise BadInput(f"{path}: schema {', '.join(sorted(seen))}, this gate reads "
                       f"{', '.join(map(str, SUMMARY_SCHEMAS))} (one per file): compare it "
                       f"with a matching gate")


# A kernel case's counters are the block layer's below dm-thin: the bytes its bios moved are
# the workload's, but how many requests carried them (the block layer merges them) and the
# metadata writes and flushes (dm-thin also commits on its 1 s timer, so a slower step
# commits more often) follow timing. Only these are exact there; the rest is shown by the
# report, not gated.
KERNEL_EXACT = frozenset(("alloc_blocks", "alloc_bytes", "bytes", "data_discarded", "data_read",
                          "data_read_per_io", "data_written", "data_written_per_io",
                          "data_zeroed", "dir", "errors", "ios", "used_blocks"))


def load_run_dir(path):
    """A scenarios/run output directory: each case's exact counters, per repetition, step and
    class, as compare.py picks them (class key "STEP/CLASS", counter key "rREP.NAME")."""
    missing = [f for f in RUN_FILES if not os.path.isfile(os.path.join(path, f))]
    if missing:
        raise BadInput(f"{path}: missing {', '.join(missing)}: not a complete scenarios/run "
                       f"output directory (rerun it, or pass a gate measurement JSON file)")
    d = load_json(os.path.join(path, "cases.json"))
    schema = d.get("schema", 0) if isinstance(d, dict) else None
    if schema not in RUN_SCHEMAS:
        raise BadInput(f"{path}/cases.json: schema {schema!r}, this gate reads "
                       f"{', '.join(map(str, RUN_SCHEMAS))}: compare it with a matching gate")
    if not isinstance(d.get("cases"), dict):
        raise BadInput(f"{path}/cases.json: no \"cases\" object")
    check_summary_schema(os.path.join(path, "summary.csv"))
    counters = _runner_counters()
    cases = {}
    for cid, c in d["cases"].items():
        exact = {}
        for rep in c.get("reps", []):
            r = rep.get("rep", 0)
            exact.setdefault("case", {})[f"r{r}.status"] = rep.get("status")
            own, _ = counters(rep.get("steps", {}))
            for key, v in own.items():
                # a qcow2 image's allocated size is its file system's: it moves by a block
                # between runs (compare.py's note), so it is no exact counter
                if key.endswith(".alloc_bytes") and str(c.get("backend", "")).startswith("qcow2"):
                    continue
                parts = key.split(".")
                if c.get("backend") == "kernel" and parts[-1] not in KERNEL_EXACT:
                    continue
                cls = "/".join(parts[:2]) if len(parts) > 2 else parts[0]
                name = ".".join(parts[2:]) if len(parts) > 2 else parts[-1]
                exact.setdefault(cls, {})[f"r{r}.{name}"] = v
        cases[cid] = {"exact": exact}
    # the timing layer reads the repetitions themselves
    return {"schema": SCHEMA, "source": f"scenarios/run {path}", "cases": cases,
            "run_cases": d["cases"], "run_ab": d.get("ab"), "path": path}


def load_any(path):
    """A gate measurement/baseline file, or a scenarios/run output directory."""
    if os.path.isdir(path):
        return load_run_dir(path)
    if not os.path.exists(path):
        raise BadInput(f"{path}: no such file or directory (give a gate measurement JSON or a "
                       f"scenarios/run output directory)")
    return load_measurement(path)
