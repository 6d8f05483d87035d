"""The planning cases' specs (scenarios/plans/*.yaml) read back in Python: the block-style
YAML subset `thinp plan` reads, as far as the committed specs use it (sections of scalars and
the write_mix list), the value syntax of docs/capacity-planning.md, and a spec scaled down for
the tiny scale. The replay needs every key it acts on spelled out, so it never guesses a
default the model might take differently: a missing key is an error naming it."""
import math
import re

UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
HOURS = {"s": 1 / 3600, "m": 1 / 60, "h": 1, "d": 24, "": 1}
# the keys whose values scale with the workload's bytes (sizes) or blocks
SCALED_SIZES = {("workload", "layer_size"), ("workload", "container_writes"),
                ("workload", "write_span"), ("pool", "data_size"), ("lvm", "vg_free"),
                ("lvm", "extent_size")}
SCALED_COUNTS = {("pool", "low_water_blocks")}
REQUIRED = {
    "workload": ("images", "layers_per_image", "layer_size", "containers_per_image",
                 "container_writes", "write_mix", "write_span", "update_fraction",
                 "churn_per_hour", "duration", "step"),
    "pool": ("block_size", "zeroing", "data_size", "metadata_size", "low_water_blocks"),
    "lvm": ("autoextend_threshold", "autoextend_percent", "vg_free", "extent_size"),
    "docker": ("min_free_space", "basesize"),
}


class SpecError(Exception):
    pass


def parse(path):
    """{section: {key: str | [ {key: str} ]}} of the spec at PATH."""
    doc, sec, lst, item = {}, None, None, None
    for n, raw in enumerate(open(path), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if not line.strip() or line.strip() == "---":
            continue
        ind = len(line) - len(line.lstrip(" "))
        text = line.strip()
        if ind == 0:
            if not text.endswith(":"):
                raise SpecError(f"{path}: line {n}: a section (NAME:) expected")
            sec = doc.setdefault(text[:-1], {})
            lst = None
        elif text.startswith("- "):
            if lst is None:
                raise SpecError(f"{path}: line {n}: a list item outside a list")
            item = {}
            lst.append(item)
            k, v = text[2:].split(":", 1)
            item[k.strip()] = v.strip()
        elif text.endswith(":") and sec is not None:
            lst = sec[text[:-1]] = []
        elif ":" in text and sec is not None:
            k, v = (x.strip() for x in text.split(":", 1))
            if lst is not None and item is not None and ind > 2:
                item[k] = v
            else:
                lst = None
                sec[k] = v
        else:
            raise SpecError(f"{path}: line {n}: cannot read {text!r}")
    for s, keys in REQUIRED.items():
        for k in keys:
            if k not in doc.get(s, {}):
                raise SpecError(f"{path}: {s}.{k} is missing (the planning cases spell out "
                                "every key the replay acts on)")
    return doc


def size(v):
    m = re.fullmatch(r"([0-9.]+)\s*([kmgtp]?)(i?b)?", v.strip().lower())
    if not m:
        raise SpecError(f"{v!r} is not a size")
    return int(float(m.group(1)) * UNITS[m.group(2)])


def hours(v):
    m = re.fullmatch(r"([0-9.]+)\s*([smhd]?)", v.strip().lower())
    if not m:
        raise SpecError(f"{v!r} is not a duration")
    return float(m.group(1)) * HOURS[m.group(2)]


def percent(v):
    return float(v.strip().rstrip("%"))


def boolean(v):
    return v.strip().lower() in ("true", "yes", "on")


def scaled(doc, factor):
    """DOC with its byte sizes (and the low-water mark) times FACTOR: the same shape, the
    same events at the same times, a smaller pool. Sizes stay whole multiples of 64 KiB (the
    block sizes and layer sizes the specs use divide them)."""
    out = {s: (dict(v) if isinstance(v, dict) else v) for s, v in doc.items()}
    if factor == 1:
        return out
    for s, k in SCALED_SIZES:
        b = size(doc[s][k]) * factor
        out[s][k] = str(max(64 << 10, int(b) >> 16 << 16))
    for s, k in SCALED_COUNTS:
        out[s][k] = str(int(int(doc[s][k]) * factor))
    return out


def values(doc):
    """The numbers the replay uses: bytes, hours, fractions."""
    w, p, lvm, dk = doc["workload"], doc["pool"], doc["lvm"], doc["docker"]
    mix = [{"size": size(e["size"]), "share": float(e.get("share", 1)),
            "pattern": e.get("pattern", "random")} for e in w["write_mix"]]
    v = dict(images=int(w["images"]), layers=int(w["layers_per_image"]),
             layer_size=size(w["layer_size"]), containers=int(w["containers_per_image"]),
             container_writes=size(w["container_writes"]), mix=mix,
             write_span=size(w["write_span"]), update=float(w["update_fraction"]),
             churn=float(w["churn_per_hour"]), duration=hours(w["duration"]),
             step=hours(w["step"]), block=size(p["block_size"]), zeroing=boolean(p["zeroing"]),
             data_size=size(p["data_size"]), metadata_size=size(p["metadata_size"]),
             low_water=int(p["low_water_blocks"]),
             threshold=percent(lvm["autoextend_threshold"]),
             extend_percent=percent(lvm["autoextend_percent"]), vg_free=size(lvm["vg_free"]),
             extent=size(lvm["extent_size"]), min_free=percent(dk["min_free_space"]),
             basesize=size(dk["basesize"]))
    v["steps"] = math.ceil(v["duration"] / v["step"] - 1e-9)
    return v


def dump(doc, path):
    """Write DOC back in the same YAML subset (`thinp plan` reads it)."""
    lines = []
    for s, kv in doc.items():
        lines.append(f"{s}:")
        for k, v in kv.items():
            if isinstance(v, list):
                lines.append(f"  {k}:")
                for e in v:
                    first = True
                    for ek, ev in e.items():
                        lines.append(f"    {'- ' if first else '  '}{ek}: {ev}")
                        first = False
            else:
                lines.append(f"  {k}: {v}")
    open(path, "w").write("\n".join(lines) + "\n")
