"""Sizes per scale, one case (a workload on one backend in one mode) and what one repetition
of it may use."""
import os
import shutil

from .units import GiB, KiB, MiB, MODE_LABEL, SIZE_KEYS, human

# Sizes per scale. n: first writes per case (bounded by range_max / stride); ow_ios: overwrite
# IOs; commit_n: writes per commit case; chain: range read through the chains; seed: the
# "file" of the seed's example; fill: pool data size of fill-to-full; direct: size of the
# direct-lvm data device (pools of every case live there, one after another). dk_*: the Docker
# driver's scenarios (11): dk_layers layers of about dk_layer bytes of host files each,
# dk_containers starts; dk_small new files, dk_ios appends and updates of the image's
# dk_update-byte file, the seed's big file (dk_seed: 1 GiB in the seed, smaller here so the
# image builds in seconds), dk_mem bytes read by every container of the memory scenario.
SCALES = {
    "tiny": dict(n=64, range_max=16 * MiB, ow_range=16 * MiB, ow_ios=512, commit_n=32,
                 chain=8 * MiB, seed=32 * MiB, fill=8 * MiB, direct=160 * MiB, meta=64 * MiB,
                 dk_layers=3, dk_layer=512 * KiB, dk_containers=2, dk_small=32, dk_ios=64,
                 dk_update=4 * MiB, dk_seed=16 * MiB, dk_mem=8 * MiB),
    "quick": dict(n=2048, range_max=256 * MiB, ow_range=128 * MiB, ow_ios=8192, commit_n=256,
                  chain=128 * MiB, seed=1 * GiB, fill=64 * MiB, direct=1536 * MiB,
                  meta=128 * MiB, dk_layers=5, dk_layer=4 * MiB, dk_containers=4,
                  dk_small=128, dk_ios=256, dk_update=16 * MiB, dk_seed=128 * MiB,
                  dk_mem=32 * MiB),
    "full": dict(n=4096, range_max=512 * MiB, ow_range=256 * MiB, ow_ios=32768, commit_n=1024,
                 chain=256 * MiB, seed=1 * GiB, fill=256 * MiB, direct=2560 * MiB,
                 meta=256 * MiB, dk_layers=5, dk_layer=8 * MiB, dk_containers=8,
                 dk_small=1024, dk_ios=4096, dk_update=256 * MiB, dk_seed=1 * GiB,
                 dk_mem=256 * MiB),
}


class Case:
    """FN(ctx) runs one repetition and returns {step: {class: metrics}}."""

    def __init__(self, scenario, backend, mode, params, quick, fn, group=None):
        self.scenario, self.backend, self.mode = scenario, backend, mode
        self.params = dict(params)
        self.quick = quick
        self.fn = fn
        # zero and cow (the pool's CoW/zeroing policy, thinp_cow) are settings of the thinp
        # pool, not of the workload: the case keeps its workload's group and baselines
        parts = [scenario] + [f"{k}={human(v) if isinstance(v, int) and k in SIZE_KEYS else v}"
                              for k, v in params.items() if k not in ("zero", "cow")]
        self.group = group or ".".join(parts)
        z = "" if "zero" not in params else f".z{int(params['zero'])}"
        self.cid = f"{self.group}.{backend}.{mode}{z}{cow_suffix(params.get('cow'))}"
        self.label = " ".join([scenario] + [str(human(v) if k in SIZE_KEYS else v)
                                            for k, v in params.items()
                                            if k not in ("zero", "cow")] +
                              [backend, MODE_LABEL[mode]] +
                              ([f"zero={'on' if params['zero'] else 'off'}"]
                               if "zero" in params else []) +
                              ([f"cow={params['cow']}"] if "cow" in params else []))

    def meta(self):
        return {"id": self.cid, "scenario": self.scenario, "backend": self.backend,
                "mode": self.mode, "params": self.params, "group": self.group,
                "quick": self.quick, "label": self.label}


def cow_suffix(cow):
    """The case id's mark of a CoW policy other than the kernel's (whose ids stay as they
    were before the policy existed)."""
    return "" if cow in (None, "kernel") else f".cow-{cow}"


def cid(scenario, backend, mode, zero=None, cow=None, **params):
    """A case id from its parts (Case's naming), for the reports' lookups."""
    parts = [scenario] + [f"{k}={human(v) if k in SIZE_KEYS else v}"
                          for k, v in params.items()]
    z = "" if zero is None else f".z{int(zero)}"
    return ".".join(parts) + f".{backend}.{mode}{z}{cow_suffix(cow)}"


class Ctx:
    """What one repetition of one case may use: scratch dir, output dirs, command log."""

    def __init__(self, env, case, rep, out):
        self.env, self.case, self.rep = env, case, rep
        self.commands = []
        safe = case.cid.replace("/", "_")
        self.work = os.path.join(env.tmp, "cases", f"{safe}.r{rep}")
        os.makedirs(self.work, exist_ok=True)
        self.fio_dir = os.path.join(out, "fio", safe)
        self.stats_dir = os.path.join(out, "stats", safe)
        os.makedirs(self.fio_dir, exist_ok=True)

    def cleanup(self):
        shutil.rmtree(self.work, ignore_errors=True)
