#!/usr/bin/env bash
# kernel_counters.device_metrics on stand-in counters (no device-mapper needed): a step's
# commits are the metadata device's flushes / 2 (persistent-data's two flushes per commit),
# its metadata bytes per commit beside them, as libthinp's rows have `commits`, and no count
# where the device does not account flushes (writes without a flush) unless the disk under it
# (an LVM pool's) does: then a commit is three flushes there where tdata shares the disk, two
# where it does not; the devices' time fields (busy, read, write, flush, queue ms) come
# through, up to the counters at the step's last IO when the runner read them (io_end: not
# the closing sync and commit; devtime_io_phase 1); the other counters keep their names. Seeded: THINP_SEED (printed) picks the counts.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
seed=${THINP_SEED:-$(date +%s)}
echo "scenarios_kernel_counters: THINP_SEED=$seed"
PYTHONPATH=$ROOT/scenarios python3 -B - "$seed" <<'PY'
import random, sys
from thinbench_runner import kernel_counters as kc

r = random.Random(int(sys.argv[1]))
bad = []


class Snap:
    def __init__(self, meta, used, used_meta, data=None, under=None):
        zero = {k: 0 for k in kc.STAT_FIELDS.values()}
        self.dev = {"data": dict(zero, **(data or {})), "metadata": dict(zero, **meta)}
        self.status = {"used_data_blocks": used, "used_meta_blocks": used_meta}
        self.under = under or {}


for _ in range(50):
    commits = r.randint(0, 40)
    blocks = [r.randint(1, 12) for _ in range(commits)]  # each commit's 4 KiB blocks
    base = r.randint(0, 1000)
    before = Snap({"flushes": base, "writes": base, "write_sectors": 8 * base}, 10, 100)
    after = Snap({"flushes": base + 2 * commits, "writes": base + sum(blocks),
                  "write_sectors": 8 * (base + sum(blocks))}, 10 + commits, 100 + commits)
    m = kc.device_metrics(None, before, after, ios=64, block=65536)
    if m["commits"] != commits:
        bad.append(f"{2 * commits} flushes: commits {m['commits']}, want {commits}")
    want = 4096 * sum(blocks) / commits if commits else None
    if m.get("meta_written_per_commit") != want:
        bad.append(f"{commits} commits of {sum(blocks)} blocks: meta_written_per_commit "
                   f"{m.get('meta_written_per_commit')}, want {want}")
    if m["meta_written"] != 4096 * sum(blocks) or m["meta_flushes"] != 2 * commits:
        bad.append(f"meta_written {m['meta_written']} / meta_flushes {m['meta_flushes']}")
# a device that does not account flushes (direct-lvm's dm-linear tmeta): writes, no flushes
before = Snap({"flushes": 0, "writes": 0, "write_sectors": 0}, 10, 100)
after = Snap({"flushes": 0, "writes": 16, "write_sectors": 128}, 14, 100)
m = kc.device_metrics(None, before, after, ios=64, block=65536)
if "commits" in m or "meta_written_per_commit" in m:
    bad.append(f"writes without flushes: commits {m.get('commits')}, want none (unknown)")
# the LVM pool: tmeta (dm-linear) shows no flushes, the disk under it does; with tdata on the
# same disk a commit is three flushes there (the data flush before it, its own two)
for shared in (True, False):
    commits, base = r.randint(1, 40), r.randint(0, 1000)
    per = 3 if shared else 2
    # (each LV's own /sys dir: the same disk shows under both as .../slaves/vdc)
    disk = lambda lv, n: {f"/sys/dev/block/254:{lv}/slaves/vdc/stat":
                          dict({k: 0 for k in kc.STAT_FIELDS.values()}, flushes=n)}
    und = lambda n: {"metadata": disk(1, n), "data": disk(0, n) if shared else
                     {"/sys/dev/block/254:0/slaves/vdd/stat": {"flushes": 0}}}
    before = Snap({"writes": 0, "write_sectors": 0}, 10, 100, under=und(base))
    after = Snap({"writes": 3 * commits, "write_sectors": 24 * commits}, 14, 100,
                 under=und(base + per * commits))
    m = kc.device_metrics(None, before, after, ios=64, block=65536)
    if m.get("commits") != commits or m.get("meta_disk_flushes") != per * commits:
        bad.append(f"LVM (shared disk {shared}): {per * commits} disk flushes: commits "
                   f"{m.get('commits')}, want {commits}")
    elif m.get("meta_written_per_commit") != 4096 * 3:
        bad.append(f"LVM: meta_written_per_commit {m.get('meta_written_per_commit')}")
# the time fields (ms) of both devices: a step's busy, read, write, flush and queue time
t = {k: r.randint(0, 5000) for k in ("io_ticks", "read_ticks", "write_ticks", "flush_ticks",
                                     "time_in_queue")}
before = Snap({}, 10, 100)
after = Snap(t, 10, 100, data={k: v + 1 for k, v in t.items()})
m = kc.device_metrics(None, before, after, ios=64, block=65536)
for k, name in (("io_ticks", "busy_ms"), ("read_ticks", "read_ms"), ("write_ticks", "write_ms"),
                ("flush_ticks", "flush_ms"), ("time_in_queue", "queue_ms")):
    if m.get(f"meta_{name}") != t[k] or m.get(f"data_{name}") != t[k] + 1:
        bad.append(f"{k}: meta_{name} {m.get(f'meta_{name}')} (want {t[k]}), "
                   f"data_{name} {m.get(f'data_{name}')} (want {t[k] + 1})")
# with the counters at the last IO (io_end): the time fields run to them, the bytes and
# counts to the closing Snapshot (its sync and commit are the step's writes, not its IOs' time)
mid = {k: v // 2 for k, v in t.items()}
end = {"data": dict(after.dev["data"], **mid), "metadata": dict(after.dev["metadata"], **mid)}
after2 = Snap(dict(t, writes=9, write_sectors=72, flushes=4), 10, 100,
              data={k: v + 1 for k, v in t.items()})
m = kc.device_metrics(None, before, after2, ios=64, block=65536, end=end)
if m.get("data_busy_ms") != mid["io_ticks"] or m.get("meta_write_ms") != mid["write_ticks"]:
    bad.append(f"io_end: data_busy_ms {m.get('data_busy_ms')} meta_write_ms "
               f"{m.get('meta_write_ms')}, want {mid['io_ticks']} {mid['write_ticks']}")
if m.get("meta_written") != 72 * 512 or m.get("commits") != 2 or m.get("devtime_io_phase") != 1:
    bad.append(f"io_end: meta_written {m.get('meta_written')} commits {m.get('commits')} "
               f"devtime_io_phase {m.get('devtime_io_phase')}, want 36864 2 1")
if kc.device_metrics(None, before, after2, ios=64, block=65536).get("devtime_io_phase") != 0:
    bad.append("without io_end: devtime_io_phase is not 0")
print("\n".join("FAIL: " + b for b in bad) or "PASS")
sys.exit(1 if bad else 0)
PY
