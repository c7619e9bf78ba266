"""Retargeting 21 human hand keypoints to the Dojo hand's 24 joints (batched, in JAX).

Human hands and the Dojo hand (``dojo/assets/hand.xml``) differ in size, proportions and
degrees of freedom, so a keypoint frame is first normalised, then fitted:

1. **Frame**: an optional rigid transform ``frame`` (4x4) takes the keypoints into the
   Dojo's world frame (z up). Keypoints in a camera frame need one for the wrist's
   height and yaw to mean anything; the finger joints do not depend on it.
2. **Hand size**: the keypoints are scaled about the wrist so that the palm length
   (wrist to middle-finger MCP) equals the Dojo hand's (9.7 cm). One scale for the whole
   hand: finger-to-palm proportions are not adapted.
3. **Tilt** (``drop_tilt``, default on): the Dojo wrist has x, y, z and yaw only; the
   palm always faces down. The keypoints are rotated about the wrist by the smallest
   rotation that turns the back-of-hand normal (from the wrist, index and little MCPs)
   to world +z. This drops the palm's roll and pitch and keeps its yaw; without it the
   fit would bend the fingers to make up for a tilted palm.
4. **Fit**: Levenberg-Marquardt over the 24 joints (a fixed number of iterations in
   ``lax.scan``, accept/reject steps with an adaptive damping) minimising weighted
   keypoint position errors plus fingertip-direction errors (distal segment DIP->tip)
   plus a small pull toward the prior pose (the warm start or the neutral hand), which
   keeps joints that the chosen keypoints do not see where they were. Finger joints are
   projected into their joint ranges after every step; the wrist (position and yaw) is
   free: it is where the human's wrist is, not clipped to the Dojo's workspace.

Variants (:data:`VARIANTS`, the ablation EgoScale reports): ``full`` fits all 21
keypoints and the tip directions; ``fingertips`` the wrist and the five tips only;
``wrist`` the palm (wrist + four MCPs) only, so the fingers stay at the prior.

Everything is one jitted function per (variant-independent) batch shape: variants are
weight arrays, not recompiles. :func:`retarget_episode` turns a keypoint sequence into
Dojo-hand action targets in ``dex_lift``'s action slots.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from egoscale import dojo_hand_kinematics as dhk
from egoscale.dojo_hand_kinematics import (INDEX_MCP, KEYPOINT_NAMES, LITTLE_MCP,
                                           MIDDLE_MCP, NUM_JOINTS, NUM_KEYPOINTS,
                                           PALM_KEYPOINTS, TIP_KEYPOINTS, WRIST)

VARIANTS = ("full", "fingertips", "wrist")
# dex_lift's action slots (dojo.tasks.dex_lift.DexLift.action_slots).
ACTION_SLOTS = (("wrist_delta", 4), ("hand_joint_targets", 20))
_DIP_OF_TIP = tuple(t - 1 for t in TIP_KEYPOINTS)
_UNIT = 0.01  # residuals in cm: keeps the normal equations well scaled in float32


class RetargetError(ValueError):
  """Keypoints that cannot be retargeted (wrong shape, NaN), naming where they came from."""


class Retargeted(NamedTuple):
  """Result of :func:`retarget`: joints f32[B,24] (``JOINTS`` order), the residual error
  f32[B] (RMS distance in metres, Dojo-hand scale, over the variant's keypoints) and the
  scale f32[B] that was applied to the human keypoints."""

  joints: jax.Array
  error: jax.Array
  scale: jax.Array


@dataclasses.dataclass(frozen=True)
class RetargetConfig:
  """Settings of the fit (all static: changing one compiles again).

  Attributes:
    iterations: Levenberg-Marquardt iterations per frame.
    direction_weight: weight of a fingertip-direction residual (unit vectors) relative to
      a position residual in cm: 2.0 makes 0.1 rad of a distal segment cost as much as
      2 mm of keypoint position.
    prior_weight: pull toward the prior pose (per rad, relative to 1 cm).
    drop_tilt: level the palm before fitting (see the module docstring).
    scale_to_robot: scale the hand to the Dojo hand's palm length.
  """

  iterations: int = 30
  direction_weight: float = 2.0
  prior_weight: float = 0.03
  drop_tilt: bool = True
  scale_to_robot: bool = True


def variant_weights(variant: str) -> tuple[np.ndarray, np.ndarray]:
  """Per-keypoint position weights f32[21] and per-tip direction weights f32[5]."""
  if variant not in VARIANTS:
    raise ValueError(f"Unknown retargeting variant {variant!r}; variants are {VARIANTS}.")
  points = np.zeros(NUM_KEYPOINTS, np.float32)
  directions = np.zeros(len(TIP_KEYPOINTS), np.float32)
  if variant == "full":
    points[:] = 1.0
    directions[:] = 1.0
  elif variant == "fingertips":
    points[[WRIST, *TIP_KEYPOINTS]] = 1.0
  else:
    points[list(PALM_KEYPOINTS)] = 1.0
  return points, directions


def _normalize(v: jax.Array) -> jax.Array:
  return v / jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _rot_z(yaw: jax.Array) -> jax.Array:
  c, s = jnp.cos(yaw), jnp.sin(yaw)
  zero, one = jnp.zeros_like(yaw), jnp.ones_like(yaw)
  return jnp.stack([jnp.stack([c, -s, zero]), jnp.stack([s, c, zero]),
                    jnp.stack([zero, zero, one])])


def _level(normal: jax.Array) -> jax.Array:
  """The smallest rotation that turns the unit ``normal`` to +z (pi about x if opposite)."""
  z = jnp.array([0.0, 0.0, 1.0], normal.dtype)
  v = jnp.cross(normal, z)
  c = jnp.dot(normal, z)
  k = jnp.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])
  rot = jnp.eye(3) + k + (k @ k) / jnp.maximum(1.0 + c, 1e-6)
  flip = jnp.diag(jnp.array([1.0, -1.0, -1.0]))
  return jnp.where(c < -0.9999, flip, rot)


class Retargeter:
  """Fits the Dojo hand to human keypoints; holds the kinematics and compiled solvers."""

  def __init__(self, config: RetargetConfig = RetargetConfig(),
               kinematics: Optional[dhk.HandKinematics] = None):
    self.config = config
    self.kinematics = kinematics or dhk.HandKinematics()
    kin = self.kinematics
    self.lower = jnp.asarray(kin.lower)
    self.upper = jnp.asarray(kin.upper)
    self.palm_length = kin.palm_length()
    rest = np.asarray(kin.keypoints(np.zeros(NUM_JOINTS, np.float32)))
    # Stands in for the keypoints of untracked frames (whose result is not used).
    self.rest_keypoints = rest
    self._wrist_local = jnp.asarray(rest[WRIST])  # palm frame = world frame at rest
    forward = rest[MIDDLE_MCP] - rest[WRIST]
    self._yaw_offset = float(np.arctan2(forward[1], forward[0]))
    # The neutral hand: every joint at 0, moved into its range.
    self.neutral = jnp.clip(jnp.zeros(NUM_JOINTS), self.lower, self.upper)
    self._batch = jax.jit(jax.vmap(self._solve, in_axes=(0, 0, 0, None, None, None)))
    self._sequence = jax.jit(self._solve_sequence)

  # ------------------------------------------------------------------ normalisation
  def normalize(self, keypoints: jax.Array, frame: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One frame's keypoints [21,3] in the Dojo's world frame, scaled and levelled."""
    cfg = self.config
    kp = keypoints @ frame[:3, :3].T + frame[:3, 3]
    wrist = kp[WRIST]
    length = jnp.linalg.norm(kp[MIDDLE_MCP] - wrist)
    scale = (self.palm_length / jnp.maximum(length, 1e-6) if cfg.scale_to_robot
             else jnp.ones(()))
    kp = wrist + scale * (kp - wrist)
    if cfg.drop_tilt:
      # Back of a right hand: (little MCP - wrist) x (index MCP - wrist).
      normal = _normalize(jnp.cross(kp[LITTLE_MCP] - wrist, kp[INDEX_MCP] - wrist))
      kp = wrist + (kp - wrist) @ _level(normal).T
    return kp, scale

  def initial_wrist(self, target: jax.Array) -> jax.Array:
    """Wrist x, y, z, yaw that put the Dojo palm on the target's wrist and MCP line."""
    forward = target[MIDDLE_MCP] - target[WRIST]
    yaw = jnp.arctan2(forward[1], forward[0]) - self._yaw_offset
    pos = target[WRIST] - _rot_z(yaw) @ self._wrist_local
    return jnp.concatenate([pos, yaw[None]])

  # ------------------------------------------------------------------ the fit
  def _residual(self, q, target, prior, weights, dir_weights):
    """Residuals r and their Jacobian dr/dq (analytic), and the keypoints at ``q``."""
    cfg = self.config
    kp, jk = self.kinematics.keypoints_and_jacobian(q)  # [21, 3], [21, 3, 24]
    sw = jnp.sqrt(weights)[:, None]
    r_pos = (sw * (kp - target) / _UNIT).reshape(-1)
    j_pos = (sw[..., None] * jk / _UNIT).reshape(-1, NUM_JOINTS)
    tips, dips = jnp.asarray(TIP_KEYPOINTS), jnp.asarray(_DIP_OF_TIP)
    v = kp[tips] - kp[dips]
    length = jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), 1e-9)
    u = v / length
    # d(v/|v|) = (I - u u^T) dv / |v|
    proj = (jnp.eye(3) - u[:, :, None] * u[:, None, :]) / length[..., None]
    du = jnp.einsum("tij,tjq->tiq", proj, jk[tips] - jk[dips])
    sd = cfg.direction_weight * jnp.sqrt(dir_weights)[:, None]
    r_dir = (sd * (u - _normalize(target[tips] - target[dips]))).reshape(-1)
    j_dir = (sd[..., None] * du).reshape(-1, NUM_JOINTS)
    # Fingers only: the wrist follows the keypoints, not its previous value.
    r_reg = cfg.prior_weight * (q[4:] - prior[4:])
    j_reg = cfg.prior_weight * jnp.eye(NUM_JOINTS)[4:]
    return (jnp.concatenate([r_pos, r_dir, r_reg]), jnp.concatenate([j_pos, j_dir, j_reg]),
            kp)

  def _solve(self, keypoints, init, use_init, frame, weights, dir_weights):
    """One frame: keypoints [21,3] -> (joints [24], error, scale)."""
    target, scale = self.normalize(keypoints, frame)
    wrist = jnp.where(use_init, init[:4], self.initial_wrist(target))
    q0 = jnp.concatenate([wrist, jnp.clip(init[4:], self.lower[4:], self.upper[4:])])
    prior = q0
    lo = jnp.concatenate([jnp.full(4, -jnp.inf), self.lower[4:]])
    hi = jnp.concatenate([jnp.full(4, jnp.inf), self.upper[4:]])

    def evaluate(q):
      r, jac, kp = self._residual(q, target, prior, weights, dir_weights)
      return q, r, jac, kp, jnp.dot(r, r)

    def step(carry, _):
      (q, r, jac, kp, c), lam = carry
      jtj = jac.T @ jac
      damping = lam * (jnp.diag(jnp.diag(jtj)) + 1e-6 * jnp.eye(NUM_JOINTS))
      delta = jnp.linalg.solve(jtj + damping, -jac.T @ r)
      candidate = evaluate(jnp.clip(q + delta, lo, hi))
      better = candidate[-1] < c
      state = jax.tree.map(lambda new, old: jnp.where(better, new, old), candidate,
                           (q, r, jac, kp, c))
      lam = jnp.clip(jnp.where(better, lam / 3.0, lam * 4.0), 1e-7, 1e7)
      return (state, lam), None

    ((q, _, _, kp, _), _), _ = jax.lax.scan(step, (evaluate(q0), jnp.asarray(1e-2)), None,
                                            length=self.config.iterations)
    q = q.at[3].set(jnp.arctan2(jnp.sin(q[3]), jnp.cos(q[3])))  # yaw in (-pi, pi]
    used = weights > 0
    sq = jnp.sum((kp - target) ** 2, axis=-1)
    error = jnp.sqrt(jnp.sum(jnp.where(used, sq, 0.0)) / jnp.maximum(used.sum(), 1))
    return q, error, scale

  def _solve_sequence(self, keypoints, valid, init, use_init, frame, weights, dir_weights):
    """Frames in order, each warm-started from the last valid one's joints."""

    def step(carry, inputs):
      prev, have_prev = carry
      kp, ok = inputs
      kp = jnp.where(ok, kp, jnp.asarray(self.rest_keypoints))
      q, error, scale = self._solve(kp, prev, have_prev, frame, weights, dir_weights)
      q = jnp.where(ok, q, prev)  # an invalid frame holds the last pose
      return (q, have_prev | ok), (q, jnp.where(ok, error, jnp.nan), scale)

    _, (joints, errors, scales) = jax.lax.scan(step, (init, use_init), (keypoints, valid))
    return joints, errors, scales

  # ------------------------------------------------------------------ public
  def __call__(self, keypoints, *, variant: str = "full", init=None, frame=None,
               where: str = "keypoints") -> Retargeted:
    """See :func:`retarget`."""
    kp = check_keypoints(keypoints, where, batched=True)
    b = kp.shape[0]
    use_init = init is not None
    init = self._init(init, b, where)
    weights, dirs = variant_weights(variant)
    # Padded to a bucket size so that batches of similar sizes share one compilation.
    pad = bucket(b) - b
    kp = np.concatenate([kp, np.broadcast_to(kp[:1], (pad,) + kp.shape[1:])])
    init = jnp.concatenate([init, jnp.broadcast_to(init[:1], (pad, NUM_JOINTS))])
    q, error, scale = self._batch(jnp.asarray(kp), init, jnp.full((b + pad,), use_init),
                                  _frame(frame, where), jnp.asarray(weights),
                                  jnp.asarray(dirs))
    return Retargeted(q[:b], error[:b], scale[:b])

  def sequence(self, keypoints, *, valid=None, variant: str = "full", init=None,
               frame=None, where: str = "keypoints") -> Retargeted:
    """A time series f32[T,21,3], each frame warm-started from the previous one.

    Frames with ``valid`` False (keypoints may be NaN there) keep the last pose and get
    a NaN error.
    """
    kp = check_keypoints(keypoints, where, batched=True, valid=valid)
    t = kp.shape[0]
    valid = np.ones(t, bool) if valid is None else np.asarray(valid, bool)
    use_init = init is not None
    init = self._init(init, 1, where)[0]
    weights, dirs = variant_weights(variant)
    # Episodes differ in length: pad with invalid frames (they hold the last pose) to a
    # bucket size, so that a dataset's episodes share a few compilations.
    pad = bucket(t) - t
    kp = np.concatenate([np.nan_to_num(kp), np.zeros((pad,) + kp.shape[1:], np.float32)])
    valid_padded = np.concatenate([valid, np.zeros(pad, bool)])
    q, error, scale = self._sequence(jnp.asarray(kp), jnp.asarray(valid_padded), init,
                                     jnp.asarray(use_init), _frame(frame, where),
                                     jnp.asarray(weights), jnp.asarray(dirs))
    return Retargeted(q[:t], error[:t], scale[:t])

  def _init(self, init, b: int, where: str) -> jax.Array:
    if init is None:
      return jnp.broadcast_to(self.neutral, (b, NUM_JOINTS))
    init = np.asarray(init, np.float32)
    if init.shape not in ((NUM_JOINTS,), (b, NUM_JOINTS)) or not np.isfinite(init).all():
      raise RetargetError(f"{where}: init has shape {init.shape} (or NaN); expected "
                          f"[{NUM_JOINTS}] or [{b}, {NUM_JOINTS}] finite joints.")
    return jnp.broadcast_to(jnp.asarray(init), (b, NUM_JOINTS))


def bucket(n: int) -> int:
  """The padded size of a batch or sequence of ``n``: 16, 32, 64, ... then multiples of
  1024, so that few sizes compile."""
  if n <= 1024:
    return max(16, 1 << (n - 1).bit_length())
  return -(-n // 1024) * 1024


def check_keypoints(keypoints, where: str, batched: bool = True,
                    valid: Optional[np.ndarray] = None) -> np.ndarray:
  """Keypoints as f32[B,21,3] (or [21,3] if not ``batched``); shape or NaN raise naming
  ``where`` (NaN is allowed in frames whose ``valid`` is False)."""
  kp = np.asarray(keypoints, np.float32)
  shape = (-1, NUM_KEYPOINTS, 3) if batched else (NUM_KEYPOINTS, 3)
  if kp.ndim != len(shape) or kp.shape[-2:] != (NUM_KEYPOINTS, 3) or (batched and not len(kp)):
    raise RetargetError(f"{where}: keypoints have shape {kp.shape}; expected "
                        f"{'[B, 21, 3]' if batched else '[21, 3]'} in the MediaPipe order "
                        f"{KEYPOINT_NAMES[:2]}...")
  ok = np.isfinite(kp).all(axis=(-1, -2))
  if valid is not None:
    valid = np.asarray(valid, bool)
    if valid.shape != kp.shape[:1]:
      raise RetargetError(f"{where}: valid has shape {valid.shape}, keypoints "
                          f"{kp.shape}; expected one flag per frame.")
    ok |= ~valid
  if not ok.all():
    bad = int(np.argmin(ok))
    raise RetargetError(f"{where}: keypoints are NaN or inf at frame {bad} (mask the "
                        "frame out if the hand was not tracked).")
  return kp


def _frame(frame, where: str) -> jax.Array:
  if frame is None:
    return jnp.eye(4)
  frame = np.asarray(frame, np.float32)
  if frame.shape != (4, 4) or not np.isfinite(frame).all():
    raise RetargetError(f"{where}: frame has shape {frame.shape} (or NaN); expected a "
                        "finite 4x4 rigid transform into the Dojo's world frame.")
  return jnp.asarray(frame)


@functools.lru_cache(maxsize=4)
def default_retargeter(config: RetargetConfig = RetargetConfig()) -> Retargeter:
  """A shared :class:`Retargeter` per config, so its solvers compile once per process."""
  return Retargeter(config)


def retarget(keypoints, *, variant: str = "full", init=None, frame=None,
             config: RetargetConfig = RetargetConfig(),
             where: str = "keypoints") -> Retargeted:
  """Fits the Dojo hand's 24 joints to human keypoints, each sample on its own.

  Args:
    keypoints: f32[B,21,3] in MediaPipe order (metres), any hand size.
    variant: ``"full"``, ``"fingertips"`` or ``"wrist"`` (:data:`VARIANTS`).
    init: optional joints f32[24] or f32[B,24] to start from (warm start, e.g. the
      previous frame's result); default the neutral hand with the wrist placed in closed
      form on the keypoints.
    frame: optional 4x4 transform from the keypoints' frame to the Dojo world frame.
    config: fit settings.
    where: what the keypoints are (an episode name), for error messages.

  Returns:
    :class:`Retargeted` ``(joints f32[B,24], error f32[B], scale f32[B])``; joints in
    ``dojo_hand_kinematics.JOINTS`` order (= dex_lift's ``robot_joints``).
  """
  return default_retargeter(config)(keypoints, variant=variant, init=init, frame=frame,
                                    where=where)


def retarget_episode(keypoints, *, valid=None, episode: str = "episode",
                     variant: str = "full", frame=None, warm_start: bool = True,
                     config: RetargetConfig = RetargetConfig(),
                     wrist_step: Optional[float] = None,
                     yaw_step: Optional[float] = None) -> dict[str, np.ndarray]:
  """One human episode's keypoints -> Dojo-hand joints and ``dex_lift`` actions.

  The action at step ``t`` moves the hand to the retargeted pose of step ``t + 1``, in
  dex_lift's slots and scaling (:data:`ACTION_SLOTS`): ``wrist_delta`` (4) is the change
  of the wrist's x, y, z, yaw divided by ``wrist_step``/``yaw_step`` (dex_lift's config:
  2 cm, 0.1 rad per control step) and clipped to [-1, 1], so faster human motion
  saturates; ``hand_joint_targets`` (20) maps each finger joint's range to [-1, 1].

  Args:
    keypoints: f32[T,21,3] in metres.
    valid: bool[T], False where the hand was not tracked (those keypoints may be NaN);
      such a frame holds the previous pose and its action is masked.
    episode: the episode's name, for error messages.
    variant, frame, config: as in :func:`retarget`.
    warm_start: fit frames in order, each starting from the previous one (temporally
      consistent); otherwise every frame is fitted on its own from the neutral hand.
    wrist_step, yaw_step: override dex_lift's wrist action scale.

  Returns:
    ``{"joints": f32[T,24], "action": f32[T,24], "action_mask": bool[T], "error": f32[T]
    (NaN where not valid), "scale": f32[T]}``.
  """
  kp = check_keypoints(keypoints, episode, batched=True, valid=valid)
  t = kp.shape[0]
  valid = np.ones(t, bool) if valid is None else np.asarray(valid, bool)
  retargeter = default_retargeter(config)
  if warm_start:
    result = retargeter.sequence(kp, valid=valid, variant=variant, frame=frame,
                                 where=episode)
    joints = np.asarray(result.joints)
    error = np.asarray(result.error)
  else:
    result = retargeter(np.where(valid[:, None, None], kp, retargeter.rest_keypoints),
                        variant=variant, frame=frame, where=episode)
    joints = np.asarray(result.joints).copy()
    error = np.where(valid, np.asarray(result.error), np.nan)
    for i in range(1, t):  # an untracked frame holds the last pose
      if not valid[i]:
        joints[i] = joints[i - 1]
  steps = _wrist_steps(wrist_step, yaw_step)
  lower, upper = retargeter.kinematics.lower[4:], retargeter.kinematics.upper[4:]
  action = np.zeros((t, NUM_JOINTS), np.float32)
  nxt = joints[1:]
  wrist = nxt[:, :4] - joints[:-1, :4]
  wrist[:, 3] = np.arctan2(np.sin(wrist[:, 3]), np.cos(wrist[:, 3]))
  action[:-1, :4] = wrist / steps
  mid, half = (upper + lower) / 2, (upper - lower) / 2
  action[:-1, 4:] = (nxt[:, 4:] - mid) / half
  action = np.clip(action, -1.0, 1.0)
  mask = np.zeros(t, bool)
  mask[:-1] = valid[:-1] & valid[1:]
  action[~mask] = 0.0
  return {"joints": joints.astype(np.float32), "action": action, "action_mask": mask,
          "error": error.astype(np.float32), "scale": np.asarray(result.scale, np.float32)}


def _wrist_steps(wrist_step: Optional[float], yaw_step: Optional[float]) -> np.ndarray:
  if wrist_step is None or yaw_step is None:
    # Imported here: dex_lift loads MuJoCo/MJX (seconds), needed only for these defaults.
    from dojo.tasks.dex_lift import DexLift  # pylint: disable=import-outside-toplevel
    cfg = DexLift.default_config()
    wrist_step = cfg.wrist_step if wrist_step is None else wrist_step
    yaw_step = cfg.yaw_step if yaw_step is None else yaw_step
  return np.array([wrist_step] * 3 + [yaw_step], np.float32)
