"""The view rows of `benchmarks.imitation`: what a camera can and cannot tell about a target."""

import jax.numpy as jnp
import numpy as np
import pytest

import dojo
from benchmarks import imitation


def _obs_with_points(points: np.ndarray) -> jnp.ndarray:
  """A reach privileged state whose target and four targets are ``points`` [5, 3]."""
  obs = np.zeros(imitation._REACH_SIZE, np.float32)
  obs[imitation._REACH_ROBOT:imitation._REACH_ROBOT + 15] = points.reshape(-1)
  obs[-4:] = [0, 1, 0, 0]
  return jnp.asarray(obs)


def test_one_camera_sees_a_ray_and_two_see_the_point():
  task = dojo.load("reach", cameras=())
  (pos, rot), head = imitation._camera_poses(task, ["front", "head"])
  axis = -rot[:, 2]                       # MuJoCo cameras look along their -z axis
  near, far = pos + 0.8 * axis, pos + 1.1 * axis
  front = imitation.view_features([(pos, rot)])
  both = imitation.view_features([(pos, rot), head])
  a, b = (_obs_with_points(np.tile(p, (5, 1))) for p in (near, far))
  # On the optical axis: image centre; the robot state and the one-hot pass through.
  np.testing.assert_allclose(front(a)[imitation._REACH_ROBOT:-4], 0.0, atol=1e-5)
  np.testing.assert_array_equal(front(a)[-4:], [0, 1, 0, 0])
  # Depth along the ray is invisible to one camera and visible to two.
  np.testing.assert_allclose(front(a), front(b), atol=1e-5)
  assert float(jnp.abs(both(a) - both(b)).max()) > 0.05


def test_view_rows_refuse_other_layouts():
  features = imitation.view_features([(np.zeros(3), np.eye(3))])
  with pytest.raises(ValueError, match="reach's privileged state"):
    features(jnp.zeros(10))


def test_misperceived_targets_are_fixed_per_episode_and_of_the_asked_size():
  rng = np.random.default_rng(0)
  states = []
  for _ in range(400):
    points = rng.uniform(-0.3, 0.3, (4, 3)).astype(np.float32)
    states.append(_obs_with_points(np.concatenate([points[1:2], points])))  # slot 1
  obs = jnp.stack(states)
  noisy = imitation.misperceived_targets(0.05)(obs)
  # The same true scene is always misperceived the same way (an episode's offset).
  np.testing.assert_array_equal(noisy, imitation.misperceived_targets(0.05)(obs))
  r = imitation._REACH_ROBOT
  moved = np.asarray(noisy - obs)[:, r + 3:r + 15].reshape(-1, 4, 3)
  assert abs(np.sqrt((moved ** 2).sum(-1).mean()) - 0.05) < 0.005
  # The instructed target moves with its slot; robot state and one-hot do not.
  np.testing.assert_allclose(noisy[:, r:r + 3], noisy[:, r + 6:r + 9], atol=1e-6)
  np.testing.assert_array_equal(noisy[:, :r], obs[:, :r])
  np.testing.assert_array_equal(noisy[:, -4:], obs[:, -4:])
