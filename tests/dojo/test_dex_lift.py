"""The dexterous hand lift task: model, expert, instruction splits and cameras.

The env is built once per module and the rollout is compiled once: one batched rollout
runs the scripted expert in some envs and uniform random actions in the others, and the
tests read success and reward from its records.
"""

import functools

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

import dojo
from dojo import rollout
from dojo.tasks.dex_lift import COLOURS, FINGER_JOINTS, OBJECTS, DexLift

NUM_EXPERT = 16
NUM_RANDOM = 8
# Warp's contact budget counts all worlds of a batch; a small batch needs little.
SMALL = dict(naconmax=(NUM_EXPERT + NUM_RANDOM) * 256, njmax=200)


@functools.lru_cache(maxsize=None)
def _env(**overrides):
  return dojo.load("dex_lift", **{"cameras": (), **SMALL, **overrides})


@pytest.fixture(scope="module")
def records():
  """f32[T, N] success, height and reward: the first NUM_EXPERT envs follow the clean
  expert, the rest act at random."""
  env = _env()
  run = rollout.make_rollout(
      env, rollout.expert_or_random_policy(env), env.config.episode_length,
      keep=lambda s: {"success": s.metrics["success"], "reward": s.reward,
                      "height": s.metrics["height"],
                      "unstable": s.metrics["physics_unstable"]})
  n = NUM_EXPERT + NUM_RANDOM
  args = {"expert": jnp.arange(n) < NUM_EXPERT, "noise": jnp.zeros(n)}
  _, out, _ = run(jax.random.key(0), n, args)
  return {k: np.asarray(v) for k, v in out.items()}   # [T, N]


# ---------------------------------------------------------------- the model


def test_hand_has_at_least_16_actuated_joints():
  env = _env()
  model = env.mj_model
  actuated = {int(model.actuator_trnid[i, 0]) for i in range(model.nu)
              if model.actuator_trntype[i] == mujoco.mjtTrn.mjTRN_JOINT}
  assert len(actuated) == model.nu == env.action_size == 24
  fingers = {model.joint(name).id for name in FINGER_JOINTS}
  assert len(fingers) == 20 and fingers <= actuated
  for name in FINGER_JOINTS:   # plausible ranges: within [-0.7, 2.1] rad
    lo, hi = model.joint(name).range
    assert -0.7 <= lo < hi <= 2.1, name
  assert env.observation_size["joints"] == (24,)
  # Velocities, palm position and the two objects' positions.
  assert env.observation_size["proprio"] == (24 + 3 + 6,)


def test_no_self_collision_and_objects_touch_the_table():
  model = _env().mj_model
  hand = [i for i in range(model.ngeom) if model.geom_contype[i] == 2]
  for i in hand:
    for j in hand:
      assert not (model.geom_contype[i] & model.geom_conaffinity[j]), (i, j)
  objects = [model.geom(o).id for o in OBJECTS]
  for a, b in (objects, objects[::-1]):   # the objects never touch each other
    assert not (model.geom_contype[a] & model.geom_conaffinity[b])
  data = mujoco.MjData(model)
  for name in OBJECTS:   # just into the table, as at rest under gravity
    data.qpos[model.jnt_qposadr[model.joint(name).id] + 2] -= 1e-3
  mujoco.mj_forward(model, data)
  touching = {model.geom(c.geom2).name for c in data.contact[:data.ncon]}
  assert set(OBJECTS) <= touching


def test_relative_wrist_actions_round_trip():
  env = _env()
  state = jax.jit(env.reset)(jax.random.key(3))
  ctrl = state.data.ctrl + jnp.concatenate([jnp.array([0.01, -0.01, 0.005, 0.05]),
                                            jnp.zeros(20)])
  ctrl = ctrl.at[4:].set(env._ctrl_mid[4:])
  action = env.ctrl_to_action(ctrl, state.data)
  np.testing.assert_allclose(env.action_to_ctrl(state.data, action), ctrl, atol=1e-6)


def test_jax_impl_steps_like_warp():
  """The scene also runs under MJX's JAX implementation (the TPU path): one step."""
  warp, jax_env = _env(), _env(impl="jax")
  assert (warp.impl, jax_env.impl) == ("warp", "jax")
  key = jax.random.key(4)
  states = [jax.jit(e.reset)(key) for e in (warp, jax_env)]
  action = warp.expert_action(states[0], key)
  after = [jax.jit(e.step)(s, action) for e, s in zip((warp, jax_env), states)]
  warp_priv, jax_priv = (np.asarray(a.obs["privileged"]) for a in after)
  positions = np.r_[0:24, 48:55]   # hand joints, object position and quaternion
  np.testing.assert_allclose(warp_priv[positions], jax_priv[positions], atol=1e-3)
  np.testing.assert_allclose(warp_priv, jax_priv, atol=0.05)   # velocities too


# ---------------------------------------------------------------- expert


def test_expert_lifts_and_beats_random(records):
  success = records["success"][-1]
  assert success[:NUM_EXPERT].mean() >= 0.9, success[:NUM_EXPERT]
  assert success[NUM_EXPERT:].mean() <= 0.25
  assert records["unstable"].max() == 0
  assert records["height"][-1, :NUM_EXPERT].min() > -0.02   # nothing knocked over
  returns = records["reward"].sum(0)
  assert returns[:NUM_EXPERT].mean() > 2 * returns[NUM_EXPERT:].mean()


def test_expert_is_jittable_and_pure():
  env = _env()
  state = jax.jit(env.reset)(jax.random.key(0))
  act = jax.jit(env.expert_action, static_argnums=2)
  a1 = act(state, jax.random.key(1), 0.0)
  a2 = act(state, jax.random.key(2), 0.0)
  np.testing.assert_array_equal(a1, a2)     # noise 0 ignores the rng
  noisy = act(state, jax.random.key(1), 0.1)
  assert a1.shape == (24,) and np.all(np.abs(noisy) <= 1.0)
  assert not np.allclose(a1, noisy)


# ---------------------------------------------------------------- instructions


def test_instruction_splits_and_colour_grounding():
  space = DexLift.instruction_space
  held = {space.combinations.index(c) for c in space.held_out}
  assert held and len(space.combinations) == len(COLOURS) * len(OBJECTS)
  env = _env(instructions="unseen", randomize_colours=False)
  states = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(1), 16))
  ids = np.asarray(states.info["instruction"])
  assert set(ids.tolist()) <= held
  seen = jax.vmap(lambda k: space.sample(k, "seen"))(jax.random.split(jax.random.key(2), 64))
  assert not set(np.asarray(seen).tolist()) & held
  # The target object wears the instruction's colour, the other object another one.
  rgba = np.asarray(states.info["geom_rgba"])
  targets = np.asarray(states.info["target"])
  geoms = [env.geom_id(o) for o in OBJECTS]
  palette = np.array(list(COLOURS.values()), np.float32)
  for i, combo in enumerate(ids):
    colour = np.asarray(space.part(combo, "colour"))
    assert OBJECTS[targets[i]] == space.combinations[combo][1]
    np.testing.assert_allclose(rgba[i, geoms[targets[i]], :3], palette[colour])
    assert not np.allclose(rgba[i, geoms[1 - targets[i]], :3], palette[colour])
    assert env.instruction(combo).startswith("lift the ")


# ---------------------------------------------------------------- cameras


def test_three_cameras_render_the_scene():
  env = _env(cameras=("front", "wrist", "head"), image_height=32, image_width=32)
  state = jax.jit(env.reset)(jax.random.key(0))
  skin = np.array([0.93, 0.78, 0.66]) * 255
  for cam in ("front", "wrist", "head"):
    image = np.asarray(state.obs[f"pixels/{cam}"])
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    assert image.std() > 10, cam
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 20, cam
  # The hand (skin-coloured, shaded) shows up in the wrist camera.
  wrist = np.asarray(state.obs["pixels/wrist"]).astype(np.float32)
  ratio = wrist / np.maximum(wrist[..., :1], 1.0)
  skin_ratio = skin / skin[0]
  assert np.any(np.all(np.abs(ratio - skin_ratio) < 0.06, axis=-1))
