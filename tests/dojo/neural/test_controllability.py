"""Controllability measures: the true dynamics score near 1, a dream ignoring actions near 0."""

import jax.numpy as jnp
import numpy as np
import pytest

from dojo import play, wrappers
from dojo.env import Env
from dojo.neural import controllability
from tests.dojo.toy import Toy
from wam import controllability as measures


class _IgnoresActions(Env):
  """A 'dream' that runs the physics but holds the current controls whatever it is told."""

  def __init__(self, physics, task):
    self.physics, self.task = physics, task

  @property
  def action_size(self):
    return self.physics.action_size

  @property
  def observation_size(self):
    return self.physics.observation_size

  def reset(self, rng):
    return self.physics.reset(rng)

  def start(self, real):
    return real

  def step(self, state, action):
    del action
    hold = play.home_action(self.task, state)
    return self.physics.step(state, jnp.tile(hold, self.physics.action_size // hold.size))


@pytest.fixture(scope="module")
def envs():
  task = Toy(cameras=())
  return task, wrappers.ChunkWrapper(task, 4)


@pytest.mark.parametrize("source", controllability.ACTION_SOURCES)
def test_true_dynamics_score_one(envs, source):
  task, physics = envs
  out = controllability.track(task, physics, physics, source=source, episodes=6, chunks=2,
                              start=lambda s: s)
  assert out["motion_gain"] == pytest.approx(1.0, abs=1e-4)
  assert out["motion_correlation"] == pytest.approx(1.0, abs=1e-4)
  assert out["tracking_ratio"] < 1e-4
  assert max(out["joint_error_by_chunk"]) < 1e-5 < min(out["joint_error_if_still_by_chunk"])


def test_a_dream_that_ignores_actions_scores_near_zero(envs):
  task, physics = envs
  out = controllability.track(task, physics, _IgnoresActions(physics, task), source="random",
                              episodes=8, chunks=2)
  assert abs(out["motion_gain"]) < 0.1
  assert out["tracking_ratio"] > 0.9


def test_unknown_action_source(envs):
  task, physics = envs
  with pytest.raises(ValueError, match="Unknown action source 'expert'"):
    controllability.track(task, physics, physics, source="expert")


def test_measures_on_known_values():
  real = np.array([[1.0, -2.0], [0.5, 0.0]])
  assert float(measures.motion_gain(real, 0.5 * real)) == pytest.approx(0.5)
  assert float(measures.motion_gain(real, np.zeros_like(real))) == 0.0
  assert float(measures.motion_correlation(real, 3 * real + 1)) == pytest.approx(1.0)
  assert float(measures.motion_correlation(real, np.ones_like(real))) == 0.0
  start = np.zeros_like(real)
  assert float(measures.tracking_ratio(start, real, start)) == pytest.approx(1.0)
  assert float(measures.tracking_ratio(start, real, real)) == 0.0
  # The mask drops entries.
  mask = np.array([[1, 0], [1, 1]])
  assert float(measures.motion_gain(real, real * np.array([[1, 9], [1, 1]]), mask)) == 1.0
