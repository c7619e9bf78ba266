"""Playground envs (DM Control suite ports ship their XML) run as Dojo envs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dojo import wrappers
from dojo.adapters.playground import load_playground


@pytest.fixture(scope="module")
def env():
  return load_playground("CartpoleBalance", cameras=("front", "fixed"), image_height=24,
                         image_width=24, success_reward=0.9)


def test_observations_and_cameras(env):
  state = jax.jit(env.reset)(jax.random.key(0))
  assert state.obs["pixels/front"].shape == (24, 24, 3)
  assert state.obs["pixels/fixed"].shape == (24, 24, 3)
  assert state.obs["joints"].shape == (2,)
  assert np.asarray(state.obs["pixels/fixed"]).std() > 5  # not a blank image
  assert env.instruction(0) == "CartpoleBalance"


def test_batched_training_wrappers_and_nan(env):
  wrapped = wrappers.wrap_for_training(env, episode_length=4)
  state = jax.jit(wrapped.reset)(jax.random.split(jax.random.key(0), 2))
  step = jax.jit(wrapped.step)
  action = jnp.zeros((2, 1)).at[1].set(jnp.nan)
  state = step(state, action)
  np.testing.assert_array_equal(np.asarray(state.metrics["invalid_action"]), [0, 1])
  np.testing.assert_array_equal(np.asarray(state.done), [0, 1])
  assert np.all(np.isfinite(np.asarray(state.obs["privileged"])))
  assert float(state.metrics["success"][0]) == 1.0  # balanced pole: reward near 1


def test_unknown_names():
  with pytest.raises(KeyError, match="Unknown Playground env 'CartPole'"):
    load_playground("CartPole")
