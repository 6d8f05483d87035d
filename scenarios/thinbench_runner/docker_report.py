"""The Docker driver's scenarios (11: dimage, dwrite, dmemory) in report.md and BENCHMARKS.md:
one table each, every number from the run's cases.json (medians over repetitions, ratios taken
inside each repetition)."""
import statistics

from .case import cid
from .units import fbytes, fnum, fspread

DOCKER_TITLES = [
    ("dimage", "11a. Docker's driver: image build and container start"),
    ("dwrite", "11b. Docker's driver: file-level writes in a container, against overlayfs and "
               "a data volume"),
    ("dmemory", "11c. Docker's driver: page cache of n containers reading the same files"),
]
STORAGE = {"thinp-docker": "devicemapper (libthinp)", "overlayfs": "overlayfs",
           "raw-volume": "data volume (plain dir)"}
WRITES = ("small", "append", "update", "seed")
WRITE_TEXT = {"small": "new 4 KiB files", "append": "4 KiB appends to a new file",
              "update": "4 KiB random updates of an image file",
              "seed": "one 32 KiB update of the image's big file"}


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def rep_ratio(run, a, b, step, key):
    """Median [min, max] over repetitions of A's KEY ÷ B's, each inside one repetition."""
    x = run.rep_values(a, step, "all", key)
    y = run.rep_values(b, step, "all", key)
    rs = sorted(x[r] / y[r] for r in x if r in y and y[r])
    return (statistics.median(rs), rs[0], rs[-1]) if rs else None


def fms(us):
    return "—" if us is None else fnum(us / 1e3)


def image_table(run):
    L = ["| storage | per layer: ms [min–max] | data blocks / layer | metadata blocks / layer | "
         "files / layer | per container start: ms [min–max] | data blocks / start | status |",
         "|---|---|---|---|---|---|---|---|"]
    for b in ("thinp-docker", "overlayfs"):
        i = cid("dimage", b, "loop")
        if i not in run.cases:
            continue
        lr, sr = run.row(i, "layer"), run.row(i, "start")
        if not lr or lr.get("median_us") is None:
            L.append(f"| {STORAGE[b]} | — | — | — | — | — | — | "
                     f"{(lr or {}).get('status', '')}: {'; '.join(run.errors(i))[:200]} |")
            continue
        L.append("| " + " | ".join([
            STORAGE[b],
            f"{fms(lr['median_us'])} [{fms(lr['min_us'])}–{fms(lr['max_us'])}]",
            fnum(run.extra(i, "layer", "data_blocks")), fnum(run.extra(i, "layer", "meta_blocks")),
            fbytes(run.extra(i, "layer", "bytes")),
            f"{fms(sr['median_us'])} [{fms(sr['min_us'])}–{fms(sr['max_us'])}]" if sr else "—",
            fnum(run.extra(i, "start", "data_blocks")), lr.get("status", "")]) + " |")
    return "\n".join(L)


def write_table(run):
    L = ["| workload | storage | mean µs/write [min–max] | p50 µs | p99 µs | × data volume "
         "(p50) | × overlayfs (p50) | job wall ms | pool classes (IOs) | pool bytes written "
         "/ byte | copied / write |",
         "|---|---|---|---|---|---|---|---|---|---|---|"]
    for wl in WRITES:
        for b in ("thinp-docker", "overlayfs", "raw-volume"):
            i = cid("dwrite", b, "loop", wl=wl)
            if i not in run.cases:
                continue
            r = run.row(i, "write")
            if not r or r.get("median_us") is None:
                L.append(f"| {WRITE_TEXT[wl]} | {STORAGE[b]} | — | — | — | — | — | — | — | — "
                         f"| {'; '.join(run.errors(i))[:200]} |")
                continue
            vol = cid("dwrite", "raw-volume", "loop", wl=wl)
            ovl = cid("dwrite", "overlayfs", "loop", wl=wl)
            cls = [c for c in run.classes(i, "write") if c != "all"]
            counts = ", ".join(f"{c} {fnum(run.extra(i, 'write', 'ios', c))}" for c in cls)
            ios = run.extra(i, "write", "ios")
            copied = run.extra(i, "write", "copied")
            L.append("| " + " | ".join([
                WRITE_TEXT[wl], STORAGE[b],
                f"{fnum(r['median_us'])} [{fnum(r['min_us'])}–{fnum(r['max_us'])}]",
                fnum(r.get("lat_p50_us")), fnum(r.get("lat_p99_us")),
                fspread(rep_ratio(run, i, vol, "write", "lat_p50_us")) if b != "raw-volume"
                else "1", fspread(rep_ratio(run, i, ovl, "write", "lat_p50_us"))
                if b != "overlayfs" else "1",
                fms(run.extra(i, "write", "elapsed_us")), counts or "—",
                fnum(r.get("data_w_amp")) if r.get("data_w_amp") is not None else "—",
                fbytes(copied / ios) if copied is not None and ios else "—"]) + " |")
    return "\n".join(L)


def memory_table(run):
    L = ["| containers | storage | page cache of the readers (cgroup) | copies of the file "
         "set [min–max] | Cached growth (machine-wide) | read ms / container |",
         "|---|---|---|---|---|---|"]
    for n in (1, 2, 4, 8):
        for b in ("thinp-docker", "overlayfs"):
            i = cid("dmemory", b, "loop", n=n)
            if i not in run.cases:
                continue
            cp = run.rep_values(i, "read", "all", "copies")
            if not cp:
                L.append(f"| {n} | {STORAGE[b]} | — | — | — | {'; '.join(run.errors(i))[:200]} |")
                continue
            v = sorted(cp.values())
            L.append("| " + " | ".join([
                str(n), STORAGE[b], fbytes(run.extra(i, "read", "page_cache")),
                f"{fnum(med(v))} [{fnum(v[0])}–{fnum(v[-1])}]",
                fbytes(run.extra(i, "read", "cached_growth")),
                fms(run.extra(i, "read", "cost_us"))]) + " |")
    return "\n".join(L)


def docker_text(run, scen):
    """The section body of scenario SCEN (markdown), '' when the run has none of it."""
    if not any(c["scenario"] == scen for c in run.cases.values()):
        return ""
    sizes = run.env.get("options", {}).get("sizes", {})
    rep = run.env.get("options", {}).get("repeat", 3)
    again = f"`scenarios/run --only '^{scen}\\.' --repeat {rep}`"
    if scen == "dimage":
        return (f"Docker's devicemapper driver on libthinp (`thinp docker`, loop-lvm, ext4 base, "
                f"64 KiB blocks): a fresh driver home per repetition, {sizes.get('dk_layers')} "
                f"layers each adding about {fbytes(sizes.get('dk_layer'))} of real files copied "
                "from the host's /usr (a seeded pick); a layer = create (a snapshot of the layer "
                "below) + get (mount) + copy + sync + put (unmount); then "
                f"{sizes.get('dk_containers')} containers started (create + get). Blocks per "
                "layer from the pool's status (64 KiB data blocks, 4 KiB metadata blocks). "
                "overlayfs: a layer = a directory + copy + syncfs, a start = an overlay mount "
                f"over every layer. Reproduce: {again}.\n\n" + image_table(run))
    if scen == "dwrite":
        return ("fio's psync engine on files in the container's file system (job file "
                "[scenarios/jobs/11-docker.fio](scenarios/jobs/11-docker.fio)), every write "
                "O_SYNC, so its latency is a whole durable write: a fresh container of the "
                "run's image per repetition (devicemapper), a fresh overlay over the same image "
                "tree (overlayfs), a plain directory holding the same files (data volume). "
                f"{sizes.get('dk_small')} new files; {sizes.get('dk_ios')} appends and "
                f"updates (the updated file: {fbytes(sizes.get('dk_update'))}); the seed's "
                f"32 KiB update of a {fbytes(sizes.get('dk_seed'))} file (the seed says 1 GiB; "
                "a smaller file here keeps the image build within seconds: the block-level "
                "copy does not depend on the size, the copy-up does). Pool classes: the "
                "pool's own counters (`thinp docker stats`), reset before fio: what the "
                "file-level writes became in the pool, the file system's journal included. "
                "*job wall ms* includes the file opens (overlayfs' copy-up happens there), "
                f"which fio's latency leaves out. Reproduce: {again}.\n\n" + write_table(run))
    return (f"n containers of one image each read the same {fbytes(sizes.get('dk_mem'))} "
            "(16 files) once with `cat`, after `sync; echo 3 > /proc/sys/vm/drop_caches`. "
            "*page cache of the readers*: the cats run in a fresh memory cgroup whose page "
            "cache counts what they brought in (nothing of other processes); *copies* = that "
            "÷ the file set. *Cached growth*: /proc/meminfo's Cached across the reads, "
            "machine-wide: for the driver it also holds the pool's data file, read through "
            "the page cache below the containers (loop-lvm), and anything else the machine "
            f"did meanwhile. Reproduce: {again}.\n\n" + memory_table(run))


def memory_copies(run, backend, n):
    """Median copies of the file set in the page cache (cgroup) of N containers."""
    return run.extra(cid("dmemory", backend, "loop", n=n), "read", "copies")

