r"""Closed-loop evaluation of trained models and planners in MJX physics.

  python -m experiments.evaluate --config=experiments/configs/evaluate.py:runlocal \
      --workdir=workdir/eval --config.wam=workdir/wam --config.bc=workdir/bc

Writes ``results.json``, ``results.md`` and ``videos/`` into ``workdir`` (see
``experiments/lib/evaluate.py``), and every log record into ``workdir/logs/evaluate.log``
(the console shows progress lines and warnings; ``--console=all`` shows everything).
"""

from __future__ import annotations

from absl import app, flags, logging
from ml_collections import config_flags

from experiments.lib import console

_CONFIG = config_flags.DEFINE_config_file("config", None, "Evaluation config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where results and videos go.")
_CONSOLE = flags.DEFINE_enum("console", "progress", console.MODES, console.FLAG_HELP)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  console.configure(_WORKDIR.value, _CONSOLE.value, "evaluate")
  from experiments.lib import evaluate  # pylint: disable=import-outside-toplevel
  results = evaluate.evaluate(_CONFIG.value, _WORKDIR.value)
  logging.info("[evaluate] results:\n%s", evaluate.markdown_table(results))


if __name__ == "__main__":
  app.run(main)
