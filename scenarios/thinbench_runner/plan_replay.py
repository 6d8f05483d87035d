"""A planning spec's workload replayed on a real libthinp pool, in the plan's own time steps
(docs/capacity-planning.md, "Validation"): the images' layers written at time 0, the containers
(snapshots of their image's top layer) writing at the model's steady rate through the fio
engine, one fio process per step (a job per container, each replaying an iolog of that
step's writes), churn deleting a container at the end of its life and snapshotting its
successor, and the pool's neighbours emulated at every step from what `thinp pool report`
says: LVM's autoextend (dmeventd's rule: use >= threshold -> grow by percent of the size in
whole extents, until under the threshold, out of the VG's free space) and Docker's
dm.min_free_space; dm-thin's own low-water mark is the pool's table's.

Event times are measured from the samples: a threshold's time is where the measured use
crossed it between the two samples around it (the model interpolates the same way); the
pool's full time, which a sample cannot show beyond its size, is found by running the step
where the measured free space would run out at the last step's rate in SUBSTEPS pieces, and
extrapolating the last measured rate to the size inside the piece where the pool was seen
full."""
import json
import math
import os
import random

from . import fiojson
from .procs import CaseError, sh

SUBSTEPS = 4
ENOSPC = 28


class Replay:
    def __init__(self, ctx, spec, seed, work):
        self.ctx, self.v, self.seed, self.work = ctx, spec, seed, work
        self.dir = os.path.join(work, "pool")
        self.cli = ctx.env.cli
        self.samples = []  # {hours, data_used, data_total, metadata_used, metadata_total, step}
        self.events = []
        self.next_id = 2
        self.fio_runs = 0
        self.refused = 0
        v = spec
        self.slots = v["images"] * v["containers"]
        self.life = self.slots / v["churn"] if v["churn"] > 0 and self.slots else 0
        self.rate = v["container_writes"] / (self.life or v["duration"])
        self.img_bytes = v["layers"] * v["layer_size"]
        self.vg_free = v["vg_free"]
        self.low_armed, self.vg_full, self.full, self.min_data = True, False, False, False
        self.layout()

    # -- the device layout of a container ------------------------------------------------------
    def layout(self):
        """Regions of a container's device: the image [0, img), random fresh writes in the
        span after it, each sequential entry's fresh writes after that in a region of its
        own, each sequential entry's updates from 0 in regions of their own (the model counts
        every entry's blocks apart)."""
        v, bs = self.v, self.v["block"]
        up = lambda b: -(-int(b) // bs) * bs  # noqa: E731
        self.span_base = up(self.img_bytes)
        fresh, cow = self.span_base + up(v["write_span"]), 0
        self.regions = []
        for e in v["mix"]:
            total = v["container_writes"] * e["share"]
            r = {"fresh": fresh, "cow": cow}
            if e["pattern"] == "sequential":
                fresh += up(total * (1 - v["update"]))
                cow += up(total * v["update"])
            self.regions.append(r)
        if fresh > v["basesize"]:
            raise CaseError(f"the spec's containers write past docker.basesize "
                            f"({fresh} > {v['basesize']} bytes); give a larger basesize")

    # -- commands ------------------------------------------------------------------------------
    def thinp(self, *args):
        return sh([self.cli] + [str(a) for a in args], self.ctx, what="thinp " + args[0])

    def report(self):
        p = self.thinp("pool", "report", self.dir, "--format", "json")
        return json.loads(p.stdout)["pool"]

    def fio(self, jobs, label):
        """One fio process, one job per (thin id, [(offset, length)]) on the shared pool."""
        jobs = [(i, w) for i, w in jobs if w]
        if not jobs:
            return
        self.fio_runs += 1
        v = self.v
        out = os.path.join(self.work, f"fio-{self.fio_runs}.json")
        cmd = [self.ctx.env.fio, "--output-format=json", f"--output={out}", "--thread",
               f"--ioengine=external:{self.ctx.env.engine}", f"--thinp_pool={self.dir}",
               f"--thinp_zero={int(v['zeroing'])}", "--thinp_no_space=error",
               "--thinp_mode=loop", "--rw=write", "--iodepth=1", "--continue_on_error=write",
               "--replay_no_stall=1", "--invalidate=0", "--verify_state_save=0",
               f"--bs={max(n for _, w in jobs for _, n in w)}"]
        for i, writes in jobs:
            log = os.path.join(self.work, f"iolog-{self.fio_runs}-{i}")
            with open(log, "w") as f:
                f.write("fio version 2 iolog\nthin add\nthin open\n")
                f.writelines(f"thin write {o} {n}\n" for o, n in writes)
                f.write("thin close\n")
            cmd += [f"--name={label}-{i}", f"--thinp_dev={i}",
                    f"--thinp_dev_size={v['basesize']}", f"--read_iolog={log}"]
        p = sh(cmd, self.ctx, check=False)
        try:
            rep = fiojson.load(out)
        except (OSError, ValueError):
            raise CaseError(f"fio ({label}) exited {p.returncode} without a report: "
                            f"{p.stderr.strip()[-400:]}")
        for j in rep.get("jobs", []):
            if j.get("error") not in (0, ENOSPC):
                raise CaseError(f"fio job {j.get('jobname')}: error {j.get('error')}: "
                                f"{p.stderr.strip()[-400:]}")
            self.refused += j.get("total_err", 0)
        os.unlink(out)

    # -- the workload ----------------------------------------------------------------------------
    def build_images(self):
        """The base device and every image's chain of layers, each layer a snapshot of the one
        below writing layer_size sequentially after it (1 MiB writes)."""
        v = self.v
        self.thinp("pool", "create", self.dir, "--data-size", v["data_size"],
                   "--metadata-size", v["metadata_size"], "--block-size", v["block"],
                   "--error-if-no-space", "--low-water", v["low_water"],
                   *([] if v["zeroing"] else ["--skip-block-zeroing"]))
        self.thinp("thin", "create", self.dir, 1, "--size", v["basesize"])
        self.tops = [1] * v["images"]
        for layer in range(v["layers"]):
            jobs = []
            for i in range(v["images"]):
                nid = self.snap(self.tops[i])
                self.tops[i] = nid
                jobs.append((nid, seq(layer * v["layer_size"], v["layer_size"], 1 << 20)))
            self.fio(jobs, f"layer{layer}")
        # slot s runs image s % images (the model's slot = container * images + image)
        self.cont = [None] * self.slots
        for s in range(self.slots):
            self.new_container(s, 0)

    def snap(self, origin):
        nid = self.next_id
        self.next_id += 1
        self.thinp("thin", "snap", self.dir, nid, origin)
        return nid

    def new_container(self, s, life):
        rng = random.Random(f"{self.seed}.{s}.{life}")
        self.cont[s] = {"id": self.snap(self.tops[s % self.v["images"]]), "life": life,
                        "w": 0.0, "rng": rng, "drawn": {}}

    def age_written(self, s, t):
        """(life number, bytes written in it) of slot S at time T (the model's rule: slot s's
        first life ends at (s + 1) / slots of a life, then every life)."""
        if not self.life:
            return 0, self.rate * t
        first = (s + 1) * self.life / self.slots
        if t < first - 1e-9:
            return 0, self.rate * t
        k = math.floor((t - first) / self.life + 1e-9)
        return k + 1, self.rate * max(0.0, t - first - k * self.life)

    def writes(self, c, w1):
        """The container's writes from its bytes so far to W1: per write_mix entry, its
        updates (the fraction update_fraction, over the image) and fresh writes; sequential
        ones continue where they stopped (the last write cut to the byte count, in 512-byte
        units), random ones are seeded draws, aligned to their size, over the image (updates)
        or the span (fresh)."""
        v, out, w0 = self.v, [], c["w"]
        for k, e in enumerate(v["mix"]):
            for kind, frac in (("cow", v["update"]), ("fresh", 1 - v["update"])):
                b0, b1 = w0 * e["share"] * frac, w1 * e["share"] * frac
                if b1 <= 0:
                    continue
                if e["pattern"] == "sequential":
                    a, z = int(b0) >> 9 << 9, int(b1) >> 9 << 9
                    base = self.regions[k][kind]
                    out += seq(base + a, z - a, e["size"])
                    continue
                # whole writes: the fraction of one is written with that probability, so the
                # containers (all at the same byte count) do not all round the same way
                x = b1 / e["size"]
                n0 = c["drawn"].get((k, kind), 0)
                n1 = max(n0, int(x) + (c["rng"].random() < x - int(x)))
                lo, span = ((0, self.img_bytes) if kind == "cow"
                            else (self.span_base, v["write_span"]))
                units = span // e["size"]
                if units <= 0:
                    continue
                out += [(lo + c["rng"].randrange(units) * e["size"], e["size"])
                        for _ in range(n1 - n0)]
                c["drawn"][(k, kind)] = max(n0, n1)
        c["w"] = w1
        return out

    def advance(self, t):
        """Every container writes what it has written by T (a life that ended before T writes
        to its end, is deleted, and its successor starts), in one fio process per boundary."""
        ends = []
        for s in range(self.slots):
            life, _ = self.age_written(s, t)
            if life != self.cont[s]["life"]:
                ends.append(s)
        self.fio([(c["id"], self.writes(c, self.age_written(s, t)[1] if s not in ends
                                         else self.rate * self.life))
                  for s, c in enumerate(self.cont)], f"t{t:g}")
        for s in ends:  # (the specs' steps hold at most one end per slot)
            life, w = self.age_written(s, t)
            self.thinp("thin", "delete", self.dir, self.cont[s]["id"])
            self.new_container(s, life)
            if w > 0:
                self.fio([(self.cont[s]["id"], self.writes(self.cont[s], w))], f"t{t:g}n")

    def sample(self, t, step):
        r = self.report()
        pt = {"hours": round(t, 9), "step": step, "data_used": r["used_data_blocks"],
              "data_total": r["total_data_blocks"], "metadata_used": r["used_metadata_blocks"],
              "metadata_total": r["total_metadata_blocks"], "mode": r["mode"]}
        self.samples.append(pt)
        return pt

    # -- the pool's neighbours -------------------------------------------------------------------
    def event(self, name, hours, before, after, how):
        self.events.append({"event": name, "hours": round(hours, 6), "before": before,
                            "after": after, "how": how})

    def neighbours(self, prev, cur, t0, t1):
        """After the step's sample: low water, Docker's rule, full, then LVM's autoextend."""
        v = self.v
        tot = cur["data_total"]
        if v["low_water"] and self.low_armed and tot - cur["data_used"] <= v["low_water"]:
            self.low_armed = False
            self.event("low_water", cross(prev, cur, "data_used", tot - v["low_water"]),
                       cur["data_used"], tot, "interpolated between the samples")
        if v["min_free"] > 0:
            need = max(1, math.floor(tot * v["min_free"] / 100))
            refuse = tot - cur["data_used"] < need
            if refuse and not self.min_data:
                self.event("min_free_data", cross(prev, cur, "data_used", tot - need),
                           cur["data_used"], need, "interpolated between the samples")
            self.min_data = refuse
        if cur["data_used"] >= tot and not self.full:
            self.full = True
            self.event("data_full", self.full_time(), cur["data_used"], tot,
                       "the last measured rate extrapolated into the piece of the step "
                       "where the pool was seen full")
        elif cur["data_used"] < tot:
            self.full = False
        if v["threshold"] < 100 and v["extend_percent"] > 0 and \
                cur["data_used"] * 100 >= v["threshold"] * tot:
            self.autoextend(prev, cur, tot)

    def autoextend(self, prev, cur, tot):
        v, bs = self.v, self.v["block"]
        cur_b = tot * bs
        inc = math.ceil(cur_b * v["extend_percent"] / 100 / v["extent"]) * v["extent"]
        add = 0
        while cur["data_used"] * 100 >= v["threshold"] * ((cur_b + add) // bs):
            add += inc
        when = cross(prev, cur, "data_used", v["threshold"] * tot / 100)
        if add > self.vg_free:
            if not self.vg_full:
                self.event("vg_full", when, tot, tot, "interpolated between the samples")
            self.vg_full = True
            return
        self.vg_free -= add
        self.thinp("pool", "extend", self.dir, "--data-size", cur_b + add)
        after = self.report()["total_data_blocks"]
        self.event("autoextend_data", when, tot, after,
                   "the threshold's crossing, interpolated between the samples")
        cur["data_total_after"] = after
        if after - cur["data_used"] > v["low_water"]:
            self.low_armed = True  # dm-thin re-arms the event on a resize

    def full_time(self):
        """The last piece's start, plus the time its free space took at the rate measured
        over the piece before it (bounded by the piece)."""
        a, b = self.samples[-2], self.samples[-1]
        rate = 0
        if len(self.samples) >= 3:
            z = self.samples[-3]
            if a["hours"] > z["hours"]:
                rate = (a["data_used"] - z["data_used"]) / (a["hours"] - z["hours"])
        free = a["data_total"] - a["data_used"]
        dt = free / rate if rate > 0 else b["hours"] - a["hours"]
        return a["hours"] + min(dt, b["hours"] - a["hours"])

    # -- the run ----------------------------------------------------------------------------------
    def run(self):
        v = self.v
        self.build_images()
        prev_step = self.sample(0.0, 0)
        for k in range(1, v["steps"] + 1):
            t0, t1 = (k - 1) * v["step"], min(v["duration"], k * v["step"])
            last = self.samples[-1]
            grow = (last["data_used"] - self.samples[-2]["data_used"]
                    if len(self.samples) >= 2 else 0)
            free = last.get("data_total_after", last["data_total"]) - last["data_used"]
            pieces = SUBSTEPS if not self.full and grow > 0 and free <= 1.5 * grow * \
                (t1 - t0) / max(1e-9, last["hours"] - self.samples[-2]["hours"]) else 1
            for j in range(1, pieces + 1):
                t = t0 + (t1 - t0) * j / pieces
                self.advance(t)
                if j < pieces:
                    self.sample(t, None)
                    if self.samples[-1]["data_used"] >= self.samples[-1]["data_total"]:
                        # seen full inside the step: the rest of it writes nothing more
                        for jj in range(j + 1, pieces):
                            self.advance(t0 + (t1 - t0) * jj / pieces)
                        self.advance(t1)
                        break
            cur = self.sample(t1, k)
            self.neighbours(prev_step, cur, t0, t1)
            prev_step = cur
        return {"samples": self.samples, "events": self.events, "fio_runs": self.fio_runs,
                "refused_ios": self.refused, "vg_free_left": self.vg_free}


def seq(start, length, size):
    """LENGTH bytes from START in writes of SIZE (the last one cut short)."""
    out, o, end = [], start, start + length
    while o < end:
        n = min(size, end - o)
        out.append((o, n))
        o += n
    return out


def cross(a, b, key, x):
    """When the quantity KEY, A's at A's time and B's at B's, crossed X (linear)."""
    ya, yb = a[key], b[key]
    if yb == ya:
        return b["hours"]
    f = min(1.0, max(0.0, (x - ya) / (yb - ya)))
    return a["hours"] + f * (b["hours"] - a["hours"])
