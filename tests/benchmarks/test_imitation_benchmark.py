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
