"""What a run's kernel dir (tests/vm/kernel_perf.sh's output, RUN/kernel/) says besides the
costs, read from its files only: the guest kernel, the pools as the kernel set them up
(`dmsetup table`), the order the engines ran in, the pool blocks each case allocated against
what its writes imply, the autoextend profile. A fact the dir does not hold is None: the
reports then say nothing about it."""
import os

from .units import KiB, bs_bytes

SECTOR = 512
# kernel_perf's files for each set-up: the pool's `dmsetup table` (loop-lvm: just the pool;
# direct-lvm: every device, the pool's line named) and the iologs' geometry name
POOL_TABLES = {"loop-lvm": "loop-lvm-kernel.table", "direct-lvm": "direct-lvm-dmsetup-table.txt"}
GEOM = {"loop-lvm": "loop", "direct-lvm": "direct"}
BLOCK_CASES = ("provision", "cow")  # the cases that allocate: one block per write at least


def read(d, name):
    p = os.path.join(d, name)
    return open(p).read() if os.path.isfile(p) else None


def guest_kernel(k):
    """The guest's kernel release (info.txt) and Debian package version (vm-times.txt)."""
    rel = k["guest"].get("kernel")
    pkg = k["vm_times"].get("kernel")  # linux-image-RELEASE=VERSION
    ver = pkg.split("=", 1)[1] if pkg and "=" in pkg else None
    if not rel and not ver:
        return None
    return {"release": rel, "version": ver}


def pool_table(d, setup):
    """The kernel's thin-pool target of SETUP ({'block': bytes, 'features': [...]}), from its
    `dmsetup table` line: start len thin-pool meta data block_sectors low_water n features."""
    text = read(d, POOL_TABLES[setup]) or ""
    for line in text.splitlines():
        w = line.split()
        if w and w[0].endswith(":"):
            w = w[1:]
        if len(w) >= 7 and w[2] == "thin-pool" and w[5].isdigit() and w[7:8] and \
                w[7].isdigit():
            return {"block": int(w[5]) * SECTOR, "features": w[8:8 + int(w[7])]}
    return None


def block_text(t):
    """'64 KiB blocks, skip_block_zeroing' (or 'zeroing on') for a pool table."""
    b = t["block"]
    size = f"{b // KiB} KiB" if b % KiB == 0 else f"{b} bytes"
    zero = "skip_block_zeroing" if "skip_block_zeroing" in t["features"] else "zeroing on"
    return f"{size} blocks, {zero}"


def engine_order(d):
    """{setup: 'alternate' | 'kernel first' | 'libthinp first'} from times.tsv (setup engine
    rep bs start end, guest uptime): whether one engine's groups all ran before the other's."""
    spans = {}
    for line in (read(d, "times.tsv") or "").splitlines():
        f = line.split()
        if len(f) != 6:
            continue
        try:
            spans.setdefault(f[0], {}).setdefault(f[1], []).append((float(f[4]), float(f[5])))
        except ValueError:
            continue
    out = {}
    for setup, by in spans.items():
        if set(by) != {"kernel", "libthinp"}:
            continue
        k, l = by["kernel"], by["libthinp"]
        if max(e for _, e in k) <= min(s for s, _ in l):
            out[setup] = "kernel first"
        elif max(e for _, e in l) <= min(s for s, _ in k):
            out[setup] = "libthinp first"
        else:
            out[setup] = "alternate"
    return out


def iolog_writes(d, setup, bs):
    p = os.path.join(d, "iologs", f"{GEOM[setup]}-{bs}.log")
    if not os.path.isfile(p):
        return None
    return sum(1 for l in open(p) if " write " in l)


def block_checks(d):
    """The pool data blocks each case and repetition allocated (checks.tsv: used before and
    after) against what its writes imply (the iolog's writes × blocks per write for provision
    and CoW, 0 for the overwrites; the block size from the kernel's pool table). Per setup and
    engine: {'n': checks, 'ok': as expected, 'bad': [(case, bs, rep, got, expected)]}; None
    without checks.tsv, or without the table or iologs to say what to expect."""
    text = read(d, "checks.tsv")
    if not text:
        return None
    out = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) == 6:  # (a single-run guest: no rep column)
            f.insert(4, "1")
        if len(f) != 7 or f[0] not in POOL_TABLES:
            continue
        setup, engine, case, bs, rep, u0, u1 = f
        table, n = pool_table(d, setup), iolog_writes(d, setup, bs)
        if not table or n is None:
            return None
        exp = n * max(1, bs_bytes(bs) // table["block"]) if case in BLOCK_CASES else 0
        try:
            got = int(u1) - int(u0)
        except ValueError:
            got = None
        c = out.setdefault((setup, engine), {"n": 0, "ok": 0, "bad": []})
        c["n"] += 1
        if got == exp:
            c["ok"] += 1
        else:
            c["bad"].append((case, bs, rep, got, exp))
    return out or None


def autoextend_profile(text):
    """(threshold %, extend-by %) of the 'profile: threshold T, percent P' line, or None."""
    for line in (text or "").splitlines():
        if "profile:" in line:
            words = line.split("profile:", 1)[1].replace(",", " ").split()
            kv = dict(zip(words[::2], words[1::2]))
            if kv.get("threshold", "").isdigit() and kv.get("percent", "").isdigit():
                return int(kv["threshold"]), int(kv["percent"])
    return None


def facts(k):
    """Everything above for the loaded kernel dir K (kernel_results.load_kernel)."""
    d = k["dir"]
    return {"guest_kernel": guest_kernel(k),
            "tables": {s: t for s in POOL_TABLES if (t := pool_table(d, s))},
            "order": engine_order(d),
            "checks": block_checks(d),
            "autoextend_profile": autoextend_profile(k.get("autoextend"))}
