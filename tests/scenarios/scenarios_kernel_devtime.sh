#!/usr/bin/env bash
# Where a step's time went, measured (issue 11): libthinp's steps record their devices'
# /sys/block time fields under the names the kernel twins' have (data_busy_ms, meta_write_ms,
# ...; kernel_counters.TIME_KEYS), beside the window they were counted in (window_ms):
#  1. fiorun.loop_counters on a stand-in stats file: the loops' *_ms fields land as data_* and
#     meta_* (seeded: THINP_SEED, printed); with the engine's io_phase the step's time fields
#     and window_ms are the IO phase's (devtime_io_phase 1, the whole job's window kept as
#     job_window_ms), without it (an older engine) the whole job's stay (devtime_io_phase 0);
#  2. as root (skipped otherwise): a real loop-lvm (engine loops) and direct-lvm (the run's
#     loop devices, counted around fio) overwrite step has every time field, busy no longer
#     than its window, fio's runtime inside the whole job's window, the IO phase's counted
#     (devtime_io_phase 1, its window inside the whole job's).
# Needs python3; part 2 fio, the engine and losetup (RUN_ENV: THINP, THINP_ENGINE).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
seed=${THINP_SEED:-$(date +%s)}
echo "scenarios_kernel_devtime: THINP_SEED=$seed"
PYTHONPATH=$ROOT/scenarios python3 -B - "$seed" <<'PY'
import random, sys
from thinbench_runner import fiorun
from thinbench_runner.kernel_counters import TIME_KEYS

r = random.Random(int(sys.argv[1]))
loops = {role: dict({f"{k}_ms": r.randint(0, 9999) for k in TIME_KEYS}, device="/dev/loop9",
                    read_bytes=0, write_bytes=0, flushes=0) for role in ("data", "metadata")}
a = {}
fiorun.loop_counters(a, loops)
bad = [f"{side}_{name}: {a.get(f'{side}_{name}')}, want {loops[role][k + '_ms']}"
       for role, side in (("data", "data"), ("metadata", "meta"))
       for k, name in TIME_KEYS.items() if a.get(f"{side}_{name}") != loops[role][k + "_ms"]]
# the runner's choice: the IO phase's fields when the engine wrote them, else the whole job's
phase = {role: dict({f"{k}_ms": r.randint(0, loops[role][k + "_ms"]) for k in TIME_KEYS},
                    device="/dev/loop9", window_ms=r.randint(1, 9999) / 10)
         for role in ("data", "metadata")}
for ph in (phase, None):
    a = {"window_ms": 12345.6}
    fiorun.loop_counters(a, loops)
    fiorun.io_phase_counters(a, ph)
    src = ph or loops
    want = {f"{side}_{name}": src[role][k + "_ms"] for role, side in (("data", "data"),
            ("metadata", "meta")) for k, name in TIME_KEYS.items()}
    want["devtime_io_phase"] = 1 if ph else 0
    want["window_ms"] = max(d["window_ms"] for d in ph.values()) if ph else 12345.6
    if ph:
        want["job_window_ms"] = 12345.6
    bad += [f"{'io_phase' if ph else 'no io_phase'}: {k} {a.get(k)}, want {v}"
            for k, v in want.items() if a.get(k) != v]
print("\n".join("FAIL: " + b for b in bad) or "ok: stand-in loop counters, with and without io_phase")
sys.exit(1 if bad else 0)
PY
if [ "$(id -u)" != 0 ]; then
	echo "PASS (not root: the real steps were not run)"
	exit 0
fi
: "${THINP_ENGINE:?the fio engine (make engine; RUN_ENV sets THINP_ENGINE)}"
"$ROOT/scenarios/run" --scale tiny --repeat 1 --seed "$seed" --no-report --out "$WORK/run" \
	--tmp "$WORK" --only '^overwrite\.bs=4k\.thinp\.(loop|direct)$' >"$WORK/run.log" 2>&1 ||
	{ tail -20 "$WORK/run.log"; echo "FAIL: scenarios/run"; exit 1; }
python3 -B - "$WORK/run/cases.json" <<'PY'
import json, sys
cases = json.load(open(sys.argv[1]))["cases"]
bad, n = [], 0
for cid in ("overwrite.bs=4k.thinp.loop", "overwrite.bs=4k.thinp.direct"):
    a = cases[cid]["reps"][0]["steps"]["steady"]["all"]
    n += 1
    for side in ("data", "meta"):
        for name in ("busy_ms", "read_ms", "write_ms", "flush_ms", "queue_ms"):
            if not isinstance(a.get(f"{side}_{name}"), int):
                bad.append(f"{cid}: no {side}_{name} ({a.get(f'{side}_{name}')})")
        # (io_ticks counts in jiffies: one more may be started at the window's edge)
        if a.get(f"{side}_busy_ms", 0) > a["window_ms"] + 10:
            bad.append(f"{cid}: {side} busy {a[f'{side}_busy_ms']} ms > window {a['window_ms']}")
    if a["data_write_ms"] <= 0 or a["data_busy_ms"] <= 0:
        bad.append(f"{cid}: 512 writes, data write/busy time {a['data_write_ms']}/{a['data_busy_ms']}")
    # (the IO phase's window: the engine's; the whole job's: fio's process around its runtime)
    if a.get("devtime_io_phase") != 1 or not 0 < a["window_ms"] <= a.get("job_window_ms", 0):
        bad.append(f"{cid}: IO phase {a.get('devtime_io_phase')}, window {a['window_ms']} ms, "
                   f"whole job's {a.get('job_window_ms')}")
    if not a.get("runtime_ms") or a["runtime_ms"] > a.get("job_window_ms", a["window_ms"]):
        bad.append(f"{cid}: fio runtime {a.get('runtime_ms')} ms, window {a.get('job_window_ms')}")
    print(f"  {cid}: IO phase {a['window_ms']} ms of {a.get('job_window_ms')}, fio "
          f"{a['runtime_ms']} ms, data busy {a['data_busy_ms']}, meta busy {a['meta_busy_ms']}")
print("\n".join("FAIL: " + b for b in bad) or f"ok: {n} real steps")
sys.exit(1 if bad else 0)
PY
echo "PASS"
