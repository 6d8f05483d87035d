"""The seed's claims that only the Docker driver's scenarios (11) can test: memory per
container, data volumes, small writes against a file-level driver measured at file level.
Rows as claims.py makes them (claim, measured, verdict, rule, reproduce), each verdict a rule
over this run's numbers with its threshold named here."""
from .case import cid
from .claims import MATERIAL_RATIO, x
from .docker_report import STORAGE, WRITE_TEXT, WRITES, memory_copies, rep_ratio
from .units import fnum, fspread

# "n copies of its files": n containers hold at least this fraction of n copies of the file
# set in their page cache (the rest is what the kernel's readahead and reclaim leave out).
N_COPIES_FRACTION = 0.8
# overlayfs shares one copy: at most this many copies for any n.
SHARED_COPIES_MAX = 1.5
MEMORY_N = (1, 2, 4, 8)


def verdict_for(holds, n):
    if not holds:
        return "does not hold here"
    return "holds" if len(holds) == n else "holds for " + ", ".join(holds) + " only"


def p50_vs(run, backend, other, wl):
    return rep_ratio(run, cid("dwrite", backend, "loop", wl=wl),
                     cid("dwrite", other, "loop", wl=wl), "write", "lat_p50_us")


def docker_claims(run):
    out = []
    rep = run.env.get("options", {}).get("repeat", 3)

    def only(*pats):
        return "scenarios/run " + " ".join(f"--only '{p}'" for p in pats) + f" --repeat {rep}"

    # memory: n containers, n copies
    ns = [n for n in MEMORY_N if memory_copies(run, "thinp-docker", n) is not None]
    if ns:
        dm = {n: memory_copies(run, "thinp-docker", n) for n in ns}
        ov = {n: memory_copies(run, "overlayfs", n) for n in ns}
        meas = ("copies of the file set in the readers' page cache (memory cgroup) for n = " +
                ", ".join(str(n) for n in ns) + ": devicemapper " +
                ", ".join(fnum(dm[n]) for n in ns))
        top = ns[-1]
        if all(v is not None for v in ov.values()):
            meas += "; overlayfs " + ", ".join(fnum(ov[n]) for n in ns)
            r = rep_ratio(run, cid("dmemory", "thinp-docker", "loop", n=top),
                          cid("dmemory", "overlayfs", "loop", n=top), "read", "page_cache")
            meas += f"; at n = {top} devicemapper holds {fspread(r)} overlayfs' page cache"
        n_copies = all(dm[n] >= N_COPIES_FRACTION * n for n in ns)
        shared = all(v is not None and v <= SHARED_COPIES_MAX for v in ov.values())
        verdict = ("holds: n copies with devicemapper, one with overlayfs" if n_copies and shared
                   else "holds for devicemapper (overlayfs not measured)" if n_copies and
                   not any(v is not None for v in ov.values())
                   else "does not hold")
        out.append(("Memory: “Launching n copies of the same container loads n copies of its "
                    "files into memory”", meas, verdict,
                    f"devicemapper copies ≥ {N_COPIES_FRACTION:g} × n for every n, overlayfs "
                    f"copies ≤ {SHARED_COPIES_MAX:g}", only("^dmemory\\.")))
    # data volumes: best performance (the driver and overlayfs against a plain directory)
    parts, slower = [], []
    for wl in WRITES:
        t = p50_vs(run, "thinp-docker", "raw-volume", wl)
        o = p50_vs(run, "overlayfs", "raw-volume", wl)
        if t:
            parts.append(f"{WRITE_TEXT[wl]}: devicemapper {fspread(t)}, overlayfs "
                         f"{fspread(o)} the volume")
            if t[0] > MATERIAL_RATIO:
                slower.append(WRITE_TEXT[wl])
    if parts:
        out.append(("“Data volumes provide the best and most predictable performance” (they "
                    "bypass the storage driver: put heavy write workloads there)",
                    "p50 latency of O_SYNC writes in a container ÷ the same on a data volume: "
                    + "; ".join(parts), verdict_for(slower, len(parts)),
                    f"devicemapper > {x(MATERIAL_RATIO)} the volume (p50 ratio), per workload",
                    only("^dwrite\\.")))
    # small writes: devicemapper vs a file-level driver (overlayfs, AUFS's mainline successor)
    parts, worse = [], []
    for wl in ("small", "append", "update"):
        t = p50_vs(run, "thinp-docker", "overlayfs", wl)
        if t:
            parts.append(f"{WRITE_TEXT[wl]}: {fspread(t)} overlayfs")
            if t[0] > MATERIAL_RATIO:
                worse.append(WRITE_TEXT[wl])
    if parts:
        out.append(("Small writes at file level: “containers that perform lots of small block "
                    "writes (<64KB) can perform worse with devicemapper than with AUFS”",
                    f"p50 latency of O_SYNC 4 KiB writes in a container, {STORAGE['thinp-docker']}"
                    " ÷ overlayfs: " + "; ".join(parts),
                    verdict_for(worse, len(parts)),
                    f"devicemapper > {x(MATERIAL_RATIO)} overlayfs (p50 ratio), per workload",
                    only("^dwrite\\.wl=(small|append|update)\\.")))
    return out
