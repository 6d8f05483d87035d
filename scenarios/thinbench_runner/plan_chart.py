"""A planning case's chart: predicted and measured data use over time (MiB) with the pool's
size, LVM's autoextend threshold and dm-thin's low-water mark drawn as the measured pool
had them, metadata use (less the kernel's reserve, as compared) on the right axis, and a vertical line at every measured event."""
from types import SimpleNamespace

from .gnuplot import Chart

MIB = 1 << 20


def reserve(total):
    return min(4096, int(total) // 10)


def usage_chart(d, name, v, pred, meas):
    """D/charts/usage.{png,svg,dat,gp} of case NAME; returns the chart's name."""
    bs = v["block"]
    mib = lambda blocks: blocks * bs / MIB  # noqa: E731
    ch = Chart(SimpleNamespace(dir=d), "usage", f"{name}: predicted (lines) vs measured "
               "(points) pool use", "hours", "data (MiB)")
    steps = [s for s in meas["samples"] if s.get("step") is not None]
    ser = pred["series"]
    ch.add("data predicted", [(p["hours"], mib(p["data_used"])) for p in ser],
           "lines lw 2 lc rgb '#1f77b4'")
    ch.add("data measured", [(s["hours"], mib(s["data_used"])) for s in meas["samples"]],
           "points pt 7 ps 1.1 lc rgb '#1f77b4'")
    ch.add("pool size (measured)", [(s["hours"], mib(s.get("data_total_after",
                                                          s["data_total"]))) for s in steps],
           "steps lw 1.5 lc rgb '#333333'")
    if v["threshold"] < 100:
        ch.add(f"autoextend threshold {v['threshold']:g}%",
               [(s["hours"], mib(s.get("data_total_after", s["data_total"])) *
                 v["threshold"] / 100) for s in steps], "steps lw 1.5 dt 2 lc rgb '#ff7f0e'")
    if v["low_water"]:
        ch.add(f"low-water mark ({v['low_water']} blocks)",
               [(s["hours"], mib(s.get("data_total_after", s["data_total"]) - v["low_water"]))
                for s in steps], "steps lw 1.5 dt 3 lc rgb '#2ca02c'")
    ch.add("metadata predicted (blocks, right)",
           [(p["hours"], p["metadata_used"] - reserve(p["metadata_total"])) for p in ser],
           "lines lw 2 lc rgb '#d62728'",
           axes="x1y2")
    ch.add("metadata measured (blocks, right)",
           [(s["hours"], s["metadata_used"] - reserve(s["metadata_total"]))
            for s in meas["samples"]],
           "points pt 5 ps 0.9 lc rgb '#d62728'", axes="x1y2")
    ch.settings += ['set y2label "metadata blocks (less the kernel\'s reserve)"', "set y2tics",
                    "set ytics nomirror", "set yrange [0:*]", "set y2range [0:*]"]
    for e in meas["events"]:
        ch.settings.append(f"set arrow from {e['hours']:.6g}, graph 0 to {e['hours']:.6g}, "
                           "graph 1 nohead dt 4 lc rgb '#7f7f7f'")
        ch.settings.append(f"set label \"{e['event']}\" at {e['hours']:.6g}, graph 0.97 "
                           "rotate by 90 right font \",9\" noenhanced")
    return ch.render()
