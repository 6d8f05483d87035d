#!/usr/bin/env python3
"""Small, precise edits of thin-pool metadata images for the check tests (check_options.sh),
each leaving every checksum valid so that only the intended fault is left:

  edit_meta.py META needs-check     set the superblock's needs_check flag
  edit_meta.py META leak            one free data block gets a reference count of 1 that
                                    no mapping accounts for (a leak: thin_check's
                                    non-fatal error); nr_free and nr_allocated follow it
  edit_meta.py META meta-leak       the same for a metadata block (thin_check 0.9 reports
                                    metadata leaks; data leaks it does not look for)
  edit_meta.py META bad-leaf        damage the first device's mapping subtree root (its
                                    checksum fails): below the top level of the mapping
                                    tree, which --skip-mappings does not descend into
  edit_meta.py META flags           print the superblock's flags

The layout is the kernel's (drivers/md/dm-thin-metadata.c, persistent-data/): 4 KiB blocks,
little-endian, crc32c checksums xor'ed with a per-kind constant."""
import struct
import sys

BLOCK = 4096
SB_XOR, BTREE_XOR, BITMAP_XOR, INDEX_XOR = 160774, 121107, 240779, 160478


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


TABLE = _crc32c_table()


def csum(data, xor):
    """dm_bm_checksum: crc32c seeded with ~0, not inverted at the end, xor'ed."""
    c = 0xFFFFFFFF
    for b in data:
        c = TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ xor


def read(f, blk):
    f.seek(blk * BLOCK)
    return bytearray(f.read(BLOCK))


def write(f, blk, data, xor):
    struct.pack_into("<I", data, 0, csum(data[4:], xor))
    f.seek(blk * BLOCK)
    f.write(data)


def node_values(node):
    """(nr_entries, offset of value 0, value size) of a btree node."""
    nr, max_entries, vsize = struct.unpack_from("<III", node, 16)
    return nr, 32 + 8 * max_entries, vsize


def main():
    path, what = sys.argv[1], sys.argv[2]
    with open(path, "r+b") as f:
        sb = read(f, 0)
        if what == "flags":
            print(struct.unpack_from("<I", sb, 4)[0])
            return
        if what == "needs-check":
            struct.pack_into("<I", sb, 4, struct.unpack_from("<I", sb, 4)[0] | 1)
            write(f, 0, sb, SB_XOR)
        elif what in ("leak", "meta-leak"):
            # a space map root: nr_blocks, nr_allocated, its index (the data map's is a
            # btree of index entries, the metadata map's one block of them)
            root = 64 if what == "leak" else 192
            nr_blocks, nr_alloc, index_root = struct.unpack_from("<QQQ", sb, root)
            index = read(f, index_root)
            voff = node_values(index)[1] if what == "leak" else 16
            bm_blk, nr_free, _ = struct.unpack_from("<QII", index, voff)
            bitmap = read(f, bm_blk)
            # the last block of the first bitmap that is free (count 0)
            for b in range(min(nr_blocks, (BLOCK - 16) * 4) - 1, -1, -1):
                byte, shift = 16 + b // 4, (b % 4) * 2
                if not (bitmap[byte] >> shift) & 3:
                    break
            else:
                sys.exit("edit_meta: no free block to leak")
            bitmap[byte] |= 2 << shift  # count 1: the entry's second (low-order) bit
            write(f, bm_blk, bitmap, BITMAP_XOR)
            struct.pack_into("<I", index, voff + 8, nr_free - 1)
            write(f, index_root, index, BTREE_XOR if what == "leak" else INDEX_XOR)
            struct.pack_into("<Q", sb, root + 8, nr_alloc + 1)
            write(f, 0, sb, SB_XOR)
            print(b)
        elif what == "bad-leaf":
            top = read(f, struct.unpack_from("<Q", sb, 320)[0])
            nr, voff, _ = node_values(top)
            if not nr:
                sys.exit("edit_meta: no device")
            sub = struct.unpack_from("<Q", top, voff)[0]
            node = read(f, sub)
            node[100] ^= 0xFF  # no checksum update: it must fail
            f.seek(sub * BLOCK)
            f.write(node)
        else:
            sys.exit(f"edit_meta: unknown edit '{what}'")


if __name__ == "__main__":
    main()
