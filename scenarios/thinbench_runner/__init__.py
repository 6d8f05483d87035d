"""thinbench_runner — the benchmark suite behind `make bench` (scenarios/run, scenarios/benchmarks).

What dm-thin-style thin provisioning costs, libthinp through the fio engine against the raw
backing store, qcow2 and overlayfs, in one run on one machine (docs/benchmark-method.md).

Modules, from the bottom up:
  units        sizes (KiB, human()), mode labels, how numbers are written
  procs        logging, running commands, cleanup of everything a run creates (signals too)
  diskio       iologs, pattern writes, allocated sizes
  fiojson      THE reader of fio's JSON report (also used by tests/vm and tests/engine)
  environment  tool checks, scratch dir, direct-lvm devices, env.json
  case         scales, one case and one repetition's context
  fiorun       one fio step on the thinp engine, its metrics from fio and the engine's stats
  peers        raw, qemu-img bench and qemu-nbd peers
  workloads/   one module per scenario family (first writes, CoW, overwrite, chains, commit,
               fill to full, the seed's example, Docker's driver)
  docker_env   the Docker driver's scenarios' shared set-up (`thinp docker` home, image, overlay
               lower dir, data volume)
  matrix       the case matrix, baselines, selection, repetition order
  kernel_setup, kernel_lvm, kernel_counters, kernel_backend  --backend kernel: the kernel's
               dm-thin as a backend (loop-lvm as Docker made it, direct-lvm by LVM on
               --data-dev), the device registry and its teardown, the refusals, the loop/LV
               devices' counters, the kernel twins of libthinp's cases
  kernel_vm    make vm-bench's run in the VM (--kernel) or a finished one merged as kernel/
               (--kernel-results)
  kernel_results  each kernel twin's steps beside libthinp's (the run's or kernel/'s rows),
               kernel.csv
  kernel_facts    where the kernel rows ran, the pools as the runner made them
  kernel_tables   the kernel section's tables
  kernel_report   the kernel section, the headline's kernel cell
  rundata      a run dir read back: repetitions aggregated, summary.csv
  gnuplot, charts  the charts
  report       report.md and commands.md
  docker_report  the Docker driver's scenarios' tables (report.md, BENCHMARKS.md)
  claims, docker_claims, benchmarks  BENCHMARKS.md
  plan_spec, plan_replay, plan_cases, plan_chart, plan_report  the capacity-planning cases:
               a spec replayed on a real pool against `thinp plan`, its chart and section
  runner, cli  the run itself and scenarios/run's command line
  abrun        --ab-base-engine: two fio engines in one run, back to back per repetition, into
               OUT/base and OUT/new (the regression gate's paired timing layer, ci/README.md)
  compare      two runs compared on their exact counters (a check for changes to the runner)
"""
import os

# the repository (scenarios/thinbench_runner/ -> ..)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
