r"""Meta-World as a benchmark, end to end: one command, resumable (docs/benchmarks/metaworld.md).

  python -m experiments.metaworld --workdir=workdir/metaworld \
      --config=experiments/configs/metaworld_benchmark.py:runlocal \
      [--config.eval_episodes=10] [--venv=.venv-metaworld] [--only=demos,dataset]

or, the same job, ``--size=runlocal [--tasks=reach-v3,push-v3,...]`` without a config
file.

Creates (once) Meta-World's own venv, records the scripted experts' demonstrations
through ``wam-gym-record``, imports them into one dataset, trains the world action
model and the pixel BC baseline (experiments/configs/metaworld.py), serves each with
``experiments.serve`` and evaluates it through ``wam-gym-evaluate`` on held-out seeds,
and writes ``<workdir>/summary.json`` and ``<workdir>/results.md``. Re-running the same
command skips every finished stage (and every finished task within a stage).
"""

from __future__ import annotations

import os
import sys
import time

from absl import app, flags, logging
from ml_collections import config_flags

from experiments.lib import console
from experiments.configs import metaworld as metaworld_config
from experiments.metaworld import pipeline, tasks as tasks_lib, venv
from experiments.lib.stages import StageError, run_stages

_WORKDIR = flags.DEFINE_string("workdir", None, "Work directory (resumed if it exists).")
_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "The job: experiments/configs/metaworld_benchmark.py:SIZE, with "
    "--config.FIELD=VALUE overrides (instead of --size and --tasks).")
_SIZE = flags.DEFINE_enum("size", "runlocal", list(metaworld_config.SIZES),
                          "tiny: the smoke test; runlocal: the 2-core CPU run; full: a GPU host.")
_TASKS = flags.DEFINE_list("tasks", None, "Meta-World tasks (default: the config's five); "
                           f"any of {sorted(tasks_lib.TASKS)}.")
_VENV = flags.DEFINE_string("venv", venv.DEFAULT_DIR, "Meta-World's venv (made if missing).")
_ONLY = flags.DEFINE_list("only", None, "Run only these stages (earlier ones must be done).")
_CONSOLE = flags.DEFINE_enum("console", "progress", console.MODES, console.FLAG_HELP)
flags.mark_flags_as_required(["workdir"])


def _job():
  """The job's config: ``--config`` (with its overrides), else ``--size`` and ``--tasks``."""
  if _CONFIG.value is None:
    return pipeline.job_config(_SIZE.value, _TASKS.value)
  given = [f"--{name}" for name in ("size", "tasks") if flags.FLAGS[name].present]
  if given:
    raise app.UsageError(f"{' and '.join(given)} with --config: give the size as the "
                         "config's argument (...:runlocal) and the tasks as "
                         "--config.tasks=\"('reach-v3','push-v3')\".")
  try:
    pipeline.check_job(_CONFIG.value)
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  return _CONFIG.value


def main(argv):
  del argv
  workdir = os.path.abspath(_WORKDIR.value)
  console.configure(workdir, _CONSOLE.value, "metaworld")
  job = _job()
  start = time.time()
  venv_dir = os.path.abspath(_VENV.value)
  venv.ensure(venv_dir)
  logging.info("[metaworld] simulator venv ready: %s (%.0f s)", venv_dir, time.time() - start)
  try:
    results = run_stages(pipeline.stages(venv_dir), job, workdir, only=_ONLY.value)
  except StageError as e:   # another job's workdir, or a failed stage: its message says what
    sys.exit(f"error: {e}")
  if "report" in results:
    with open(results["report"]["table"]) as f:
      print(f.read())
  logging.info("[metaworld] done in %.0f s: %s", time.time() - start,
               ", ".join(f"{k} {v.get('seconds', 0):.0f} s" for k, v in results.items()))


if __name__ == "__main__":
  app.run(main)
