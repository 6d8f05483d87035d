"""What a kernel case's fio step cost below dm-thin: the data and metadata loop devices'
/sys/block/<dev>/stat deltas (the bios dm-thin sent them) and the pool's status deltas, put
into the step's metrics under the names libthinp's rows use (docs/kernel-backend.md)."""
import os
import stat

from .procs import CaseError

SECTOR = 512
# /sys/block/<dev>/stat, Documentation/block/stat.rst: the fields kept (index: name); the
# discard fields exist since 4.18, the flush fields since 5.5
STAT_FIELDS = {0: "reads", 2: "read_sectors", 4: "writes", 6: "write_sectors",
               11: "discards", 13: "discard_sectors", 15: "flushes",
               # the time fields, ms (in_flight, 8, is a gauge, not a count: left out)
               3: "read_ticks", 7: "write_ticks", 16: "flush_ticks", 9: "io_ticks",
               10: "time_in_queue"}
# the time fields as a step's metrics name them (SIDE_<name>: data_busy_ms, meta_write_ms)
TIME_KEYS = {"io_ticks": "busy_ms", "read_ticks": "read_ms", "write_ticks": "write_ms",
             "flush_ticks": "flush_ms", "time_in_queue": "queue_ms"}


def sys_dir(dev):
    """/sys/dev/block/MAJOR:MINOR of the block device node DEV (without udev,
    /dev/mapper/NAME is a node of its own, not a link to /dev/dm-N, so the name says
    nothing)."""
    try:
        st = os.stat(dev)
    except OSError as e:
        raise CaseError(f"cannot stat {dev}: {e}")
    if not stat.S_ISBLK(st.st_mode):
        raise CaseError(f"{dev} is not a block device")
    return f"/sys/dev/block/{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"


def block_stat(dev, path=None):
    """{field: count} of the block device DEV (a node: /dev/loopN, /dev/mapper/NAME) from
    its /sys stat file (or the stat file PATH)."""
    path = path or sys_dir(dev) + "/stat"
    try:
        vals = [int(x) for x in open(path).read().split()]
    except (OSError, ValueError) as e:
        raise CaseError(f"cannot read {path}: {e}")
    return {k: (vals[i] if i < len(vals) else 0) for i, k in STAT_FIELDS.items()}


def stat_delta(before, after):
    return {k: after[k] - before[k] for k in before}


def time_metrics(side, delta):
    """SIDE's time fields of a stat delta as metrics: {data_busy_ms: .., data_write_ms: ..}."""
    return {f"{side}_{v}": delta.get(k, 0) for k, v in TIME_KEYS.items()}


def disks_under(dev):
    """The stat files of the devices under the dm device DEV (its /sys slaves: the disk an LV
    sits on); [] for a device with none (a loop device)."""
    d = sys_dir(dev) + "/slaves"
    names = sorted(os.listdir(d)) if os.path.isdir(d) else []
    return [os.path.join(d, n, "stat") for n in names]


class Snapshot:
    """The counters of POOL's devices (and its status) at one moment; for an LVM pool also
    those of the disks under its metadata LV (dm-linear accounts no flushes: the disk does)."""

    def __init__(self, pool):
        os.sync()  # (the loop devices' own page cache is not flushed: only what reached them)
        self.status = pool.status()
        self.dev = {k: block_stat(d) for k, d in pool.loops.items()}
        self.under = {r: {p: block_stat(None, p) for p in disks_under(d)}
                      for r, d in pool.loops.items()}


def io_end(pool):
    """The counters of POOL's devices right after a step's last IO, before the sync and the
    status commit that the closing Snapshot takes: the end of the step's time fields."""
    return {k: block_stat(d) for k, d in pool.loops.items()}


def device_metrics(pool, before, after, ios, block, end=None):
    """The metrics of one step from two Snapshots: the names of libthinp's rows (data_read,
    data_written, meta_written in bytes; used_blocks, alloc_bytes), the raw counts
    (data_reads, data_writes, data_flushes, meta_*), and each divided per IO (*_per_io).
    The time fields run to END (io_end: the step's IOs alone, as libthinp's io_phase) when
    given, else to AFTER; the bytes and counts always to AFTER (the closing commit's writes
    are the step's)."""
    d = stat_delta(before.dev["data"], after.dev["data"])
    m = stat_delta(before.dev["metadata"], after.dev["metadata"])
    td = stat_delta(before.dev["data"], end["data"]) if end else d
    tm = stat_delta(before.dev["metadata"], end["metadata"]) if end else m
    out = {"data_read": d["read_sectors"] * SECTOR, "data_written": d["write_sectors"] * SECTOR,
           "meta_read": m["read_sectors"] * SECTOR, "meta_written": m["write_sectors"] * SECTOR,
           # dm-thin's zeroing is a write like any other on the data device: not told apart
           "data_zeroed": 0}
    for side, x in (("data", d), ("meta", m)):
        for k in ("reads", "writes", "flushes", "discards"):
            out[f"{side}_{k}"] = x[k]
        out[f"{side}_discarded"] = x["discard_sectors"] * SECTOR
    # dm-thin's commit is persistent-data's two-phase one: dm_tm_pre_commit() and
    # dm_tm_commit() each end in dm_bm_flush(), an empty REQ_PREFLUSH after the dirty blocks
    # (and the metadata device gets no other flush), so two flushes are one commit: the
    # count libthinp's rows have as `commits` (docs/dm-thin-behaviour.md). A device that
    # does not account flushes (direct-lvm's tmeta, a bio-based dm-linear device, shows 0
    # flushes beside its commits' writes) leaves the count unknown, not 0.
    # An LVM pool's tmeta is such a device: its commits are counted on the disk under it,
    # where the flushes land. Since Linux 5.2 (694cfe7f31db) dm-thin flushes the data device
    # before each commit, so where tdata sits on the same disk one commit is three flushes
    # there (loop-lvm's two loops show the 1 + 2 apart: data_flushes = meta_flushes / 2).
    out.update(time_metrics("data", td))
    out.update(time_metrics("meta", tm))
    out["devtime_io_phase"] = 1 if end else 0
    if m["flushes"] or not m["writes"]:
        out["commits"] = m["flushes"] // 2
        out["commits_from"] = "metadata device flushes / 2"
    elif before.under.get("metadata"):
        mu = set(before.under["metadata"])
        disk_fl = sum(after.under["metadata"][p]["flushes"] - before.under["metadata"][p]["flushes"]
                      for p in mu)
        # (the same disk under both LVs: .../<tmeta>/slaves/vdc and .../<tdata>/slaves/vdc)
        disk = lambda paths: {os.path.basename(os.path.dirname(p)) for p in paths}
        shared = bool(disk(mu) & disk(before.under.get("data", {})))
        out["meta_disk_flushes"] = disk_fl
        out["commits"] = disk_fl // (3 if shared else 2)
        out["commits_from"] = ("flushes of the disk under tmeta and tdata / 3" if shared else
                               "flushes of the disk under tmeta / 2")
    if out.get("commits"):
        out["meta_written_per_commit"] = out["meta_written"] / out["commits"]
    used0, used1 = before.status["used_data_blocks"], after.status["used_data_blocks"]
    out["used_blocks"] = used1
    out["alloc_blocks"] = used1 - used0
    out["alloc_bytes"] = (used1 - used0) * block
    out["used_meta_blocks"] = after.status["used_meta_blocks"]
    out["meta_blocks"] = after.status["used_meta_blocks"] - before.status["used_meta_blocks"]
    if ios:
        for k in ("data_read", "data_written", "meta_written", "data_reads", "data_writes",
                  "data_flushes", "meta_reads", "meta_writes", "meta_flushes"):
            out[f"{k}_per_io"] = out[k] / ios
    return out
