"""The kinematic human hand: keypoint order, forward kinematics, limits, shape checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from egoscale import hand

IDENTITY = np.asarray(hand.make_pose(jnp.zeros(3), jnp.eye(3)))


def _random_pose(rng, n):
  angles = rng.uniform(-np.pi, np.pi, (n, 3)).astype(np.float32)
  rot = jax.vmap(lambda a: hand.euler_to_matrix(a[0], a[1], a[2]))(jnp.asarray(angles))
  return np.asarray(hand.make_pose(jnp.asarray(rng.normal(size=(n, 3)), jnp.float32), rot))


def _random_articulation(rng, n):
  lo, hi = hand.JOINT_LIMITS[:, 0], hand.JOINT_LIMITS[:, 1]
  return rng.uniform(lo, hi, (n, hand.NUM_JOINTS)).astype(np.float32)


def test_keypoint_order_is_mediapipe():
  assert len(hand.KEYPOINT_NAMES) == hand.NUM_KEYPOINTS == 21
  assert hand.KEYPOINT_NAMES[hand.WRIST] == "wrist"
  assert hand.THUMB == (1, 2, 3, 4) and hand.INDEX == (5, 6, 7, 8)
  assert hand.LITTLE == (17, 18, 19, 20) and hand.TIPS == (4, 8, 12, 16, 20)
  assert [hand.KEYPOINT_NAMES[i] for i in hand.TIPS] == [
      "thumb_tip", "index_tip", "middle_tip", "ring_tip", "little_tip"]
  assert all(hand.PARENTS[c] == p for p, c in hand.BONES) and len(hand.BONES) == 20


def test_forward_kinematics_shapes_and_bone_lengths():
  rng = np.random.default_rng(0)
  poses, art = _random_pose(rng, 6), _random_articulation(rng, 6)
  bones = np.asarray(hand.bone_lengths(rng.uniform(0.9, 1.1, 6)))
  kp = np.asarray(hand.keypoints(poses, art, bones))
  assert kp.shape == (6, 21, 3) and kp.dtype == np.float32
  # Every bone keeps its length whatever the pose: FK is rigid per bone.
  parents, children = np.array(hand.BONES).T
  lengths = np.linalg.norm(kp[:, children] - kp[:, parents], axis=-1)
  np.testing.assert_allclose(lengths, bones, atol=1e-5)
  np.testing.assert_allclose(kp[:, hand.WRIST], poses[:, :3], atol=1e-6)
  # vmap, jit and broadcasting agree.
  vmapped = jax.jit(jax.vmap(hand.keypoints))(poses, art, bones)
  np.testing.assert_allclose(vmapped, kp, atol=1e-5)
  two = np.asarray(hand.keypoints(poses.reshape(2, 3, 9), art.reshape(2, 3, 20)))
  assert two.shape == (2, 3, 21, 3)


def test_rest_hand_is_a_right_hand_in_the_dojo_frame():
  kp = np.asarray(hand.keypoints(IDENTITY, np.zeros(20)))
  # Fingers along +x, thumb toward +y, all of it in front of the wrist.
  assert (kp[[8, 12, 16, 20], 0] > 0.12).all()
  assert kp[4, 1] > kp[8, 1] > kp[12, 1] > kp[16, 1] > kp[20, 1]
  assert kp[12, 0] == kp[[8, 12, 16, 20], 0].max()   # the middle finger is the longest
  # Flexing curls the fingertips toward the palm (-z) and back toward the wrist.
  fist = np.asarray(hand.keypoints(IDENTITY, hand.JOINT_LIMITS[:, 1]))
  assert (fist[[8, 12, 16, 20], 2] < -0.005).all()
  assert (fist[[8, 12, 16, 20], 0] < kp[[8, 12, 16, 20], 0] - 0.05).all()


def test_pose_and_frame_conversions_round_trip():
  rng = np.random.default_rng(1)
  poses = _random_pose(rng, 4)
  pos, rot = hand.split_pose(poses)
  np.testing.assert_allclose(np.asarray(rot) @ np.swapaxes(rot, -1, -2),
                             np.broadcast_to(np.eye(3), (4, 3, 3)), atol=1e-5)
  np.testing.assert_allclose(hand.make_pose(pos, rot), poses, atol=1e-5)
  points = rng.normal(size=(4, 21, 3)).astype(np.float32)
  back = hand.from_wrist_frame(hand.to_wrist_frame(points, poses), poses)
  np.testing.assert_allclose(back, points, atol=1e-5)
  kp = hand.keypoints(poses, np.zeros((4, 20)))
  np.testing.assert_allclose(hand.to_wrist_frame(kp, poses),
                             np.broadcast_to(hand.keypoints(IDENTITY, np.zeros(20)),
                                             (4, 21, 3)), atol=1e-5)


def test_joint_limit_errors_name_episode_joint_and_step():
  art = np.tile(hand.JOINT_LIMITS.mean(axis=1), (5, 1))
  np.testing.assert_array_equal(hand.check_pose(art, where="episode 3"), art)
  art[2, hand.JOINT_NAMES.index("ring_pip")] = 2.5
  with pytest.raises(hand.HandPoseError,
                     match=r"episode 3: joint ring_pip = 2\.500 rad at index \(2,\) is "
                           r"outside its limits \[0\.00, 1\.90\]"):
    hand.check_pose(art, where="episode 3")
  art = np.zeros(20, np.float32)
  art[hand.JOINT_NAMES.index("index_mcp_abd")] = -0.9
  with pytest.raises(hand.HandPoseError, match="episode 7: joint index_mcp_abd"):
    hand.check_pose(art, where="episode 7")
  art[:] = 0
  art[0] = np.nan
  with pytest.raises(hand.HandPoseError, match="thumb_cmc_flex is not finite"):
    hand.check_pose(art, where="episode 1")
  with pytest.raises(hand.HandPoseError, match="episode 2: a hand articulation has 20"):
    hand.check_pose(np.zeros((4, 19)), where="episode 2")
  clipped = hand.clip_to_limits(jnp.full(20, 5.0))
  np.testing.assert_allclose(clipped, hand.JOINT_LIMITS[:, 1])


def test_keypoint_shape_errors():
  ok = hand.check_keypoints(np.zeros((3, 21, 3)), where="episode 0")
  assert ok.dtype == np.float32
  for bad in (np.zeros((3, 20, 3)), np.zeros((3, 21, 2)), np.zeros(63)):
    with pytest.raises(hand.HandPoseError,
                       match=r"episode 4: hand keypoints must have shape \[\.\.\., 21, 3\]"):
      hand.check_keypoints(bad, where="episode 4")
  points = np.zeros((3, 21, 3))
  points[1, 8, 0] = np.inf
  with pytest.raises(hand.HandPoseError, match=r"index_tip is not finite at index \(1,\)"):
    hand.check_keypoints(points, where="episode 4")
  for name, args in (("wrist_pose", (np.zeros(8), np.zeros(20))),
                     ("articulation", (np.zeros(9), np.zeros(21))),
                     ("bones", (np.zeros(9), np.zeros(20), np.zeros(5)))):
    with pytest.raises(hand.HandPoseError, match=name):
      hand.keypoints(*args)
