r"""Data scaling of the world action model: validation loss against training episodes.

Command (CPU size; each run trains the runlocal model on the first N of the 43 training
episodes of the 48 reach episodes collected):

  python -m experiments.sweep --config=experiments/configs/scaling.py:runlocal \
      --workdir=workdir/scaling
  python -m experiments.research --config=experiments/configs/scaling.py:runlocal \
      --workdir=workdir/research --budget=2100  # fit, predict, launch (research loop)

Argument: as experiments/configs/wam.py (e.g. `runlocal`, a variant, a task). The sweep
trains on 6, 12, 24 and 43 episodes (`dojo.max_episodes`; nested subsets: the first N
episodes) with everything else fixed; `runlocal` also shortens every run to 600 steps.
All runs share one collected dataset (`dojo.data_dir`, built by the first run that
needs it; with --workers > 1, build it first with one run so workers do not race).

Expected (estimated from the wam runlocal run, 3500 steps in about 10 minutes; this
sweep has not been timed): `runlocal` takes about 4 x 2 minutes on an idle 2-core CPU
plus collecting the 48 episodes once. The held-out loss (`eval/loss`: the training
objective on windows of the `val` split) falls with the number of episodes (a shrunk
smoke run, 20 steps on 3/6/10 episodes, measured 2.24, 1.35, 1.05), and the fits of
egoscale/scaling.py read the slope off summary.json. The research loop
(`--budget=2100`: a grid of 6, 12, 24 episodes, then one run on 42) uses the knobs at
the end of this file.
"""

from ml_collections import config_dict

from experiments.configs import wam

EPISODES = (6, 12, 24, 43)  # 43: every training episode (48 collected, 5 for val)
# Columns of summary.md (the held-out loss is the scaling target).
SUMMARY_METRICS = ("loss", "eval/loss", "eval/joint_mae", "eval/psnr_h1")


def get_config(arg: str = "runlocal") -> config_dict.ConfigDict:
  """The wam config with a shared dataset directory and a data-scale knob."""
  config = wam.get_config(arg)
  config.dojo.max_episodes = 0  # 0: all; the sweep sets it
  config.dojo.data_dir = "workdir/scaling_data"  # shared by every run of the sweep
  if "runlocal" in arg.split(","):
    config.num_steps = 600
    config.checkpoint_every = 200
    config.eval.every = 600
  return config


def sweep(add):
  """One run per data scale."""
  for n in EPISODES:
    add(f"ep{n}", **{"dojo.max_episodes": n})


# The research loop (experiments.research): data scale d -> a run, and what it costs.
RESEARCH_METRIC = "eval/loss"  # the objective on held-out windows
MIN_SCALE = 6  # 150 steps: past the runlocal warm-up (100)
MAX_SCALE = 43  # training episodes of runlocal's 48 (val_fraction 0.1 keeps 5)
STEPS_PER_EPISODE = 25


def research_run(d: int) -> dict:
  """A run on the first ``d`` episodes for a fixed number of epochs (steps ~ d)."""
  return {"dojo.max_episodes": int(d), "num_steps": STEPS_PER_EPISODE * int(d)}


def run_cost(d: int) -> float:
  """Training steps (the batch size is fixed), the budget unit of the loop."""
  return float(STEPS_PER_EPISODE * d)
