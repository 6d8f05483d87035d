"""The kernel section's per-set-up tables: the kernel's and libthinp's ratios in the VM, the
host's reference ratio, the VM latencies behind them, and the set-up's chart."""
from .charts import CHART_TEXT
from .kernel_results import KERNEL_CASE_TEXT, KERNEL_SETUPS


def ratio_tables(run, rows, prefix, charts_made):
    L = []
    for setup in run.kernel["setups"]:
        L.append(f"### {setup}")
        L.append("")
        L.append("| bs | ratio | kernel, VM | libthinp, VM | libthinp ÷ kernel | libthinp, host | "
                 "VM µs: kernel / libthinp |")
        L.append("|---|---|---:|---:|---:|---:|---:|")
        for r in rows:
            if r["setup"] != setup:
                continue
            L.append(table_row(r))
        L.append("")
        L.append("*VM µs* are the mean write latencies behind the ratios (emulated: compare them "
                 "only with each other). A ratio also depends on its denominator: where one "
                 "engine's overwrite is much cheaper than the other's, its ratios come out "
                 "higher even when its own case is faster in absolute terms" +
                 (" — here libthinp's overwrite is a buffered write into the guest's page "
                  "cache, the kernel's goes through device-mapper and the loop driver."
                  if setup == "loop-lvm" else "."))
        L.append("")
        name = f"kernel-ratios-{KERNEL_SETUPS[setup]}"
        if name in charts_made:
            L += [f"![{CHART_TEXT[name]}]({prefix}charts/{name}.png)", "",
                  f"[SVG]({prefix}charts/{name}.svg) · [data]({prefix}charts/{name}.dat) · "
                  f"[gnuplot]({prefix}charts/{name}.gp)", ""]
    return L


def table_row(r):
    f2 = lambda x: "—" if x is None else f"{x:.2f}×"

    def vm(pre):  # the median, and its range when there were repetitions
        v = r[pre + "_ratio"]
        if v is None or (r[pre + "_reps"] or 1) < 2:
            return f2(v)
        return f"{v:.2f}× [{r[pre + '_ratio_min']:.2f}–{r[pre + '_ratio_max']:.2f}]"
    host = ("—" if r["host_ratio"] is None else
            f"{r['host_ratio']:.2f}× [{r['host_ratio_min']:.2f}–{r['host_ratio_max']:.2f}]")
    us = lambda x: "?" if x is None else f"{x:.0f}"
    lat = (f"{us(r['kernel_lat_mean_us'])} / {us(r['libthinp_vm_lat_mean_us'])} "
           f"(overwrite {us(r['kernel_overwrite_lat_mean_us'])} / "
           f"{us(r['libthinp_vm_overwrite_lat_mean_us'])})")
    return (f"| {r['bs']} | {KERNEL_CASE_TEXT[r['case']]} | {vm('kernel')} | "
            f"{vm('libthinp_vm')} | {f2(r['libthinp_vs_kernel'])} | {host} | {lat} |")
