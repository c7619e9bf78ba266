r"""The main job: human video -> world action model -> robot, dreaming, and a scaling fit.

Command (`make demo` runs it):

  python -m experiments.great_parallel \
      --config=experiments/configs/great_parallel.py:runlocal --workdir=workdir/demo

Stages (experiments/lib/great_parallel.py): synthetic egocentric human video;
Dojo data of three robot tasks (`reach`, `push`, `dex_lift`: scripted demonstrations,
DART-perturbed experts and joint-space play, docs/controllability.md); pre-training the
world action model on the human video; post-training one multi-task robot model from
it, next to the same post-training from scratch; acting in MJX physics on every task
(the ladder: scripted expert, state-only BC, the WAM in policy mode, CEM inside its
dream and inside MJX) with the dream's motion gain against physics, policy evaluation
and PPO inside the dream; a sweep of pre-training runs over hours of human video as
separate processes, fitted with L = a + b log D and a saturating power law. Writes
`report.md` (tables, plots, GIFs of episodes beside their dreams) and `report.json`
(`acting.<task>.success.<controller>.<split>`, `acting.<task>.motion_gain.{play,random}`,
`policy_evaluation.pearson`, `rl_in_dreams.{dream,mjx}`, ...). Re-running the command
skips finished stages and resumes the others.

Argument: `runlocal` (a toy model, minutes of video and 50 demonstrations per task:
under 40 minutes on an idle 2-core CPU, docs/RESULTS.md) or nothing (the full size, for
a GPU/TPU host); `latent` uses latent actions from a frame-pair VAE instead of the human
hand actions; `recipe` adds the EgoScale mid-training and one-shot stages (see
docs/egoscale_recipe.md); `baseline` keeps the from-scratch post-training that
`runlocal` leaves out to stay within 40 minutes (the full size always has it).

Expected at `runlocal`: every stage finishes; held-out human-video loss falls with
hours across the sweep; the scripted expert and CEM inside MJX succeed on `reach`; the
WAM's dream follows part of the real motion and CEM inside it succeeds in some `reach`
episodes; the WAM in policy mode rarely succeeds after minutes of CPU training (the
measured figures and their reading are in docs/RESULTS.md).
"""

from ml_collections import config_dict

from wam import config as wam_config

STAGES = ("human_data", "robot_data", "pretrain", "posttrain", "scratch", "acting",
          "scaling", "report")
RECIPE_STAGES = ("human_data", "robot_data", "pretrain", "midtrain", "posttrain", "scratch",
                 "oneshot", "acting", "scaling", "report")
ARGS = ("runlocal", "latent", "recipe", "baseline")


def get_config(arg: str = "") -> config_dict.ConfigDict:
  """The job config; ``arg`` as in the module docstring (comma-separated)."""
  parts = [p for p in arg.split(",") if p]
  unknown = [p for p in parts if p not in ARGS]
  if unknown:
    raise ValueError(f"Unknown great_parallel argument(s) {unknown}; use any of {ARGS}.")
  runlocal = "runlocal" in parts
  c = config_dict.ConfigDict()
  c.arg = arg
  c.stages = RECIPE_STAGES if "recipe" in parts else STAGES
  if runlocal and not {"recipe", "baseline"} & set(parts):
    # The from-scratch baseline (6 minutes here) is left out of the 40-minute CPU job;
    # `baseline` (or `recipe`, whose one-shot stage needs it) brings it back.
    c.stages = tuple(name for name in c.stages if name != "scratch")
  if "latent" in parts:
    c.stages = c.stages[:2] + ("latent",) + c.stages[2:]
  c.seed = 0
  c.data_dir = ""                 # "" = <workdir>/data
  # One head-mounted view for both sources: the Dojo hand's `head` camera and the
  # human's head camera share the slot, so the video model transfers.
  c.camera = "head"
  c.image_size = (32, 32) if runlocal else (64, 64)
  c.model = wam_config.model_config("toy" if runlocal else "small")

  c.human = config_dict.ConfigDict(dict(
      hours=0.4 if runlocal else 20.0, fps=10.0, episode_length=48 if runlocal else 64,
      tasks=("reach", "grasp", "move", "push", "pour", "fold"),
      # hand: wrist motion + keypoints; latent: the latent-action VAE's (the VAE never
      # sees the hand labels; they only score its linear probe).
      actions="latent" if "latent" in parts else "hand",
      seed=0, val_fraction=0.1))
  # The robot: scripted demonstrations of every acting task plus data that teaches what
  # actions do (DART-perturbed experts and joint-space play, docs/controllability.md),
  # one dataset each, for one multi-task world action model. Only the demonstrations
  # are policy-mode targets. `task` is the EgoScale recipe's target (midtrain, oneshot).
  c.robot = config_dict.ConfigDict(dict(
      task="dex_lift", tasks=("reach", "push", "dex_lift"),
      num_episodes=50 if runlocal else 1000, noise=0.1,
      dart_episodes=50 if runlocal else 1000, play_episodes=100 if runlocal else 2000,
      seed=0, val_fraction=0.1))
  c.latent = config_dict.ConfigDict(dict(
      latent_dim=8 if runlocal else 32, num_steps=1500 if runlocal else 20_000,
      batch_size=64, max_episodes=0))

  c.train = config_dict.ConfigDict(dict(
      num_frames=4, action_chunk=4, batch_size=8 if runlocal else 64,
      max_instruction_length=48, learning_rate=2e-3 if runlocal else 3e-4,
      warmup_steps=100 if runlocal else 2000, log_every=50, eval_batch_size=32,
      peak_flops=0.0))
  c.pretrain = config_dict.ConfigDict(dict(num_steps=700 if runlocal else 100_000))
  c.midtrain = config_dict.ConfigDict(dict(
      num_steps=300 if runlocal else 20_000, human_hours=0.05 if runlocal else 50.0,
      human_tasks=("grasp",), robot_episodes=8 if runlocal else 200, human_weight=0.5))
  c.posttrain = config_dict.ConfigDict(dict(num_steps=1200 if runlocal else 50_000))
  c.oneshot = config_dict.ConfigDict(dict(
      num_steps=300 if runlocal else 5_000, robot_episodes=1, human_hours=0.02 if runlocal
      else 2.0, human_weight=0.5))
  # The ladder of controllers on every task, in MJX physics from the same initial states
  # (experiments/lib/great_parallel_acting.py): the scripted expert, state-only BC, the
  # WAM in policy mode (post-trained, and from scratch), CEM inside the WAM's dream and
  # the same CEM inside MJX (the oracle); how well the dream follows actions; policy
  # evaluation and PPO in the dream of `rank_task`.
  c.acting = config_dict.ConfigDict(dict(
      tasks=("reach", "push", "dex_lift"),
      # scratch_policy (the model post-trained without human pre-training) is left out
      # at runlocal to keep the job within 40 minutes.
      controllers=("expert", "bc", "wam_policy", "dream_planner", "mjx_planner") + (
          () if runlocal else ("scratch_policy",)),
      splits=("seen", "unseen"), num_episodes=10 if runlocal else 100,
      num_chunks=dict(reach=12, push=25, dex_lift=15), batch_size=10 if runlocal else 25,
      cem_samples=32 if runlocal else 128, cem_elites=4 if runlocal else 16,
      controllability_episodes=16 if runlocal else 64,
      rank_task="reach",
      policy_evaluation=("expert@0.0", "expert@2.0", "expert@4.0", "expert@8.0",
                         "expert@16.0", "wam_policy"),
      ppo_timesteps=20_000 if runlocal else 2_000_000,
      # Where the planners run ((): everywhere). CEM inside MJX physics is the costliest
      # part on a CPU: 585 s for one split of `dex_lift` here (10 episodes), where it
      # lifted nothing, and 254 s in the dream on `push` (25 chunks); at runlocal the
      # planners run on the seen split of reach.
      planner_tasks=("reach",) if runlocal else (),
      planner_splits=("seen",) if runlocal else (),
      # Work units (per task and split, ranking, PPO) evaluated side by side in separate
      # processes: compiling, most of the time on a CPU, is one core's work.
      workers=3 if runlocal else 1))
  # Pre-training at several data scales with compute that grows with the data (a fixed
  # number of passes over it: steps = steps_per_hour x hours, EgoScale's regime): with
  # equal steps the largest sets are seen less than once and the curve flattens toward
  # what the steps allow, not what the data holds (docs/RESULTS.md, "Scaling").
  # The fitted quantity is EgoScale's: the held-out action loss on human video.
  # Scales: fractions of the human set's training episodes (nested subsets), 16x apart.
  c.scaling = config_dict.ConfigDict(dict(
      fractions=(1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0),
      steps_per_hour=1600 if runlocal else 2500, min_steps=40,
      metric="eval/loss/action", workers=1))
  return c
