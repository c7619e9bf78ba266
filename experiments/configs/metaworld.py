r"""Meta-World (MT10 tasks) as a benchmark: the WAM and a pixel BC baseline on scripted demos.

One command runs it all (docs/benchmarks/metaworld.md): Meta-World's venv, demonstrations, the
dataset, both trainings, closed-loop evaluation through the Gymnasium client, the report:

  python -m experiments.metaworld --workdir=workdir/metaworld --size=runlocal

Training alone, on a dataset that command imported:

  python -m experiments.train --config=experiments/configs/metaworld.py:runlocal \
      --workdir=workdir/metaworld/train_wam \
      --config.data.datasets.metaworld.path=workdir/metaworld/dataset/data/metaworld/1.0.0

Argument: comma-separated; a size, `tiny` (the end-to-end smoke test: a few demos, 30
steps, 2 episodes per task), `runlocal` (the 2-core CPU run) or `full` (default: a
GPU host), and optionally `bc`: the behaviour-cloning baseline of experiments/configs/
wam.py (same backbone, cameras, joints and instruction; trained on the action chunk
alone, no video or joint targets, always in policy mode).

The model sees two cameras, Meta-World's fixed `corner` view (it renders upside down:
the camera's own orientation) and `gripperPOV` (stored as `wrist`), the Sawyer's 7 arm
joints + 2 fingers as joints, hand position + gripper opening as proprio, and predicts
Meta-World's action: hand xyz delta (3) + grip effort (1). `pipeline_config(arg)` holds
what experiments.metaworld runs around training (tasks, demos, evaluation).

Expected: `tiny` ran end to end in 6.5 minutes on the shared 2-core CPU (success 0 of
10 per model after 30 steps of training, as expected). `runlocal` (10 demos per task,
the count of the published baselines it is reported beside; toy model, 2 x 2000 steps,
30 held-out episodes per task and model): about 2 hours on the 2-core CPU
(docs/benchmarks/metaworld.md has the measured times and results). `full` is for a
GPU/TPU host.
"""

from __future__ import annotations

import os

from ml_collections import config_dict

from experiments.configs import wam
from wam.data.config import dataset_config

SIZES = ("tiny", "runlocal", "full")
DATASET = "metaworld"
# The cameras the model sees (model name -> Meta-World camera).
CAMERAS = {"corner": "corner", "wrist": "gripperPOV"}


def dataset_path(workdir: str) -> str:
  """Where experiments.metaworld imports the demonstrations of ``workdir``."""
  return os.path.join(workdir, "dataset", "data", DATASET, "1.0.0")


def parse(arg: str) -> tuple[str, bool]:
  """``"runlocal,bc"`` -> ``("runlocal", True)``; errors list the valid parts."""
  parts = [p for p in arg.split(",") if p]
  unknown = [p for p in parts if p not in SIZES + ("bc",)]
  sizes = [p for p in parts if p in SIZES]
  if unknown or len(sizes) > 1:
    raise ValueError(f"Unknown metaworld config argument(s) {unknown or sizes}; use one size "
                     f"from {SIZES} and/or 'bc'.")
  return (sizes[0] if sizes else "full"), "bc" in parts


def get_config(arg: str = "") -> config_dict.ConfigDict:
  """The training config; ``arg`` as in the module docstring."""
  size, bc = parse(arg)
  small = size in ("tiny", "runlocal")
  config = wam.get_config(",".join((["runlocal"] if small else []) + (["bc"] if bc else [])))
  del config["dojo"]   # the data is Meta-World's, imported by experiments.metaworld
  config.data.datasets = config_dict.ConfigDict(
      {DATASET: dataset_config(dataset_path(os.path.join("workdir", "metaworld")))})
  config.data.cameras = tuple(CAMERAS)
  config.data.image_size = (32, 32) if small else (64, 64)
  # The longest instruction ("pick up the puck and place it at the goal") is 42 bytes.
  config.data.max_instruction_length = 48
  if not bc:
    # Three blocks in four in policy mode: at 9 demos per task the WAM underfits its
    # actions at one in two (69/150 successes against BC's 94/150; 0.25: 93/150 and, on
    # 150 more held-out scenes, 97/150 against BC's 88/150; docs/benchmarks/metaworld.md).
    config.model.given_action_prob = 0.25
  if size == "runlocal":
    config.num_steps = 2000
    config.checkpoint_every = 500
    config.max_checkpoints = 3
    config.eval.every = 500
  elif size == "tiny":
    config.num_steps = 30
    config.log_every = 10
    config.checkpoint_every = 30
    config.max_checkpoints = 1
    config.eval.every = 30
    config.eval.batch_size = 8
    config.eval.videos = 1
  else:
    config.num_steps = 30_000
    config.checkpoint_every = 2000
    config.eval.every = 2000
  return config


def pipeline_config(arg: str = "runlocal") -> config_dict.ConfigDict:
  """What experiments.metaworld runs around training, for size ``arg``.

  Demonstrations reset with seeds ``0..demos-1`` per task. Evaluation runs
  ``eval_episodes`` per task from each seed of ``eval_seeds`` on: blocks of held-out
  scenes (Meta-World draws object and goal positions from the seed), pooled in the report
  and also shown block by block. Only successful demonstrations are imported;
  ``val_fraction`` of them (every task's last ones) form the val split.
  """
  size, bc = parse(arg)
  if bc:
    raise ValueError("pipeline_config takes a size only; the job trains both models.")
  c = config_dict.ConfigDict()
  c.size = size
  c.tasks = ("reach-v3", "push-v3", "door-open-v3", "drawer-open-v3",
             "button-press-topdown-v3")
  c.cameras = ",".join(f"{k}:{v}" for k, v in CAMERAS.items())
  c.record_size = (32, 32) if size == "tiny" else (64, 64)
  c.joints = "data.qpos[:9]"       # right_j0..6, r_close, l_close
  c.joints_slots = "sawyer_arm_joints:7,sawyer_fingers:2"
  c.proprio = "obs[0:4]"           # the hand's position and the gripper's opening
  c.proprio_slots = "hand_pos:3,gripper_opening:1"
  c.action_slots = "hand_delta_pos:3,grab_effort:1"
  c.embodiment = "sawyer_metaworld"
  # runlocal: 10 per task, the count of the published baselines (experiments/metaworld/published.py).
  c.demos_per_task = {"tiny": 4, "runlocal": 10, "full": 200}[size]
  c.demo_noise = 0.1               # DART: executed action noise, the expert's recorded
  c.demo_max_steps = 200
  c.record_envs = 1                # sub-envs while recording
  c.val_fraction = 0.1
  c.eval_episodes = {"tiny": 2, "runlocal": 30, "full": 50}[size]
  c.eval_max_steps = {"tiny": 60, "runlocal": 150, "full": 200}[size]
  # Two blocks at runlocal: 150 scenes cannot separate models a few points apart (the
  # WAM and BC were 93 against 94 on the first block, docs/benchmarks/metaworld.md).
  c.eval_seeds = (100_000,) if size == "tiny" else (100_000, 200_000)
  c.num_envs = 2                   # sub-envs per evaluation (the server batches them)
  c.max_gifs = {"tiny": 1, "runlocal": 3, "full": 5}[size]
  c.flow_steps = 1
  # Extra experiments.train flags per model (shell syntax), for ablations of either
  # training config on the same demos, e.g. --config.train_flags.wam="
  # --config.model.given_action_prob=0.5 --config.num_steps=4000". A workdir keeps one
  # job config, so an ablation goes in a workdir of its own.
  c.train_flags = config_dict.ConfigDict({"wam": "", "bc": ""})
  return c
