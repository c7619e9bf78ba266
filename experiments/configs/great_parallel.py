r"""The main job: human video -> world action model -> robot, dreaming, and a scaling fit.

Command (`make demo` runs it):

  python -m experiments.great_parallel \
      --config=experiments/configs/great_parallel.py:runlocal --workdir=workdir/demo

Stages (experiments/recipe.py): synthetic egocentric human video and Dojo demonstrations
of the dexterous `dex_lift` task; pre-training the world action model on the human video;
post-training it on the robot demonstrations, next to the same post-training from
scratch; the closed loop in MJX physics (both models in policy mode, CEM planning inside
the dream, the scripted expert and the physics oracle); a sweep of pre-training runs over
hours of human video as separate processes, fitted with L = a + b log D and a saturating
power law. Writes `report.md` (tables, plots) and `report.json`. Re-running the command
skips finished stages and resumes the others.

Argument: `runlocal` (a toy model and minutes of video: about 20 minutes on an idle
2-core CPU) or nothing (the full size, for a GPU/TPU host); `latent` uses latent
actions from a frame-pair VAE instead of the human hand actions; `recipe` adds the
EgoScale mid-training and one-shot stages (see experiments/configs/egoscale.py).

Expected at `runlocal`: every stage finishes; held-out human-video loss falls with
hours across the sweep; closed-loop success on dex_lift from a few minutes of CPU
training is low for both models (the measured figures and their reading are in
docs/RESULTS.md).
"""

from ml_collections import config_dict

from wam import config as wam_config

STAGES = ("human_data", "robot_data", "pretrain", "posttrain", "scratch", "dojo",
          "scaling", "report")
RECIPE_STAGES = ("human_data", "robot_data", "pretrain", "midtrain", "posttrain", "scratch",
                 "oneshot", "dojo", "scaling", "report")
ARGS = ("runlocal", "latent", "recipe")


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
  c.robot = config_dict.ConfigDict(dict(
      task="dex_lift", num_episodes=32 if runlocal else 1000, noise=0.1, seed=0,
      val_fraction=0.15))
  c.latent = config_dict.ConfigDict(dict(
      latent_dim=8 if runlocal else 32, num_steps=1500 if runlocal else 20_000,
      batch_size=64, max_episodes=0))

  c.train = config_dict.ConfigDict(dict(
      num_frames=4, action_chunk=4, batch_size=8 if runlocal else 64,
      max_instruction_length=32, learning_rate=2e-3 if runlocal else 3e-4,
      warmup_steps=100 if runlocal else 2000, log_every=50, eval_batch_size=32,
      peak_flops=0.0))
  c.pretrain = config_dict.ConfigDict(dict(num_steps=700 if runlocal else 100_000))
  c.midtrain = config_dict.ConfigDict(dict(
      num_steps=300 if runlocal else 20_000, human_hours=0.05 if runlocal else 50.0,
      human_tasks=("grasp",), robot_episodes=8 if runlocal else 200, human_weight=0.5))
  c.posttrain = config_dict.ConfigDict(dict(num_steps=700 if runlocal else 50_000))
  c.oneshot = config_dict.ConfigDict(dict(
      num_steps=300 if runlocal else 5_000, robot_episodes=1, human_hours=0.02 if runlocal
      else 2.0, human_weight=0.5))
  c.evaluate = config_dict.ConfigDict(dict(
      controllers=("expert", "pretrained", "scratch", "dream_cem"),
      num_episodes=10 if runlocal else 100, num_chunks=15, batch_size=10 if runlocal else 25,
      cem_samples=32 if runlocal else 128, cem_elites=4 if runlocal else 16))
  c.scaling = config_dict.ConfigDict(dict(
      hours=(0.025, 0.05, 0.1, 0.2, 0.4) if runlocal else (1.25, 2.5, 5.0, 10.0, 20.0),
      num_steps=300 if runlocal else 50_000, workers=1))
  return c
