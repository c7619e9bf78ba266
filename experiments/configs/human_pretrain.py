r"""Pre-training the world action model on human video, at several data scales.

The scaling stage of the main job (experiments/recipe.py) launches these runs itself
(one process each, through experiments.sweeps) on the dataset it built. By hand:

  python -m experiments.sweep --config=experiments/configs/human_pretrain.py:runlocal \
      --workdir=workdir/human_scaling \
      --config.data.datasets.human.path=workdir/demo/data/human_pretrain/1.0.0

Argument: as experiments/configs/great_parallel.py (`runlocal`...). The model, window and
optimiser are the job's; `sweep(add)` trains on 1/16 to all of the dataset's episodes
(`data.datasets.human.max_episodes`: the first N episodes, nested subsets).

Expected at `runlocal`: about 1.5 minutes per run on an idle 2-core CPU; `eval/loss` on
held-out human video falls with the number of episodes (see docs/RESULTS.md).
"""

from ml_collections import config_dict

from experiments import recipe
from experiments.configs import great_parallel

LAUNCHER = "experiments.train"
FRACTIONS = (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1)
SUMMARY_METRICS = ("loss", "eval/loss", "eval/loss/video")


def get_config(arg: str = "runlocal") -> config_dict.ConfigDict:
  """A trainer config over one human dataset (its path set by the caller)."""
  job = great_parallel.get_config(arg)
  return recipe.trainer_config(job, {"human": ("", 1.0, 0)},
                               num_steps=job.scaling.num_steps)


def sweep(add, arg: str = "runlocal"):
  """Nested subsets of the job's human dataset: 1/16 of its episodes to all."""
  h = great_parallel.get_config(arg).human
  total = int(h.hours * 3600 * h.fps / h.episode_length * (1 - h.val_fraction))
  for f in FRACTIONS:
    n = max(1, round(total * f))
    add(f"episodes{n}", **{"data.datasets.human.max_episodes": n})
