"""What the run with the kernel rows says besides the costs, read from its own files only:
where the kernel ran (the VM's accelerator, boot and job times; or the host), the guest's
kernel and fio (env.json), and the pools as the runner made them (the kernel cases'
recorded commands: the loop-lvm `thin-pool` table, direct-lvm's lvconvert). A fact the run
does not hold is None: the reports then say nothing about it."""
import re
import shlex

SECTOR = 512


def where(k):
    """One sentence: the machine the kernel rows were measured on."""
    e, vm = k["run"].env, k["vm"]
    base = (f"kernel {e.get('kernel')}, {e.get('fio')}, {e.get('cpus')} CPUs "
            f"({e.get('cpu')})")
    if vm is None:
        return f"on the run's host: {base}"
    t = vm["times"]
    acc = (vm.get("accel") or "accelerator unknown").upper()
    return (f"in a qemu VM ({acc}" + (f": {vm['reason']}" if vm.get("reason") else "") +
            f"): guest {base}; VM wall time {t.get('wall_s', '?')} s, of which the job "
            f"{t.get('job_s', '?')} s")


def pool_tables(k):
    """{mode: text} the pool each set-up's kernel cases used, from their first recorded
    commands: loop-lvm's `dmsetup create ... thin-pool` table (block size, zeroing),
    direct-lvm's `lvconvert` (chunk size, --zero)."""
    out = {}
    for c in k["run"].cases.values():
        if c["backend"] != "kernel" or c["mode"] in out:
            continue
        for r in c["reps"]:
            for cmd in r.get("commands", []):
                text = pool_text(cmd)
                if text:
                    out[c["mode"]] = text
                    break
            if c["mode"] in out:
                break
    return out


def pool_text(cmd):
    try:
        w = shlex.split(cmd)
    except ValueError:
        return None
    if w[:2] == ["dmsetup", "create"] and "--table" in w:
        t = w[w.index("--table") + 1].split()
        if len(t) >= 8 and t[2] == "thin-pool" and t[5].isdigit() and t[7].isdigit():
            feats = t[8:8 + int(t[7])]
            return (f"`thin-pool` on two loop devices, {int(t[5]) * SECTOR // 1024} KiB "
                    f"blocks, " + ("skip_block_zeroing" if "skip_block_zeroing" in feats
                                   else "zeroing on") + " (first case's table)")
    if w[:1] == ["lvconvert"] and "--thinpool" in w:
        chunk = w[w.index("-c") + 1] if "-c" in w else "?"
        zero = w[w.index("--zero") + 1] if "--zero" in w else "?"
        return (f"the seed's LVM thin pool (lvconvert chunk {chunk}, --zero {zero}; first "
                "case's)")
    return None


def fio_engine(k):
    """The kernel cases' fio ioengine (psync, libaio, io_uring), from their commands."""
    for c in k["run"].cases.values():
        if c["backend"] != "kernel":
            continue
        for r in c["reps"]:
            for cmd in r.get("commands", []):
                m = re.search(r"--ioengine=(\S+)", cmd)
                if m:
                    return m.group(1)
    return None
