#!/usr/bin/env python3
"""How a buffered (loop-lvm) pool could copy a 64 KiB block for a 4 KiB CoW: a benchmark,
not a test. On one file, per CoW: the kernel's order (pread 64 KiB, pwrite 64 KiB, pwrite
4 KiB), libthinp's merged policy (pread 64 KiB, pwrite 64 KiB with the 4 KiB laid in), and
copy_file_range(2) or FICLONERANGE (where the file system shares extents: xfs with
reflink=1, btrfs) followed by the 4 KiB pwrite. Each method copies NBLK blocks of a written
range to a fresh range, REPS times, interleaved; with --fsync the writeback is timed too
(a reflink defers the copy to it). Prints the median, min and max µs per CoW.

  tests/bench/cow_copy.py FILE [--blocks 2048] [--reps 9] [--fsync]

FILE is created (and left; remove it). docs/benchmark-method.md gives the last figures."""
import argparse
import fcntl
import os
import struct
import time

B, K = 64 * 1024, 4096
FICLONERANGE = 0x4020940D  # _IOW(0x94, 13, struct file_clone_range)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file")
    ap.add_argument("--blocks", type=int, default=2048)
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--fsync", action="store_true", help="time the writeback as well")
    a = ap.parse_args()
    fd = os.open(a.file, os.O_RDWR | os.O_CREAT, 0o600)
    os.ftruncate(fd, 0)
    blob, data = os.urandom(B), os.urandom(K)
    for i in range(a.blocks):
        os.pwrite(fd, blob, i * B)
    os.fsync(fd)

    def kernel(i, dst):
        os.pwrite(fd, os.pread(fd, B, i * B), dst)
        os.pwrite(fd, data, dst + 8192)

    def merged(i, dst):
        buf = bytearray(os.pread(fd, B, i * B))
        buf[8192:8192 + K] = data
        os.pwrite(fd, buf, dst)

    def copy_range(i, dst):
        if os.copy_file_range(fd, fd, B, i * B, dst) != B:
            raise OSError("short copy_file_range")
        os.pwrite(fd, data, dst + 8192)

    def clone(i, dst):
        fcntl.ioctl(fd, FICLONERANGE, struct.pack("qQQQ", fd, i * B, B, dst))
        os.pwrite(fd, data, dst + 8192)

    methods = {"kernel": kernel, "merged": merged, "copy_file_range": copy_range}
    try:
        clone(0, a.blocks * B)
        methods["ficlonerange"] = clone
    except OSError as e:
        print(f"FICLONERANGE: {e.strerror} (no shared extents on this file system)")
    res = {m: [] for m in methods}
    region = 1
    for _ in range(a.reps):
        for m, f in methods.items():
            region += 1
            base = a.blocks * region * B
            t0 = time.perf_counter()
            for i in range(a.blocks):
                f(i, base + i * B)
            if a.fsync:
                os.fsync(fd)
            res[m].append((time.perf_counter() - t0) / a.blocks * 1e6)
    os.close(fd)
    for m, v in res.items():
        v.sort()
        print(f"{m:16s} median {v[len(v) // 2]:7.1f} µs/CoW  min {v[0]:7.1f}  max {v[-1]:7.1f}"
              f"  ({a.reps} × {a.blocks} CoWs{', writeback timed' if a.fsync else ''})")


if __name__ == "__main__":
    main()
