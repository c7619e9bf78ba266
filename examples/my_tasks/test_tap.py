# my_tasks/test_tap.py
"""The tap task: contract, expert, instructions, cameras."""

import jax
import jax.numpy as jnp
import pytest

import dojo
from dojo import rollout, wrappers
from my_tasks import tap  # pylint: disable=unused-import  (registers "tap")


@pytest.fixture(scope="module")
def env():
  return dojo.load("tap", cameras=("front", "wrist"), image_height=32, image_width=32)


def test_contract(env):
  state = jax.jit(env.reset)(jax.random.key(0))
  assert state.obs["pixels/front"].shape == (32, 32, 3)
  assert state.obs["joints"].shape == (2,) and state.obs["proprio"].shape == (5,)
  nxt = jax.jit(env.step)(state, jnp.zeros(env.action_size))
  assert set(nxt.metrics) == set(state.metrics) and int(nxt.info["step"]) == 1
  slots = env.data_slots()
  assert slots["action"] == [("planar_arm_joint_targets", 2)]
  with pytest.raises(ValueError, match="expected"):
    env.step(state, jnp.zeros(3))
  batched = wrappers.wrap_for_training(env, episode_length=5)
  out = jax.jit(batched.step)(jax.jit(batched.reset)(jax.random.split(jax.random.key(1), 2)),
                              jnp.zeros((2, 2)))
  assert out.reward.shape == (2,)


def test_expert_succeeds_and_random_does_not():
  env = dojo.load("tap", cameras=())
  steps = env.config.episode_length
  assert rollout.success_rate(env, rollout.expert_policy(env), 16, steps) >= 0.9
  assert rollout.success_rate(env, rollout.random_policy(env), 16, steps) <= 0.25


def test_held_out_instructions():
  env = dojo.load("tap", cameras=(), instructions="unseen")
  ids = jax.vmap(env.reset)(jax.random.split(jax.random.key(2), 8)).info["instruction"]
  assert {env.instruction(int(i)) for i in ids} == {"tap the yellow ball"}
