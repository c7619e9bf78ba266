"""Position servos read from a MuJoCo model, and the command that cancels their lag.

A MuJoCo position actuator pushes its joint with ``kp (u - q) - kv qdot`` (``gainprm[0]
= kp``, ``biasprm[1] = -kp``, ``biasprm[2] = -kv``). With the joint's damping ``b``,
its inertia ``I`` (the mass matrix diagonal with armature, taken at a reference pose)
and the static load ``f`` on it (gravity and Coriolis, ``qfrc_bias - qfrc_gravcomp``,
and springs), one joint follows

    I q'' + (b + kv) q' + kp q = kp u - f.

Holding ``u`` for one control period ``dt`` maps ``(q, q')`` linearly:
``q(dt) - w = P11 (q0 - w) + P12 q0'`` with ``w = u - f / kp`` and ``P = expm(A dt)``,
``A = [[0, 1], [-kp / I, -(b + kv) / I]]``. Asking for ``q(dt) = q_target`` gives

    u = q_target + (P11 (q_target - q0) - P12 q0') / (1 - P11) + f / kp

i.e. the target plus a lead proportional to the distance still to go, minus what the
joint's velocity will cover by itself, plus the static load over ``kp``. Commanding
``q_target`` directly (no lead) leaves ``P11`` of the step still to go after one
period (0.55 for the Dojo arm's shoulder at 40 ms, 0.74 to 0.79 for the Panda's big
joints), and a load ``f`` leaves the joint ``f / kp`` short for good (gravity sag on an
arm without ``gravcomp``). Joints are treated as decoupled, with the inertia of one
pose; ``tests/dojo/test_generic_expert.py`` measures what the lead buys.
"""

from __future__ import annotations

from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import scipy.linalg

from dojo import mjcf


class PositionServos:
  """The position actuators of some joints, and the lag-compensating command."""

  def __init__(self, model: mujoco.MjModel, joints: Sequence[str], dt: float,
               qpos: Optional[np.ndarray] = None):
    """Args:
      model: the compiled model.
      joints: hinge or slide joints, each driven by one position actuator.
      dt: the control period over which a command is held (s).
      qpos: the pose at which the joint inertias are taken (default ``qpos0``).

    Raises:
      ValueError: a joint the model does not have (the model's joints are listed), or
        one without a position actuator (the actuators on it are listed).
    """
    self.actuators, self.dofs, self.qpos_adr = [], [], []
    kp, kv = [], []
    for name in joints:
      jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
      if jid < 0:
        raise ValueError(f"PositionServos: no joint named {name!r}; the model's joints: "
                         f"{mjcf.names(model, mujoco.mjtObj.mjOBJ_JOINT)}.")
      on_joint = [a for a in range(model.nu)
                  if model.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT
                  and model.actuator_trnid[a, 0] == jid]
      servo = [a for a in on_joint
               if model.actuator_gaintype[a] == mujoco.mjtGain.mjGAIN_FIXED
               and model.actuator_biastype[a] == mujoco.mjtBias.mjBIAS_AFFINE
               and model.actuator_gainprm[a, 0] > 0
               and np.isclose(model.actuator_biasprm[a, 1], -model.actuator_gainprm[a, 0])
               and model.actuator_biasprm[a, 0] == 0
               and np.isclose(model.actuator_gear[a, 0], 1.0)]
      if not servo:
        names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, a) or f"#{a}"
                 for a in on_joint]
        raise ValueError(f"PositionServos: joint {name!r} has no position actuator "
                         f"(<position joint={name!r} kp=.../>, gear 1); actuators on it: "
                         f"{names}.")
      a = servo[0]
      self.actuators.append(a)
      self.dofs.append(int(model.jnt_dofadr[jid]))
      self.qpos_adr.append(int(model.jnt_qposadr[jid]))
      kp.append(float(model.actuator_gainprm[a, 0]))
      kv.append(float(-model.actuator_biasprm[a, 2]))
    data = mujoco.MjData(model)
    if qpos is not None:
      data.qpos[:] = qpos
    mujoco.mj_forward(model, data)
    full = np.zeros((model.nv, model.nv))
    mujoco.mj_fullM(model, data, full)
    inertia = np.diag(full)[self.dofs]                     # includes armature
    damping = model.dof_damping[self.dofs] + np.asarray(kv)
    self.kp = np.asarray(kp, np.float32)
    self.inertia = inertia.astype(np.float32)
    self.damping = damping.astype(np.float32)
    self.stiffness = np.asarray(model.jnt_stiffness[[model.dof_jntid[d] for d in self.dofs]],
                                np.float32)
    self.spring_ref = np.asarray(model.qpos_spring[self.qpos_adr], np.float32)
    p11, p12 = [], []
    for k, m, c in zip(self.kp, inertia, damping):
      phi = scipy.linalg.expm(np.array([[0.0, 1.0], [-k / m, -c / m]]) * dt)
      p11.append(phi[0, 0])
      p12.append(phi[0, 1])
    self.p11 = np.asarray(p11, np.float32)
    self.p12 = np.asarray(p12, np.float32)
    ranges = model.actuator_ctrlrange[self.actuators]
    limited = model.actuator_ctrllimited[self.actuators].astype(bool)
    self.ctrl_lower = np.where(limited, ranges[:, 0], -np.inf).astype(np.float32)
    self.ctrl_upper = np.where(limited, ranges[:, 1], np.inf).astype(np.float32)
    self.actuators = np.asarray(self.actuators, np.int32)
    self.dofs = np.asarray(self.dofs, np.int32)
    self.qpos_adr = np.asarray(self.qpos_adr, np.int32)

  def load(self, data) -> jax.Array:
    """Static generalized force on the joints that the servos must hold against:
    gravity (less ``gravcomp``), Coriolis and springs; f32[n]."""
    q = data.qpos[self.qpos_adr]
    bias = data.qfrc_bias[self.dofs] - data.qfrc_gravcomp[self.dofs]
    return bias + self.stiffness * (q - self.spring_ref)

  def command(self, data, q_target: jax.Array, lead: bool = True) -> jax.Array:
    """Servo targets f32[n] that bring the joints to ``q_target`` one period later.

    Args:
      data: the current physics data (joint angles, velocities, bias forces).
      q_target: f32[n] where the joints should be after the control period.
      lead: False commands ``q_target`` itself (the plain position servo).

    Returns:
      f32[n] controls for ``self.actuators``, clipped to their control ranges.
    """
    if not lead:
      return jnp.clip(q_target, self.ctrl_lower, self.ctrl_upper)
    q = data.qpos[self.qpos_adr]
    qdot = data.qvel[self.dofs]
    # q(dt) = w + p11 (q - w) + p12 qdot = q_target  =>  w = (q_target - p11 q - p12 qdot)
    # / (1 - p11), and u = w + load / kp.
    w = (q_target - self.p11 * q - self.p12 * qdot) / (1.0 - self.p11)
    u = w + self.load(data) / self.kp
    return jnp.clip(u, self.ctrl_lower, self.ctrl_upper)
