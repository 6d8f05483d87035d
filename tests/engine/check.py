#!/usr/bin/env python3
"""Assertions on fio's JSON report and the thinp engine's statistics file.

  check.py fio FIO.json [--error N] [--jobs N]
      every job exited with error N (default 0); optionally exactly N job entries
  check.py verify FIO.json STATS_DIR RW SIZE
      write+verify matrix: per section, no errors, every byte read back (fio's read bytes
      per job == SIZE; write bytes == SIZE for write/randwrite), and the engine's
      per-class IO counts add up to fio's own read/write IO counts
  check.py odirect PID PATH 0|1
      process PID has PATH open now, with O_DIRECT (1) or without (0); the caller makes sure
      it is open (no waiting here: a check that waits on the clock races a loaded machine)
  check.py stats STATS.json [KEY=VALUE | KEY>=NUMBER ...] [--only CLASS,CLASS...]
      values in the statistics file; KEY is a dotted path
      (classes.write_cow.ios, pool.blocks.write_cow.ops, errors.write, ...);
      --only: every other class has 0 IOs. Always checks the histograms' consistency.

Exit 0 when everything holds; otherwise print what did not and exit 1.
"""
import json
import os
import sys

# fio's JSON through the benchmark runner's one reader (scenarios/thinbench_runner/fiojson.py)
sys.dont_write_bytecode = True  # (no __pycache__ in the tree)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "scenarios"))
import thinbench_runner.fiojson as fiojson  # noqa: E402

READ_CLASSES = ("read_unmapped", "read_mapped", "read_shared")
WRITE_CLASSES = ("write_overwrite", "write_provision", "write_provision_zero",
                 "write_provision_full", "write_cow", "write_cow_full")
failures = []


def fail(msg):
    failures.append(msg)


def load_fio(path):
    try:
        return fiojson.load(path)
    except fiojson.NoReport as e:
        raise SystemExit(f"FAIL: {e}:\n{open(path).read()}")


def check_hist(where, c):
    lat = c["latency_ns"]
    if lat["count"] != c["ios"]:
        fail(f"{where}: latency count {lat['count']} != ios {c['ios']}")
    total = sum(b[2] for b in lat["buckets"])
    if total != c["ios"]:
        fail(f"{where}: histogram buckets hold {total} samples, not {c['ios']}")
    for lo, hi, n in lat["buckets"]:
        if not lo <= hi or n <= 0:
            fail(f"{where}: bad bucket {[lo, hi, n]}")
    if c["ios"]:
        seq = [lat["min"], lat["p50"], lat["p90"], lat["p99"], lat["p99.9"], lat["max"]]
        if seq != sorted(seq):
            fail(f"{where}: min<=p50<=p90<=p99<=p99.9<=max does not hold: {seq}")
        if not lat["buckets"][0][0] <= lat["min"] or not lat["max"] <= lat["buckets"][-1][1]:
            fail(f"{where}: min/max outside the buckets")


STATS_SCHEMA = 1  # the engine's stats file layout (engine_sink.c THINP_STATS_SCHEMA)


def load_stats(path):
    d = json.load(open(path))
    if d.get("schema") != STATS_SCHEMA:
        fail(f"{path}: schema {d.get('schema')!r}, this checker reads {STATS_SCHEMA}")
    for name, c in d["classes"].items():
        check_hist(f"{path}: classes.{name}", c)
    for job in d["jobs"]:
        for name, c in job["classes"].items():
            check_hist(f"{path}: job {job['name']}.{name}", c)
    # the merged classes are the sum of the jobs'
    for name, c in d["classes"].items():
        s = sum(j["classes"][name]["ios"] for j in d["jobs"])
        if s != c["ios"]:
            fail(f"{path}: classes.{name}.ios {c['ios']} != sum over jobs {s}")
    return d


def get(d, key):
    for part in key.split("."):
        d = d[part]
    return d


def cmd_fio(args):
    path = args[0]
    want_err, want_jobs = 0, None
    i = 1
    while i < len(args):
        if args[i] == "--error":
            want_err = int(args[i + 1])
        elif args[i] == "--jobs":
            want_jobs = int(args[i + 1])
        i += 2
    jobs = load_fio(path)["jobs"]
    if want_jobs is not None and len(jobs) != want_jobs:
        fail(f"{path}: {len(jobs)} jobs, expected {want_jobs}")
    for j in jobs:
        if j["error"] != want_err:
            fail(f"{path}: job {j['jobname']} error {j['error']}, expected {want_err}")


def cmd_verify(args):
    path, stats_dir, rw, size = args[0], args[1], args[2], int(args[3])
    jobs = load_fio(path)["jobs"]
    sections = {}
    for j in jobs:
        sections.setdefault(j["jobname"], []).append(j)
    if not sections:
        fail(f"{path}: no jobs")
    for name, js in sections.items():
        wrote = 0
        for j in js:
            if j["error"]:
                fail(f"{name}: fio error {j['error']}")
            r, w = j["read"]["io_bytes"], j["write"]["io_bytes"]
            wrote += w
            # reads of the mixed phase + the verify pass over what was written cover the range
            if r != size:
                fail(f"{name}: read {r} bytes (mixed reads + verify), expected {size}")
            if rw in ("write", "randwrite") and w != size:
                fail(f"{name}: wrote {w} bytes, expected {size}")
        if wrote == 0:
            fail(f"{name}: nothing written")
        st = load_stats(f"{stats_dir}/{name}.json")
        if len(st["jobs"]) != len(js):
            fail(f"{name}: stats file has {len(st['jobs'])} jobs, fio ran {len(js)}")
        fio_r = sum(j["read"]["total_ios"] for j in js)
        fio_w = sum(j["write"]["total_ios"] for j in js)
        eng_r = sum(st["classes"][c]["ios"] for c in READ_CLASSES)
        eng_w = sum(st["classes"][c]["ios"] for c in WRITE_CLASSES)
        if (eng_r, eng_w) != (fio_r, fio_w):
            fail(f"{name}: engine classed {eng_r} reads/{eng_w} writes, fio did {fio_r}/{fio_w}")
        if any(st["errors"].values()):
            fail(f"{name}: engine counted errors {st['errors']}")
        used = ", ".join(f"{c} {v['ios']}" for c, v in st["classes"].items() if v["ios"])
        print(f"  {name}: {len(js)} job(s), {fio_r} reads, {fio_w} writes ({used})")


def cmd_stats(args):
    path = args[0]
    d = load_stats(path)
    only = None
    i = 1
    while i < len(args):
        a = args[i]
        if a == "--only":
            only = set(args[i + 1].split(","))
            i += 2
            continue
        if ">=" in a:
            key, want = a.split(">=", 1)
            have = get(d, key)
            if not have >= int(want):
                fail(f"{path}: {key} = {have}, expected >= {want}")
        else:
            key, want = a.split("=", 1)
            have = get(d, key)
            if str(have) != want:
                fail(f"{path}: {key} = {have}, expected {want}")
        i += 1
    if only is not None:
        for name, c in d["classes"].items():
            if name not in only and c["ios"]:
                fail(f"{path}: classes.{name}.ios = {c['ios']}, expected 0")
    print(f"  {path.rsplit('/', 1)[-1]}: " + ", ".join(
        f"{n} {c['ios']}" for n, c in d["classes"].items() if c["ios"]))


def cmd_odirect(args):
    import os
    pid, path, want = args[0], os.path.realpath(args[1]), args[2] == "1"
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError as e:
        fail(f"process {pid} is gone: {e}")
        return
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != path:
                continue
            flags = open(f"/proc/{pid}/fdinfo/{fd}").read().split("flags:")[1].split()[0]
        except (OSError, IndexError):
            continue
        direct = bool(int(flags, 8) & os.O_DIRECT)
        print(f"  {path} open as fd {fd}, flags {flags}: O_DIRECT {'on' if direct else 'off'}")
        if direct != want:
            fail(f"{path}: O_DIRECT is {'on' if direct else 'off'}, expected the opposite")
        return
    fail(f"process {pid} does not have {path} open")


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    cmd = {"fio": cmd_fio, "verify": cmd_verify, "stats": cmd_stats,
           "odirect": cmd_odirect}.get(sys.argv[1])
    if not cmd:
        raise SystemExit(__doc__)
    cmd(sys.argv[2:])
    if failures:
        for f in failures:
            print("FAIL:", f)
        sys.exit(1)


if __name__ == "__main__":
    main()
