r"""Pre-training the world action model on human video, at several data scales.

The scaling stage of the main job (experiments/lib/great_parallel_recipe.py) launches
these runs itself (one process each, through experiments.lib.sweep) on the dataset it
built. By hand:

  python -m experiments.sweep --config=experiments/configs/human_pretrain.py:runlocal \
      --workdir=workdir/human_scaling \
      --config.data.datasets.human.path=data/egocentric_human/NAME/1.0.0

Argument: as experiments/configs/great_parallel.py (`runlocal`...). The model, window and
optimiser are the job's; `sweep(add)` trains on 1/16 to all of the dataset's episodes
(`data.datasets.human.max_episodes`: the first N episodes, nested subsets), each for
steps proportional to its hours (`scaling.steps_per_hour` of the job: a fixed number of
passes over the data, so compute grows with data as in EgoScale's sweeps).

The research loop reads RESEARCH_METRIC, MIN_SCALE, MAX_SCALE, research_run and run_cost
below (command there).

Expected at `runlocal`: 40 to 576 steps per run; measured beside a Meta-World evaluation
on the 2-core CPU, 5.5 to 6 minutes for each run up to 288 steps (mostly start-up and
compiling) and 59 minutes for the five. The held-out action loss on human video
(`eval/loss/action`, the fitted quantity) falls with the number of episodes (0.60 to
0.33; docs/RESULTS.md).
"""

import os

from ml_collections import config_dict

from experiments.lib import great_parallel_recipe as recipe
from experiments.configs import great_parallel

LAUNCHER = "experiments.train"
SUMMARY_METRICS = ("loss", "eval/loss", "eval/loss/action", "eval/loss/video")


def demo_data(arg: str = "runlocal") -> str:
  """The human video `make demo` builds (the main job's `human_data` stage)."""
  job = great_parallel.get_config(arg)
  return os.path.join("workdir", "demo", "data", "egocentric_human",
                      recipe.human_dataset_name(job, job.human.hours), "1.0.0")


def get_config(arg: str = "runlocal") -> config_dict.ConfigDict:
  """A trainer config over one human dataset (default: the one `make demo` built)."""
  job = great_parallel.get_config(arg)
  return recipe.trainer_config(job, {"human": (demo_data(arg), 1.0, 0)},
                               num_steps=recipe.scaling_steps(job, job.human.hours))


def _episodes_per_hour(arg: str) -> float:
  h = great_parallel.get_config(arg).human
  return 3600 * h.fps / h.episode_length


def sweep(add, arg: str = "runlocal"):
  """Nested subsets of the job's human dataset, 1/16 of its episodes to all, each trained
  for steps proportional to its hours (the job's ``scaling.steps_per_hour``)."""
  job = great_parallel.get_config(arg)
  total = int(job.human.hours * _episodes_per_hour(arg) * (1 - job.human.val_fraction))
  for f in job.scaling.fractions:
    n = max(1, int(total * f))
    add(f"episodes{n}", **{"data.datasets.human.max_episodes": n,
                           "num_steps": recipe.scaling_steps(job, n / _episodes_per_hour(arg))})


# The research loop (experiments.research) over model size and episodes of human video,
# after `make demo` (experiments/lib/research_compute.py):
#   python -m experiments.research --config=experiments/configs/human_pretrain.py:runlocal \
#       --workdir=workdir/research --budget=900
# Sizes are the runlocal (toy) model at three widths; N counts the transformer's
# non-embedding parameters (12 width^2 depth, as Kaplan et al. and Chinchilla count). A
# run's steps grow with its episodes (as the sweep's), so it costs N x steps, in
# M-parameter-steps: the budget buys the 3 sizes x 8, 16, 32, 64 episodes (406) and, with
# the rest (494), the allocation's choice of size at up to all 270 episodes. Measured on
# the 2-core CPU: 31 minutes; it chose w128 on 270 episodes, predicted 0.3212, measured
# 0.3265 (docs/RESULTS.md).
RESEARCH_METRIC = "eval/loss/action"
MIN_SCALE = 8        # episodes
MAX_SCALE = 270      # training episodes of the runlocal human set (0.4 h)
_DEPTH = 4           # the toy model's
RESEARCH_SIZES = {f"w{w}": 12.0 * w * w * _DEPTH for w in (64, 96, 128)}


def research_run(d: int, size: str = "w128") -> dict:
  """A pre-training run of ``size`` on the first ``d`` episodes, steps proportional to them."""
  job = great_parallel.get_config("runlocal")
  width = int(size[1:])
  return {"data.datasets.human.max_episodes": int(d),
          "num_steps": recipe.scaling_steps(job, d / _episodes_per_hour("runlocal")),
          "model.width": width, "model.depth": _DEPTH}


def run_cost(d: int, size: str = "w128") -> float:
  """Millions of parameters x training steps (the batch size is fixed)."""
  return RESEARCH_SIZES[size] / 1e6 * research_run(d, size)["num_steps"]
