r"""Closed-loop evaluation in MJX physics: policy mode, BC, dreaming and the oracle.

Command (after training the WAM and the BC baseline):

  python -m experiments.train --config=experiments/configs/wam.py:runlocal \
      --workdir=workdir/wam
  python -m experiments.train --config=experiments/configs/wam.py:runlocal,bc \
      --workdir=workdir/bc --config.dojo.data_dir=workdir/wam/tfds
  python -m experiments.evaluate --config=experiments/configs/evaluate.py:runlocal \
      --workdir=workdir/eval --config.wam=workdir/wam --config.bc=workdir/bc \
      "--config.state_bc=('workdir/wam/tfds/downloads/dojo_robot/reach_200ep_front_64px_noise0p1_seed0_seen/episodes',)"

Argument: `runlocal` (30 episodes per cell, small planners: about an hour on a 2-core
CPU with every part) or nothing (100 episodes per cell).

Controllers (`config.controllers`): `policy` (the WAM generates its chunk with the
frames it expects; receding horizon; real observations re-injected), `bc` (the
behaviour-cloning baseline), `state_bc` (behaviour cloning of the privileged state,
trained here on the demonstration episodes in `config.state_bc`), `dream_cem` (CEM over
action chunks inside the neural simulator built from the WAM), `physics_cem` (CEM inside MJX physics: the oracle) and
`expert` (the scripted expert). Each runs on `seen` instruction combinations (those of
the demonstrations) and on held-out `unseen` ones.

Also (each skipped when set to 0 or ()): `controllability` (the dream against MJX under
play and random actions), `policy_evaluation` (policies, including the scripted expert
with graded noise `expert@NOISE`, scored in MJX and in the dream) and `ppo` (PPO trained
in the dream against the same budget in MJX).

Output: `results.json`, `results.md` (success rates with 95% Wilson intervals) and
`videos/<controller>_<split>.gif`. Measured figures are in docs/RESULTS.md.
"""

from ml_collections import config_dict


def get_config(arg: str = "") -> config_dict.ConfigDict:
  """The evaluation config; ``arg``: "" or "runlocal"."""
  if arg not in ("", "runlocal"):
    raise ValueError(f"Unknown evaluate config argument {arg!r}; use '' or 'runlocal'.")
  runlocal = arg == "runlocal"
  return config_dict.ConfigDict(dict(
      wam="",                 # workdir (or checkpoint dir) of the trained WAM
      bc="",                  # workdir of the behaviour-cloning baseline ("" = skip bc)
      # Episode directories (.npz, dojo.collect) of demonstrations for the state-only BC
      # baseline; () skips it.
      state_bc=(),
      # More WAMs acting in policy mode, by controller name: {"scratch": "workdir/x"}.
      policies=config_dict.ConfigDict(),
      task="reach",
      # Arm tasks' joint actions, as the WAM's data had them ("" = the task's default;
      # "relative": offsets from the current joint angles, dojo.tasks.arm).
      joint_actions="",
      observe_target=False,   # reach's perception oracle, as the WAM's data had it
      controllers=("expert", "state_bc", "bc", "policy", "dream_cem", "physics_cem"),
      splits=("seen", "unseen"),
      num_episodes=30 if runlocal else 100,   # 30 per cell: 95% intervals of about +-0.17
      num_chunks=12,          # 12 chunks x 4 steps = 48 control steps (reach: 50)
      cameras=("front",),     # rendered by the physics env; the model reads its own
      image_size=(64, 64),    # the resolution the demonstrations were collected at
      flow_steps=1,
      # How dreams that only score joints and task state (dream_cem, PPO) render frames:
      # "none" skips the frame decoder (dojo.neural.env's fast dynamics path).
      plan_render="none",
      planner=config_dict.ConfigDict(dict(
          method="cem", horizon=3, num_samples=32 if runlocal else 128,
          num_elites=4 if runlocal else 16, iterations=3, init_std=0.2, min_std=0.05,
          smoothing=0.0, discount=1.0,
          # The first plan of an episode: "hold" (the current controls: samples near the
          # robot's pose, where a dream trained on play data is accurate) or "zeros"
          # (the middle of every control range). With init_std 0.2, "hold" took CEM in
          # the reach dream from 0.57 to 0.77 and left CEM in MJX at 1.00 (RESULTS.md).
          start="hold")),
      # RL in dreams: brax PPO inside the neural simulator vs the same budget in MJX
      # (num_timesteps counts chunk steps; 0 skips it).
      ppo=config_dict.ConfigDict(dict(
          num_timesteps=50_000 if runlocal else 2_000_000, num_envs=64, unroll_length=6,
          batch_size=64, num_minibatches=4, num_updates_per_batch=4, learning_rate=1e-3,
          entropy_cost=1e-3, discounting=0.95)),
      # The dream against MJX under play and random actions (dojo.neural.controllability);
      # episodes=0 skips it.
      controllability=config_dict.ConfigDict(dict(episodes=16 if runlocal else 64, chunks=3,
                                                  play_scale=0.2)),
      batch_size=10 if runlocal else 25,   # episodes run side by side
      video_episodes=4,
      # Policy evaluation in dreams: these checkpoints ("wam@STEP" of config.wam,
      # "bc@STEP" of config.bc) act in MJX and in the neural simulator; the correlation
      # of their success rates is reported. () skips it.
      policy_evaluation=("expert@0.0", "expert@2.0", "expert@4.0", "expert@8.0",
                         "wam@500", "wam@3500", "bc@3500"),
      seed=0,
  ))
