r"""The main job: pre-train on human video, post-train on the robot, plan and learn in
the Dream Dojo, evaluate in physics, and fit a scaling sweep.

  python -m experiments.great_parallel \
      --config=experiments/configs/great_parallel.py:runlocal --workdir=workdir/demo

Re-running the same command skips finished stages (each writes ``<stage>/stage.json``)
and resumes the others; ``--only=pretrain,posttrain`` runs just those (their inputs must
exist). A workdir made with another config is refused. Output: ``report.md``,
``report.json``, and one directory per stage (checkpoints, TensorBoard logs, plots,
videos). The console shows one line per step of progress and warnings; every log record
is in ``<workdir>/logs/main.log`` and ``<workdir>/logs/<stage>.log`` (``--console=all``
shows them on the console too; see experiments/lib/console.py). The stages:
experiments/lib/great_parallel.py.
"""

from __future__ import annotations

import os

from absl import app, flags, logging
from ml_collections import config_flags

from experiments.lib import console

_CONFIG = config_flags.DEFINE_config_file("config", None, "Job config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Work directory (resumed if it exists).")
_ONLY = flags.DEFINE_list("only", [], "Run only these stages.")
_CONSOLE = flags.DEFINE_enum("console", "progress", console.MODES, console.FLAG_HELP)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  console.configure(_WORKDIR.value, _CONSOLE.value, "main")
  from experiments.lib import great_parallel  # pylint: disable=import-outside-toplevel
  results = great_parallel.run_main_job(_CONFIG.value, _WORKDIR.value, only=_ONLY.value)
  report = os.path.join(_WORKDIR.value, "report.md")
  logging.info("[job] finished stages: %s%s", ", ".join(results),
               f"; report: {report}" if os.path.exists(report) else "")


if __name__ == "__main__":
  app.run(main)
