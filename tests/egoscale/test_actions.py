"""The human action (relative wrist motion + keypoints) and its inverse."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from egoscale import actions, hand


def _trajectory(seed, n, batch=()):
  rng = np.random.default_rng(seed)
  shape = batch + (n,)
  angles = np.cumsum(rng.normal(0, 0.3, shape + (3,)), axis=-2).astype(np.float32)
  rot = jnp.vectorize(lambda a: hand.euler_to_matrix(a[0], a[1], a[2]),
                      signature="(3)->(3,3)")(jnp.asarray(angles))
  pos = np.cumsum(rng.normal(0, 0.02, shape + (3,)), axis=-2).astype(np.float32)
  poses = hand.make_pose(jnp.asarray(pos), rot)
  lo, hi = hand.JOINT_LIMITS[:, 0], hand.JOINT_LIMITS[:, 1]
  art = rng.uniform(lo, hi, shape + (20,)).astype(np.float32)
  return np.asarray(poses), np.asarray(hand.keypoints(poses, art))


def test_layout_and_last_step_mask():
  assert actions.ACTION_LAYOUT.names == ("wrist_motion", "hand_keypoints")
  assert actions.ACTION_LAYOUT.dim == actions.ACTION_DIM == 72
  poses, kp = _trajectory(0, 7)
  action, mask = actions.human_actions(poses, kp)
  assert action.shape == (7, 72) and mask.tolist() == [True] * 6 + [False]
  np.testing.assert_array_equal(action[-1], 0.0)
  # A still hand has zero translation and the identity rotation.
  still, _ = actions.human_actions(np.repeat(poses[:1], 3, 0), np.repeat(kp[:1], 3, 0))
  np.testing.assert_allclose(still[0, :9], [0, 0, 0, 1, 0, 0, 0, 1, 0], atol=1e-5)


def test_round_trip_reconstructs_the_trajectory():
  poses, kp = _trajectory(1, 12)
  action, _ = actions.human_actions(poses, kp)
  rec_poses, rec_kp = actions.reconstruct(poses[0], action, kp[0])
  np.testing.assert_allclose(rec_poses, poses, atol=2e-5)
  np.testing.assert_allclose(rec_kp, kp, atol=2e-5)
  # Batched (and jitted) too.
  poses, kp = _trajectory(2, 5, batch=(3,))
  action, mask = jax.jit(actions.human_actions)(poses, kp)
  assert action.shape == (3, 5, 72) and mask.shape == (3, 5)
  rec_poses, rec_kp = actions.reconstruct(poses[:, 0], action, kp[:, 0])
  np.testing.assert_allclose(rec_poses, poses, atol=2e-5)
  np.testing.assert_allclose(rec_kp, kp, atol=2e-5)


def test_actions_do_not_depend_on_the_fixed_frame():
  poses, kp = _trajectory(3, 6)
  rot = np.asarray(hand.euler_to_matrix(0.7, -0.3, 1.1))
  shift = np.array([0.4, -1.0, 0.2], np.float32)
  p, r = hand.split_pose(poses)
  moved = hand.make_pose(p @ rot.T + shift, rot @ r)
  a1, _ = actions.human_actions(poses, kp)
  a2, _ = actions.human_actions(moved, kp @ rot.T + shift)
  np.testing.assert_allclose(a1, a2, atol=2e-5)


def test_shape_errors_name_the_trajectory():
  poses, kp = _trajectory(4, 5)
  with pytest.raises(hand.HandPoseError, match="episode 9: 5 wrist poses but 4 keypoint"):
    actions.human_actions(poses, kp[:4], where="episode 9")
  with pytest.raises(hand.HandPoseError, match=r"episode 9: hand keypoints must be"):
    actions.human_actions(poses, kp[:, :20], where="episode 9")
  with pytest.raises(hand.HandPoseError, match=r"episode 9: wrist poses must be"):
    actions.human_actions(poses[:, :7], kp, where="episode 9")
  with pytest.raises(hand.HandPoseError, match="actions must be"):
    actions.reconstruct(poses[0], np.zeros((5, 70)))
