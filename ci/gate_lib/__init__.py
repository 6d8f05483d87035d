"""The regression gate behind ci/gate (see ci/README.md).

Modules, from the bottom up:
  model     the measurement model (schema-versioned JSON) and readers of its sources
            (gate measurements and baselines, scenarios/run output directories)
  measure   runs the trace driver (tests/tools/gate_trace) for the exact counters and
            under callgrind for instructions per case
  verdict   compares two measurements layer by layer into verdict rows
  report    the verdict as markdown, JUnit XML and JSON
  timing    the timing layer: ratios to raw per repetition, a rank test
  cli       gate compare / check / update / measure
"""
