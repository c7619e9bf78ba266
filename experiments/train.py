r"""Trains the world action model.

  python -m experiments.train --config=experiments/configs/wam.py:runlocal \
      --workdir=workdir/wam

Re-running the same command resumes from the latest checkpoint in ``workdir``. When the
config names no datasets, the ``dojo_robot`` dataset of ``config.dojo`` is built first
(collected with the task's scripted expert; also resumable).
"""

from __future__ import annotations

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Work directory (resumed if it exists).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  from experiments import dojo_data  # pylint: disable=import-outside-toplevel
  from wam import trainer  # pylint: disable=import-outside-toplevel
  config = dojo_data.trainer_config(_CONFIG.value, _WORKDIR.value)
  result = trainer.train_and_evaluate(config, _WORKDIR.value)
  logging.info("Finished at step %d: %s", result.step, result.metrics)


if __name__ == "__main__":
  app.run(main)
