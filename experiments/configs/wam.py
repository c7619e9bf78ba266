r"""Train the world action model on Dream Dojo demonstrations.

Command (CPU smoke size):

  python -m experiments.train --config=experiments/configs/wam.py:runlocal \
      --workdir=workdir/wam

Argument: comma-separated; a model variant (toy, tiny, small, base, large; default
small), a registered Dojo task (`dojo.names()`: reach, push, pick_place, dex_lift,
rope, ...; default reach),
`regression` (the deterministic objective instead of flow matching), `bc` (the
behaviour-cloning baseline: same backbone, actions only), `acting`, `scenes`, `wrist`
and/or `runlocal`.

`acting` gives policy mode what the imitation ladder (`benchmarks.imitation`,
docs/RESULTS.md) found it needs, at any size: at least 1,000 demonstrations; two
fixed views (`front` + `head`) where targets float (`reach`: one view cannot tell their
depth); relative joint actions on the arm tasks that manipulate objects (`push`,
`pick_place`); 4,000 steps at `runlocal`. `scenes` adds 3,000 short (20-step) play
episodes: three times the scenes (target and object placements) to learn perception
from, for the rendering cost of 1,200 full episodes (docs/RESULTS.md). `wrist` adds the
camera in the gripper to the views: what a real arm uses to close the last centimetres,
where a fixed view at 32x32 spans about 3 cm per pixel (docs/RESULTS.md).

Data: unless `config.data.datasets` names datasets, `experiments.train` first builds the
`dojo_robot` TFDS datasets of `config.dojo.task` (resumable) under `config.dojo.data_dir`
(default `<workdir>/tfds`): the scripted noisy expert's demonstrations, plus the
collections of `config.dojo.mixture` (DART and joint-space play, `dojo.play`), each
with its own weight; their actions teach the world model what actions do and are never
policy-mode targets (docs/controllability.md). `bc` trains on the demonstrations alone.
`--config.dojo.collected=<workdir>/tfds/dojo_robot/<task>_collected/1.0.0` (comma-separated
for several) trains on what `experiments.collect` wrote instead, building nothing
(docs/new_robot_or_task.md, section 5).

Expected: `runlocal` (toy model, 1.9 M parameters; 200 demonstrations + 200 DART + 400
play `reach` episodes, 32x32 front camera, 4 frames x 4-step action chunks, batch 8,
3500 steps) takes about 3.5 minutes of collection and 15-18 minutes of training on an
idle 2-core CPU. `python -m benchmarks.dreams` then gives a motion gain of 0.94 under
play actions and 0.68 under uniformly random ones, tracking ratio 0.09, and dreamed
frames beat copying the last frame (28.2 vs 23.6 dB at horizon 1): docs/RESULTS.md.
The full size (small model, 1000 episodes, 64x64 front + wrist, 100k steps) is for a
GPU/TPU host.
"""

from ml_collections import config_dict

from dojo import registry
from wam import config as wam_config
from wam import trainer

# Every registered Dojo task (dojo.registry: the built-in ones and $DOJO_TASK_MODULES),
# with what each task registered about collecting and training on it.
TASKS = tuple(registry.names())
# Action noise of the DART and play collections per task (action units): the arm's
# absolute joint targets span +-2.9 rad, so 0.03 is about 0.09 rad; the hand's wrist
# actions are relative steps and its fingers are absolute.
PLAY_NOISE = {t: (registry.data(t)["dart_noise"], registry.data(t)["play_noise"])
              for t in TASKS}
# Tasks that also get play over the whole action range ("wide": waypoints this wide,
# clipped to [-1, 1]): the hand's uniformly random finger targets close it fully, a
# motion play around the open hand rarely shows (docs/RESULTS.md, dex_lift).
WIDE_PLAY = {t: registry.data(t)["wide_play_noise"] for t in TASKS
             if registry.data(t)["wide_play_noise"] > 0}
# With `acting`: tasks whose targets float above the table (one camera cannot place
# them) and arm tasks that imitate better with joint offsets than with absolute targets.
FLOATING_TARGETS = tuple(t for t in TASKS if registry.data(t)["floating_targets"])
RELATIVE_JOINTS = tuple(t for t in TASKS if registry.data(t)["relative_joints"])


def _max_instruction_length(task: str) -> int:
  """Bytes of the task's longest instruction rounded up to 16, at least 32 (48 for
  push, pick_place and rope); 48 where the task's instruction space is not known
  before it is built."""
  space = getattr(registry.entry(task).resolve(), "instruction_space", None)
  if space is None:
    return 48
  longest = max(len(space.text(i).encode()) for i in range(len(space.combinations)))
  return max(32, -(-longest // 16) * 16)


def get_config(arg: str = "") -> config_dict.ConfigDict:
  """The training config; ``arg`` as in the module docstring."""
  parts = [p for p in arg.split(",") if p]
  known = TASKS + tuple(wam_config.VARIANTS) + ("runlocal", "regression", "bc", "acting",
                                                 "scenes", "wrist")
  unknown = [p for p in parts if p not in known]
  if unknown:
    raise ValueError(f"Unknown wam config argument(s) {unknown}; use a variant from "
                     f"{tuple(wam_config.VARIANTS)}, a task from {TASKS}, 'regression', 'bc', "
                     "'acting', 'scenes', 'wrist' and/or 'runlocal'.")
  runlocal = "runlocal" in parts
  variant = next((p for p in parts if p in wam_config.VARIANTS), "toy" if runlocal else "small")
  config = trainer.default_config()
  config.model = wam_config.model_config(variant)
  if "regression" in parts:
    config.model.objective = "regression"
  # Where the data comes from (read by experiments.train, not by the library trainer).
  task = next((p for p in parts if p in TASKS), "reach")
  config.dojo = config_dict.ConfigDict(dict(
      task=task, num_episodes=1000,
      cameras=("front", "wrist"), image_size=(64, 64), noise=0.1, seed=0,
      val_fraction=0.05, data_dir="", weight=1.0,
      # Demonstrations use the "seen" instruction combinations only, so closed-loop
      # evaluation (experiments.evaluate) can test held-out ones.
      instructions="seen",
      # Arm tasks: "absolute" joint targets or "relative" offsets from the current
      # joint angles (dojo.tasks.arm); "" keeps the task's default (absolute).
      joint_actions="",
      # reach only: the instructed target's position as the proprio slot `reach_target`.
      # With model.predict_only naming it (as `acting` does) it is a training target the
      # model never reads; without, a perception oracle for diagnosis (docs/RESULTS.md).
      observe_target=False,
      # Comma-separated datasets written by experiments.collect
      # (<workdir>/tfds/dojo_robot/<task>_collected/1.0.0): trained on as they are
      # (demonstrations, weight `weight` each); nothing is built, the mixture is unused.
      collected=""))
  # Data that teaches what actions do (docs/controllability.md): perturbed experts
  # that recover (DART) and joint-space play, each a dataset of the mixture with its
  # own weight (experiments/lib/train.py; policies in dojo.play).
  config.dojo.mixture = config_dict.ConfigDict(dict(
      dart=dict(policy="dart", noise=PLAY_NOISE[task][0], num_episodes=1000, weight=1.0),
      play=dict(policy="waypoints", noise=PLAY_NOISE[task][1], num_episodes=2000,
                weight=1.0)))
  if task in WIDE_PLAY:
    config.dojo.mixture.wide = dict(policy="waypoints", noise=WIDE_PLAY[task],
                                    num_episodes=1000, weight=1.0)
  config.data.cameras = ("front", "wrist")
  config.data.image_size = (64, 64)
  config.data.num_frames = 4
  config.data.action_chunk = 4
  config.data.batch_size = 64
  config.data.worker_count = 2
  config.num_steps = 100_000
  config.optimizer.learning_rate = 3e-4
  config.optimizer.warmup_steps = 2000
  config.checkpoint_every = 2000
  config.eval.every = 2000

  if runlocal:
    config.dojo.num_episodes = 200
    config.dojo.mixture.dart.num_episodes = 200
    config.dojo.mixture.play.num_episodes = 400
    if "wide" in config.dojo.mixture:
      config.dojo.mixture.wide.num_episodes = 400
    config.dojo.val_fraction = 0.1
    config.dojo.cameras = ("front",)
    config.data.cameras = ("front",)
    config.data.image_size = (32, 32)
    config.data.batch_size = 8
    # Long enough for every instruction of the task (push: 34 bytes, pick_place: 39,
    # rope: 43); the data pipeline refuses a dataset with a longer one.
    config.data.max_instruction_length = _max_instruction_length(task)
    config.data.worker_count = 0
    config.data.read_threads = 2
    config.num_steps = 3500
    config.model.loss_weights.video = 2.0
    config.optimizer.learning_rate = 2e-3
    config.optimizer.warmup_steps = 100
    config.log_every = 50
    config.checkpoint_every = 250
    # Keep every checkpoint: experiments.evaluate scores policies from several steps.
    config.max_checkpoints = 20
    config.eval.every = 500
    config.eval.batch_size = 32
    config.eval.flow_steps = 1
  if "acting" in parts:
    config.dojo.num_episodes = max(config.dojo.num_episodes, 1000)
    # Absolute joint targets sit within a few hundredths of their spread of the current
    # angles: a linear prior from the state spares the transformer copying them.
    config.model.action_prior = "state"
    if task in FLOATING_TARGETS:
      config.dojo.cameras = config.data.cameras = ("front", "head")
      # The target's position is a training target only: finding it in the frames
      # is what policy mode needs, and the simulator knows the answer.
      config.dojo.observe_target = True
      config.model.predict_only = ("reach_target",)
    if task in RELATIVE_JOINTS:
      config.dojo.joint_actions = "relative"
      # OU noise in offset units (0.25 rad each): about 0.075 rad, as the absolute
      # recipe's 0.03 of the +-2.9 rad range.
      config.dojo.mixture.dart.noise = 0.3
    if runlocal:
      config.num_steps = 4000
  if "scenes" in parts:
    config.dojo.mixture.scenes = dict(policy="waypoints", noise=PLAY_NOISE[task][1],
                                      num_episodes=3000, num_steps=20, weight=1.0)
  if "wrist" in parts and "wrist" not in config.dojo.cameras:
    config.dojo.cameras = config.data.cameras = tuple(config.dojo.cameras) + ("wrist",)
  if "bc" in parts:
    # The behaviour-cloning baseline (VLA-style): the same backbone and inputs, trained
    # on the action chunk alone (always in policy mode, no video or joint targets). Set
    # last, so that no size part (runlocal's video weight) turns a loss back on.
    config.model.loss_weights.video = 0.0
    config.model.loss_weights.state = 0.0
    config.model.given_action_prob = 0.0
    config.dojo.mixture = config_dict.ConfigDict()  # BC imitates the demonstrations only
  return config


def sweep(add):
  """Objective x model size (used by the sweep launcher of a later stage)."""
  for objective in ("flow", "regression"):
    for variant in ("toy", "tiny"):
      # The variant's every dim, not only its label (wam.config.variant_overrides).
      add(f"{objective}-{variant}",
          **{"model.objective": objective, **wam_config.variant_overrides(variant)})
