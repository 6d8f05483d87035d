#!/usr/bin/env python3
"""Seeded generator of thin_dump-style XML for the oracle tests.

    gen_thin_xml.py KIND SEED > out.xml

KIND: many  - 320 devices (sparse ids), few mappings each, data blocks shared
              between devices, snapshot-like creation/snap times
      big   - one device with >= 100k mappings (runs, singles, gaps, time
              changes inside data runs) plus a snapshot-like device sharing
              part of it
The same KIND and SEED always give the same file."""
import random
import sys


def mapping_lines(maps):
    """maps: sorted list of (origin, data, time); written with ranges where
    thin_dump would coalesce them, and sometimes split anyway (restore input
    need not be canonical)."""
    out = []
    i = 0
    while i < len(maps):
        o, d, t = maps[i]
        j = i + 1
        while (j < len(maps) and maps[j][0] == o + (j - i) and maps[j][1] == d + (j - i)
               and maps[j][2] == t):
            j += 1
        n = j - i
        if n == 1:
            out.append('    <single_mapping origin_block="%d" data_block="%d" time="%d"/>' % (o, d, t))
        else:
            out.append('    <range_mapping origin_begin="%d" data_begin="%d" length="%d" time="%d"/>'
                       % (o, d, n, t))
        i = j
    return out


def device(dev, maps, trans, ctime, stime):
    lines = ['  <device dev_id="%d" mapped_blocks="%d" transaction="%d" creation_time="%d" snap_time="%d">'
             % (dev, len(maps), trans, ctime, stime)]
    lines += mapping_lines(maps)
    lines.append('  </device>')
    return lines


def gen_many(rng):
    nr_data = 1 << 16
    time = 40
    lines = ['<superblock uuid="" time="%d" transaction="%d" version="2" data_block_size="128" '
             'nr_data_blocks="%d">' % (time, rng.randrange(1 << 40), nr_data)]
    dev = 0
    pool = []  # data blocks already used, to share
    for _ in range(320):
        dev += rng.choice([1, 1, 1, 2, 7, 100])
        maps = {}
        for _ in range(rng.randrange(0, 25)):
            o = rng.randrange(0, 1 << 20)
            if pool and rng.random() < 0.3:
                d = rng.choice(pool)
            else:
                d = rng.randrange(nr_data)
                pool.append(d)
            n = rng.choice([1, 1, 1, 2, 5, 17])
            d = min(d, nr_data - n)
            t = rng.randrange(0, time + 1)
            for k in range(n):
                maps[o + k] = (d + k, t)
        ctime = rng.randrange(0, time + 1)
        stime = rng.randrange(ctime, time + 1)
        lines += device(dev, sorted((o, d, t) for o, (d, t) in maps.items()),
                        rng.randrange(1000), ctime, stime)
    lines.append('</superblock>')
    return lines


def gen_big(rng):
    nr_data = 1 << 22
    maps = []
    o = 0
    d = rng.randrange(1000)
    while len(maps) < 100000:
        kind = rng.random()
        if kind < 0.5:        # a run: consecutive origin and data, one time
            n, t = rng.randrange(1, 60), rng.randrange(4)
            for k in range(n):
                maps.append((o + k, d + k, t))
            o, d = o + n, d + n
        elif kind < 0.7:      # consecutive data, time changes mid-way
            t = rng.randrange(4)
            for k in range(rng.randrange(2, 6)):
                maps.append((o, d, (t + k) % 5))
                o, d = o + 1, d + 1
        elif kind < 0.85:     # consecutive origin, data jumps
            maps.append((o, rng.randrange(nr_data), rng.randrange(4)))
            o += 1
        else:                 # a hole in the virtual space
            o += rng.randrange(1, 5000)
            d = rng.randrange(nr_data - 100000)
    lines = ['<superblock uuid="" time="5" transaction="77" version="2" data_block_size="1024" '
             'nr_data_blocks="%d">' % nr_data]
    lines += device(3, maps, 0, 0, 4)
    # a snapshot-like device: a sample of the origin's mappings (same data
    # blocks, older times) plus some of its own, newer
    snap = {mo: (md, mt) for mo, md, mt in maps if rng.random() < 0.3}
    for _ in range(2000):
        snap[rng.randrange(o)] = (rng.randrange(nr_data), 5)
    lines += device(9, sorted((k, v[0], v[1]) for k, v in snap.items()), 12, 4, 4)
    lines.append('</superblock>')
    return lines


def main():
    kind, seed = sys.argv[1], int(sys.argv[2])
    rng = random.Random(seed)
    lines = {'many': gen_many, 'big': gen_big}[kind](rng)
    sys.stdout.write('\n'.join(lines) + '\n')


if __name__ == '__main__':
    main()
