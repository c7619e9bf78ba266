r"""The imitation ladder: how well can a policy that sees the true state imitate the expert?

  python -m benchmarks.imitation --out=benchmarks/imitation_cpu.json [--task=reach] \
      [--joint_actions=relative] \
      [--demos=50,200,1000] [--episodes=30]

The rung below pixel policies (docs/RESULTS.md, "Why policy mode fails"): state-only
BC (``dojo.state_bc``) reads the privileged robot and task state, so whatever it cannot
do is a matter of demonstrations, not of perception or dynamics. Rows, each scored in
MJX over ``--episodes`` episodes of the seen instructions:

- ``demos``: BC on N noisy-expert demonstrations (noise 0.1, as the datasets; the label
  is the executed action chunk), for each N in ``--demos``;
- ``relative``: the same demonstrations with the arm's joint targets predicted relative
  to the current joint angles (openpi's delta actions), for arm tasks;
- ``dart``: the demonstrations plus as many DART episodes (the expert under OU action
  noise of ``--dart_noise``), labelled with the clean expert's plan from each perturbed
  state (Laskey et al. 2017), not with the executed action;
- ``views:<cameras>`` (``reach``, the most demonstrations): the targets' 3D positions
  replaced by where they appear in those cameras' images (normalised image coordinates):
  a perfect detector of what a pixel policy with those cameras could see. One camera
  leaves each target's depth along its viewing ray unknown.
- ``target_noise:<metres>`` (``reach``, the most demonstrations, BC trained on the true
  state): evaluated with every target's position misperceived by a fixed random offset
  per episode whose RMS length is that many metres (``--target_noise``): how precisely
  must a policy perceive the targets? Compare ``benchmarks.policy_precision``'s
  ``predict_only.reach_target.rms`` of a WAM.

Collection here renders nothing, so it takes seconds per hundred episodes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from absl import app, flags

import dojo
from benchmarks import results as results_lib
from dojo import closed_loop, state_bc
from dojo.tasks.arm import ArmTask

_OUT = flags.DEFINE_string("out", "benchmarks/imitation_cpu.json", "JSON results file.")
_TASK = flags.DEFINE_string("task", "reach", "Dojo task.")
_DEMOS = flags.DEFINE_list("demos", ["50", "200", "1000"], "Demonstration counts.")
_EPISODES = flags.DEFINE_integer("episodes", 30, "Evaluation episodes per row.")
_CHUNK = flags.DEFINE_integer("chunk", 4, "Actions per observation (as the WAM's).")
_STEPS = flags.DEFINE_integer("steps", 5000, "BC training steps.")
_DART_NOISE = flags.DEFINE_float("dart_noise", 0.03,
                                 "OU std of the DART row (action units); 0 skips it.")
_JOINT_ACTIONS = flags.DEFINE_string(
    "joint_actions", "", "Arm tasks: 'absolute' or 'relative' joint actions (default: the "
    "task's own).")
_VIEWS = flags.DEFINE_list("views", ["front", "head", "front+head"],
                           "World-fixed camera sets of the reach view rows ('+'-joined).")
_TARGET_NOISE = flags.DEFINE_list("target_noise", ["0.02", "0.04", "0.075"],
                                  "RMS target misperception (m) of the reach noise rows.")


def expert_plan(task, state, key: jax.Array, chunk: int) -> jax.Array:
  """The clean expert's next ``chunk`` actions f32[K, A], planned on a copy of ``state``."""
  def one(s, k):
    action = task.expert_action(s, k, 0.0)
    return task.step(s, action), action
  return jax.lax.scan(one, state, jax.random.split(key, chunk))[1]


def collect(task, rng: jax.Array, num_episodes: int, chunk: int, dart_noise: float = 0.0,
            theta: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
  """(privileged state, label chunk f32[K, A]) pairs from ``num_episodes`` episodes.

  Without ``dart_noise`` the expert acts with noise 0.1 and the label is the executed
  chunk; with it, OU noise is added to every executed action and the label is the
  clean expert's plan of ``chunk`` actions from the state reached.
  """
  steps = task.config.episode_length - chunk

  def episode(key):
    k_reset, k_steps = jax.random.split(key)
    first = task.reset(k_reset)

    def step(carry, key):
      state, noise = carry
      k_plan, k_noise, k_act = jax.random.split(key, 3)
      noise = noise - theta * noise + dart_noise * jnp.sqrt(2 * theta) * jax.random.normal(
          k_noise, noise.shape)
      action = jnp.clip(task.expert_action(state, k_act, 0.1) + noise, -1.0, 1.0)
      label = expert_plan(task, state, k_plan, chunk) if dart_noise else jnp.zeros((chunk, action.shape[0]))
      return (task.step(state, action), noise), (state.obs["privileged"], action, label)

    noise0 = jnp.zeros((task.action_size,))
    _, (obs, actions, labels) = jax.lax.scan(step, (first, noise0),
                                             jax.random.split(k_steps, steps + chunk))
    if not dart_noise:   # the executed chunk t..t+K-1
      labels = jnp.stack([actions[j:j + steps] for j in range(chunk)], 1)
    return obs[:steps], labels[:steps]

  obs, labels = jax.jit(jax.vmap(episode))(jax.random.split(rng, num_episodes))
  return (np.asarray(obs).reshape(-1, obs.shape[-1]),
          np.asarray(labels).reshape(-1, chunk, labels.shape[-1]))


def _joints_as_actions(task: ArmTask, obs: jax.Array) -> jax.Array:
  """The arm's current joint angles in action units (the gripper's entry is 0)."""
  q = task.ctrl_to_action(jnp.concatenate([obs[..., :7], jnp.zeros(obs.shape[:-1] + (1,))],
                                          -1))
  return q.at[..., 7].set(0.0)


# Reach's privileged state: robot state (23), target (3), the four targets (4 x 3), which
# of them is the target (one-hot, 4); ``dojo.tasks.reach.Reach._privileged``.
_REACH_ROBOT, _REACH_SIZE = 23, 42


def _camera_poses(task, names: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
  """(position, rotation whose columns are the camera axes) of world-fixed cameras."""
  model = task.unwrapped.mj_model
  data = mujoco.MjData(model)
  mujoco.mj_forward(model, data)
  return [(data.cam_xpos[model.camera(n).id].copy(),
           data.cam_xmat[model.camera(n).id].reshape(3, 3).copy()) for n in names]


def view_features(poses: list[tuple[np.ndarray, np.ndarray]]
                  ) -> Callable[[jax.Array], jax.Array]:
  """Reach's privileged state with each target seen as image coordinates in ``poses``."""
  def features(obs):
    if obs.shape[-1] != _REACH_SIZE:
      raise ValueError(f"View rows need reach's privileged state ({_REACH_SIZE}), got "
                       f"{obs.shape}.")
    points = obs[..., _REACH_ROBOT:_REACH_ROBOT + 15].reshape(obs.shape[:-1] + (5, 3))
    seen = []
    for pos, rot in poses:
      p = (points - pos) @ rot          # camera frame; MuJoCo cameras look along -z
      seen.append((p[..., :2] / -p[..., 2:]).reshape(obs.shape[:-1] + (10,)))
    return jnp.concatenate([obs[..., :_REACH_ROBOT], *seen, obs[..., -4:]], -1)
  return features


def misperceived_targets(rms: float) -> Callable[[jax.Array], jax.Array]:
  """Reach's privileged state with the four targets moved by an offset of RMS length
  ``rms`` metres that is fixed per episode (drawn from a key made of the true positions,
  which do not change within one) and the instructed target moved with its own."""
  def one(obs):
    points = obs[_REACH_ROBOT + 3:_REACH_ROBOT + 15].reshape(4, 3)
    seed = jax.lax.bitcast_convert_type(points, jnp.int32).sum()
    points = points + rms / np.sqrt(3.0) * jax.random.normal(jax.random.key(seed), (4, 3))
    target = obs[-4:] @ points   # the one-hot picks the instructed target
    return jnp.concatenate([obs[:_REACH_ROBOT], target, points.reshape(-1), obs[-4:]])

  def features(obs):
    if obs.shape[-1] != _REACH_SIZE:
      raise ValueError(f"Noise rows need reach's privileged state ({_REACH_SIZE}), got "
                       f"{obs.shape}.")
    return jnp.vectorize(one, signature="(n)->(n)")(obs)
  return features


class MappedBC:
  """A state BC policy on ``features(privileged state)`` whose chunk is added to
  ``offset(privileged state)`` (zeros: absolute actions)."""

  def __init__(self, policy: state_bc.StateBC,
               features: Callable[[jax.Array], jax.Array] = lambda x: x,
               offset: Callable[[jax.Array], jax.Array] | None = None):
    self.policy, self.features, self.offset, self.chunk = policy, features, offset, policy.chunk

  def init(self, state):
    return self.policy.init(state)

  def act(self, carry, state, rng):
    obs = state.obs["privileged"]
    chunk = self.policy.predict(self.features(obs)).reshape(self.chunk, -1)
    if self.offset is not None:
      chunk = chunk + self.offset(obs)[None]
    return jnp.clip(chunk, -1.0, 1.0), carry


def main(argv):
  del argv
  overrides = {"joint_actions": _JOINT_ACTIONS.value} if _JOINT_ACTIONS.value else {}
  task = dojo.load(_TASK.value, cameras=(), instructions="seen", **overrides)
  chunk, config = _CHUNK.value, state_bc.StateBCConfig(chunk=_CHUNK.value, steps=_STEPS.value)
  counts = sorted(int(n) for n in _DEMOS.value)
  start = time.time()
  obs, labels = collect(task, jax.random.key(10), counts[-1], chunk)
  pairs = len(obs) // counts[-1]
  print(f"collected {counts[-1]} demonstrations in {time.time() - start:.0f} s", flush=True)
  rows = []

  def score(name: str, demos: int, controller, extra: dict | None = None):
    t = time.time()
    out = closed_loop.run_episodes(task, controller, jax.random.key(1), _EPISODES.value,
                                   task.config.episode_length // chunk)
    summary = closed_loop.summarize(out)
    row = {"task": _TASK.value, "row": name, "demos": demos, **overrides, **(extra or {}),
           "success_rate": summary["success_rate"], "ci95": summary["ci95"],
           "episodes": summary["episodes"], "eval_seconds": round(time.time() - t, 1)}
    print(json.dumps(row), flush=True)
    rows.append(row)

  flat = lambda y: y.reshape(len(y), -1)
  policies = {}
  for n in counts:
    o, y = obs[:n * pairs], labels[:n * pairs]
    policies[n] = state_bc.train(o, flat(y), config)
    score("demos", n, policies[n])
  n = counts[len(counts) // 2]
  o, y = obs[:n * pairs], labels[:n * pairs]
  if isinstance(task.unwrapped, ArmTask) and task.config.joint_actions == "absolute":
    offsets = y - np.asarray(_joints_as_actions(task.unwrapped, o))[:, None]
    score("relative", n, MappedBC(state_bc.train(o, flat(offsets), config),
                                  offset=lambda x: _joints_as_actions(task.unwrapped, x)))
  if _DART_NOISE.value:
    dart_obs, dart_labels = collect(task, jax.random.key(20), n, chunk, _DART_NOISE.value)
    score("dart", n, state_bc.train(np.concatenate([o, dart_obs]),
                                    flat(np.concatenate([y, dart_labels])), config),
          {"dart_episodes": n, "dart_noise": _DART_NOISE.value})
  if _TASK.value == "reach":
    for views in _VIEWS.value:
      features = view_features(_camera_poses(task, views.split("+")))
      o = np.asarray(features(jnp.asarray(obs)))
      score(f"views:{views}", counts[-1],
            MappedBC(state_bc.train(o, flat(labels), config), features))
    for rms in _TARGET_NOISE.value:
      score(f"target_noise:{rms}", counts[-1],
            MappedBC(policies[counts[-1]], misperceived_targets(float(rms))),
            {"target_rms_m": float(rms)})
  results_lib.write_json(_OUT.value, rows)


if __name__ == "__main__":
  app.run(main)
