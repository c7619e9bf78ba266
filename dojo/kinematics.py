"""Pure-JAX kinematics of a serial chain, read from a MuJoCo model's constants.

Works with either physics implementation: MuJoCo Warp's ``Data`` has no ``mjx.jac``,
so the scripted experts compute forward kinematics here from ``body_pos``,
``body_quat``, ``jnt_pos`` and ``jnt_axis`` and differentiate it with ``jax.jacfwd``.
Inverse kinematics is damped least squares (Levenberg-Marquardt) on a position and
orientation residual, with a weak pull toward a rest posture that resolves the arm's
redundancy (7 joints, 6 task coordinates).
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from dojo import mjcf


def axis_angle_to_mat(axis: jax.Array, angle: jax.Array) -> jax.Array:
  """Rotation by ``angle`` about the unit ``axis`` (Rodrigues)."""
  k = jnp.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]],
                 [-axis[1], axis[0], 0.0]])
  return jnp.eye(3) + jnp.sin(angle) * k + (1 - jnp.cos(angle)) * (k @ k)


def down_frame(yaw: jax.Array) -> jax.Array:
  """Orientation of a gripper pointing straight down, turned by ``yaw`` about z.

  ``yaw = 0`` is the arm's folded rest pose (the hand's x axis along world -x); the
  fingers close along the hand's y axis, ``(-sin yaw, cos yaw, 0)`` in the world.
  """
  c, s = jnp.cos(yaw), jnp.sin(yaw)
  zero = jnp.zeros_like(c)
  x = jnp.stack([-c, -s, zero])
  y = jnp.stack([-s, c, zero])
  z = jnp.array([0.0, 0.0, -1.0])
  return jnp.stack([x, y, z], axis=1)


def wrap_angle(a: jax.Array, period: float = 2 * np.pi) -> jax.Array:
  """``a`` wrapped into [-period/2, period/2)."""
  return (a + period / 2) % period - period / 2


@dataclasses.dataclass(frozen=True)
class _Link:
  pos: np.ndarray        # body position in the parent frame
  rot: np.ndarray        # body orientation in the parent frame (3x3)
  joints: tuple          # ((variable index, axis, anchor), ...) hinge joints in order


class SerialChain:
  """Forward and inverse kinematics from the world to a site through hinge joints.

  Only the hinge joints named in ``joints`` move; every other joint on the chain is
  held at zero (and must not exist between the root and the site in practice).
  """

  def __init__(self, model: mujoco.MjModel, site: str, joints: Sequence[str]):
    """Args:
      model: the compiled MuJoCo model.
      site: the site whose pose the chain ends at (e.g. the grasp point).
      joints: the hinge joints that are the chain's variables, in order.
    """
    site_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, site)
    if site_id < 0:
      raise ValueError(f"SerialChain: no site named {site!r}; the model's sites: "
                       f"{mjcf.names(model, mujoco.mjtObj.mjOBJ_SITE)}.")
    joint_ids = []
    for name in joints:
      jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
      if jid < 0:
        raise ValueError(f"SerialChain: no joint named {name!r}; the model's joints: "
                         f"{mjcf.names(model, mujoco.mjtObj.mjOBJ_JOINT)}.")
      if model.jnt_type[jid] != mujoco.mjtJoint.mjJNT_HINGE:
        raise ValueError(f"SerialChain: joint {name!r} is not a hinge.")
      joint_ids.append(jid)
    var_of_joint = {jid: i for i, jid in enumerate(joint_ids)}

    bodies = []
    b = int(model.site_bodyid[site_id])
    while b != 0:
      bodies.append(b)
      b = int(model.body_parentid[b])
    bodies.reverse()
    links = []
    seen = set()
    for b in bodies:
      js = []
      for jid in range(model.body_jntadr[b], model.body_jntadr[b] + model.body_jntnum[b]):
        if jid not in var_of_joint:
          raise ValueError(f"SerialChain: joint {jid} on the chain to {site!r} is not "
                           f"one of the variables {tuple(joints)}.")
        seen.add(jid)
        js.append((var_of_joint[jid], np.asarray(model.jnt_axis[jid], np.float32),
                   np.asarray(model.jnt_pos[jid], np.float32)))
      rot = np.zeros(9)
      mujoco.mju_quat2Mat(rot, model.body_quat[b])
      links.append(_Link(np.asarray(model.body_pos[b], np.float32),
                         rot.reshape(3, 3).astype(np.float32), tuple(js)))
    if seen != set(joint_ids):
      raise ValueError(f"SerialChain: joints {tuple(joints)} are not all on the chain "
                       f"to site {site!r}.")
    site_rot = np.zeros(9)
    mujoco.mju_quat2Mat(site_rot, model.site_quat[site_id])
    self._links = tuple(links)
    self._site_pos = np.asarray(model.site_pos[site_id], np.float32)
    self._site_rot = site_rot.reshape(3, 3).astype(np.float32)
    self.num_joints = len(joint_ids)
    # Joints without limits (jnt_limited 0, range 0 0) are free to turn.
    limited = model.jnt_limited[joint_ids].astype(bool)
    self.lower = np.where(limited, model.jnt_range[joint_ids, 0], -np.inf).astype(np.float32)
    self.upper = np.where(limited, model.jnt_range[joint_ids, 1], np.inf).astype(np.float32)

  def forward(self, q: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Site position f32[3] and orientation f32[3, 3] (columns = local axes)."""
    pos = jnp.zeros(3)
    rot = jnp.eye(3)
    for link in self._links:
      pos = pos + rot @ link.pos
      rot = rot @ link.rot
      for var, axis, anchor in link.joints:
        world_anchor = pos + rot @ anchor
        rot = rot @ axis_angle_to_mat(jnp.asarray(axis), q[var])
        pos = world_anchor - rot @ anchor
    return pos + rot @ self._site_pos, rot @ self._site_rot

  def solve(self, q0: jax.Array, pos: jax.Array, rot: Optional[jax.Array] = None,
            rest: Optional[jax.Array] = None, iterations: int = 6,
            rot_weight: float = 0.3, rest_weight: float = 0.02,
            damping: float = 1e-3) -> jax.Array:
    """Joint angles that put the site at ``pos`` (and ``rot``), starting from ``q0``.

    Args:
      q0: f32[n] starting joint angles (e.g. the measured ones).
      pos: f32[3] target position in the world.
      rot: optional f32[3, 3] target orientation.
      rest: optional f32[n] posture the solution is weakly pulled toward.
      iterations: Levenberg-Marquardt steps (fixed, so the solve is jit-able).
      rot_weight: metres of position error worth one unit of orientation error.
      rest_weight: weight of the rest-posture term.
      damping: Levenberg-Marquardt damping.

    Returns:
      f32[n] joint angles, clipped to the joint limits.
    """
    rest = q0 if rest is None else rest

    def residual(q):
      p, r = self.forward(q)
      res = [p - pos]
      if rot is not None:
        # Half the sum of cross products of matching axes: the rotation error vector.
        err = 0.5 * jnp.sum(jnp.cross(r.T, rot.T), axis=0)
        res.append(rot_weight * err)
      return jnp.concatenate(res)

    jac = jax.jacfwd(residual)
    eye = jnp.eye(self.num_joints)

    def body(q, _):
      r = residual(q)
      j = jac(q)
      lhs = j.T @ j + (damping + rest_weight ** 2) * eye
      rhs = j.T @ r + rest_weight ** 2 * (q - rest)
      q = q - jnp.linalg.solve(lhs, rhs)
      return jnp.clip(q, self.lower, self.upper), None

    return jax.lax.scan(body, q0, None, length=iterations)[0]
