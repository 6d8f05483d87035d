#!/usr/bin/env python3
"""The contents a differential trace must leave on every thin device, by dm-thin's rules,
independent of both implementations: a third witness beside the kernel and libthinp.

Rules (docs/dm-thin-behaviour.md, "IO paths"; dm-thin.c process_bio / process_discard_bio):
  - a read of an unmapped block returns zeros;
  - a write to an unmapped block provisions it: a write covering the whole block stores it;
    a partial write zeroes the rest first, unless the pool has skip_block_zeroing, where the
    rest is left as the data device had it: UNDEFINED for this model (stale data of a
    freed block, or zeros);
  - a write to a shared block (one a snapshot shares) copies the whole block first (its
    undefined bytes stay undefined), unless the write covers it whole;
  - a snapshot starts with its origin's contents;
  - a discard bio unmaps the whole blocks inside its range (they read as zeros); the partial
    blocks at its edges keep their data (a discard line may list several bios);
  - delete and flush change no live device's contents.

Usage: trace_model.py payloads TRACE PAYLOAD_DIR | check TRACE PAYLOAD_DIR IMAGE_DIR [STATUS] | bios TRACE
  bios: prints TRACE with each discard as the bios the kernel's block layer issues for it
  (see blkdiscard_bios); the host sides and the model apply those, the guest the original;
  payloads: writes PAYLOAD_DIR/<step>.bin for every write of TRACE, seeded by its step
  (the bytes both sides write);
  check: compares IMAGE_DIR/thin<ID>.img of every device alive at the end with the model on the
  bytes the model defines, and, given STATUS (lines "ID MAPPED_SECTORS ...", the thin
  status lines), each device's mapped sectors with the model's mapped blocks; prints one
  line per device and a total; exit 1 on a mismatch.
"""
import os
import random
import sys

UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def size(s):
    s = s.lower()
    return int(s[:-1]) * UNITS[s[-1]] if s[-1] in UNITS else int(s)


class Block:
    """A mapped block: its bytes and which of them the model defines."""
    __slots__ = ("data", "defined")

    def __init__(self, bs, defined):
        self.data = bytearray(bs)
        self.defined = bytearray(b"\x01" * bs if defined else bs)

    def copy(self):
        b = Block.__new__(Block)
        b.data, b.defined = bytearray(self.data), bytearray(self.defined)
        return b


def apply(trace, payloads):
    """Returns (block size, {id: (size, {block index: Block})}) for the live devices."""
    devs, bs, zeroing, step = {}, None, True, 0
    for raw in open(trace):
        f = raw.split("#", 1)[0].split()
        if not f:
            continue
        step += 1
        op, args = f[0], f[1:]
        if op == "pool":
            bs = size(args[2])
            feats = args[4] if len(args) > 4 else "skip_block_zeroing"
            zeroing = "skip_block_zeroing" not in feats.split(",")
        elif op == "thin":
            devs[int(args[0])] = (size(args[1]), {})
        elif op == "snap":
            # blocks are shared by reference: the first write to either side replaces the
            # Block object in that device's map, which is what a copy-on-write amounts to
            devs[int(args[0])] = (size(args[2]), dict(devs[int(args[1])][1]))
        elif op == "delete":
            del devs[int(args[0])]
        elif op == "flush":
            pass
        elif op == "write":
            dev, off, n = int(args[0]), size(args[1]), size(args[2])
            payload = open(os.path.join(payloads, f"{step}.bin"), "rb").read()
            assert len(payload) == n, f"payload of step {step}: {len(payload)} bytes, not {n}"
            blocks, pos = devs[dev][1], 0
            while pos < n:
                b, o = divmod(off + pos, bs)
                k = min(bs - o, n - pos)
                old = blocks.get(b)
                if k == bs:
                    new = Block(bs, True)
                elif old is None:
                    new = Block(bs, zeroing)
                else:
                    new = old.copy()
                new.data[o:o + k] = payload[pos:pos + k]
                new.defined[o:o + k] = b"\x01" * k
                blocks[b] = new
                pos += k
        elif op == "discard":  # one or more bios: ID OFF LEN [OFF LEN ...]
            dev = int(args[0])
            for i in range(1, len(args), 2):
                off, n = size(args[i]), size(args[i + 1])
                for b in range(-(-off // bs), (off + n) // bs):
                    devs[dev][1].pop(b, None)
        else:
            raise SystemExit(f"trace_model: unknown operation '{op}' in {trace}")
    return bs, devs


def check(trace, payloads, images, status=None):
    bs, devs = apply(trace, payloads)
    bad = 0
    mapped = {}  # id -> mapped sectors, from `dmsetup status` of the thin devices
    if status:
        for line in open(status):
            f = line.split()
            mapped[int(f[0])] = int(f[1])
    undefined_total = 0
    for dev in sorted(devs):
        dsize, blocks = devs[dev]
        path = os.path.join(images, f"thin{dev}.img")
        try:
            img = open(path, "rb").read()
        except OSError as e:
            print(f"thin {dev}: cannot read {path}: {e.strerror}")
            bad += 1
            continue
        if len(img) != dsize:
            print(f"thin {dev}: {len(img)} bytes, the device has {dsize}")
            bad += 1
            continue
        wrong, undefined = [], 0
        zero = bytes(bs)
        for b in range((dsize + bs - 1) // bs):
            got = img[b * bs:(b + 1) * bs]
            blk = blocks.get(b)
            if blk is None:
                ok = got == zero[:len(got)]
            elif blk.defined.count(0) == 0:
                ok = got == blk.data[:len(got)]
            else:
                undefined += blk.defined.count(0)
                ok = all(g == w for g, w, d in zip(got, blk.data, blk.defined) if d)
            if not ok:
                wrong.append(b)
        undefined_total += undefined
        if status and mapped.get(dev) != len(blocks) * bs // 512:
            bad += 1
            print(f"thin {dev}: status says {mapped.get(dev)} mapped sectors, the model "
                  f"{len(blocks) * bs // 512}")
        if wrong:
            bad += 1
            print(f"thin {dev}: differs from the model in {len(wrong)} blocks (first: "
                  f"{' '.join(map(str, wrong[:10]))})")
        else:
            print(f"thin {dev}: as the model ({len(blocks)} mapped blocks, {undefined} "
                  "undefined bytes not compared)")
    print(f"model: {len(devs)} devices, {bad} differ; {undefined_total} undefined bytes "
          "(partial writes into new blocks without zeroing) not compared")
    return 1 if bad else 0


def kernel_round_up(x, y):
    """The kernel's round_up() macro: right only when Y is a power of two."""
    return ((x - 1) | (y - 1)) + 1


def blkdiscard_bios(off, n, granularity):
    """The discard bios a BLKDISCARD of [OFF, OFF+N) bytes becomes in Linux 6.1
    (blkdev_issue_discard, block/blk-lib.c): the first bio ends where bio_discard_limit()
    thinks the next discard-granularity boundary is, the rest goes in bios of
    round_down(UINT_MAX, granularity) bytes. A thin device's discard granularity is the pool
    block size; for a block size that is not a power of two round_up() misses the boundary,
    and dm-thin, which unmaps only the whole blocks inside each bio, leaves blocks mapped
    that the range covers (found by tests/vm/differential.sh on a 192 KiB pool)."""
    sector, nr, g = off // 512, n // 512, granularity // 512
    bios = []
    while nr:
        aligned = kernel_round_up(sector, g)
        limit = aligned - sector if aligned != sector else (0xFFFFFFFF & ~(granularity - 1)) >> 9
        req = min(nr, limit)
        bios.append((sector * 512, req * 512))
        sector += req
        nr -= req
    return bios


def as_bios(trace):
    """TRACE with every `discard ID OFF LEN` rewritten as `discard ID OFF1 LEN1 OFF2 LEN2 ...`,
    the bios the kernel's block layer makes of it; lines and steps stay where they were."""
    bs, out = None, []
    for raw in open(trace):
        f = raw.split("#", 1)[0].split()
        if f and f[0] == "pool":
            bs = size(f[3])
        if f and f[0] == "discard" and len(f) == 4:
            bios = blkdiscard_bios(size(f[2]), size(f[3]), bs)
            raw = " ".join(["discard", f[1]] + [f"{o} {n}" for o, n in bios]) + \
                (f"   # {f[2]} {f[3]} as {len(bios)} bios" if len(bios) > 1 else "") + "\n"
        out.append(raw)
    sys.stdout.write("".join(out))
    return 0


def make_payloads(trace, out):
    os.makedirs(out, exist_ok=True)
    step = 0
    for raw in open(trace):
        f = raw.split("#", 1)[0].split()
        if not f:
            continue
        step += 1
        if f[0] == "write":
            with open(os.path.join(out, f"{step}.bin"), "wb") as w:
                w.write(random.Random(f"thinbench-smoke-{step}").randbytes(size(f[3])))
    return 0


def main():
    a = sys.argv[1:]
    if len(a) == 2 and a[0] == "bios":
        return as_bios(a[1])
    if len(a) == 3 and a[0] == "payloads":
        return make_payloads(a[1], a[2])
    if len(a) in (4, 5) and a[0] == "check":
        return check(*a[1:])
    print("usage: " + __doc__.split("Usage: ", 1)[1].split("\n")[0], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
