"""Play policies cover the action space, record what ran, and are reproducible."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dojo import collect, play, rollout
from tests.dojo.toy import Toy


@pytest.fixture(scope="module")
def env():
  return Toy(cameras=())


def _actions(env, policy, episodes=16, steps=24, seed=0):
  run = rollout.make_rollout(env, policy, steps, keep=lambda s: {"joints": s.obs["joints"]})
  first, records, actions = run(jax.random.key(seed), episodes)
  return np.asarray(first["joints"]), np.asarray(records["joints"]), np.asarray(actions)


@pytest.mark.parametrize("name", ["waypoints", "ou"])
def test_play_actions_vary_independently_of_the_state(env, name):
  _, joints, actions = _actions(env, play.make_play_policy(env, name, play.PlayConfig(scale=0.5)))
  # They spread over a good part of the action box, in every dimension ...
  spread = actions.reshape(-1, env.action_size)
  assert (spread.std(0) > 0.15).all() and (np.abs(spread) <= 1.0).all()
  assert (spread.max(0) - spread.min(0) > 0.8).all()
  # ... differ between envs that start alike (not a function of the state) ...
  assert np.abs(actions[:, 0] - actions[:, 1]).mean() > 0.1
  # ... and move the robot.
  assert np.abs(np.diff(joints, axis=0)).mean() > 1e-3


def test_waypoints_are_held_for_segments(env):
  config = play.PlayConfig(scale=0.5, hold_min=3, hold_max=3)
  _, _, actions = _actions(env, play.waypoint_policy(env, config), episodes=4, steps=12)
  changes = np.abs(np.diff(actions, axis=0)).max(-1) > 1e-6     # [steps-1, envs]
  np.testing.assert_array_equal(np.where(changes[:, 0])[0], [2, 5, 8])


def test_dart_is_the_expert_plus_correlated_noise(env):
  clean = _actions(env, rollout.expert_policy(env, 0.0))[2]
  _, _, dart = _actions(env, play.dart_policy(env, play.PlayConfig(scale=0.1, theta=0.1)))
  noise = (dart - clean).reshape(-1, env.action_size)
  assert 0.03 < noise.std() < 0.2
  # Successive perturbations are correlated (OU), unlike the noisy expert's.
  d = dart - clean
  assert np.corrcoef(d[1:].ravel(), d[:-1].ravel())[0, 1] > 0.5


def test_play_is_deterministic_and_collects_through_the_collector(env):
  a = _actions(env, play.ou_policy(env), seed=3)[2]
  b = _actions(env, play.ou_policy(env), seed=3)[2]
  np.testing.assert_array_equal(a, b)
  eps = list(collect.collect(env, task_name="toy", num_episodes=2, num_steps=5, batch_size=2,
                             policy="waypoints", noise=0.3))
  assert eps[0]["metadata"]["policy"] == "waypoints" and eps[0]["metadata"]["noise"] == 0.3
  assert eps[0]["steps"]["action"].shape == (6, 2)


def test_bad_play_settings_are_named(env):
  with pytest.raises(ValueError, match="Unknown play policy 'wander'"):
    play.make_play_policy(env, "wander")
  with pytest.raises(ValueError, match="hold_min <= hold_max"):
    play.PlayConfig(hold_min=4, hold_max=2)
  with pytest.raises(ValueError, match="scale"):
    play.PlayConfig(scale=-1.0)


def test_home_action_holds_the_current_controls(env):
  state = env.reset(jax.random.key(0))
  np.testing.assert_allclose(env.action_to_ctrl(state.data, play.home_action(env, state)),
                             state.data.ctrl, atol=1e-6)
  assert jnp.all(jnp.isfinite(play.home_action(env, state)))
