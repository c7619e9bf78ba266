"""Collect demonstrations from a Dream Dojo task with its scripted expert.

Command (`make demo` runs it for pick_place until later stages land):

  python -m experiments.collect --config=experiments/configs/collect.py:pick_place,runlocal \\
      --workdir=workdir/collect

Argument: comma-separated; a registered task name (`dojo.names()`: reach, push,
pick_place, dex_lift, rope, ...; a task of your own registers from a module named in
`$DOJO_TASK_MODULES`, see docs/new_robot_or_task.md) and/or `runlocal` (a size for a
2-core CPU); the default task is `reach`. Expected: `runlocal` collects 32 noisy-expert
episodes with the front and wrist cameras at 64x64 in under a minute on a 2-core CPU
(mostly compilation), with a success rate above 0.9 for every task (see
docs/BENCHMARKS.md), and writes
`episodes/*.npz`, the TFDS dataset `tfds/dojo_robot/<task>_collected/1.0.0` (ArrayRecord, read
by `wam.data`; `experiments.train` trains on it with `--config.dojo.collected=<its path>`),
`plots/training_windows.png` (a batch read back through the `wam.data` pipeline),
`videos/episode_00000.gif`, `metrics.jsonl` and `summary.json`.
The full size collects 1000 episodes.
"""

from ml_collections import config_dict

from dojo import registry

TASKS = tuple(registry.names())


def get_config(arg: str = "") -> config_dict.ConfigDict:
  """Config for `experiments.collect`; `arg` as in the module docstring."""
  parts = [p for p in arg.split(",") if p]
  unknown = [p for p in parts if p not in TASKS + ("runlocal",)]
  if unknown:
    raise ValueError(f"Unknown collect config argument(s) {unknown}; "
                     f"use a task from {TASKS} and/or 'runlocal'.")
  task = next((p for p in parts if p in TASKS), "reach")
  config = config_dict.ConfigDict()
  config.task = task
  config.policy = "noisy_expert"   # expert | noisy_expert | random
  config.noise = 0.1
  config.num_episodes = 1000
  config.batch_size = 64
  config.num_steps = -1            # -1: the task's episode_length
  config.seed = 0
  config.videos = 4                # episodes written as GIF videos
  config.tfds = True               # also write the dojo_robot TFDS dataset (tfds/)
  config.val_fraction = 0.05       # last episodes form the TFDS "val" split
  config.env = config_dict.ConfigDict(dict(
      cameras=("front", "wrist"), image_height=64, image_width=64, impl="auto"))
  if "runlocal" in parts:
    config.num_episodes = 32
    config.batch_size = 16
    config.videos = 2
  return config
