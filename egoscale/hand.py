"""A kinematic human hand: 21 keypoints in MediaPipe order, joint limits, pure-JAX FK.

Keypoint order (MediaPipe Hands): 0 wrist; thumb 1-4 (CMC, MCP, IP, TIP); index 5-8
(MCP, PIP, DIP, TIP); middle 9-12; ring 13-16; little 17-20. Bone ``i`` joins
``PARENTS[i + 1]`` to keypoint ``i + 1``, so a hand's 20 bone lengths are
``bones[i] = |kp[i + 1] - kp[PARENTS[i + 1]]|``.

The wrist frame follows the Dojo hand (``dojo/assets/hand.xml``) so that the two line
up for retargeting: a right hand with x along the fingers, y toward the thumb and z out
of the back of the hand. A wrist pose is ``f32[9]``: position (3) and the 6D rotation
(the first two columns of the rotation matrix, Zhou et al. 2019), the same layout as
the ``wrist_pose`` slot of ``wam.data.importers.hdf5.egocentric_hand``.

Articulation (``f32[20]``, radians, ``JOINT_NAMES`` order): the thumb's CMC flexion and
palmar abduction, MCP and IP flexion; each finger's MCP flexion and abduction, PIP and
DIP flexion. Positive flexion curls toward the palm, positive finger abduction turns
toward the thumb, positive thumb flexion swings the thumb across the palm and positive
palmar abduction lifts it in front of the palm. ``JOINT_LIMITS`` are the active ranges of
an adult hand (a little hyperextension allowed).
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

# ---------------------------------------------------------------------------- keypoints
NUM_KEYPOINTS = 21
KEYPOINT_NAMES = (
    "wrist",
    "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "little_mcp", "little_pip", "little_dip", "little_tip",
)
WRIST = 0
FINGER_NAMES = ("thumb", "index", "middle", "ring", "little")
# Keypoint indices of each finger, base to tip.
FINGERS = {name: tuple(range(1 + 4 * i, 5 + 4 * i)) for i, name in enumerate(FINGER_NAMES)}
THUMB, INDEX, MIDDLE, RING, LITTLE = (FINGERS[n] for n in FINGER_NAMES)
TIPS = tuple(f[-1] for f in FINGERS.values())            # 4, 8, 12, 16, 20
MCPS = (2, 5, 9, 13, 17)                                  # thumb MCP, finger MCPs
PALM = (0, 5, 9, 13, 17)                                  # wrist + finger MCPs
PARENTS = (-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19)
BONES = tuple((PARENTS[k], k) for k in range(1, NUM_KEYPOINTS))  # 20 (parent, child)
NUM_BONES = len(BONES)

# ---------------------------------------------------------------------------- joints
JOINT_NAMES = (
    "thumb_cmc_flex", "thumb_cmc_abd", "thumb_mcp", "thumb_ip",
    "index_mcp_flex", "index_mcp_abd", "index_pip", "index_dip",
    "middle_mcp_flex", "middle_mcp_abd", "middle_pip", "middle_dip",
    "ring_mcp_flex", "ring_mcp_abd", "ring_pip", "ring_dip",
    "little_mcp_flex", "little_mcp_abd", "little_pip", "little_dip",
)
NUM_JOINTS = len(JOINT_NAMES)
_FINGER_LIMITS = ((-0.35, 1.6), (-0.35, 0.35), (0.0, 1.9), (-0.1, 1.4))  # flex abd pip dip
_THUMB_LIMITS = ((-0.3, 0.9), (-0.2, 1.3), (-0.2, 1.0), (-0.3, 1.4))     # flex abd mcp ip
JOINT_LIMITS = np.array(_THUMB_LIMITS + _FINGER_LIMITS * 4, np.float32)  # [20, 2]

# ---------------------------------------------------------------------------- shape
# Bone lengths (m) of an average adult right hand, in BONES order. The first bone of
# each finger is the wrist-to-base "metacarpal" (for the thumb: wrist to CMC).
BONE_LENGTHS = np.array([
    0.033, 0.042, 0.032, 0.025,      # thumb: wrist-CMC, CMC-MCP, MCP-IP, IP-tip
    0.089, 0.040, 0.024, 0.020,      # index: wrist-MCP, proximal, middle, distal
    0.088, 0.045, 0.028, 0.021,      # middle
    0.084, 0.042, 0.027, 0.021,      # ring
    0.081, 0.033, 0.020, 0.019,      # little
], np.float32)
# Directions (wrist frame) from the wrist to the thumb CMC and to each finger's MCP.
_BASE_DIRECTIONS = np.array([[0.022, 0.022, -0.012], [0.085, 0.025, 0.0],
                             [0.088, 0.004, 0.0], [0.082, -0.016, 0.0],
                             [0.074, -0.034, 0.0]], np.float32)
_BASE_DIRECTIONS /= np.linalg.norm(_BASE_DIRECTIONS, axis=1, keepdims=True)
# Rest directions of the fingers (a slight fan) and of the thumb's metacarpal.
_FINGER_SPLAY = np.array([0.12, 0.0, -0.1, -0.2], np.float32)
_THUMB_YAW, _THUMB_ROLL = 0.95, -0.5
_THUMB_BASE = np.array([[np.cos(_THUMB_YAW), -np.sin(_THUMB_YAW), 0.0],
                        [np.sin(_THUMB_YAW), np.cos(_THUMB_YAW), 0.0],
                        [0.0, 0.0, 1.0]], np.float32) @ np.array(
                            [[1.0, 0.0, 0.0], [0.0, np.cos(_THUMB_ROLL), -np.sin(_THUMB_ROLL)],
                             [0.0, np.sin(_THUMB_ROLL), np.cos(_THUMB_ROLL)]], np.float32)
SCALE_RANGE = (0.9, 1.1)  # per-subject scale of BONE_LENGTHS that the generator draws


class HandPoseError(ValueError):
  """Keypoints or an articulation that no hand can have (wrong shape, outside limits)."""


def bone_lengths(scale: float | jax.Array = 1.0) -> jax.Array:
  """Bone lengths f32[..., 20] of a subject whose hand is ``scale`` times the average."""
  return jnp.asarray(BONE_LENGTHS) * jnp.asarray(scale, jnp.float32)[..., None]


# ---------------------------------------------------------------------------- rotations
def _matrix(rows) -> jax.Array:
  """Rows of (broadcastable) entries -> matrices f32[..., 3, 3]."""
  rows = [jnp.stack(jnp.broadcast_arrays(*r), axis=-1) for r in rows]
  return jnp.stack(rows, axis=-2)


def _rx(a):
  c, s, o, z = jnp.cos(a), jnp.sin(a), jnp.ones_like(a), jnp.zeros_like(a)
  return _matrix([(o, z, z), (z, c, -s), (z, s, c)])


def _ry(a):
  c, s, o, z = jnp.cos(a), jnp.sin(a), jnp.ones_like(a), jnp.zeros_like(a)
  return _matrix([(c, z, s), (z, o, z), (-s, z, c)])


def _rz(a):
  c, s, o, z = jnp.cos(a), jnp.sin(a), jnp.ones_like(a), jnp.zeros_like(a)
  return _matrix([(c, -s, z), (s, c, z), (z, z, o)])


def euler_to_matrix(yaw: jax.Array, pitch: jax.Array, roll: jax.Array) -> jax.Array:
  """``Rz(yaw) @ Ry(pitch) @ Rx(roll)`` for scalar angles: f32[3, 3]."""
  return _rz(yaw) @ _ry(pitch) @ _rx(roll)


def matrix_to_rot6d(rot: jax.Array) -> jax.Array:
  """The 6D rotation (first two columns, concatenated) of rotations f32[..., 3, 3]."""
  return jnp.concatenate([rot[..., :, 0], rot[..., :, 1]], axis=-1)


def rot6d_to_matrix(r6: jax.Array) -> jax.Array:
  """Rotation matrices f32[..., 3, 3] from 6D rotations (Gram-Schmidt, so any two
  non-parallel vectors give a valid rotation)."""
  a, b = r6[..., :3], r6[..., 3:6]
  x = a / jnp.linalg.norm(a, axis=-1, keepdims=True)
  b = b - jnp.sum(x * b, axis=-1, keepdims=True) * x
  y = b / jnp.linalg.norm(b, axis=-1, keepdims=True)
  z = jnp.cross(x, y)
  return jnp.stack([x, y, z], axis=-1)


def make_pose(position: jax.Array, rot: jax.Array) -> jax.Array:
  """A pose f32[..., 9] (position + 6D rotation) from a position and a rotation matrix."""
  return jnp.concatenate([position, matrix_to_rot6d(rot)], axis=-1)


def split_pose(pose: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``(position f32[..., 3], rotation f32[..., 3, 3])`` of poses f32[..., 9]."""
  return pose[..., :3], rot6d_to_matrix(pose[..., 3:9])


# ---------------------------------------------------------------------------- kinematics
def _keypoints_one(wrist_pose: jax.Array, articulation: jax.Array, bones: jax.Array
                   ) -> jax.Array:
  pos, rot = split_pose(wrist_pose)
  base = jnp.asarray(_BASE_DIRECTIONS) * bones[jnp.array([0, 4, 8, 12, 16])][:, None]
  # Thumb: from the CMC on the palm, a chain flexing about its frame's -z (across the
  # palm), with the CMC's palmar abduction about its y (out of the palm plane).
  flex, abd, mcp, ip = articulation[0], articulation[1], articulation[2], articulation[3]
  r = jnp.asarray(_THUMB_BASE) @ _rz(-flex) @ _ry(abd)
  thumb = [base[0]]
  for length, angle in ((bones[1], None), (bones[2], mcp), (bones[3], ip)):
    if angle is not None:
      r = r @ _rz(-angle)
    thumb.append(thumb[-1] + r[:, 0] * length)
  # The four fingers at once: MCP abduction (about z) and flexion (about y: x turns
  # toward -z, the palm), then PIP and DIP flexion.
  angles = articulation[4:].reshape(4, 4)       # per finger: flex, abd, pip, dip
  lengths = bones[4:].reshape(4, 4)             # per finger: metacarpal, 3 phalanges
  r = _rz(jnp.asarray(_FINGER_SPLAY) + angles[:, 1]) @ _ry(angles[:, 0])   # [4, 3, 3]
  fingers = [base[1:]]
  for k in range(3):
    if k:
      r = r @ _ry(angles[:, 1 + k])
    fingers.append(fingers[-1] + r[..., :, 0] * lengths[:, 1 + k, None])
  fingers = jnp.stack(fingers, axis=1).reshape(16, 3)
  local = jnp.concatenate([jnp.zeros((1, 3)), jnp.stack(thumb), fingers])  # wrist frame
  return pos + local @ rot.T


_keypoints_vectorized = jnp.vectorize(_keypoints_one, signature="(9),(20),(20)->(21,3)")


def keypoints(wrist_pose: jax.Array, articulation: jax.Array,
              bones: Optional[jax.Array] = None) -> jax.Array:
  """Forward kinematics: the 21 keypoints f32[..., 21, 3] in the wrist pose's frame.

  Args:
    wrist_pose: f32[..., 9], position + 6D rotation of the wrist.
    articulation: f32[..., 20] joint angles in ``JOINT_NAMES`` order (not clipped: check
      them with :func:`check_pose`).
    bones: f32[..., 20] bone lengths (default: the average hand, ``BONE_LENGTHS``).
  Leading axes broadcast; the function is pure JAX (jit, vmap, grad).
  """
  wrist_pose = jnp.asarray(wrist_pose, jnp.float32)
  articulation = jnp.asarray(articulation, jnp.float32)
  bones = jnp.asarray(BONE_LENGTHS if bones is None else bones, jnp.float32)
  for name, value, size in (("wrist_pose", wrist_pose, 9), ("articulation", articulation,
                                                              NUM_JOINTS),
                            ("bones", bones, NUM_BONES)):
    if value.ndim == 0 or value.shape[-1] != size:
      raise HandPoseError(f"hand.keypoints: {name} must be f32[..., {size}], got shape "
                          f"{value.shape}.")
  return _keypoints_vectorized(wrist_pose, articulation, bones)


def to_wrist_frame(points: jax.Array, wrist_pose: jax.Array) -> jax.Array:
  """Points f32[..., K, 3] expressed in the wrist frame of poses f32[..., 9]."""
  pos, rot = split_pose(wrist_pose)
  return jnp.einsum("...kj,...ji->...ki", points - pos[..., None, :], rot)


def from_wrist_frame(points: jax.Array, wrist_pose: jax.Array) -> jax.Array:
  """The inverse of :func:`to_wrist_frame`."""
  pos, rot = split_pose(wrist_pose)
  return jnp.einsum("...kj,...ij->...ki", points, rot) + pos[..., None, :]


# ---------------------------------------------------------------------------- checks
def check_keypoints(points, where: str = "hand") -> np.ndarray:
  """``points`` as f32[..., 21, 3] (finite), or :class:`HandPoseError` naming ``where``."""
  points = np.asarray(points)
  if points.ndim < 2 or points.shape[-2:] != (NUM_KEYPOINTS, 3):
    raise HandPoseError(f"{where}: hand keypoints must have shape [..., {NUM_KEYPOINTS}, 3] "
                        f"(MediaPipe order, see egoscale.hand.KEYPOINT_NAMES), got "
                        f"{points.shape}.")
  if points.dtype.kind not in "fiu":
    raise HandPoseError(f"{where}: hand keypoints have dtype {points.dtype}, expected floats.")
  bad = ~np.isfinite(points)
  if bad.any():
    index = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), points.shape))
    raise HandPoseError(f"{where}: hand keypoint {KEYPOINT_NAMES[index[-2]]} is not finite "
                        f"at index {index[:-2]}.")
  return points.astype(np.float32)


def check_pose(articulation, where: str = "hand", tolerance: float = 1e-4) -> np.ndarray:
  """Checks joint angles f32[..., 20] against ``JOINT_LIMITS``; returns them as f32.

  Raises :class:`HandPoseError` naming ``where`` (e.g. the episode), the first joint out
  of its limits, its value, its range and the index (e.g. the step) where it happens.
  """
  articulation = np.asarray(articulation, np.float32)
  if articulation.ndim == 0 or articulation.shape[-1] != NUM_JOINTS:
    raise HandPoseError(f"{where}: a hand articulation has {NUM_JOINTS} joint angles "
                        f"(egoscale.hand.JOINT_NAMES), got shape {articulation.shape}.")
  if not np.isfinite(articulation).all():
    index = tuple(int(i) for i in np.unravel_index(int(np.argmax(~np.isfinite(articulation))),
                                                   articulation.shape))
    raise HandPoseError(f"{where}: joint {JOINT_NAMES[index[-1]]} is not finite at index "
                        f"{index[:-1]}.")
  lo, hi = JOINT_LIMITS[:, 0] - tolerance, JOINT_LIMITS[:, 1] + tolerance
  bad = (articulation < lo) | (articulation > hi)
  if bad.any():
    index = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), articulation.shape))
    j = index[-1]
    at = f" at index {index[:-1]}" if index[:-1] else ""
    raise HandPoseError(
        f"{where}: joint {JOINT_NAMES[j]} = {float(articulation[index]):.3f} rad{at} is "
        f"outside its limits [{JOINT_LIMITS[j, 0]:.2f}, {JOINT_LIMITS[j, 1]:.2f}].")
  return articulation


def clip_to_limits(articulation: jax.Array) -> jax.Array:
  """Joint angles clipped into ``JOINT_LIMITS`` (pure JAX)."""
  return jnp.clip(articulation, JOINT_LIMITS[:, 0], JOINT_LIMITS[:, 1])
