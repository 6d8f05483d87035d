"""The kernel case `autoextend.kernel.direct` (`--backend kernel --data-dev DEV`): the seed's
autoextend profile (threshold 80, percent 20) at work on its LVM pool. One thin is filled with
whole 1 MiB writes in two steps, `below` (to 70% of the pool's data) and `above` (on to 86%);
around each the pool LV's size (bytes, extents) and data use are recorded with the step's
device counters.

With dmeventd (kernel_lvm: the pool is monitored) nobody runs lvextend: after `above` the case
waits for the pool to grow, up to AUTOEXTEND_WAIT seconds. Without it the case runs
`lvextend --use-policies` itself (what dmeventd's thin plugin runs) and says so in the rows.
After `below`, `lvextend --use-policies` is run by hand in both set-ups: the policy must leave a
pool at or under the threshold alone, whether or not dmeventd has looked at it yet.

The seed's pool takes 95% of the VG and lvconvert a spare metadata LV of 1%: the 3% left cannot
hold a 20% step (lvextend: "Insufficient free space"), so this case's data LV takes 60% of the
VG (one step of 20% fits, with room to spare); the rest of the procedure is the seed's.
docs/kernel-backend.md, "Autoextend"."""
import math
import time

from . import kernel_backend
from .case import Case
from .kernel_lvm import PERCENT, THRESHOLD, LvmPool
from .procs import log, sh
from .units import MiB

SCENARIO = "autoextend"
# the fills' targets, in % of the pool's data size before any growth
BELOW, ABOVE = 70, 86
# dmeventd's thin plugin looks every 10 s (and on the pool's events); under TCG its lvextend
# takes seconds more
AUTOEXTEND_WAIT = 120.0


class AutoextendPool(LvmPool):
    DATA_PCT = 60


def case():
    return Case(SCENARIO, kernel_backend.BACKEND, "direct", {}, True, run)


def run(ctx):
    return kernel_backend.with_pool(ctx, lambda pool: fill_steps(ctx, pool),
                                    pool_class=AutoextendPool)


def data_pct(st):
    return 100.0 * st["used_data_blocks"] / st["total_data_blocks"]


def fill_steps(ctx, pool):
    total = pool.status()["total_data_blocks"] * pool.block
    # (a thin larger than the pool: the writes past its first size need the growth)
    dev = pool.create_thin(1, 2 * total)
    out, start = {}, 0
    for step, pct in (("below", BELOW), ("above", ABOVE)):
        end = total * pct // 100 // MiB * MiB
        lv0, st0 = pool.lv_state(), pool.status()
        m = kernel_backend.measured(ctx, pool, step, "12-autoextend.fio", "fill",
                                    {"OFFSET": start, "SIZE": end - start}, dev)
        filled, lv_filled = pool.status(), pool.lv_state()
        a = m["all"]
        # the use the fill brought the pool to, of its size before the step (dmeventd may
        # have grown it already: dm-thin raises an event as LVM's low-water mark is crossed)
        pct = 100.0 * filled["used_data_blocks"] / st0["total_data_blocks"]
        a.update(data_pct_before=data_pct(st0), data_pct_filled=pct,
                 pool_bytes_before=lv0["bytes"], pool_extents_before=lv0["extents"],
                 extent_bytes=lv0["extent_bytes"], monitored=int(pool.monitored),
                 grown_in_step=int(lv_filled["extents"] != lv0["extents"]))
        grows = pct > THRESHOLD
        # lvextend --use-policies: the size in whole extents, rounded up (lvresize's rule
        # for a percentage of the LV), once the use is over the threshold
        a["expected_extents"] = math.ceil(lv0["extents"] * PERCENT / 100) if grows else 0
        t0 = time.monotonic()
        if pool.monitored and grows:
            a["autoextend_by"] = "dmeventd"
            lv1 = lv_filled if a["grown_in_step"] else wait_growth(pool, lv0["extents"])
        else:
            a["autoextend_by"] = "lvextend --use-policies" + (
                "" if pool.monitored else " (no dmeventd)")
            p = sh(["lvextend", "--use-policies", pool.lv], ctx, check=False)
            a["policy_rc"] = p.returncode
            lv1 = pool.lv_state()
        a["autoextend_wait_s"] = time.monotonic() - t0
        after = pool.status()
        a.update(pool_bytes=lv1["bytes"], pool_extents=lv1["extents"],
                 grown_extents=lv1["extents"] - lv0["extents"], data_pct=data_pct(after),
                 monitor=lv1["monitor"])
        how = (" during the fill" if a["grown_in_step"] else
               f" {a['autoextend_wait_s']:.1f} s after it")
        log(f"  autoextend {step}: data {a['data_pct_before']:.1f}% -> "
            f"{a['data_pct_filled']:.1f}%; pool {lv0['extents']} -> {lv1['extents']} extents "
            f"(+{a['grown_extents']}, the profile's +{PERCENT}%: +{a['expected_extents']}); "
            + (f"grown by {a['autoextend_by']}{how}" if a["grown_extents"] else
               f"{a['autoextend_by']} left it{how}") + f"; data now {a['data_pct']:.1f}%")
        out[step] = m
        start = end
    return out


def wait_growth(pool, extents):
    """The pool LV's state once its size changed, or at AUTOEXTEND_WAIT (not grown)."""
    end = time.monotonic() + AUTOEXTEND_WAIT
    while True:
        lv = pool.lv_state()
        if lv["extents"] != extents or time.monotonic() > end:
            return lv
        time.sleep(0.5)


def seen(cases):
    """One sentence per repetition of CASES' (cases.json's) autoextend case: what the pool did
    below and above the threshold, for the report's kernel section; [] without the case."""
    c = cases.get(case().cid)
    out = []
    for i, r in enumerate((c or {}).get("reps", []), 1):
        st = r.get("steps") or {}
        if r.get("status") != "ok" or not {"below", "above"} <= set(st):
            out.append(f"repetition {i}: {r.get('status')} ({r.get('error') or 'no rows'})")
            continue
        b, a = st["below"]["all"], st["above"]["all"]
        mib = a["extent_bytes"] / MiB
        out.append(
            f"repetition {i}: at {b['data_pct_filled']:.1f}% data the pool kept its "
            f"{b['pool_extents']} extents; at {a['data_pct_filled']:.1f}% it went from "
            f"{a['pool_extents_before']} to {a['pool_extents']} extents of {mib:g} MiB "
            f"(+{a['grown_extents']}; the profile's {PERCENT}%: +{a['expected_extents']}) by "
            f"{a['autoextend_by']}" + (" during the fill" if a.get("grown_in_step") else
                                       f" {a['autoextend_wait_s']:.1f} s after the fill") +
            f", {a['data_pct']:.1f}% used after")
    return out
