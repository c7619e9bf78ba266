"""The 7-DoF arm tasks: kinematics, experts, instruction splits and cameras.

Each env is built once per module and each rollout is compiled once: one batched
rollout per task runs the scripted expert in some envs and uniform random actions in
the others, and one test reads success, distance and reward from its records.
"""

import functools

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from mujoco import mjx

import dojo
from dojo import rollout
from dojo.kinematics import SerialChain, down_frame
from dojo.tasks.arm import ARM_JOINTS, COLOURS, REST_POSE

TASKS = ("reach", "push", "pick_place")
NUM_EXPERT = 16
NUM_RANDOM = 8


@functools.lru_cache(maxsize=None)
def _env(name, **overrides):
  return dojo.load(name, cameras=(), **overrides)


@functools.lru_cache(maxsize=None)
def _rollout(name):
  """Records f32[T, N] of success, distance and reward; the first NUM_EXPERT envs
  follow the expert (noise 0), the rest act at random."""
  env = _env(name)
  run = rollout.make_rollout(
      env, rollout.expert_or_random_policy(env), env.config.episode_length,
      keep=lambda s: {"success": s.metrics["success"], "distance": s.metrics["distance"],
                      "reward": s.reward})
  n = NUM_EXPERT + NUM_RANDOM
  args = {"expert": jnp.arange(n) < NUM_EXPERT, "noise": jnp.zeros(n)}
  first, records, _ = run(jax.random.key(0), n, args)
  out = {k: np.asarray(v) for k, v in records.items()}   # [T, N]
  out["first_distance"] = np.asarray(first["distance"])
  return out


# ---------------------------------------------------------------- kinematics


def test_forward_kinematics_matches_mujoco():
  model = _env("reach").mj_model
  chain = SerialChain(model, "grip", ARM_JOINTS)
  data = mujoco.MjData(model)
  forward = jax.jit(chain.forward)
  rng = np.random.default_rng(0)
  for _ in range(5):
    q = rng.uniform(chain.lower, chain.upper)
    data.qpos[:7] = q
    mujoco.mj_forward(model, data)
    site = model.site("grip").id
    pos, rot = forward(jnp.asarray(q, jnp.float32))
    np.testing.assert_allclose(pos, data.site_xpos[site], atol=1e-5)
    np.testing.assert_allclose(rot.reshape(-1), data.site_xmat[site], atol=1e-5)


def test_forward_kinematics_matches_env_physics():
  env = _env("reach")
  state = jax.jit(env.reset)(jax.random.key(3))
  pos, rot = env.chain.forward(state.data.qpos[:7])
  np.testing.assert_allclose(pos, env.grip_pos(state.data), atol=1e-4)
  np.testing.assert_allclose(
      rot, np.reshape(state.data.site_xmat[env.site_id("grip")], (3, 3)), atol=1e-4)


def test_inverse_kinematics_reaches_pose():
  chain = SerialChain(_env("reach").mj_model, "grip", ARM_JOINTS)
  rest = jnp.asarray(REST_POSE)
  solve = jax.jit(lambda p, yaw: chain.solve(rest, p, down_frame(yaw), rest=rest,
                                             iterations=20, rest_weight=0.0))
  for target, yaw in [((0.45, 0.0, 0.05), 0.0), ((0.35, 0.2, 0.15), 0.6),
                      ((0.55, -0.2, 0.3), -0.8)]:
    q = solve(jnp.asarray(target), yaw)
    pos, rot = chain.forward(q)
    np.testing.assert_allclose(pos, target, atol=3e-3)
    np.testing.assert_allclose(rot, down_frame(yaw), atol=2e-2)
    assert np.all(q >= chain.lower - 1e-6) and np.all(q <= chain.upper + 1e-6)


# ---------------------------------------------------------------- experts


# One test per task reads both halves of the rollout, so that pytest-xdist never
# computes the same rollout in two workers.
@pytest.mark.parametrize("name", TASKS)
def test_expert_succeeds_and_beats_random(name):
  rec = _rollout(name)
  expert, random = slice(0, NUM_EXPERT), slice(NUM_EXPERT, None)
  success = rec["success"][-1, expert]
  assert success.mean() >= 0.9, f"{name}: expert success {success.mean():.2f}"
  final = rec["distance"][-1]
  assert final[expert].mean() < 0.5 * rec["first_distance"][expert].mean()
  assert final[expert].mean() < 0.5 * final[random].mean()
  assert rec["reward"][:, expert].mean() > rec["reward"][:, random].mean()
  assert rec["success"][-1, random].mean() <= 0.25


# ---------------------------------------------------------------- instructions


def _colour_index(rgba):
  palette = np.array(list(COLOURS.values()))
  return int(np.argmin(np.abs(palette - rgba[:3]).sum(-1)))


@pytest.mark.parametrize("name", TASKS)
def test_instruction_splits_and_grounding(name):
  for split in ("seen", "unseen"):
    env = _env(name, instructions=split, randomize_colours=False)
    space = env.instruction_space
    states = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(1), 24))
    ids = np.asarray(states.info["instruction"])
    assert set(ids) <= set(space.split_ids(split).tolist()), (name, split)
    if split == "seen":
      assert len(set(ids)) > 1
    rgba = np.asarray(states.info["geom_rgba"])
    for i, cid in enumerate(ids):
      parts = dict(zip(space.parts, space.combinations[cid]))
      colour = list(COLOURS).index(parts["colour"])
      if name == "reach":
        geom = env.geom_id(f"{parts['shape']}{int(states.info['target_slot'][i]) % 2}")
        np.testing.assert_allclose(states.info["target"][i],
                                   states.data.geom_xpos[i, geom], atol=1e-5)
      elif name == "push":
        geom = env.geom_id(f"block{int(states.info['block'][i])}")
      else:
        geom = env.geom_id(parts["object"])
      assert _colour_index(rgba[i, geom]) == colour, (name, space.text(cid))
      if name != "reach":
        side = 1.0 if parts["target"] == "left" else -1.0
        assert states.info["goal"][i, 1] * side > 0.1, (name, space.text(cid))


# ---------------------------------------------------------------- cameras


def test_three_cameras_render_the_scene():
  env = dojo.load("reach", cameras=("front", "wrist", "head"))
  state = jax.jit(env.reset)(jax.random.key(2))
  images = {c: np.asarray(state.obs[f"pixels/{c}"]) for c in ("front", "wrist", "head")}
  for name, image in images.items():
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert image.std() > 10, name
    # Not just the sky and the table: several distinct colours are visible.
    assert len(np.unique(image.reshape(-1, 3) // 32, axis=0)) >= 6, name
  assert not np.array_equal(images["front"], images["head"])
  # The wrist camera rides on the hand: the dark fingers fill part of its view.
  assert (images["wrist"].max(-1) < 70).mean() > 0.02


@pytest.mark.parametrize("name", TASKS)
def test_scene_compiles_for_both_physics_impls(name):
  # MJX's JAX implementation (the TPU path) lacks some collision pairs, e.g. cylinder-box.
  model = _env(name).mj_model
  for impl in ("jax", "warp"):
    mjx.put_model(model, impl=impl)


def test_observation_sizes():
  env = _env("pick_place")
  sizes = env.observation_size
  assert sizes["joints"] == (9,)
  assert sizes["proprio"] == (9 + 5 + 6,)   # velocities, grasp point..., 2 object positions
  assert env.data_slots()["proprio"] == [("dojo_arm_proprio", 14), ("pick_place_objects", 6)]


def test_object_positions_are_observed_and_can_be_written_back():
  env = _env("push")
  state = env.reset(jax.random.key(0))
  blocks = env.object_positions(state.data)
  np.testing.assert_allclose(state.obs["proprio"][-6:], blocks)
  moved = env.with_object_positions(state.data, blocks + 0.1)
  np.testing.assert_allclose(env.object_positions(moved), blocks + 0.1, atol=1e-6)
  assert _env("reach").data_slots()["proprio"] == [("dojo_arm_proprio", 14)]
  assert env.action_size == 8


def test_reach_can_report_its_target_as_a_named_proprio_slot():
  env = _env("reach", observe_target=True)
  state = env.reset(jax.random.key(0))
  assert env.data_slots()["proprio"] == [("dojo_arm_proprio", 14), ("reach_target", 3)]
  np.testing.assert_allclose(state.obs["proprio"][-3:], state.info["target"])


# ---------------------------------------------------------------- relative joint actions


def test_relative_joint_actions_are_offsets_from_the_joints():
  task = _env("reach", joint_actions="relative").unwrapped
  state = task.reset(jax.random.key(1))
  q = state.data.qpos[task._arm_qpos]
  action = jnp.array([0.4, -0.2, 0.0, 1.0, -1.0, 0.1, 0.0, 0.5])
  ctrl = task.action_to_ctrl(state.data, action)
  np.testing.assert_allclose(ctrl[:7], q + 0.25 * action[:7], atol=1e-6)
  np.testing.assert_allclose(task.ctrl_to_action(ctrl, state.data), action, atol=1e-5)
  # Holding the controls the episode starts with is the zero offset (they equal the pose).
  np.testing.assert_allclose(task.ctrl_to_action(state.data.ctrl, state.data)[:7], 0.0,
                             atol=1e-5)
  with pytest.raises(ValueError, match="needs `data`"):
    task.ctrl_to_action(ctrl)
  with pytest.raises(ValueError, match="Unknown joint_actions"):
    dojo.load("reach", cameras=(), joint_actions="delta")


def test_expert_succeeds_with_relative_joint_actions():
  env = _env("push", joint_actions="relative")
  rate = rollout.success_rate(env, rollout.expert_policy(env, 0.1), num_episodes=8,
                              num_steps=env.config.episode_length, seed=0)
  assert rate >= 0.85, rate
