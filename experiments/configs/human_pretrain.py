r"""Pre-training the world action model on human video, at several data scales.

The scaling stage of the main job (experiments/lib/great_parallel_recipe.py) launches
these runs itself (one process each, through experiments.lib.sweep) on the dataset it
built. By hand:

  python -m experiments.sweep --config=experiments/configs/human_pretrain.py:runlocal \
      --workdir=workdir/human_scaling \
      --config.data.datasets.human.path=data/egocentric_human/NAME/1.0.0

Argument: as experiments/configs/great_parallel.py (`runlocal`...). The model, window and
optimiser are the job's; `sweep(add)` trains on 1/16 to all of the dataset's episodes
(`data.datasets.human.max_episodes`: the first N episodes, nested subsets).

The research loop reads RESEARCH_METRIC, MIN_SCALE, MAX_SCALE, research_run and run_cost
below (command there).

Expected at `runlocal`: about 1.5 minutes per run on an idle 2-core CPU; `eval/loss` on
held-out human video falls with the number of episodes (see docs/RESULTS.md).
"""

import os

from ml_collections import config_dict

from experiments.lib import great_parallel_recipe as recipe
from experiments.configs import great_parallel

LAUNCHER = "experiments.train"
FRACTIONS = (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1)
SUMMARY_METRICS = ("loss", "eval/loss", "eval/loss/video")


def demo_data(arg: str = "runlocal") -> str:
  """The human video `make demo` builds (the main job's `human_data` stage)."""
  job = great_parallel.get_config(arg)
  hours = max([job.human.hours] + list(job.scaling.hours))
  return os.path.join("workdir", "demo", "data", "egocentric_human",
                      recipe.human_dataset_name(job, hours), "1.0.0")


def get_config(arg: str = "runlocal") -> config_dict.ConfigDict:
  """A trainer config over one human dataset (default: the one `make demo` built)."""
  job = great_parallel.get_config(arg)
  return recipe.trainer_config(job, {"human": (demo_data(arg), 1.0, 0)},
                               num_steps=job.scaling.num_steps)


def sweep(add, arg: str = "runlocal"):
  """Nested subsets of the job's human dataset: 1/16 of its episodes to all."""
  h = great_parallel.get_config(arg).human
  total = int(h.hours * 3600 * h.fps / h.episode_length * (1 - h.val_fraction))
  for f in FRACTIONS:
    n = max(1, round(total * f))
    add(f"episodes{n}", **{"data.datasets.human.max_episodes": n})


# The research loop (experiments.research) over episodes of human video, after `make demo`:
#   python -m experiments.research --config=experiments/configs/human_pretrain.py:runlocal \
#       --workdir=workdir/research --budget=2400 --grid_fraction=0.84
# Every run trains the same number of steps (the sweep's), so a run costs its steps and
# the budget buys a grid of 5 doublings from MIN_SCALE plus one run at MAX_SCALE.
RESEARCH_METRIC = "eval/loss"
MIN_SCALE = 8        # episodes
MAX_SCALE = 270      # training episodes of the runlocal human set (0.4 h)
RESEARCH_STEPS = 300


def research_run(d: int) -> dict:
  """A pre-training run on the first ``d`` episodes."""
  return {"data.datasets.human.max_episodes": int(d), "num_steps": RESEARCH_STEPS}


def run_cost(d: int) -> float:
  """Training steps (fixed per run; the batch size is fixed too)."""
  del d
  return float(RESEARCH_STEPS)
