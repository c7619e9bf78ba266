"""The env contract, wrappers, registry and bad-input handling, on the toy task."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dojo
from dojo import physics, rollout, wrappers
from tests.dojo.toy import Toy


@pytest.fixture(scope="module")
def env():
  return Toy(impl="warp")


@pytest.fixture(scope="module")
def batched(env):
  wrapped = wrappers.wrap_for_training(env, episode_length=5)
  return wrapped, jax.jit(wrapped.reset), jax.jit(wrapped.step)


def test_default_impl_is_fast_one_on_cpu():
  assert physics.default_impl("cpu") == "warp"
  assert physics.default_impl("tpu") == "jax"
  with pytest.raises(ValueError, match="Unknown physics impl"):
    physics.resolve_impl("mujoco")


def test_reset_step_observations(env):
  state = jax.jit(env.reset)(jax.random.key(0))
  assert set(state.obs) == {"joints", "proprio", "privileged", "pixels/front"}
  assert state.obs["pixels/front"].shape == (64, 64, 3)
  assert state.obs["pixels/front"].dtype == jnp.uint8
  assert state.obs["joints"].shape == (2,)
  nxt = jax.jit(env.step)(state, jnp.zeros(2))
  assert nxt.info["step"] == 1
  assert set(nxt.metrics) == set(state.metrics)


def test_jax_and_warp_agree_on_small_model(env):
  env_jax = Toy(impl="jax", cameras=())
  env_warp = Toy(impl="warp", cameras=())
  policy = rollout.expert_policy(env_jax)
  results = {}
  for name, e in (("jax", env_jax), ("warp", env_warp)):
    run = rollout.make_rollout(e, policy, 20, keep=lambda s: {"joints": s.obs["joints"]})
    _, records, _ = run(jax.random.key(3), 2)
    results[name] = np.asarray(records["joints"])
  np.testing.assert_allclose(results["jax"], results["warp"], atol=2e-2)
  # Both reach the expert's target.
  np.testing.assert_allclose(results["warp"][-1, :, 0], 0.785, atol=0.1)


def test_wrong_action_shape_is_a_clear_error(env, batched):
  state = env.reset(jax.random.key(0))
  with pytest.raises(ValueError, match=r"action has shape \(3,\), expected \(2,\)"):
    env.step(state, jnp.zeros(3))
  wrapped, reset, _ = batched
  bstate = reset(jax.random.split(jax.random.key(0), 3))
  with pytest.raises(ValueError, match="expected \\(batch, 2\\)"):
    wrapped.step(bstate, jnp.zeros(2))


def test_nan_action_ends_only_that_env(batched):
  _, reset, step = batched
  state = reset(jax.random.split(jax.random.key(0), 3))
  action = jnp.zeros((3, 2)).at[1, 0].set(jnp.nan).at[2, 1].set(jnp.inf)
  # Step the raw (non-auto-reset) path: the NaN env is flagged and done.
  nxt = step(state, action)
  np.testing.assert_array_equal(np.asarray(nxt.metrics["invalid_action"]), [0, 1, 1])
  np.testing.assert_array_equal(np.asarray(nxt.done), [0, 1, 1])
  for leaf in jax.tree.leaves(nxt.obs):
    assert np.all(np.isfinite(np.asarray(leaf, np.float32)))
  # The healthy env moved on normally.
  assert int(nxt.info["step"][0]) == 1
  # After auto-reset the poisoned envs are back at their first state.
  np.testing.assert_allclose(np.asarray(nxt.data.qpos[1]), np.asarray(state.data.qpos[1]))


def test_episode_limit_and_auto_reset(batched):
  _, reset, step = batched
  state = reset(jax.random.split(jax.random.key(1), 2))
  first_qpos = np.asarray(state.data.qpos)
  dones = []
  for _ in range(5):
    state = step(state, jnp.full((2, 2), 0.5))
    dones.append(np.asarray(state.done))
  assert [d.tolist() for d in dones[:4]] == [[0, 0]] * 4
  assert dones[4].tolist() == [1, 1]
  np.testing.assert_array_equal(np.asarray(state.info["truncation"]), [1, 1])
  np.testing.assert_allclose(np.asarray(state.data.qpos), first_qpos)
  assert np.all(np.asarray(state.info["step"]) == 0)  # task counters restart too


def test_vmap_wrapper_splits_one_key(env):
  wrapped = wrappers.VmapWrapper(env, batch_size=3)
  assert wrapped.reset(jax.random.key(0)).reward.shape == (3,)
  assert wrapped.reset(jax.random.PRNGKey(0)).reward.shape == (3,)
  assert wrapped.reset(jax.random.split(jax.random.key(0), 2)).reward.shape == (2,)


def test_action_repeat(env):
  wrapped = wrappers.EpisodeWrapper(wrappers.VmapWrapper(env), episode_length=6,
                                    action_repeat=3)
  state = jax.jit(wrapped.reset)(jax.random.split(jax.random.key(0), 2))
  state = jax.jit(wrapped.step)(state, jnp.zeros((2, 2)))
  assert np.all(np.asarray(state.info["step"]) == 3)
  assert np.all(np.asarray(state.info["steps"]) == 3)


def test_domain_randomisation_batches_models(env):
  keys = jax.random.split(jax.random.key(0), 4)
  fn = functools.partial(env.randomize_model, rng=keys)
  wrapped = wrappers.wrap_for_training(env, episode_length=10, randomization_fn=fn)
  friction = np.asarray(wrapped.env.env._batched_model.geom_friction[:, 0, 0])
  assert len(set(np.round(friction, 5))) == 4
  state = jax.jit(wrapped.reset)(keys)
  state = jax.jit(wrapped.step)(state, jnp.zeros((4, 2)))
  assert state.reward.shape == (4,)


def test_registry_errors():
  with pytest.raises(KeyError, match="Unknown Dojo task 'reech'.*Did you mean.*reach"):
    dojo.load("reech")
  assert {"reach", "push", "pick_place", "dex_lift", "rope"} <= set(dojo.names())


def test_config_typo_and_camera_and_path_errors(tmp_path):
  with pytest.raises(KeyError, match="no config key 'camras'.*cameras"):
    Toy(camras=("front",))
  with pytest.raises(ValueError, match="Unknown camera 'top'.*'front', 'wrist'"):
    Toy(cameras=("top",))

  class Missing(Toy):
    def __init__(self, **kw):
      self.xml_path = str(tmp_path / "nope.xml")
      super(Toy, self).__init__(**kw)  # pylint: disable=bad-super-call

  with pytest.raises(FileNotFoundError, match="nope.xml"):
    Missing()


def test_instruction_splits(env):
  space = env.instruction_space
  assert [space.text(i) for i in space.split_ids("seen")] == ["touch the green point"]
  assert [space.text(i) for i in space.split_ids("unseen")] == ["touch the blue point"]
  unseen = Toy(instructions="unseen", cameras=())
  ids = jax.vmap(unseen.reset)(jax.random.split(jax.random.key(0), 8)).info["instruction"]
  assert set(np.asarray(ids).tolist()) == {1}


def test_success_rate_helper():
  # Joint targets (0, pi/2) put the tip on the goal; zero actions leave it 0.28 away (and
  # Toy's scripted expert stops 0.12 short, so it is no use here). Same seed: the same
  # initial states for both policies.
  env = Toy(impl="warp", cameras=())
  reach = lambda state, rng: env.ctrl_to_action(jnp.array([0.0, jnp.pi / 2]))
  zero = lambda state, rng: jnp.zeros(env.action_size)
  assert rollout.success_rate(env, reach, num_episodes=4, num_steps=15) == 1.0
  assert rollout.success_rate(env, zero, num_episodes=4, num_steps=15) == 0.0


def test_physics_blow_up_keeps_last_finite_state():
  env = Toy(cameras=(), max_qvel=1.0)  # any real motion now counts as a blow-up
  state = jax.jit(env.reset)(jax.random.key(0))
  nxt = jax.jit(env.step)(state, jnp.array([1.0, -1.0]))
  assert float(nxt.metrics["physics_unstable"]) == 1.0
  assert float(nxt.done) == 1.0 and float(nxt.reward) == 0.0
  np.testing.assert_allclose(np.asarray(nxt.data.qpos), np.asarray(state.data.qpos))


def test_action_repeat_keeps_an_early_blow_up():
  env = Toy(cameras=(), max_qvel=1.0)
  wrapped = wrappers.EpisodeWrapper(wrappers.VmapWrapper(env), episode_length=9,
                                    action_repeat=3)
  state = jax.jit(wrapped.reset)(jax.random.split(jax.random.key(0), 2))
  nxt = jax.jit(wrapped.step)(state, jnp.array([[1.0, -1.0], [0.0, 0.0]]))
  assert float(nxt.done[0]) == 1.0 and float(nxt.metrics["physics_unstable"][0]) == 1.0
  assert float(nxt.reward[0]) == 0.0
