"""Sizes, labels and how numbers are written: one definition for the runner, its reports and
BENCHMARKS.md."""
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

MODES = ("loop", "direct")
# libthinp's loop-lvm without loop devices: the pool's sparse files through the page cache
# directly. Its own id (`....thinp.file...`), never "loop": loop-lvm cases go through loop
# devices as Docker's dm-thin did, which needs root; a run without root runs these instead.
FILE_MODE = "file"
MODE_LABEL = {"loop": "loop-lvm", "direct": "direct-lvm",
              FILE_MODE: "loop-lvm files (no loop device)"}


def store_mode(mode):
    """The store a mode's baselines use: the file variant's are loop-lvm's (the same files)."""
    return "loop" if mode == FILE_MODE else mode


def thinp_loop_mode(ids):
    """Which of libthinp's loop-lvm variants a run with these case ids holds: "loop" (loop
    devices) when it ran any, else "file" when it ran those, else "loop"."""
    ids = list(ids)
    if any(".thinp.loop" in i for i in ids):
        return "loop"
    return FILE_MODE if any(".thinp.file" in i for i in ids) else "loop"
# parameters that are sizes (written 4k, 64k, 1m in case ids and labels)
SIZE_KEYS = ("bs", "block")


def human(n):
    """4096 -> '4k', 1048576 -> '1m', 1073741824 -> '1g'; other numbers as they are; '' for
    nothing."""
    if n is None or n == "":
        return ""
    n = int(n)
    for unit, size in (("g", GiB), ("m", MiB), ("k", KiB)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def bs_bytes(bs):
    """'4k' -> 4096, '1m' -> 1048576, '512' -> 512; None if it is not a size."""
    s = str(bs).strip().lower()
    mult = {"k": KiB, "m": MiB, "g": GiB}.get(s[-1:], 1)
    num = s[:-1] if s[-1:] in ("k", "m", "g") else s
    return int(num) * mult if num.isdigit() and int(num) > 0 else None


def fmt_eta(s):
    if s >= 3600:
        return f"{s / 3600:.1f}h"
    if s >= 600:
        return f"{s / 60:.0f}m"
    if s >= 60:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{s:.0f}s"


def fnum(x, unit="", digits=3):
    if x is None or x == "":
        return "—"
    if isinstance(x, str):
        return x
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15 and abs(x) >= 1:
        x = int(x)
    if isinstance(x, int):
        return f"{x:,}" + unit
    if abs(x) >= 100:
        s = f"{x:,.0f}"
    elif abs(x) >= 10:
        s = f"{x:.1f}"
    else:
        s = f"{x:.{digits}g}"
    return s + unit


def fbytes(n):
    if n is None:
        return "—"
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"


def fratio(row, key="ratio_raw"):
    """'1.91× [1.19–2.25]': a summary row's median ratio and its range."""
    if not row or row.get(key) is None:
        return "—"
    return (f"{row[key]:.2f}× [{row[key + '_min']:.2f}–{row[key + '_max']:.2f}]")


def fspread(t):
    """'1.91× [1.19–2.25]' from (median, min, max); '—' for none."""
    return "—" if not t else f"{t[0]:.2f}× [{t[1]:.2f}–{t[2]:.2f}]"
