"""Shared base of the 7-DoF arm tasks (reach, push, pick_place).

The arm (``assets/arm.xml``) has seven hinge joints and a parallel gripper driven by
one servo; an action is eight numbers in [-1, 1]: seven joint-angle targets, then the
finger opening. ``config.joint_actions`` says what the seven mean: ``"absolute"`` (the
default) spans each servo's control range; ``"relative"`` is an offset from the current
joint angle of up to ``joint_step`` rad, the delta actions of openpi and most VLAs
(``benchmarks.imitation``: state BC on push from 200 demonstrations rose from 0.07 to
0.50 with them). Scripted experts think in the gripper's Cartesian pose: they pick a
waypoint, limit how far it is from the current grasp point, and turn it into joint
targets with damped least squares on a pure-JAX forward kinematics
(``dojo.kinematics``), so they run under either physics implementation.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import config_dict

from dojo.kinematics import SerialChain, down_frame, wrap_angle
from dojo.task import MjxTask, base_config

ARM_JOINTS = tuple(f"j{i}" for i in range(1, 8))
FINGER_JOINTS = ("finger_l", "finger_r")
#: A folded pose with the gripper pointing down above the middle of the workspace.
REST_POSE = (0.0, 0.45, 0.0, 1.9, 0.0, 0.8, 0.0)
GRIPPER_OPEN = 0.04   # servo target per finger (m); the opening is twice this
JOINT_ACTIONS = ("absolute", "relative")
#: The action slot of the seven joints with ``joint_actions="relative"``.
RELATIVE_JOINT_SLOT = "arm_joint_offsets"

COLOURS = {
    "red": (0.85, 0.15, 0.12),
    "green": (0.15, 0.65, 0.2),
    "blue": (0.15, 0.3, 0.85),
    "yellow": (0.9, 0.8, 0.1),
}


def arm_config() -> config_dict.ConfigDict:
  """``base_config()`` with the arm tasks' defaults."""
  config = base_config()
  # 5 physics steps per control step. MuJoCo Warp's cost on a CPU is mostly a fixed
  # overhead per physics step (about 15-20 ms on the 2-core machine, nearly the same
  # for 1 or 64 worlds), so halving the substeps halves rollout time; the experts
  # succeed equally at 0.004 and 0.008.
  config.sim_dt = 0.008
  config.naconmax = 40 * 1024     # warp: contact slots over all worlds of a batch
  config.njmax = 160              # warp: constraint rows per world
  config.init_joint_noise = 0.1   # std (rad) of the initial arm pose around REST_POSE
  config.expert_speed = 0.6       # expert's Cartesian speed limit (m/s)
  config.expert_yaw_speed = 3.0   # expert's gripper yaw rate limit (rad/s)
  config.expert_ik_iterations = 4
  # Expert action noise: ``noise`` times this std (rad) on each joint target, and
  # ``noise`` times this std (action units) on the gripper.
  config.expert_joint_noise = 0.05
  config.expert_gripper_noise = 0.5
  # What the seven joint actions are: "absolute" targets over the control ranges, or
  # "relative" offsets of up to joint_step rad from the current joint angles. The
  # expert's targets lead the joints by under 0.1 rad 99% of the time on reach and push
  # (under 0.25 rad 99.9%), so 0.25 rad loses almost nothing to clipping.
  config.joint_actions = "absolute"
  config.joint_step = 0.25
  return config


class ArmTask(MjxTask):
  """A task for the Dojo arm; subclasses add objects, reward and the expert's plan."""

  robot_joints = ARM_JOINTS + FINGER_JOINTS
  embodiment = "dojo_arm"
  joint_slots = (("arm_joints", 7), ("gripper_fingers", 2))

  @property
  def action_slots(self) -> tuple[tuple[str, int], ...]:
    # Relative actions get their own slot name, so data and models of the two kinds are
    # never mixed or swapped silently (the pipeline and ModelIO match slots by name).
    joints = (RELATIVE_JOINT_SLOT if self._config.joint_actions == "relative"
              else "arm_joint_targets")
    return ((joints, 7), ("gripper", 1))

  def __init__(self, **overrides: Any):
    super().__init__(**overrides)
    model = self._mj_model
    self.chain = SerialChain(model, "grip", ARM_JOINTS)
    self._grip_site = self.site_id("grip")
    self._arm_qpos = self._qpos_idx[:7]
    self._finger_qpos = self._qpos_idx[7:]
    self._rest = jnp.asarray(REST_POSE, jnp.float32)
    self._colours = jnp.asarray(np.array(list(COLOURS.values()), np.float32))
    if self._config.joint_actions not in JOINT_ACTIONS:
      raise ValueError(f"Unknown joint_actions {self._config.joint_actions!r}; choose from "
                       f"{JOINT_ACTIONS}.")
    self._relative = self._config.joint_actions == "relative"
    if self._relative and not self._config.joint_step > 0:
      raise ValueError(f"joint_step must be positive, got {self._config.joint_step}.")
    joint_scale = (np.full(7, self._config.joint_step) if self._relative
                   else np.asarray(self._ctrl_half)[:7])
    self._noise_std = jnp.asarray(np.concatenate([
        self._config.expert_joint_noise / joint_scale,
        [self._config.expert_gripper_noise]]), jnp.float32)

  @classmethod
  def default_config(cls) -> config_dict.ConfigDict:
    return arm_config()

  # ---------------------------------------------------------------- actions

  def action_to_ctrl(self, data, action: jax.Array) -> jax.Array:
    """Joint targets (absolute, or offsets from the current angles) and the gripper."""
    if not self._relative:
      return super().action_to_ctrl(data, action)
    action = jnp.clip(action, -1.0, 1.0)
    ctrl = super().action_to_ctrl(data, action)
    arm = data.qpos[self._arm_qpos] + action[:7] * self._config.joint_step
    lo = self._ctrl_mid[:7] - self._ctrl_half[:7]
    return ctrl.at[:7].set(jnp.clip(arm, lo, lo + 2 * self._ctrl_half[:7]))

  def ctrl_to_action(self, ctrl: jax.Array, data=None) -> jax.Array:
    """The action whose ``action_to_ctrl(data, .)`` is ``ctrl`` (clipped to [-1, 1]);
    relative joint actions need ``data``, the current joint angles."""
    action = super().ctrl_to_action(ctrl, data)
    if not self._relative:
      return action
    if data is None:
      raise ValueError("ArmTask.ctrl_to_action needs `data` with joint_actions='relative': "
                       "the actions are offsets from the current joint angles.")
    arm = (ctrl[:7] - data.qpos[self._arm_qpos]) / self._config.joint_step
    return action.at[:7].set(jnp.clip(arm, -1.0, 1.0))

  # ---------------------------------------------------------------- state helpers

  def grip_pos(self, data) -> jax.Array:
    """World position of the grasp point between the fingertips."""
    return data.site_xpos[self._grip_site]

  def grip_yaw(self, data) -> jax.Array:
    """Yaw of the gripper about world z (0 in the rest pose; see ``down_frame``)."""
    x = data.site_xmat[self._grip_site].reshape(3, 3)[:, 0]
    return jnp.arctan2(-x[1], -x[0])

  def finger_opening(self, data) -> jax.Array:
    """Distance between the finger pads (m)."""
    return jnp.sum(data.qpos[self._finger_qpos])

  def _proprio_extra(self, data, info):
    return jnp.concatenate([self.grip_pos(data), self.grip_yaw(data)[None],
                            self.finger_opening(data)[None]])

  def _robot_state(self, data) -> jax.Array:
    """Joint angles and velocities, grasp point, gripper yaw and opening (22 values)."""
    return jnp.concatenate([data.qpos[self._qpos_idx], data.qvel[self._qvel_idx],
                            self.grip_pos(data), self.grip_yaw(data)[None],
                            self.finger_opening(data)[None]])

  @staticmethod
  def _place_objects(k_xy: jax.Array, k_yaw: jax.Array, qpos: jax.Array,
                     qpos_adr, slot_xy: jax.Array, half_height: float,
                     max_yaw: float) -> jax.Array:
    """Puts free-jointed objects at ``slot_xy`` (+/-2 cm in x, +/-5 cm in y) resting on
    the table with a random yaw in [-max_yaw, max_yaw]."""
    n = len(qpos_adr)
    xy = slot_xy + jax.random.uniform(k_xy, (n, 2), minval=jnp.array([-0.02, -0.05]),
                                      maxval=jnp.array([0.02, 0.05]))
    yaw = jax.random.uniform(k_yaw, (n,), minval=-max_yaw, maxval=max_yaw)
    quat = jnp.stack([jnp.cos(yaw / 2), jnp.zeros(n), jnp.zeros(n), jnp.sin(yaw / 2)], -1)
    for i, a in enumerate(qpos_adr):
      qpos = qpos.at[a:a + 3].set(jnp.append(xy[i], half_height)).at[a + 3:a + 7].set(quat[i])
    return qpos

  @staticmethod
  def _left_right_pads(k_x: jax.Array, k_y: jax.Array, x_range: tuple[float, float],
                       y_range: tuple[float, float]) -> jax.Array:
    """Two table-level goal positions, one at +y (left) and one at -y (right)."""
    x = jax.random.uniform(k_x, (2,), minval=x_range[0], maxval=x_range[1])
    y = jax.random.uniform(k_y, (2,), minval=y_range[0], maxval=y_range[1]) * jnp.array(
        [1.0, -1.0])
    return jnp.stack([x, y, jnp.zeros(2)], -1)

  def _reset_arm(self, rng: jax.Array, data):
    """Arm at a jittered rest pose, gripper open, servos holding that pose."""
    q = self._rest + self._config.init_joint_noise * jax.random.normal(rng, (7,))
    q = jnp.clip(q, self.chain.lower, self.chain.upper)
    qpos = data.qpos.at[self._arm_qpos].set(q).at[self._finger_qpos].set(GRIPPER_OPEN)
    ctrl = data.ctrl.at[:7].set(q).at[7].set(GRIPPER_OPEN)
    return data.replace(qpos=qpos, ctrl=ctrl)

  def _set_colour(self, rgba: jax.Array, geom: int, colour: jax.Array) -> jax.Array:
    """Sets the RGB of ``geom`` to palette entry ``colour`` (an index, traced ok)."""
    return rgba.at[geom, :3].set(self._colours[colour])

  # ---------------------------------------------------------------- expert helpers

  def _next_yaw(self, current: jax.Array, desired: jax.Array) -> jax.Array:
    """The yaw to command: ``desired`` modulo pi, reached by the shortest turn from
    ``current`` (kept within +-(pi/2 + 1) so the last joint stays inside its range),
    and rate limited."""
    nearest = current + wrap_angle(desired - current, np.pi)
    nearest = jnp.where(nearest > np.pi / 2 + 1, nearest - np.pi,
                        jnp.where(nearest < -np.pi / 2 - 1, nearest + np.pi, nearest))
    max_turn = self._config.expert_yaw_speed * self._config.ctrl_dt
    return current + jnp.clip(nearest - current, -max_turn, max_turn)

  def arm_action(self, data, target: jax.Array, yaw: jax.Array, gripper: jax.Array,
                 rng: jax.Array, noise: float, speed_scale: jax.Array = 1.0) -> jax.Array:
    """Action that moves the grasp point toward ``target`` with the gripper down.

    Args:
      data: the current physics data.
      target: f32[3] desired grasp point; the step toward it is capped at
        ``expert_speed * ctrl_dt`` (times ``speed_scale``).
      yaw: desired gripper yaw, taken modulo pi (the gripper is symmetric): the
        equivalent nearest the current yaw, turned at most ``expert_yaw_speed *
        ctrl_dt`` per step.
      gripper: finger servo target in [0, GRIPPER_OPEN].
      rng: key for the action noise.
      noise: scale of Gaussian action noise (0 is the clean expert).
    """
    q = data.qpos[self._arm_qpos]
    pos = self.grip_pos(data)
    delta = target - pos
    max_step = self._config.expert_speed * self._config.ctrl_dt * speed_scale
    norm = jnp.linalg.norm(delta)
    waypoint = pos + delta * jnp.minimum(1.0, max_step / jnp.maximum(norm, 1e-6))
    yaw = self._next_yaw(self.grip_yaw(data), yaw)
    q_target = self.chain.solve(q, waypoint, down_frame(yaw), rest=self._rest,
                                iterations=self._config.expert_ik_iterations)
    ctrl = jnp.concatenate([q_target, jnp.reshape(gripper, (1,))])
    action = self.ctrl_to_action(ctrl, data)
    action = action + noise * self._noise_std * jax.random.normal(rng, action.shape)
    return jnp.clip(action, -1.0, 1.0)
