r"""Closed-loop evaluation of trained models and planners in MJX physics.

  python -m experiments.evaluate --config=experiments/configs/evaluate.py:runlocal \
      --workdir=workdir/eval --config.wam=workdir/wam --config.bc=workdir/bc

Writes ``results.json``, ``results.md`` and ``videos/`` into ``workdir`` (see
``experiments.closed_loop_eval``).
"""

from __future__ import annotations

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Evaluation config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where results and videos go.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  from experiments import closed_loop_eval  # pylint: disable=import-outside-toplevel
  results = closed_loop_eval.evaluate(_CONFIG.value, _WORKDIR.value)
  logging.info("Results:\n%s", closed_loop_eval.markdown_table(results))


if __name__ == "__main__":
  app.run(main)
