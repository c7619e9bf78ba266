"""Dojo-hand kinematics against C MuJoCo, and retargeting human keypoints to its joints."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from egoscale import dojo_hand_kinematics as dhk
from egoscale import retarget as rt

B = 16  # one batch shape for every batched call: the solver compiles once


@pytest.fixture(scope="module")
def retargeter():
  return rt.default_retargeter()


@pytest.fixture(scope="module")
def kin(retargeter):
  return retargeter.kinematics


def random_joints(kin, n, seed):
  rng = np.random.default_rng(seed)
  q = rng.uniform(kin.lower, kin.upper, (n, dhk.NUM_JOINTS)).astype(np.float32)
  q[:, :3] = rng.uniform(-0.2, 0.2, (n, 3))
  q[:, 3] = rng.uniform(-3.0, 3.0, n)  # any heading: the fit is not limited to +-1 rad
  return q


def human_like(kp, seed, scale=1.25, tilt=True):
  """Robot keypoints as a bigger, rotated, translated 'human' hand (a new camera frame)."""
  rng = np.random.default_rng(seed)
  angles = rng.uniform(-0.6, 0.6, (len(kp), 3)) if tilt else np.zeros((len(kp), 3))
  rot = Rotation.from_euler("xyz", angles).as_matrix()
  wrist = kp[:, :1]
  out = wrist + scale * np.einsum("bij,bkj->bki", rot, kp - wrist)
  return (out + rng.uniform(-0.3, 0.3, (len(kp), 1, 3))).astype(np.float32)


# ---------------------------------------------------------------------------- kinematics
def test_joint_order_matches_dex_lift():
  from dojo.tasks import dex_lift  # pylint: disable=import-outside-toplevel
  assert dhk.JOINTS == dex_lift.DexLift.robot_joints
  assert rt.ACTION_SLOTS == dex_lift.DexLift.action_slots


def test_forward_kinematics_matches_mujoco(kin):
  q = random_joints(kin, 12, seed=0).reshape(3, 4, dhk.NUM_JOINTS)
  ours = np.asarray(kin.keypoints(q))
  assert ours.shape == (3, 4, 21, 3)
  np.testing.assert_allclose(ours, kin.keypoints_mujoco(q), atol=2e-6)
  # At rest the hand has the documented geometry: the wrist on the palm's back edge.
  rest = kin.keypoints_mujoco(np.zeros(dhk.NUM_JOINTS))
  np.testing.assert_allclose(rest[dhk.WRIST], [-0.047, 0.0, 0.0], atol=1e-9)
  assert kin.palm_length() == pytest.approx(0.0966, abs=1e-3)


def test_jacobian_matches_finite_differences(kin):
  import jax  # pylint: disable=import-outside-toplevel
  q = random_joints(kin, 3, seed=1)
  kp, jac = jax.vmap(kin.keypoints_and_jacobian)(q)
  eps = 1e-6
  fd = np.stack([(kin.keypoints_mujoco(q + eps * e) - kin.keypoints_mujoco(q - eps * e))
                 / (2 * eps) for e in np.eye(dhk.NUM_JOINTS)], axis=-1)
  np.testing.assert_allclose(np.asarray(jac), fd, atol=1e-5)
  np.testing.assert_allclose(np.asarray(kp), kin.keypoints_mujoco(q), atol=2e-6)


# ---------------------------------------------------------------------------- fitting
def test_round_trip_recovers_joints(retargeter, kin):
  q = random_joints(kin, B, seed=2)
  human = human_like(np.asarray(kin.keypoints(q)), seed=3)
  out = retargeter(human)
  assert out.joints.shape == (B, 24) and out.error.shape == (B,)
  joints, error = np.asarray(out.joints), np.asarray(out.error)
  assert error.max() < 1e-4, error                     # < 0.1 mm (Dojo-hand scale)
  np.testing.assert_allclose(np.asarray(out.scale), 1 / 1.25, rtol=1e-4)
  # Fingers are identifiable from the full hand; the tilt was dropped, so only the yaw
  # and the position of the wrist differ from the robot's (rotation and translation).
  np.testing.assert_allclose(joints[:, 4:], q[:, 4:], atol=5e-3)
  assert (joints[:, 4:] >= kin.lower[4:] - 1e-6).all()
  assert (joints[:, 4:] <= kin.upper[4:] + 1e-6).all()
  # The fitted hand, put back by FK, reproduces the normalised human keypoints.
  fitted = np.asarray(kin.keypoints(joints))
  wrist_h = human[:, :1]
  shape_h = (human - wrist_h) / 1.25
  shape_r = fitted - fitted[:, :1]
  np.testing.assert_allclose(np.linalg.norm(shape_r, axis=-1),
                             np.linalg.norm(shape_h, axis=-1), atol=1e-4)


def test_untilted_input_recovers_wrist_pose(retargeter, kin):
  q = random_joints(kin, B, seed=4)
  kp = np.asarray(kin.keypoints(q))
  out = retargeter(kp)  # same frame, same size: everything identifiable
  joints = np.asarray(out.joints)
  np.testing.assert_allclose(joints[:, :3], q[:, :3], atol=1e-4)
  dyaw = np.angle(np.exp(1j * (joints[:, 3] - q[:, 3])))
  np.testing.assert_allclose(dyaw, 0.0, atol=1e-3)
  # A frame transform (a camera 1 m above, turned 90 degrees) is undone by ``frame``.
  frame = np.eye(4, dtype=np.float32)
  frame[:3, :3] = Rotation.from_euler("z", np.pi / 2).as_matrix()
  frame[:3, 3] = [0.0, 0.0, 1.0]
  camera = (kp - frame[:3, 3]) @ frame[:3, :3]  # world -> camera
  joints2 = np.asarray(retargeter(camera, frame=frame).joints)
  np.testing.assert_allclose(joints2[:, :3], q[:, :3], atol=1e-4)


def test_batch_is_per_sample_and_warm_start(retargeter, kin):
  q = random_joints(kin, B, seed=5)
  human = human_like(np.asarray(kin.keypoints(q)), seed=6)
  out = np.asarray(retargeter(human).joints)
  perm = np.random.default_rng(0).permutation(B)
  np.testing.assert_allclose(np.asarray(retargeter(human[perm]).joints), out[perm],
                             atol=1e-5)
  # Warm start from a nearby pose lands on the same fit.
  warm = retargeter(human, init=out + 0.05)
  np.testing.assert_allclose(np.asarray(warm.joints)[:, 4:], q[:, 4:], atol=5e-3)


def test_variants(retargeter, kin):
  """Full-hand fitting matches all keypoints; fingertip-only and wrist-only do less."""
  q = random_joints(kin, B, seed=7)
  kp = np.asarray(kin.keypoints(q))
  errors = {}
  for variant in rt.VARIANTS:
    out = retargeter(kp, variant=variant)
    fitted = np.asarray(kin.keypoints(out.joints))
    errors[variant] = np.sqrt(((fitted - kp) ** 2).sum(-1).mean())
    if variant == "wrist":
      # The palm is fitted; the fingers stay at the neutral hand.
      np.testing.assert_allclose(np.asarray(out.joints)[:, 4:],
                                 np.broadcast_to(retargeter.neutral[4:], (B, 20)), atol=1e-6)
      assert np.asarray(out.error).max() < 1e-4
    if variant == "fingertips":
      tips = list(dhk.TIP_KEYPOINTS)
      assert np.abs(fitted[:, tips] - kp[:, tips]).max() < 0.005
  assert errors["full"] < 1e-4 < errors["fingertips"] < errors["wrist"], errors
  with pytest.raises(ValueError, match="variant"):
    rt.variant_weights("elbow")


# ---------------------------------------------------------------------------- episodes
def test_retarget_episode_actions(kin):
  t = 8
  a, b = random_joints(kin, 2, seed=8)
  a[:4], b[:4] = [0.0, 0.0, 0.2, 0.1], [0.03, -0.02, 0.23, 0.3]   # slow wrist: no clipping
  q = np.linspace(a, b, t).astype(np.float32)
  kp = np.array(kin.keypoints(q))
  valid = np.ones(t, bool)
  valid[5] = False
  kp[5] = np.nan  # untracked: allowed because masked
  out = rt.retarget_episode(kp, valid=valid, episode="ep_7")
  assert out["action"].shape == (t, 24) and out["joints"].shape == (t, 24)
  np.testing.assert_array_equal(out["action_mask"], [1, 1, 1, 1, 0, 0, 1, 0])
  assert np.isnan(out["error"][5]) and np.nanmax(out["error"]) < 1e-4
  np.testing.assert_allclose(out["joints"][5], out["joints"][4])  # held pose
  ctrl = kin.model.actuator_ctrlrange  # dex_lift's action scale
  mid, half = ctrl.mean(1), (ctrl[:, 1] - ctrl[:, 0]) / 2
  m = out["action_mask"]
  np.testing.assert_allclose(out["action"][m, 4:], ((q[1:] - mid)[:, 4:] / half[4:])[m[:-1]],
                             atol=5e-3)
  steps = np.array([0.02, 0.02, 0.02, 0.1])
  np.testing.assert_allclose(out["action"][m, :4], (np.diff(q[:, :4], axis=0) / steps)[m[:-1]],
                             atol=5e-3)
  assert (out["action"][~m] == 0).all() and np.abs(out["action"]).max() <= 1.0
  # Frames fitted independently (the batched solver) agree on this easy sequence.
  cold = rt.retarget_episode(kp, valid=valid, episode="ep_7", warm_start=False)
  np.testing.assert_allclose(cold["joints"][valid, 4:], out["joints"][valid, 4:], atol=5e-3)
  np.testing.assert_array_equal(cold["action_mask"], out["action_mask"])


def test_bad_input_names_the_episode(retargeter):
  with pytest.raises(rt.RetargetError, match=r"ep_3.*shape \(4, 20, 3\)"):
    rt.retarget_episode(np.zeros((4, 20, 3)), episode="ep_3")
  with pytest.raises(rt.RetargetError, match=r"cam_9.*shape \(21, 3\)"):
    retargeter(np.zeros((21, 3)), where="cam_9")
  kp = np.ones((4, 21, 3), np.float32)
  kp[2, 7] = np.nan
  with pytest.raises(rt.RetargetError, match="ep_4.*NaN.*frame 2"):
    rt.retarget_episode(kp, episode="ep_4")
  with pytest.raises(rt.RetargetError, match="ep_5.*valid"):
    rt.retarget_episode(np.ones((4, 21, 3)), valid=np.ones(3, bool), episode="ep_5")
  with pytest.raises(rt.RetargetError, match="frame"):
    retargeter(np.ones((B, 21, 3)), frame=np.eye(3))
