#!/usr/bin/env python3
"""Seeded operation trace for the differential tests (tests/vm/differential.sh).

Writes a trace in the format of tests/vm/smoke.trace (see its header); tests/vm/smoke.sh
makes the payload of every write from the trace itself, so both sides apply the same bytes.

The mix covers what the issue asks of the differential: thin creates, snapshots (of origins
and of snapshots), writes of every size class (one sector, 4 KiB, sub-block, exactly one
block, a block plus a bit, several blocks, 1 MiB) at block-aligned, 4 KiB-aligned and
sector-aligned offsets, discards (partial blocks, which the kernel ignores, whole blocks and
long ranges), deletes (of origins whose snapshots live on, and of snapshots) and flushes.
Offsets and lengths are multiples of 512 bytes: the kernel side writes with O_DIRECT.

Usage: gen_trace.py --seed S --steps N [--block-size 64k] [--zeroing on|off] > TRACE
"""
import argparse
import random
import sys

SECTOR = 512


def size_arg(s):
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    s = s.strip().lower()
    if s and s[-1] in mult:
        return int(s[:-1]) * mult[s[-1]]
    return int(s)


def human(n):
    for unit, shift in (("g", 30), ("m", 20), ("k", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return str(n)


class Gen:
    def __init__(self, rng, steps, block, zeroing):
        self.rng, self.steps, self.block = rng, steps, block
        self.zeroing = zeroing
        self.live = {}  # id -> size in bytes
        self.next_id = 1
        self.lines = []

    def emit(self, line, comment=""):
        self.lines.append(line + (f"   # {comment}" if comment else ""))

    def new_size(self):
        # whole blocks, 4-24 MiB-ish: small enough that the guest can image every device
        blocks = self.rng.randint(64, 384) * (64 << 10) // self.block
        return max(blocks, 8) * self.block

    def write_len(self):
        b = self.block
        kind = self.rng.choices(
            ["sector", "4k", "8k", "sub", "block", "block+", "blocks", "1m"],
            weights=[8, 20, 8, 12, 14, 8, 16, 14])[0]
        return {
            "sector": SECTOR,
            "4k": 4096,
            "8k": 8192,
            "sub": self.rng.randrange(1, b // SECTOR) * SECTOR,
            "block": b,
            "block+": b + self.rng.choice([SECTOR, 4096, b // 2]),
            "blocks": b * self.rng.randint(2, 6),
            "1m": 1 << 20,
        }[kind]

    def offset(self, size, length):
        b = self.block
        align = self.rng.choices([b, 4096, SECTOR], weights=[40, 40, 20])[0]
        # favour the first blocks of a device, so writes meet earlier writes and snapshots
        # share them (CoW, overwrite) instead of all landing on fresh blocks
        span = size - length
        if self.rng.random() < 0.6:
            span = min(span, 16 * b)
        return self.rng.randrange(0, span // align + 1) * align

    def step_op(self):
        live = self.live
        ops = {"write": 52, "discard": 10, "flush": 8, "snap": 10, "thin": 6, "delete": 6}
        if not live:
            ops = {"thin": 1}
        elif len(live) >= 10:
            ops.pop("thin")
            ops.pop("snap")
        elif len(live) == 1:
            ops.pop("delete")
        op = self.rng.choices(list(ops), weights=list(ops.values()))[0]
        if op == "thin":
            i = self.next_id
            self.next_id += 1
            live[i] = self.new_size()
            self.emit(f"thin {i} {human(live[i])}")
        elif op == "snap":
            origin = self.rng.choice(sorted(live))
            i = self.next_id
            self.next_id += 1
            live[i] = live[origin]
            self.emit(f"snap {i} {origin} {human(live[i])}")
        elif op == "delete":
            victim = self.rng.choice(sorted(live))
            del live[victim]
            self.emit(f"delete {victim}")
        elif op == "flush":
            self.emit(f"flush {self.rng.choice(sorted(live))}")
        elif op == "write":
            dev = self.rng.choice(sorted(live))
            length = min(self.write_len(), live[dev])
            off = self.offset(live[dev], length)
            self.emit(f"write {dev} {off} {length}")
        else:
            dev = self.rng.choice(sorted(live))
            size = live[dev]
            kind = self.rng.choice(["partial", "blocks", "range"])
            if kind == "partial":
                length = self.rng.randrange(1, self.block // SECTOR) * SECTOR
            elif kind == "blocks":
                length = self.block * self.rng.randint(1, 4)
            else:
                length = self.rng.randrange(1, size // SECTOR + 1) * SECTOR
            length = min(length, size)
            off = self.offset(size, length)
            self.emit(f"discard {dev} {off} {length}")

    def run(self):
        features = "-" if self.zeroing else "skip_block_zeroing"
        # 1 GiB of data: the trace never comes near it (at most 10 devices of <= 24 MiB)
        self.emit(f"pool 1g 16m {human(self.block)} 1024 {features}")
        while len(self.lines) < self.steps:
            self.step_op()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", required=True)
    ap.add_argument("--steps", type=int, required=True, help="operations, the pool line included")
    ap.add_argument("--block-size", type=size_arg, default=64 << 10)
    ap.add_argument("--zeroing", choices=["on", "off"], default="off")
    a = ap.parse_args()
    if a.block_size % (64 << 10) or not (64 << 10) <= a.block_size <= (1 << 30):
        ap.error("--block-size must be a multiple of 64k between 64k and 1g (dm-thin's rule)")
    if a.steps < 2:
        ap.error("--steps must be at least 2 (the pool line and one operation)")
    g = Gen(random.Random(f"thinbench-trace-{a.seed}"), a.steps, a.block_size, a.zeroing == "on")
    g.run()
    out = sys.stdout
    out.write(f"# generated: gen_trace.py --seed {a.seed} --steps {a.steps} "
              f"--block-size {human(a.block_size)} --zeroing {a.zeroing}\n")
    out.write("\n".join(g.lines) + "\n")


if __name__ == "__main__":
    main()
