"""One fio step of a case: the command, its JSON report and the thinp engine's statistics
(thinp_stats: libthinp's exact per-class counters), turned into the metrics cases.json keeps."""
import json
import os
import stat
import time

from . import ROOT, fiojson
from .kernel_counters import TIME_KEYS, block_stat, stat_delta, time_metrics
from .diskio import write_pattern, zero_head
from .procs import CaseError, children_io, sh
from .units import KiB

JOBS = os.path.join(ROOT, "scenarios", "jobs")


def thinp_opts(ctx, mode, block=64 * KiB, zero=False, extra=None, data_size=None):
    """The engine's options for a pool of CTX's case: loop-lvm on sparse files in the work dir
    through buffered loop devices (thinp_losetup=1, as Docker's dm-thin; root), its file
    variant on the same files without them, direct-lvm on the run's direct devices."""
    env = ctx.env
    o = {"ioengine": f"external:{env.engine}", "thinp_create": 1,
         "thinp_mode": "direct" if mode == "direct" else "loop",
         "thinp_zero": int(bool(zero)), "thinp_block_size": block}
    if mode == "loop":
        o["thinp_losetup"] = 1
    if mode != "direct":
        o["thinp_pool"] = os.path.join(ctx.work, "pool")
        o["thinp_data_size"] = data_size or env.scale["direct"]
        o["thinp_metadata_size"] = env.scale["meta"]
    else:
        o["thinp_data"] = env.direct["data"]
        o["thinp_metadata"] = env.direct["metadata"]
    # the pool's CoW/zeroing policy, when the case names one (else the engine's default,
    # kernel: dm-thin's order)
    if ctx.case.params.get("cow"):
        o["thinp_cow"] = ctx.case.params["cow"]
    o.update(extra or {})
    return o


def new_direct_pool(ctx):
    """A fresh pool on the direct-lvm devices: zero the metadata superblock (the engine then
    formats, the kernel's rule)."""
    zero_head(ctx.env.direct["metadata"])


def restore_direct(ctx, used_bytes):
    """Zeroing on a loop device turns the backing file's extents unwritten (ZERO_RANGE): write
    the pool's used range again so later cases see written extents, as at the start."""
    if used_bytes:
        write_pattern(ctx.env.direct["data"], used_bytes, 0, direct=True)


def fio_step(ctx, step, jobfile, section, opts, envvars, stats=True):
    """Run one section of a job file; return (fio job JSON, stats JSON or None, dev bytes)."""
    jpath = os.path.join(JOBS, jobfile)
    out_json = os.path.join(ctx.fio_dir, f"r{ctx.rep}-{step}.json")
    o = dict(opts)
    st_path = None
    if stats and str(o.get("ioengine", "")).startswith("external:"):
        os.makedirs(ctx.stats_dir, exist_ok=True)
        st_path = os.path.join(ctx.stats_dir, f"r{ctx.rep}-{step}.json")
        o["thinp_stats"] = st_path
    cmd = [ctx.env.fio, "--output-format=json", f"--output={out_json}"]
    cmd += [f"--{k}={v}" for k, v in o.items()]
    cmd += [jpath, f"--section={section}"]
    envv = {k: str(v) for k, v in envvars.items()}
    devs = direct_devices(o)
    t0 = {r: block_stat(d) for r, d in devs.items()}
    r0, w0 = children_io()
    c0 = time.monotonic()
    p = sh(cmd, ctx, check=False, env=envv)
    c1 = time.monotonic()
    r1, w1 = children_io()
    # window_ms: the fio process's wall time, which holds the devices' counted interval (a
    # device cannot have been busy longer)
    dev = {"dev_read": r1 - r0, "dev_written": w1 - w0, "window_ms": round((c1 - c0) * 1e3, 1)}
    for r, d in devs.items():
        dev.update(time_metrics(r, stat_delta(t0[r], block_stat(d))))
    try:
        data = fiojson.load(out_json)
    except (OSError, ValueError) as e:
        raise CaseError(f"fio ({section}) exited {p.returncode} without a JSON report: "
                        f"{p.stderr.strip()[-600:] or e}")
    job = fiojson.job_named(data, section)
    if job is None:
        raise CaseError(f"fio ({section}): no job named {section} in its report")
    if p.returncode != 0 and not envvars.get("_allow_error"):
        raise CaseError(f"fio ({section}) exited {p.returncode} (job error {job.get('error')}): "
                        f"{p.stderr.strip()[-600:]}")
    st = json.load(open(st_path)) if st_path and os.path.exists(st_path) else None
    fiojson.compact(out_json, data)
    if st_path and st:
        compact_stats(st_path, st)
    return job, st, dev


def direct_devices(o):
    """{data, meta: node} of a direct-lvm pool's block devices in the engine options O (their
    /sys/block time fields are the step's device time; loop-lvm's loops exist only inside
    fio: the engine reports theirs)."""
    out = {}
    for role, key in (("data", "thinp_data"), ("meta", "thinp_metadata")):
        p = o.get(key)
        if p and os.path.exists(p) and stat.S_ISBLK(os.stat(p).st_mode):
            out[role] = p
    return out


def compact_stats(path, st):
    """The engine's statistics, without classes that saw no IO (and their empty histograms)."""
    def trim(classes):
        return {k: v for k, v in classes.items() if v.get("ios")}
    st = json.loads(json.dumps(st))  # (a copy: the caller keeps the full statistics)
    st["classes"] = trim(st.get("classes", {}))
    for j in st.get("jobs", []):
        j["classes"] = trim(j.get("classes", {}))
        if len(st.get("jobs", [])) == 1 and j["classes"] == st["classes"]:
            j["classes"] = "same as the top-level classes (one job)"
    pb = st.get("pool", {}).get("blocks")
    if pb:
        st["pool"]["blocks"] = {k: v for k, v in pb.items() if v.get("ops")}
    json.dump(st, open(path, "w"), separators=(",", ":"))


def fio_metrics(job, st=None, dev=None, used_before=0, block=64 * KiB):
    """{class: metrics} of one fio step: 'all' from fio itself, one entry per engine class."""
    d = fiojson.main_direction(job)
    x = job[d]
    ios = x.get("total_ios", 0)
    if not ios:
        raise CaseError(f"fio job {job.get('jobname')} did no IO")
    lat = fiojson.latency(x)
    all_ = {"dir": d, "ios": ios, "bytes": x["io_bytes"], "lat_mean_us": lat.mean / 1e3,
            "lat_p10_us": lat.p10 / 1e3,
            "lat_p50_us": lat.p50 / 1e3, "lat_p99_us": lat.p99 / 1e3,
            "iops": x["iops"], "mbps": x["bw_bytes"] / 1e6, "errors": job.get("total_err", 0)}
    all_["cost_us"] = all_["lat_mean_us"]
    if job.get("job_runtime"):
        all_["runtime_ms"] = job["job_runtime"]  # (the step's wall time, for its busy times)
    sync = job.get("sync", {})
    if sync.get("total_ios"):
        slat = fiojson.latency(sync)
        tot = lat.mean * ios + slat.mean * sync["total_ios"]
        all_["syncs"] = sync["total_ios"]
        all_["sync_mean_us"] = slat.mean / 1e3
        all_["cost_us"] = tot / ios / 1e3  # per write, its share of the fsyncs included
    if dev:
        all_.update(dev)
    out = {"all": all_}
    if st:
        out.update(engine_classes(job, st, all_, used_before, block))
    return out


def engine_classes(job, st, all_, used_before, block):
    """The engine's per-class metrics of JOB's step (and their sums into ALL_: bytes by
    outcome, commits, pool blocks used, time inside libthinp)."""
    out = {}
    cl = {}
    for jb in st.get("jobs", []):
        if jb.get("name") == job.get("jobname"):
            cl = jb.get("classes", {})
    if not isinstance(cl, dict) or not cl:
        cl = st.get("classes", {})
    tot = dict(data_read=0, data_written=0, data_zeroed=0, meta_written=0, blocks=0)
    for name, c in cl.items():
        if not c.get("ios"):
            continue
        l = c["latency_ns"]
        m = {"ios": c["ios"], "bytes": c["bytes"], "blocks": c["blocks"],
             "lat_mean_us": l["mean"] / 1e3, "lat_p50_us": l["p50"] / 1e3,
             "lat_p99_us": l["p99"] / 1e3, "data_read": c["data_bytes_read"],
             "data_written": c["data_bytes_written"], "data_zeroed": c["data_bytes_zeroed"],
             "meta_written": c["meta_bytes_written"]}
        m["cost_us"] = m["lat_mean_us"]
        out[name] = m
        for k in tot:
            tot[k] += m[k]
    pool = st.get("pool", {})
    commit = pool.get("blocks", {}).get("commit", {})
    tot["meta_written"] += commit.get("meta_bytes_written", 0)
    all_.update(tot)
    all_["commits"] = commit.get("ops", 0)
    used = pool.get("used_data_blocks")
    if used is not None:
        all_["used_blocks"] = used
        all_["alloc_bytes"] = (used - used_before) * pool.get("block_size", block)
    all_["pool_time_us"] = sum(c["lat_mean_us"] * c["ios"] for c in out.values())
    loop_counters(all_, pool.get("loop_devices"))
    io_phase_counters(all_, pool.get("io_phase"))
    return out


def loop_counters(all_, loops):
    """thinp_losetup=1: what went through the loop devices during the step (their
    /sys/block stat deltas, from the engine), so a case record shows the loop driver was
    used."""
    if not loops:
        return
    for role, key in (("data", "loop_data"), ("metadata", "loop_meta")):
        d = loops.get(role) or {}
        all_[key + "_read"] = d.get("read_bytes", 0)
        all_[key + "_written"] = d.get("write_bytes", 0)
        all_[key + "_flushes"] = d.get("flushes", 0)
        # (the names the kernel's devices have: data_busy_ms, meta_write_ms, ...)
        side = "data" if role == "data" else "meta"
        for k, name in TIME_KEYS.items():
            if f"{k}_ms" in d:
                all_[f"{side}_{name}"] = d[f"{k}_ms"]


def io_phase_counters(all_, phase):
    """The engine's device time fields over the job's IO phase alone (io_phase: first IO to
    last, fio's flushes included; not the pool's open, prefill or closing commit), in place
    of the whole job's (loop-lvm's loops) or the fio process's (direct-lvm, counted around
    fio), with that phase's window_ms: the busy times then compare with per-IO latencies.
    devtime_io_phase says which the step has (0: an engine without io_phase, or a pool with
    no block device; its fields stay the whole job's)."""
    roles = {r: d for r, d in (phase or {}).items() if d}
    all_["devtime_io_phase"] = 1 if roles else 0
    if not roles:
        return
    if "window_ms" in all_:
        all_["job_window_ms"] = all_["window_ms"]
    all_["window_ms"] = max(d["window_ms"] for d in roles.values())
    for role, side in (("data", "data"), ("metadata", "meta")):
        d = roles.get(role)
        for k, name in TIME_KEYS.items():
            if d is None:
                all_.pop(f"{side}_{name}", None)  # (no whole-job figure beside a phase's)
            elif f"{k}_ms" in d:
                all_[f"{side}_{name}"] = d[f"{k}_ms"]
