#!/usr/bin/env python3
"""Normalise a thin_dump XML for comparison across allocators.

Prints the superblock and device attributes, then one line per mapped block
(dev_id, origin block, data block, time) with data block numbers renamed in order
of first appearance (devices by dev_id, blocks by origin). Two dumps normalise to
the same text iff they have the same devices, mappings, times and sharing,
whatever data blocks each allocator chose.

Usage: normdump.py DUMP.xml [--raw]   (--raw: keep the real data block numbers,
                                       still one line per block)
"""
import sys
import xml.etree.ElementTree as ET


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    raw = "--raw" in sys.argv[1:]
    if len(args) != 1:
        sys.exit(__doc__)
    sb = ET.parse(args[0]).getroot()
    if sb.tag != "superblock":
        sys.exit(f"{args[0]}: root element is <{sb.tag}>, not <superblock>")
    out = ["superblock " + " ".join(f"{k}={sb.get(k)}" for k in sorted(sb.keys()))]
    rename = {}

    def name(b):
        if raw:
            return str(b)
        if b not in rename:
            rename[b] = len(rename)
        return f"D{rename[b]}"

    for dev in sorted(sb.findall("device"), key=lambda d: int(d.get("dev_id"))):
        out.append("device " + " ".join(f"{k}={dev.get(k)}" for k in sorted(dev.keys())))
        maps = []
        for m in dev:
            if m.tag == "single_mapping":
                maps.append((int(m.get("origin_block")), int(m.get("data_block")), m.get("time")))
            elif m.tag == "range_mapping":
                ob, db, n = (int(m.get(k)) for k in ("origin_begin", "data_begin", "length"))
                maps.extend((ob + i, db + i, m.get("time")) for i in range(n))
            else:
                sys.exit(f"{args[0]}: unexpected element <{m.tag}> in device {dev.get('dev_id')}")
        for ob, db, t in sorted(maps):
            out.append(f"  {dev.get('dev_id')} {ob} -> {name(db)} time={t}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
