"""Files the cases read and write outside fio: iologs, pattern writes, allocated sizes."""
import mmap
import os

from .units import KiB, MiB


def write_iolog(path, fname, offsets, length):
    with open(path, "w") as f:
        f.write(f"fio version 2 iolog\n{fname} add\n{fname} open\n")
        for off in offsets:
            f.write(f"{fname} write {off} {length}\n")
        f.write(f"{fname} close\n")


def fsize_alloc(path):
    try:
        return os.stat(path).st_blocks * 512
    except FileNotFoundError:
        return 0


def prep_written(path, size, mode, byte=0x5a):
    """A baseline's pre-written file, left in the state the pool's own data file is in when a
    case measures it: written 64 KiB at a time (as thinp_prefill and the job files' origin
    steps write; the page cache then holds folios of the same size) and, for loop-lvm, still in
    the page cache, dirty. For direct-lvm (O_DIRECT readers/writers) it is written with O_DIRECT
    and synced, so no page cache is involved. A file written in big chunks and synced first
    makes every later 4 KiB write dirty a large clean folio: 2-3x slower baselines."""
    write_pattern(path, size, byte, direct=(mode == "direct"), chunk=64 * KiB,
                  sync=(mode == "direct"))


def zero_head(path, nbytes=4096):
    """Zero the first NBYTES of a device/file with O_DIRECT (a fresh pool superblock)."""
    buf = mmap.mmap(-1, nbytes)
    fd = os.open(path, os.O_WRONLY | getattr(os, "O_DIRECT", 0))
    try:
        os.pwrite(fd, buf, 0)
        os.fsync(fd)
    finally:
        os.close(fd)


def write_pattern(path, size, byte=0x5a, direct=False, offset=0, chunk=4 * MiB, sync=True):
    """Write SIZE bytes of BYTE at OFFSET (real data, not zeros: no filesystem shortcut)."""
    buf = mmap.mmap(-1, chunk)
    buf.write(bytes([byte]) * chunk)
    flags = os.O_WRONLY | (getattr(os, "O_DIRECT", 0) if direct else 0)
    if not os.path.exists(path):
        flags |= os.O_CREAT
    fd = os.open(path, flags, 0o644)
    try:
        pos = 0
        while pos < size:
            n = min(chunk, size - pos)
            os.pwrite(fd, memoryview(buf)[:n], offset + pos)
            pos += n
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def pattern_buffer(size, byte):
    """An anonymous (page-aligned) buffer of SIZE bytes of BYTE."""
    buf = mmap.mmap(-1, size)
    buf.write(bytes([byte]) * size)
    return buf
