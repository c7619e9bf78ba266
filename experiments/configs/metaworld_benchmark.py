r"""The Meta-World benchmark job (experiments.metaworld): tasks, demos, evaluation, by size.

  python -m experiments.metaworld --workdir=workdir/metaworld \
      --config=experiments/configs/metaworld_benchmark.py:runlocal \
      [--config.eval_episodes=10 --config.tasks="('reach-v3','push-v3')"]

Argument: `tiny`, `runlocal` (default) or `full` (experiments/configs/metaworld.py's
sizes). The training configs of both models are experiments/configs/metaworld.py at the
same size; this file holds what the job runs around them (`pipeline_config`).
"""

from ml_collections import config_dict

from experiments.configs import metaworld


def get_config(arg: str = "runlocal") -> config_dict.ConfigDict:
  """``metaworld.pipeline_config(arg)``."""
  return metaworld.pipeline_config(arg or "runlocal")
