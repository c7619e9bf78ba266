r"""The automated research loop: grid -> fit -> predict -> run larger -> compare -> propose.

  python -m experiments.research --config=experiments/configs/scaling.py:runlocal \
      --workdir=workdir/research --budget=3000

The budget is in the config's ``run_cost`` units (training steps for the scaling
config). A config that names model sizes (``RESEARCH_SIZES``) gets the loop over model
size and data (experiments/lib/research_compute.py): a Chinchilla fit and a
compute-optimal allocation; otherwise the loop scales data only. Outputs in ``workdir``: ``runs/`` (the sweep: one directory per run,
summary.md), ``decisions.jsonl`` (every decision with its reason), ``research.md`` and
``fit.png``. Re-running reuses finished runs. See experiments/lib/research.py and
docs/experiments.md.
"""

from __future__ import annotations

import sys

from absl import app, flags

from experiments.lib import research as research_lib
from experiments.lib import research_compute
from experiments.lib import sweep as sweep_lib

_CONFIG = flags.DEFINE_string("config", None, "Config FILE[:ARG] with the research knobs.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory of the loop.")
_BUDGET = flags.DEFINE_float("budget", None, "Compute for grid + larger run (run_cost units).")
_GRID_POINTS = flags.DEFINE_integer("grid_points", 5, "At most this many grid runs.")
_GRID_FRACTION = flags.DEFINE_float("grid_fraction", 0.5, "Budget share of the grid.")
_WORKERS = flags.DEFINE_integer("workers", 1, "Runs at a time.")
flags.mark_flags_as_required(["config", "workdir", "budget"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments {argv[1:]}.")
  progress = lambda line: print(line, flush=True)
  try:
    if research_compute.has_sizes(_CONFIG.value):  # model size x data
      out = research_compute.run_size_research(
          research_compute.load_size_spec(_CONFIG.value), _WORKDIR.value, _BUDGET.value,
          grid_points=_GRID_POINTS.value, grid_fraction=_GRID_FRACTION.value,
          workers=_WORKERS.value, progress=progress)
      predicted, actual = out["predicted"], out["actual"]
    else:  # data only
      report = research_lib.run_research(
          research_lib.load_spec(_CONFIG.value), _WORKDIR.value, _BUDGET.value,
          grid_points=_GRID_POINTS.value, grid_fraction=_GRID_FRACTION.value,
          workers=_WORKERS.value, progress=progress)
      predicted, actual = report.predicted, report.actual
  except (research_lib.ResearchError, sweep_lib.SweepError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"Report: {_WORKDIR.value}/research.md (predicted {predicted:.4g}, "
        f"measured {actual})")
  return 0


if __name__ == "__main__":
  app.run(main)
