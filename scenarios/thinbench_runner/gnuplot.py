"""A chart: series of points written to CHARTS/NAME.dat, a gnuplot script NAME.gp, rendered
to NAME.png (cairo) and NAME.svg."""
import os
import subprocess

from .units import KiB, human

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
          "#17becf", "#bcbd22", "#7f7f7f", "#393b79", "#637939"]


def style(mode, pt):
    """A series' style: loop-lvm solid, direct-lvm dashed."""
    return f"linespoints lw 2 pt {pt} ps 1.2 dt {1 if mode == 'loop' else 2}"


def categorical(chart, unit=KiB):
    """Evenly spaced sizes (56k and 64k stay apart): x of every point becomes the index of its
    size among the sizes present; the tics carry the sizes."""
    vals = sorted({p[0] for _, pts, *_ in chart.series for p in pts})
    idx = {v: i for i, v in enumerate(vals)}
    chart.series = [(t, [(idx[p[0]],) + tuple(p[1:]) for p in pts], *rest)
                    for t, pts, *rest in chart.series]
    tics = ", ".join(f'"{human(v * unit)}" {i}' for i, v in enumerate(vals))
    return [f"set xtics ({tics})", f"set xrange [-0.4:{len(vals) - 0.6}]"]


class Chart:
    def __init__(self, run, name, title, xlabel, ylabel):
        self.run, self.name, self.title = run, name, title
        self.xlabel, self.ylabel = xlabel, ylabel
        self.series = []  # (title, points, style, axes, errorbars)
        self.settings = []

    def add(self, title, points, style="linespoints", axes="x1y1", errorbars=False):
        """POINTS: (x, y) or, with ERRORBARS, (x, y, ylow, yhigh), drawn as bars too."""
        pts = [p for p in points if p[1] is not None]
        if pts:
            self.series.append((title, pts, style, axes, errorbars))

    def render(self):
        if not self.series:
            return None
        d = os.path.join(self.run.dir, "charts")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, self.name + ".dat"), "w") as f:
            for i, (title, pts, _, _, _) in enumerate(self.series):
                f.write(f"# [{i}] {title}\n")
                for p in pts:
                    f.write(" ".join(f"{x:.6g}" if isinstance(x, float) else str(x)
                                     for x in p) + "\n")
                f.write("\n\n")
        body = "\n".join([
            f'set title "{self.title}" noenhanced',
            f'set xlabel "{self.xlabel}" noenhanced',
            f'set ylabel "{self.ylabel}" noenhanced',
            "set grid", "set key outside bottom center horizontal maxcols 2 noenhanced Left reverse",
            "set border lw 1.2",
            *self.settings,
            "plot " + ", \\\n     ".join(self.plots()),
        ])
        gp = os.path.join(d, self.name + ".gp")
        with open(gp, "w") as f:
            f.write("# made by scenarios/thinbench_runner (gnuplot.py) from " + self.name
                    + ".dat\n")
            f.write(f'set terminal pngcairo size 1000,760 font "DejaVu Sans,11"\n'
                    f'set output "{self.name}.png"\n{body}\n'
                    f'set terminal svg size 1000,760 dynamic font "DejaVu Sans,11"\n'
                    f'set output "{self.name}.svg"\nreplot\n')
        p = subprocess.run(["gnuplot", os.path.basename(gp)], cwd=d, stderr=subprocess.PIPE,
                           text=True)
        if p.returncode:
            raise RuntimeError(f"gnuplot {gp}: {p.stderr}")
        return self.name

    def plots(self):
        plots, keys = [], []
        for i, (title, _, style_, axes, errorbars) in enumerate(self.series):
            t = title.replace('"', "'")
            if "lc " not in style_:
                # one colour per series, the same for its loop-lvm and direct-lvm lines (those
                # differ by dash type)
                key = title.replace(" (loop-lvm)", "").replace(" (direct-lvm)", "")
                if key not in keys:
                    keys.append(key)
                style_ += f" lc rgb '{COLORS[keys.index(key) % len(COLORS)]}'"
            plots.append(f'"{self.name}.dat" index {i} using 1:2 with {style_} axes {axes} '
                         f'title "{t}"')
            if errorbars:
                lc = style_[style_.index("lc "):] if "lc " in style_ else ""
                plots.append(f'"{self.name}.dat" index {i} using 1:2:3:4 with yerrorbars '
                             f'pt 0 lw 1 {lc} axes {axes} notitle')
        return plots
