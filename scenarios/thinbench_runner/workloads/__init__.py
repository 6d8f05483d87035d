"""One module per scenario family; each scenario function takes one repetition's Ctx and
returns {step: {class: metrics}} (see fiorun.fio_metrics), or raises CaseError.

  firstwrite  1 allocate-on-demand, 5 block size (allocate half), 6 qcow2-style edge cases
  cow         2 copy-on-write, 5 block size (CoW half)
  overwrite   3 overwrite steady state
  chain       4 reads through snapshot chains
  commit      7 commit cost (fsync every N writes)
  fill        8 fill to full (fio's view, and the fill-to-full driver's timeline)
  seed        9 the seed's example: update 32 KiB of a big file (thinp, overlayfs, in place)
  docker_image   11a Docker's driver (`thinp docker`): image build, container start
  docker_write   11b file-level writes in a container vs overlayfs and a data volume
  docker_memory  11c page cache of n containers reading the same files
"""
