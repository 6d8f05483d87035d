"""The one reader of fio's JSON report (--output-format=json), for scenarios/run and
tests/engine/check.py.

Which latency: **lat** (fio's `lat_ns` = slat + clat: from the moment fio set the IO up to
its completion), never clat alone. The runner compares engines of different kinds on one
scale: psync (synchronous: fio records no slat, lat and clat differ by fio's own bookkeeping),
io_uring (asynchronous: the submission syscall, inside which the kernel may do a buffered
write's whole work, is slat, so clat alone would leave part of the IO out), qemu-nbd through
fio's nbd engine, and the thinp engine (synchronous at iodepth 1; at higher depths its workers
run the IO after ->commit). Only lat is the whole IO, as the application waits for it, for
all of them, and a ratio is only fair between two numbers of the same kind. (Measured: with
io_uring at iodepth 1, slat is 10-40 us per write, as much as the write itself; with the
synchronous engines lat - clat is fio's own work before issuing, such as filling the write
buffer: a fraction of a us on a host.) The kernel twins (psync on the kernel's dm-thin, the
thinp engine on libthinp, both synchronous at iodepth 1) read the same number; under TCG
emulation fio's own work is 2-25 us per IO, the same fio for both backends.

Percentiles: fio computes percentiles of lat only with `lat_percentiles=1` (every job file
in scenarios/jobs/ sets it); without it (fio's default) it has them for clat only. Such a
report's percentiles are then taken from clat, and Latency.pct_of says so: for the
synchronous engines above the two differ by fio's bookkeeping between setting up an IO and
issuing it (a fraction of a µs on a host, a few µs under TCG emulation), not by any part of
the IO.
"""
import json

LAT = "lat_ns"  # see above: the whole IO
DIRS = ("read", "write", "trim")
# per-job tables the results never read (dropped by compact(): results stay small enough to
# commit)
UNREAD = ("iodepth_level", "iodepth_submit", "iodepth_complete", "latency_ns", "latency_us",
          "latency_ms")


class NoReport(ValueError):
    """The file holds no fio JSON report (fio failed before writing one, or wrote nothing)."""


def parse(text, where="fio output"):
    """fio's JSON object from TEXT: fio prints some lines (errors, notes) before the JSON on
    the same stream, so it starts at the first line that begins with '{'."""
    if text.startswith("{"):
        start = 0
    else:
        start = text.find("\n{")
        if start < 0:
            raise NoReport(f"no JSON report in {where}")
        start += 1
    try:
        return json.loads(text[start:])
    except ValueError as e:
        raise NoReport(f"{where}: not a complete JSON report ({e})") from None


def load(path):
    with open(path) as f:
        return parse(f.read(), path)


def jobs(data):
    return data.get("jobs", [])


def job_named(data, name):
    """The first job entry called NAME (a section of a job file), or None."""
    return next((j for j in jobs(data) if j.get("jobname") == name), None)


def main_direction(job):
    """'write' when the job wrote anything, else 'read' (a job of the runner does one)."""
    return "write" if job["write"].get("total_ios") else "read"


class Latency:
    """One direction's latency in ns (mean, p50, p99: see the module's note) and its count."""

    def __init__(self, stats, fallback=None):
        self.mean = stats["mean"]
        self.n = stats.get("N")
        pct = stats.get("percentile")
        self.pct_of = "lat"
        if not pct and fallback is not None and fallback.get("percentile"):
            pct, self.pct_of = fallback["percentile"], "clat"
        pct = pct or {}
        self.p10 = pct.get("10.000000", 0)  # (ci/gate's timing statistic: gate_lib/timing.py)
        self.p50 = pct.get("50.000000", 0)
        self.p99 = pct.get("99.000000", 0)


def latency(io):
    """Latency of IO (a job's 'read', 'write', 'trim' or 'sync' entry)."""
    return Latency(io[LAT], io.get("clat_ns"))


def compact(path, data):
    """Write fio's report back to PATH minus the per-depth tables nobody reads, on one line;
    directions without IO keep only their count, and clat/slat only their min/max/mean/N (lat,
    with its percentiles, is what is read)."""
    for j in jobs(data):
        for k in UNREAD:
            j.pop(k, None)
        for d in DIRS:
            if j.get(d, {}).get("total_ios", 0) == 0:
                j[d] = {"total_ios": 0}
            else:
                for k in ("clat_ns", "slat_ns"):
                    if k in j[d]:
                        j[d][k] = {x: j[d][k][x] for x in ("min", "max", "mean", "N")
                                   if x in j[d][k]}
    with open(path, "w") as f:
        json.dump(data, f, separators=(",", ":"))
