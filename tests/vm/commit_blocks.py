#!/usr/bin/env python3
"""The metadata blocks a commit wrote, from two images of a pool's metadata device (before
and after it), each named by what it is in the newer image (docs/on-disk-format.md):
superblock, mapping top-level / per-device btree nodes, details nodes, the data space map's
index btree nodes and bitmaps, the metadata space map's index block and bitmaps, overflow
nodes. Used by tests/vm/meta_commit-guest.sh to set the kernel's commit beside libthinp's.

Usage: commit_blocks.py OLD NEW   (prints "KIND COUNT" lines, then "total N")
"""
import collections
import struct
import sys

BLOCK = 4096


def u64(b, off):
    return struct.unpack_from("<Q", b, off)[0]


def kinds(new):
    """{block: kind} for the blocks of NEW the superblock reaches directly or by its index
    structures; btree nodes found by walking each tree from its root."""
    sb = new[:BLOCK]
    out = {0: "superblock"}
    data_sm_index_root = u64(sb, 64 + 16)
    data_overflow_root = u64(sb, 64 + 24)
    meta_index = u64(sb, 192 + 16)
    meta_overflow_root = u64(sb, 192 + 24)
    mapping_root = u64(sb, 320)
    details_root = u64(sb, 328)

    def node(b):
        return new[b * BLOCK:(b + 1) * BLOCK]

    def walk(root, name, leaf_values=None):
        """Every node of the btree at ROOT is NAME; LEAF_VALUES(value bytes) on each leaf
        value (for the nested trees and the index entries)."""
        stack = [root]
        while stack:
            b = stack.pop()
            n = node(b)
            flags, nr, maxe, vsize = (struct.unpack_from("<I", n, 4)[0],
                                     *struct.unpack_from("<III", n, 16))
            out[b] = name
            vals = 32 + 8 * maxe
            for i in range(nr):
                if flags & 1:  # internal: 8-byte child pointers
                    stack.append(u64(n, vals + 8 * i))
                elif leaf_values:
                    leaf_values(n[vals + vsize * i:vals + vsize * (i + 1)])

    walk(mapping_root, "mapping top-level node",
         lambda v: walk(u64(v, 0), "mapping per-device node"))
    walk(details_root, "details node")
    walk(data_sm_index_root, "data space map index node",
         lambda v: out.__setitem__(u64(v, 0), "data space map bitmap"))
    walk(data_overflow_root, "data overflow node")
    walk(meta_overflow_root, "metadata overflow node")
    out[meta_index] = "metadata space map index block"
    idx = node(meta_index)
    for i in range(255):
        b = u64(idx, 16 + 16 * i)
        if b:
            out[b] = "metadata space map bitmap"
    return out


def main():
    old, new = (open(p, "rb").read() for p in sys.argv[1:3])
    k, before = kinds(new), kinds(old)
    count = collections.Counter()
    # written: a block the new superblock reaches that the old one did not (a shadow or a new
    # node: its content may equal what a freed block there held, so a plain diff misses it),
    # or one both reach whose content changed (the superblock)
    for b, name in k.items():
        if b not in before or old[b * BLOCK:(b + 1) * BLOCK] != new[b * BLOCK:(b + 1) * BLOCK]:
            count[name] += 1
    for name, n in sorted(count.items()):
        print(f"{name} {n}")
    print(f"total {sum(count.values())}")


if __name__ == "__main__":
    main()
