r"""Runs a sweep: the configurations that a config file's ``sweep(add)`` lists.

  python -m experiments.sweep --config=experiments/configs/scaling.py:runlocal \
      --workdir=workdir/scaling --workers=1

Each run is its own process (``experiments.train`` unless the config file sets
``LAUNCHER``) with its workdir ``<workdir>/<name>``. Running the command again resumes:
finished runs (``result.json``) are read, unfinished ones resumed from their checkpoints;
a failed run is retried once. Progress is one line per run; ``<workdir>/summary.md`` and
``summary.json`` hold the table. ``--emit_commands`` prints one launch command per
unfinished run instead (for a cluster scheduler). See experiments/lib/sweep.py and
docs/experiments.md.
"""

from __future__ import annotations

import sys

from absl import app, flags

from experiments.lib import sweep as sweep_lib

_CONFIG = flags.DEFINE_string("config", None, "Sweep config: FILE[:ARG] with sweep(add).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Sweep directory (runs in <workdir>/<name>).")
_WORKERS = flags.DEFINE_integer("workers", 1, "Runs at a time (local processes).")
_RETRIES = flags.DEFINE_integer("retries", 1, "Extra attempts for a failed run.")
_EMIT = flags.DEFINE_bool("emit_commands", False,
                          "Print the launch commands of unfinished runs; run nothing.")
_PYTHON = flags.DEFINE_string("python", "python", "Interpreter named in --emit_commands.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments {argv[1:]}.")
  try:
    sweep = sweep_lib.load_sweep(_CONFIG.value)
    if _EMIT.value:
      sweep_lib.prepare_directory(sweep, _WORKDIR.value)
      for line in sweep_lib.emit_commands(sweep, _WORKDIR.value, _PYTHON.value):
        print(line)
      return 0
    results = sweep_lib.run_sweep(sweep, _WORKDIR.value, workers=_WORKERS.value,
                               retries=_RETRIES.value,
                               progress=lambda line: print(line, flush=True))
  except sweep_lib.SweepError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  failed = [r.name for r in results if r.status == "failed"]
  print(f"Summary: {_WORKDIR.value}/summary.md" + (f"; failed: {failed}" if failed else ""))
  return 1 if failed else 0


if __name__ == "__main__":
  app.run(main)
