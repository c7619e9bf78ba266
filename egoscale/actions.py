"""The human action: relative wrist motion plus hand articulation (EgoScale).

The action at step ``t`` (of ``N``) takes the hand from step ``t`` to step ``t + 1``:

  ``wrist_motion`` (9)     the wrist's motion from t to t+1 in the wrist frame at t:
                           ``R_t^T (p_{t+1} - p_t)`` (3) and the 6D rotation of
                           ``R_t^T R_{t+1}`` (6)
  ``hand_keypoints`` (63)  the 21 keypoints at t+1 in the wrist frame at t+1 (the hand's
                           articulation, free of where the wrist is), flattened

Relative motion in the wrist's own frame does not depend on the frame the poses are
given in, as long as it is one fixed frame for the whole trajectory: pass world poses
(for egocentric video, camera-frame poses composed with the camera's pose), not poses
in a moving head camera, or the head's motion leaks into the hand's. The last step has
no next step: its action is zero with ``mask = False``. :func:`reconstruct` inverts
:func:`human_actions` given the first wrist pose.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from egoscale import hand
from wam.data.layout import Layout

WRIST_MOTION_DIM = 9
KEYPOINTS_DIM = 3 * hand.NUM_KEYPOINTS
ACTION_DIM = WRIST_MOTION_DIM + KEYPOINTS_DIM
ACTION_LAYOUT = Layout.of([("wrist_motion", WRIST_MOTION_DIM),
                           ("hand_keypoints", KEYPOINTS_DIM)])


def _check(wrist_poses, keypoints, where: str) -> None:
  """Shape checks on host arrays (traced arrays only get their shapes checked)."""
  wshape, kshape = np.shape(wrist_poses), np.shape(keypoints)
  if len(wshape) < 2 or wshape[-1] != 9 or wshape[-2] < 1:
    raise hand.HandPoseError(f"{where}: wrist poses must be f32[..., N, 9] (N >= 1 steps of "
                             f"position + 6D rotation), got shape {wshape}.")
  if len(kshape) < 3 or kshape[-2:] != (hand.NUM_KEYPOINTS, 3):
    raise hand.HandPoseError(f"{where}: hand keypoints must be f32[..., N, 21, 3], got "
                             f"shape {kshape}.")
  if wshape[:-1] != kshape[:-2]:
    raise hand.HandPoseError(f"{where}: {wshape[-2]} wrist poses but {kshape[-3]} keypoint "
                             f"frames (shapes {wshape} and {kshape}); the streams must have "
                             "one entry per step.")


def human_actions(wrist_poses: jax.Array, keypoints: jax.Array, where: str = "trajectory"
                  ) -> tuple[jax.Array, jax.Array]:
  """Actions f32[..., N, 72] and their mask bool[..., N] of a hand trajectory.

  Args:
    wrist_poses: f32[..., N, 9] wrist poses (position + 6D rotation) in a fixed frame.
    keypoints: f32[..., N, 21, 3] keypoints in the same frame.
    where: names the trajectory (e.g. the episode) in shape errors.
  Returns:
    ``(actions, mask)``: the last step's action is zero and masked out.
  """
  _check(wrist_poses, keypoints, where)
  pos, rot = hand.split_pose(jnp.asarray(wrist_poses, jnp.float32))
  kp = jnp.asarray(keypoints, jnp.float32)
  rot_t = jnp.swapaxes(rot[..., :-1, :, :], -1, -2)
  dp = jnp.einsum("...ij,...j->...i", rot_t, pos[..., 1:, :] - pos[..., :-1, :])
  drot = rot_t @ rot[..., 1:, :, :]
  local = hand.to_wrist_frame(kp[..., 1:, :, :], wrist_poses[..., 1:, :])
  action = jnp.concatenate([dp, hand.matrix_to_rot6d(drot),
                            local.reshape(local.shape[:-2] + (KEYPOINTS_DIM,))], axis=-1)
  pad = jnp.zeros(action.shape[:-2] + (1, ACTION_DIM), action.dtype)
  action = jnp.concatenate([action, pad], axis=-2)
  n = wrist_poses.shape[-2]
  mask = jnp.broadcast_to(jnp.arange(n) < n - 1, action.shape[:-1])
  return action, mask


def reconstruct(first_wrist_pose: jax.Array, actions: jax.Array,
                first_keypoints: Optional[jax.Array] = None) -> tuple[jax.Array, jax.Array]:
  """The trajectory of :func:`human_actions` from its first wrist pose and its actions.

  Args:
    first_wrist_pose: f32[..., 9], the wrist pose at step 0.
    actions: f32[..., N, 72]; the last one (masked padding) is not used.
    first_keypoints: f32[..., 21, 3] at step 0 (actions only hold steps 1..N-1); zeros
      when not given.
  Returns:
    ``(wrist_poses f32[..., N, 9], keypoints f32[..., N, 21, 3])``.
  """
  actions = jnp.asarray(actions, jnp.float32)
  if actions.ndim < 2 or actions.shape[-1] != ACTION_DIM:
    raise hand.HandPoseError(f"reconstruct: actions must be f32[..., N, {ACTION_DIM}], got "
                             f"shape {actions.shape}.")
  pos0, rot0 = hand.split_pose(jnp.asarray(first_wrist_pose, jnp.float32))
  steps = jnp.moveaxis(actions[..., :-1, :], -2, 0)   # time first for the scan

  def step(carry, action):
    pos, rot = carry
    dp = action[..., :3]
    drot = hand.rot6d_to_matrix(action[..., 3:9])
    pos = pos + jnp.einsum("...ij,...j->...i", rot, dp)
    rot = rot @ drot
    return (pos, rot), (pos, rot)

  _, (positions, rotations) = jax.lax.scan(step, (pos0, rot0), steps)
  positions = jnp.concatenate([pos0[None], positions], axis=0)
  rotations = jnp.concatenate([rot0[None], rotations], axis=0)
  poses = jnp.moveaxis(hand.make_pose(positions, rotations), 0, -2)
  local = actions[..., :-1, WRIST_MOTION_DIM:].reshape(
      actions.shape[:-2] + (actions.shape[-2] - 1, hand.NUM_KEYPOINTS, 3))
  later = hand.from_wrist_frame(local, poses[..., 1:, :])
  if first_keypoints is None:
    first_keypoints = jnp.zeros(actions.shape[:-2] + (hand.NUM_KEYPOINTS, 3), jnp.float32)
  kp = jnp.concatenate([jnp.asarray(first_keypoints, jnp.float32)[..., None, :, :], later],
                       axis=-3)
  return poses, kp
