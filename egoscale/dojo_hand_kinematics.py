"""Differentiable forward kinematics of the Dojo hand at the 21 human hand keypoints.

The Dojo's dexterous hand (``dojo/assets/hand.xml``, task ``dex_lift``) has 24 joints:
the wrist's x, y, z slides and yaw hinge on the palm body, then four fingers (MCP
abduction + flexion, PIP, DIP) and a thumb (CMC abduction + flexion, MCP, IP). Each of
the 21 keypoints of the MediaPipe convention (:data:`KEYPOINT_NAMES`, from
:mod:`egoscale.hand`) has a counterpart
on the hand:

* 0 wrist: the middle of the palm box's back edge (the palm body's ``-x`` face);
* fingers MCP, PIP, DIP: the origins of the ``<finger>_prox``, ``_mid``, ``_dist`` bodies
  (each sits on its joint's axis), TIP: the ``<finger>_tip`` site;
* thumb CMC, MCP, IP: the origins of ``thumb_meta``, ``thumb_prox``, ``thumb_dist``,
  TIP: the ``thumb_tip`` site.

:class:`HandKinematics` reads the body tree (positions, orientations, joint axes and
anchors, parents) from the MjModel once and computes the keypoints with a few dozen
small jnp ops, which XLA fuses well on CPU; MJX's generic kinematics runs the whole
model (objects included) and is much slower there.
``keypoints_mujoco`` is the C MuJoCo reference the tests compare against.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from egoscale import hand

HAND_XML = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "dojo",
                        "assets", "hand.xml")
WRIST_JOINTS = ("wrist_x", "wrist_y", "wrist_z", "wrist_yaw")
FINGERS = ("index", "middle", "ring", "little")
# dex_lift's order of the 20 finger joints (dojo.tasks.dex_lift.FINGER_JOINTS; checked in
# the tests, kept here so that loading the kinematics does not import MJX).
FINGER_JOINTS = tuple(f"{f}_{j}" for f in FINGERS for j in ("abd", "mcp", "pip", "dip")) + (
    "thumb_cmc_abd", "thumb_cmc_flex", "thumb_mcp", "thumb_ip")
JOINTS = WRIST_JOINTS + FINGER_JOINTS
NUM_JOINTS = len(JOINTS)  # 24

# The 21 keypoints in MediaPipe order, as the synthetic human hand names them.
KEYPOINT_NAMES = hand.KEYPOINT_NAMES
NUM_KEYPOINTS = hand.NUM_KEYPOINTS
TIP_KEYPOINTS = (4, 8, 12, 16, 20)        # thumb, index, middle, ring, little
PALM_KEYPOINTS = (0, 5, 9, 13, 17)        # wrist and the four finger MCPs
WRIST, INDEX_MCP, MIDDLE_MCP, LITTLE_MCP = 0, 5, 9, 17

# Where each keypoint is on the hand: ("body", name) = the body's origin, ("site", name).
_FINGER_POINTS = [(("body", f"{f}_prox"), ("body", f"{f}_mid"), ("body", f"{f}_dist"),
                   ("site", f"{f}_tip")) for f in FINGERS]
_KEYPOINT_SOURCES = ((("wrist", "palm"),)
                     + (("body", "thumb_meta"), ("body", "thumb_prox"),
                        ("body", "thumb_dist"), ("site", "thumb_tip"))
                     + sum((tuple(p) for p in _FINGER_POINTS), ()))


@dataclasses.dataclass(frozen=True)
class _Joint:
  qpos: int          # index into the 24 hand joints (JOINTS order)
  hinge: bool        # hinge (True) or slide (False)
  axis: np.ndarray   # in the body frame
  anchor: np.ndarray  # in the body frame
  ref: float         # qpos0: the value at which the body is at its model pose


@dataclasses.dataclass(frozen=True)
class _Body:
  parent: int        # index into HandKinematics.bodies, -1 for the root (the world)
  pos: np.ndarray
  rot: np.ndarray    # 3x3, body frame in the parent frame
  joints: tuple[_Joint, ...]


def _quat_to_mat(q: np.ndarray) -> np.ndarray:
  mat = np.zeros(9)
  mujoco.mju_quat2Mat(mat, np.asarray(q, np.float64))
  return mat.reshape(3, 3)


def _axis_angle(axis: jax.Array, angle: jax.Array) -> jax.Array:
  """Rodrigues' rotation matrix about the unit ``axis``."""
  x, y, z = axis[0], axis[1], axis[2]
  k = jnp.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]], angle.dtype)
  return (jnp.eye(3, dtype=angle.dtype) + jnp.sin(angle) * k
          + (1.0 - jnp.cos(angle)) * (k @ k))


class HandKinematics:
  """Forward kinematics of the Dojo hand: 24 joints -> 21 keypoints (world frame)."""

  def __init__(self, model: Optional[mujoco.MjModel] = None, root: str = "palm"):
    """Reads the body tree under ``root`` from ``model`` (default: ``hand.xml``)."""
    model = model if model is not None else mujoco.MjModel.from_xml_path(HAND_XML)
    self.model = model
    root_id = model.body(root).id
    # Bodies under the root, in MuJoCo's order (a parent always before its children).
    ids = [root_id] + [b for b in range(root_id + 1, model.nbody)
                       if self._under(model, b, root_id)]
    index = {b: i for i, b in enumerate(ids)}
    qpos_of = {}
    for i, name in enumerate(JOINTS):
      j = model.joint(name)
      qpos_of[int(j.id)] = i
    bodies = []
    for b in ids:
      joints = []
      for j in range(model.body_jntadr[b], model.body_jntadr[b] + model.body_jntnum[b]):
        kind = int(model.jnt_type[j])
        if kind not in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)):
          raise ValueError(f"HandKinematics: joint {model.joint(j).name!r} is not a hinge or "
                           "slide; only those are supported.")
        if j not in qpos_of:
          raise ValueError(f"HandKinematics: joint {model.joint(j).name!r} under {root!r} is "
                           f"not one of the 24 hand joints {JOINTS}.")
        joints.append(_Joint(qpos_of[j], kind == int(mujoco.mjtJoint.mjJNT_HINGE),
                             model.jnt_axis[j].copy(), model.jnt_pos[j].copy(),
                             float(model.qpos0[model.jnt_qposadr[j]])))
      parent = int(model.body_parentid[b])
      bodies.append(_Body(index.get(parent, -1), model.body_pos[b].copy(),
                          _quat_to_mat(model.body_quat[b]), tuple(joints)))
    self.bodies = tuple(bodies)
    self.body_ids = tuple(ids)
    # Keypoints as (body index, local offset).
    point_body, point_offset = [], []
    for kind, name in _KEYPOINT_SOURCES:
      if kind == "wrist":  # the palm box's back edge
        geom = model.geom(name)
        point_body.append(index[int(geom.bodyid[0])])
        point_offset.append(np.asarray(geom.pos) - np.array([geom.size[0], 0.0, 0.0]))
      elif kind == "body":
        point_body.append(index[model.body(name).id])
        point_offset.append(np.zeros(3))
      else:
        site = model.site(name)
        point_body.append(index[int(site.bodyid[0])])
        point_offset.append(np.asarray(site.pos).copy())
    self.point_body = np.asarray(point_body, np.int32)
    self.point_offset = np.asarray(point_offset, np.float32)
    # _moves[k, j]: joint j is on the chain from the root to keypoint k's body.
    self._hinge = np.zeros(NUM_JOINTS, bool)
    self._moves = np.zeros((NUM_KEYPOINTS, NUM_JOINTS), bool)
    for k, b in enumerate(self.point_body):
      while b >= 0:
        for joint in self.bodies[b].joints:
          self._moves[k, joint.qpos] = True
          self._hinge[joint.qpos] = joint.hinge
        b = self.bodies[b].parent
    jnt = [model.joint(n).id for n in JOINTS]
    self.lower = model.jnt_range[jnt, 0].astype(np.float32)
    self.upper = model.jnt_range[jnt, 1].astype(np.float32)
    self._qposadr = np.asarray([model.jnt_qposadr[j] for j in jnt], np.int32)
    self._batched = jax.jit(jax.vmap(self._single))

  @staticmethod
  def _under(model: mujoco.MjModel, body: int, root: int) -> bool:
    while body > 0:
      if body == root:
        return True
      body = int(model.body_parentid[body])
    return body == root

  # ------------------------------------------------------------------ JAX
  def body_frames(self, q: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """World frames of the hand's bodies and joints for one joint vector ``q`` f32[24].

    Returns body positions ``[nb, 3]`` and rotations ``[nb, 3, 3]`` (MuJoCo's
    ``xpos``/``xmat`` of ``self.body_ids``), and each hand joint's world axis and anchor
    ``[24, 3]`` (MuJoCo's ``xaxis``/``xanchor``, in ``JOINTS`` order).
    """
    q = jnp.asarray(q)
    dtype = q.dtype
    positions, rotations = [], []
    axes, anchors = [None] * NUM_JOINTS, [None] * NUM_JOINTS
    for body in self.bodies:
      if body.parent < 0:
        pos, rot = jnp.zeros(3, dtype), jnp.eye(3, dtype=dtype)
      else:
        pos, rot = positions[body.parent], rotations[body.parent]
      pos = pos + rot @ jnp.asarray(body.pos, dtype)
      rot = rot @ jnp.asarray(body.rot, dtype)
      for joint in body.joints:
        value = q[joint.qpos] - joint.ref
        axis = jnp.asarray(joint.axis, dtype)
        anchor = pos + rot @ jnp.asarray(joint.anchor, dtype)
        axes[joint.qpos], anchors[joint.qpos] = rot @ axis, anchor
        if joint.hinge:
          # Rotate about the axis through the anchor: the anchor stays where it is.
          rot = rot @ _axis_angle(axis, value)
          pos = anchor - rot @ jnp.asarray(joint.anchor, dtype)
        else:
          pos = pos + (rot @ axis) * value
      positions.append(pos)
      rotations.append(rot)
    return jnp.stack(positions), jnp.stack(rotations), jnp.stack(axes), jnp.stack(anchors)

  def keypoints_and_jacobian(self, q: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Keypoints ``[21, 3]`` and their Jacobian ``[21, 3, 24]`` for one ``q`` f32[24].

    Analytic (a hinge moves a point by ``axis x (point - anchor)``, a slide by ``axis``),
    so it costs one forward pass: far cheaper to compile and run than ``jax.jacfwd``.
    """
    q = jnp.asarray(q, jnp.float32)
    pos, rot, axes, anchors = self.body_frames(q)
    kp = self._points(pos, rot)
    hinge = jnp.asarray(self._hinge)[None, :, None]
    moved = jnp.where(hinge, jnp.cross(axes[None], kp[:, None] - anchors[None]),
                      jnp.broadcast_to(axes[None], (NUM_KEYPOINTS, NUM_JOINTS, 3)))
    jac = jnp.asarray(self._moves)[:, :, None] * moved  # [21, 24, 3]
    return kp, jac.transpose(0, 2, 1)

  def _points(self, pos: jax.Array, rot: jax.Array) -> jax.Array:
    body = jnp.asarray(self.point_body)
    offset = jnp.asarray(self.point_offset)
    return pos[body] + jnp.einsum("kij,kj->ki", rot[body], offset)

  def keypoints(self, q: jax.Array) -> jax.Array:
    """The 21 keypoints ``[..., 21, 3]`` (world frame) of joints ``q`` f32[..., 24].

    Traceable (use it inside jit/grad); called on concrete arrays it runs one jitted
    batched pass (compiled once per batch size).
    """
    q = jnp.asarray(q, jnp.float32)
    if q.shape[-1] != NUM_JOINTS:
      raise ValueError(f"HandKinematics.keypoints: q has shape {q.shape}; expected "
                       f"[..., {NUM_JOINTS}] joints in the order {JOINTS}.")
    flat = q.reshape(-1, NUM_JOINTS)
    fk = self._batched if not isinstance(q, jax.core.Tracer) else jax.vmap(self._single)
    return fk(flat).reshape(*q.shape[:-1], NUM_KEYPOINTS, 3)

  def _single(self, q: jax.Array) -> jax.Array:
    pos, rot, _, _ = self.body_frames(q)
    return self._points(pos, rot)

  # ------------------------------------------------------------------ reference
  def keypoints_mujoco(self, q: np.ndarray) -> np.ndarray:
    """The same keypoints from C MuJoCo's ``mj_kinematics`` (float64 numpy), for tests."""
    q = np.asarray(q, np.float64)
    flat = q.reshape(-1, NUM_JOINTS)
    data = mujoco.MjData(self.model)
    out = np.empty((len(flat), NUM_KEYPOINTS, 3))
    for i, qi in enumerate(flat):
      data.qpos[:] = self.model.qpos0
      data.qpos[self._qposadr] = qi
      mujoco.mj_kinematics(self.model, data)
      # Bodies' origins and sites straight from MuJoCo (not through point_offset), so
      # that a wrong site or body lookup here would show up in the tests.
      for k, (kind, name) in enumerate(_KEYPOINT_SOURCES):
        if kind == "body":
          out[i, k] = data.xpos[self.model.body(name).id]
        elif kind == "site":
          out[i, k] = data.site_xpos[self.model.site(name).id]
        else:
          geom = self.model.geom(name)
          body = int(geom.bodyid[0])
          local = np.asarray(geom.pos) - np.array([geom.size[0], 0.0, 0.0])
          out[i, k] = data.xpos[body] + data.xmat[body].reshape(3, 3) @ local
    return out.reshape(*q.shape[:-1], NUM_KEYPOINTS, 3)

  def palm_length(self) -> float:
    """Wrist to middle-finger MCP at the rest pose (m): the hand-size reference."""
    kp = np.asarray(self.keypoints(np.zeros(NUM_JOINTS, np.float32)))
    return float(np.linalg.norm(kp[MIDDLE_MCP] - kp[WRIST]))
