"""The case matrix (quick and full), each case's baselines, --only, and the order of one
repetition."""
import fnmatch
import os
import random
import re

from .case import Case
from .units import FILE_MODE, KiB, MiB, MODES, MODE_LABEL, store_mode
from .workloads.chain import sc_chain
from .workloads.commit import sc_commit
from .workloads.cow import sc_cow
from .workloads.docker_image import sc_dimage
from .workloads.docker_memory import sc_dmemory
from .workloads.docker_write import sc_dwrite
from .workloads.fill import sc_fill
from .workloads.firstwrite import sc_alloc, sc_blocksize, sc_edge
from .workloads.floor import sc_floor
from .workloads.overwrite import sc_overwrite
from .workloads.seed import sc_seed

ALLOC_BS = [4 * KiB, 8 * KiB, 16 * KiB, 32 * KiB, 56 * KiB, 64 * KiB, 128 * KiB, 1 * MiB]
QUICK_ALLOC_BS = [4 * KiB, 56 * KiB, 64 * KiB, 1 * MiB]
# the matrix runs scenario by scenario (both modes of a workload next to each other)
SCENARIO_ORDER = ["alloc", "cow", "overwrite", "chain", "blocksize", "edge", "commit", "fill",
                  "seed", "dimage", "dwrite", "dmemory"]
# 11. Docker's driver (loop-lvm, its default): file-level workloads in a mounted container
DOCKER_WRITES = ("small", "append", "update", "seed")
DOCKER_MEMORY_N = (1, 2, 4, 8)


def build_matrix():
    cases = []

    def add(scenario, backend, mode, params, quick, fn):
        cases.append(Case(scenario, backend, mode, params, quick, fn))

    for mode in MODES:
        add_alloc(add, mode)
        add_cow(add, mode)
        # 3. overwrite steady state
        for bs in (4 * KiB, 64 * KiB):
            q = bs == 4 * KiB
            # 64 KiB in the quick matrix too: the 64 KiB first-write and CoW steps (and their
            # kernel twins) are divided by it (issue 11's class ÷ overwrite targets)
            add("overwrite", "thinp", mode, dict(bs=bs), True, sc_overwrite)
            add("overwrite", "raw-psync", mode, dict(bs=bs), True, sc_overwrite)
            add("overwrite", "raw-io_uring", mode, dict(bs=bs), q, sc_overwrite)
            add("overwrite", "qcow2-nbd", mode, dict(bs=bs), False, sc_overwrite)
            add("overwrite", "raw-nbd", mode, dict(bs=bs), False, sc_overwrite)
        # 4. snapshot chains
        for depth in (1, 2, 4, 8, 16):
            q = depth in (1, 4, 16)
            add("chain", "thinp", mode, dict(depth=depth), q, sc_chain)
            add("chain", "qcow2-bench", mode, dict(depth=depth), q, sc_chain)
            add("chain", "qcow2-nbd", mode, dict(depth=depth), False, sc_chain)
        add("chain", "raw-psync", mode, dict(depth=0), True, sc_chain)
        add("chain", "raw-bench", mode, dict(depth=0), True, sc_chain)
        add("chain", "raw-nbd", mode, dict(depth=0), False, sc_chain)
        # 5. block size x write size, allocate and CoW
        for op in ("alloc", "cow"):
            for block in (64 * KiB, 128 * KiB, 256 * KiB, 512 * KiB, 1 * MiB):
                for bs in (4 * KiB, 64 * KiB, 1 * MiB):
                    q = mode == "loop" and block in (64 * KiB, 512 * KiB) and bs in (4 * KiB, 64 * KiB)
                    add("blocksize", "thinp", mode, dict(op=op, block=block, bs=bs), q, sc_blocksize)
                    add("blocksize", "raw-psync", mode, dict(op=op, block=block, bs=bs), q,
                        sc_blocksize)
        # 6. edge cases
        for pos in ("front", "middle", "cross"):
            for zero in (False, True):
                add("edge", "thinp", mode, dict(pos=pos, zero=zero), zero, sc_edge)
            add("edge", "raw-psync", mode, dict(pos=pos), True, sc_edge)
            add("edge", "qcow2-bench", mode, dict(pos=pos), True, sc_edge)
            add("edge", "raw-bench", mode, dict(pos=pos), True, sc_edge)
        # 7. commit cost
        for f in (1, 16, 256):
            add("commit", "thinp", mode, dict(fsync=f, zero=False), True, sc_commit)
            add("commit", "raw-psync", mode, dict(fsync=f), True, sc_commit)
            add("commit", "qcow2-bench", mode, dict(fsync=f), f == 1, sc_commit)
            add("commit", "raw-bench", mode, dict(fsync=f), f == 1, sc_commit)
        # 8. fill to full
        for ns in ("error", "queue"):
            add("fill", "thinp-tool", mode, dict(nospace=ns), ns == "error" or mode == "loop",
                sc_fill)
        if mode == "loop":
            add("fill", "thinp", mode, dict(nospace="error-fio"), True, sc_fill)
        # 9. the seed's example
        add("seed", "thinp", mode, dict(update="32k"), True, sc_seed)
        if mode == "loop":
            add("seed", "overlayfs", mode, dict(update="32k"), True, sc_seed)
            add("seed", "raw-file", mode, dict(update="32k"), True, sc_seed)
    add_docker(add)
    # libthinp's loop-lvm twins without loop devices (the engine's cases)
    cases += [Case(c.scenario, c.backend, FILE_MODE, c.params, c.quick, c.fn)
              for c in cases if c.backend == "thinp" and c.mode == "loop"]
    order = ("loop", FILE_MODE, "direct")
    cases.sort(key=lambda c: (SCENARIO_ORDER.index(c.scenario), c.group, order.index(c.mode)))
    seen = set()
    for c in cases:
        assert c.cid not in seen, c.cid
        seen.add(c.cid)
    return cases


def add_docker(add):
    """11. Docker's devicemapper driver on libthinp (`thinp docker`) against overlayfs and a
    data volume: image build and start, file-level writes, page cache per container."""
    add("dimage", "thinp-docker", "loop", {}, True, sc_dimage)
    add("dimage", "overlayfs", "loop", {}, True, sc_dimage)
    for wl in DOCKER_WRITES:
        for b in ("thinp-docker", "overlayfs", "raw-volume"):
            add("dwrite", b, "loop", dict(wl=wl), True, sc_dwrite)
    for n in DOCKER_MEMORY_N:
        for b in ("thinp-docker", "overlayfs"):
            add("dmemory", b, "loop", dict(n=n), True, sc_dmemory)


def add_alloc(add, mode):
    """1. allocate-on-demand"""
    for bs in ALLOC_BS:
        for order in ("seq", "rand", "stream"):
            q_order = order == "seq" or (order == "rand" and bs == 4 * KiB)
            q = bs in QUICK_ALLOC_BS and q_order
            if order == "stream" and bs not in (4 * KiB, 56 * KiB, 64 * KiB):
                continue
            for zero in (False, True):
                add("alloc", "thinp", mode, dict(bs=bs, order=order, zero=zero), q, sc_alloc)
            if order == "seq" and bs < 64 * KiB:
                # zeroing and data as one block write (thinp_cow=merged)
                add("alloc", "thinp", mode, dict(bs=bs, order=order, zero=True, cow="merged"),
                    q and bs == 4 * KiB, sc_alloc)
            add("alloc", "raw-psync", mode, dict(bs=bs, order=order), q, sc_alloc)
            add("alloc", "raw-io_uring", mode, dict(bs=bs, order=order),
                q and bs == 4 * KiB, sc_alloc)
            if order == "seq":
                add("alloc", "qcow2-bench", mode, dict(bs=bs, order=order), q, sc_alloc)
                add("alloc", "raw-bench", mode, dict(bs=bs, order=order), q, sc_alloc)
            if order == "rand":
                add("alloc", "qcow2-nbd", mode, dict(bs=bs, order=order), q, sc_alloc)
                add("alloc", "raw-nbd", mode, dict(bs=bs, order=order), q, sc_alloc)


def add_cow(add, mode):
    """2. CoW (first + second pass)"""
    for bs in ALLOC_BS:
        for order in ("seq", "rand"):
            q = (order == "seq" and bs in (4 * KiB, 56 * KiB, 64 * KiB)) or \
                (order == "rand" and bs == 4 * KiB)
            add("cow", "thinp", mode, dict(bs=bs, order=order), q, sc_cow)
            if bs < 64 * KiB:
                # the copy and the data as one block write (thinp_cow=merged)
                add("cow", "thinp", mode, dict(bs=bs, order=order, cow="merged"),
                    q and bs == 4 * KiB and order == "seq", sc_cow)
            if bs == 4 * KiB and order == "seq":
                add("cow", "floor", mode, dict(bs=bs, order=order), True, sc_floor)
            add("cow", "raw-psync", mode, dict(bs=bs, order=order), q, sc_cow)
            if order == "seq":
                add("cow", "qcow2-bench", mode, dict(bs=bs, order=order), q, sc_cow)
                add("cow", "raw-bench", mode, dict(bs=bs, order=order), q, sc_cow)
            else:
                add("cow", "qcow2-nbd", mode, dict(bs=bs, order=order), q, sc_cow)
                add("cow", "raw-nbd", mode, dict(bs=bs, order=order), q, sc_cow)


def baseline_ids(c, by_id):
    """The ids of the cases C is compared with (same workload, same mode, same run)."""
    out = []
    if c.scenario == "dwrite" and c.backend != "raw-volume":
        return [f"{c.group}.raw-volume.loop"]
    if c.scenario == "seed":
        cand = ["raw-file"]
        return [f"{c.group}.{b}.loop" for b in cand]
    base = {"thinp": ["raw-psync", "qcow2-bench", "qcow2-nbd", "floor"], "kernel": ["raw-psync"],
            "raw-io_uring": ["raw-psync"], "qcow2-bench": ["raw-bench"],
            "qcow2-nbd": ["raw-nbd"]}.get(c.backend, [])
    for b in base:
        # reads through a chain compare with reads of the raw store (no chain: depth 0)
        g = "chain.depth=0" if c.scenario == "chain" and b.startswith("raw") else c.group
        out.append(f"{g}.{b}.{store_mode(c.mode)}")
    return [i for i in out if i in by_id]


def matches(pat, cid):
    """--only's and --exclude's test: a regular expression found in the id, or a glob."""
    return bool(re.search(pat, cid)) or fnmatch.fnmatch(cid, pat)


def select(cases, args):
    pool = cases if args.full else [c for c in cases if c.quick]
    if args.only:
        pats = args.only
        chosen = [c for c in pool if any(matches(p, c.cid) for p in pats)]
        by_id = {c.cid: c for c in cases}
        extra, todo = [], list(chosen)
        while todo:  # baselines, and theirs (qcow2's raw image), transitively
            c = todo.pop()
            for b in baseline_ids(c, by_id):
                if b not in {x.cid for x in chosen + extra}:
                    extra.append(by_id[b])
                    todo.append(by_id[b])
        pool = [c for c in cases if c in chosen or c in extra]
    pool = loop_variant(pool, cases, args)
    if getattr(args, "exclude", None):  # (after the baselines: it can drop those too)
        pool = [c for c in pool if not any(re.search(p, c.cid) or fnmatch.fnmatch(c.cid, p)
                                           for p in args.exclude)]
    return pool


def loop_variant(pool, cases, args):
    """Which of libthinp's loop-lvm variants run. As root: the loop-device cases (thinp.loop),
    and a file variant (thinp.file) only when an --only pattern names it (matches its id but
    not its loop twin's, e.g. 'thinp\\.file'). Without root (no loop devices): each thinp.loop
    case is replaced by its file twin, and the run's notes say so (args.notes)."""
    root = os.geteuid() == 0
    notes = args.notes = getattr(args, "notes", [])
    if root:
        def named(c):
            twin = c.cid.replace(f".thinp.{FILE_MODE}", ".thinp.loop", 1)
            return any(matches(p, c.cid) and not matches(p, twin) for p in args.only or [])
        return [c for c in pool if c.mode != FILE_MODE or named(c)]
    by_id = {c.cid: c for c in cases}
    out, swapped = [], 0
    for c in pool:
        if c.backend == "thinp" and c.mode == "loop":
            c = by_id[c.cid.replace(".thinp.loop", f".thinp.{FILE_MODE}", 1)]
            swapped += 1
        if c not in out:
            out.append(c)
    if swapped:
        notes.append(f"not root: libthinp's loop-lvm cases need loop devices; their "
                     f"{MODE_LABEL[FILE_MODE]} variant ran instead ({swapped} cases, ids "
                     f"....thinp.{FILE_MODE}...: the pool's files through the page cache, "
                     "without the loop driver's hop)")
    return out


def rep_order(cases, seed):
    """The order of one repetition: the workload groups (a workload with all its backends and
    modes) in a random order, and the cases of each group in a random order, so a case never
    always follows the same other case, while a case and its baselines still run close in
    time (their ratio is taken within the repetition)."""
    rnd = random.Random(seed)
    groups = {}
    for c in cases:
        key = "chain" if c.scenario == "chain" else c.group  # chains share the raw reads
        groups.setdefault(key, []).append(c)
    keys = list(groups)
    rnd.shuffle(keys)
    out = []
    for k in keys:
        g = list(groups[k])
        rnd.shuffle(g)
        out += g
    return out
