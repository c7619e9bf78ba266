"""Dexterous grasp-and-lift: a 24-DoF hand lifts the named object off a table.

The scene (``assets/hand.xml``) holds a right hand (four fingers with MCP abduction and
flexion, PIP and DIP; a thumb with a 2-DoF CMC, MCP and IP) on a wrist that translates
and turns about the vertical, above a table with a block and a can. Each episode
colours both objects (the target in the instruction's colour, the other one in a
different colour) and asks for one of them: "lift the red block". Success is the
target raised ``lift_height`` above its resting height, with the other object left
down, at the end of the episode.

Actions (24, in [-1, 1]): the first four move the wrist's x, y, z and yaw targets by up
to ``wrist_step`` / ``yaw_step`` per control step (relative wrist motion, as in human
video action labels, so that action noise is a small random walk rather than a jump of
the whole hand); the other twenty are absolute finger joint targets spanning each
joint's range.

The scripted expert is a top-down power grasp: move the palm over the object (turned
square to a block's faces), descend until the palm is just above its top, close the
fingers on the far side and the thumb on the near side, and lift.
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
from mujoco import mjx

from dojo.env import State
from dojo.instructions import InstructionSpace
from dojo.registry import register
from dojo.task import MjxTask, base_config

COLOURS = {
    "red": (0.85, 0.15, 0.15),
    "green": (0.15, 0.7, 0.2),
    "blue": (0.15, 0.3, 0.85),
    "yellow": (0.92, 0.8, 0.1),
}
OBJECTS = ("block", "can")   # body, joint and geom names in hand.xml
FINGERS = ("index", "middle", "ring", "little")
WRIST_JOINTS = ("wrist_x", "wrist_y", "wrist_z", "wrist_yaw")
FINGER_JOINTS = tuple(f"{f}_{j}" for f in FINGERS for j in ("abd", "mcp", "pip", "dip")) + (
    "thumb_cmc_abd", "thumb_cmc_flex", "thumb_mcp", "thumb_ip")
TIPS = tuple(f"{f}_tip" for f in FINGERS + ("thumb",))

# Finger joint targets of the expert: the open hand (fingers reaching forward and down,
# thumb pointing down behind the object) and the grasp. The grasp targets lie past the
# contact so that most actuators press at their force limit: the grip then does not
# weaken when action noise moves the targets a little.
_OPEN = {"abd": 0.0, "mcp": 0.5, "pip": 0.1, "dip": 0.1,
         "thumb_cmc_abd": 1.6, "thumb_cmc_flex": -0.6, "thumb_mcp": 0.0, "thumb_ip": 0.0}
_CLOSED = {"abd": {"index": -0.12, "middle": -0.04, "ring": 0.04, "little": 0.12},
           "mcp": 1.6, "pip": 1.2, "dip": 0.8,
           "thumb_cmc_abd": 1.6, "thumb_cmc_flex": 0.9, "thumb_mcp": 0.2, "thumb_ip": 0.2}


def _pose(table: dict) -> np.ndarray:
  """Finger joint values in FINGER_JOINTS order from a per-joint-kind table."""
  values = []
  for name in FINGER_JOINTS:
    if name.startswith("thumb"):
      values.append(table[name])
    else:
      finger, joint = name.split("_")
      v = table[joint]
      values.append(v[finger] if isinstance(v, dict) else v)
  return np.asarray(values, np.float32)


def _yaw_quat(yaw: jax.Array) -> jax.Array:
  return jnp.stack([jnp.cos(yaw / 2), 0.0 * yaw, 0.0 * yaw, jnp.sin(yaw / 2)])


def _quat_yaw(q: jax.Array) -> jax.Array:
  w, x, y, z = q[0], q[1], q[2], q[3]
  return jnp.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


# The hand's wrist actions are relative steps and its fingers absolute; uniformly random
# finger targets close it fully, a motion play around the open hand rarely shows.
@register("dex_lift", data={"dart_noise": 0.1, "play_noise": 0.3, "wide_play_noise": 1.0})
class DexLift(MjxTask):
  """Grasp the instructed object with a multi-fingered hand and lift it."""

  xml_path = "hand.xml"
  robot_joints = WRIST_JOINTS + FINGER_JOINTS
  embodiment = "dojo_hand"
  joint_slots = (("wrist_joints", 4), ("hand_joints", 20))
  action_slots = (("wrist_delta", 4), ("hand_joint_targets", 20))
  randomized_bodies = OBJECTS
  instruction_space = InstructionSpace(
      template="lift the {colour} {object}",
      parts={"colour": tuple(COLOURS), "object": OBJECTS},
      held_out=(("green", "can"), ("yellow", "block")))

  @classmethod
  def default_config(cls):
    config = base_config()
    config.episode_length = 60
    config.lift_height = 0.1      # success: target centre this far above its rest (m)
    config.wrist_step = 0.02      # largest wrist target move per control step (m)
    config.yaw_step = 0.1         # largest wrist yaw target change per control step (rad)
    config.naconmax = 64 * 1024   # warp: contact slots over all worlds of a batch
    config.njmax = 256            # warp: constraint rows per world
    # Expert schedule (control steps): approach until at least t_descend, descend until
    # t_close, close the hand over close_steps, lift from t_lift.
    config.t_descend = 12
    config.t_close = 24
    config.close_steps = 8
    config.t_lift = 36
    return config

  object_joints = OBJECTS
  object_slot = "dex_lift_objects"

  def __init__(self, **overrides: Any):
    super().__init__(**overrides)
    m = self._mj_model
    self._obj_body = np.array([self.body_id(o) for o in OBJECTS], np.int32)
    self._obj_geom = np.array([self.geom_id(o) for o in OBJECTS], np.int32)
    obj_joints = [self._joint_id(o) for o in OBJECTS]
    self._obj_qpos = np.array([m.jnt_qposadr[j] for j in obj_joints], np.int32)
    self._obj_qvel = np.array([m.jnt_dofadr[j] for j in obj_joints], np.int32)
    # Resting centre height of each object: box half-size z, cylinder half-height.
    self._half_height = jnp.asarray([m.geom_size[self._obj_geom[0], 2],
                                     m.geom_size[self._obj_geom[1], 1]], jnp.float32)
    self._tips = np.array([self.site_id(s) for s in TIPS], np.int32)
    self._grasp_site = self.site_id("grasp")
    self._grasp_local = np.asarray(m.site_pos[self._grasp_site], np.float32)
    self._palm = self.body_id("palm")
    names = [m.actuator(i).name for i in range(m.nu)]
    if names != list(self.robot_joints):
      raise ValueError(f"DexLift: actuators {names} do not follow {self.robot_joints}.")
    self._open = jnp.asarray(_pose(_OPEN))
    self._closed = jnp.asarray(_pose(_CLOSED))
    self._colours = jnp.asarray(np.array(list(COLOURS.values()), np.float32))
    ctrlrange = m.actuator_ctrlrange.astype(np.float32)
    self._ctrl_lo = jnp.asarray(ctrlrange[:, 0])
    self._ctrl_hi = jnp.asarray(ctrlrange[:, 1])
    cfg = self._config
    self._wrist_step = jnp.array([cfg.wrist_step] * 3 + [cfg.yaw_step], jnp.float32)

  # ---------------------------------------------------------------- reset

  def _reset_data(self, rng: jax.Array, data: mjx.Data,
                  info: dict[str, Any]) -> tuple[mjx.Data, dict[str, Any]]:
    keys = jax.random.split(rng, 7)
    target = self.instruction_space.part(info["instruction"], "object")
    colour = self.instruction_space.part(info["instruction"], "colour")
    n_col = self._colours.shape[0]
    other_colour = (colour + jax.random.randint(keys[0], (), 1, n_col)) % n_col

    # The target in front of the hand; the other object 17-22 cm to its side.
    txy = jax.random.uniform(keys[1], (2,), minval=jnp.array([-0.05, -0.1]),
                             maxval=jnp.array([0.08, 0.1]))
    side = jnp.where(txy[1] >= 0, -1.0, 1.0)
    oxy = jax.random.uniform(keys[2], (2,), minval=jnp.array([-0.05, 0.17]),
                             maxval=jnp.array([0.08, 0.22]))
    oxy = jnp.array([oxy[0], txy[1] + side * oxy[1]])
    # Row i is object i's position.
    xy = jnp.where(target == 0, jnp.stack([txy, oxy]), jnp.stack([oxy, txy]))
    yaws = jax.random.uniform(keys[3], (2,), minval=-jnp.pi, maxval=jnp.pi)

    qpos = data.qpos
    for i in range(len(OBJECTS)):
      pose = jnp.concatenate([xy[i], self._half_height[i:i + 1], _yaw_quat(yaws[i])])
      qpos = qpos.at[self._obj_qpos[i]:self._obj_qpos[i] + 7].set(pose)

    wrist = jnp.array([-0.1, 0.0, 0.26, 0.0]) + jax.random.uniform(
        keys[4], (4,), minval=-1.0, maxval=1.0) * jnp.array([0.03, 0.05, 0.02, 0.15])
    fingers = jnp.clip(
        self._open + jax.random.uniform(keys[5], self._open.shape, minval=-0.05,
                                        maxval=0.05),
        self._ctrl_lo[4:], self._ctrl_hi[4:])
    hand = jnp.concatenate([wrist, fingers])
    qpos = qpos.at[self._qpos_idx].set(hand)
    data = data.replace(qpos=qpos, qvel=jnp.zeros_like(data.qvel), ctrl=hand)

    # Ground the instruction's colour on the target; the other object gets another.
    geoms = jnp.asarray(self._obj_geom)
    rgba = info["geom_rgba"]
    rgba = rgba.at[geoms[target], :3].set(self._colours[colour])
    rgba = rgba.at[geoms[1 - target], :3].set(self._colours[other_colour])
    info = {**info, "geom_rgba": rgba, "target": target,
            "rest_z": self._half_height[target],
            "other_rest_z": self._half_height[1 - target]}
    return data, info

  # ---------------------------------------------------------------- state helpers

  def _object(self, data: mjx.Data, info: dict[str, Any], which: str = "target"):
    """Position, quaternion, linear and angular velocity of the target (or other)."""
    i = info["target"] if which == "target" else 1 - info["target"]
    pose = jax.lax.dynamic_slice(data.qpos, (jnp.asarray(self._obj_qpos)[i],), (7,))
    vel = jax.lax.dynamic_slice(data.qvel, (jnp.asarray(self._obj_qvel)[i],), (6,))
    return pose[:3], pose[3:], vel[:3], vel[3:]

  def _palm_pos(self, data: mjx.Data) -> jax.Array:
    return data.xpos[self._palm]

  # ---------------------------------------------------------------- reward, success

  def _reward(self, data, info, action):
    del action
    pos, _, _, _ = self._object(data, info)
    other, _, _, _ = self._object(data, info, "other")
    lift_height = self._config.lift_height
    # Reach: the palm's grasp point to the object's centre.
    reach = 1.0 - jnp.tanh(10.0 * jnp.linalg.norm(data.site_xpos[self._grasp_site] - pos))
    # Grasp closure: fingertips and thumb tip within 6 cm of the object's centre.
    tip_dist = jnp.linalg.norm(data.site_xpos[self._tips] - pos, axis=-1)
    grasp = jnp.mean(1.0 - jnp.tanh(20.0 * jnp.maximum(tip_dist - 0.06, 0.0)))
    height = pos[2] - info["rest_z"]
    lift = jnp.clip(height / lift_height, 0.0, 1.0)
    wrong = jnp.clip((other[2] - info["other_rest_z"]) / lift_height, 0.0, 1.0)
    reward = reach + grasp + 5.0 * lift - 2.0 * wrong
    return reward, {"reach": reach, "grasp": grasp, "lift": lift, "wrong_lift": wrong,
                    "height": height}

  def _success(self, data, info):
    pos, _, _, _ = self._object(data, info)
    other, _, _, _ = self._object(data, info, "other")
    lifted = pos[2] - info["rest_z"] > self._config.lift_height
    other_down = other[2] - info["other_rest_z"] < 0.5 * self._config.lift_height
    return lifted & other_down

  # ---------------------------------------------------------------- observations

  def _privileged(self, data, info):
    """Hand joints and velocities, target pose and velocity, palm, other object."""
    pos, quat, lin, ang = self._object(data, info)
    other, _, _, _ = self._object(data, info, "other")
    return jnp.concatenate([
        data.qpos[self._qpos_idx], data.qvel[self._qvel_idx], pos, quat, lin, ang,
        self._palm_pos(data), other, jax.nn.one_hot(info["target"], len(OBJECTS))])

  def _proprio_extra(self, data, info):
    return self._palm_pos(data)

  # ---------------------------------------------------------------- actions

  def action_to_ctrl(self, data: mjx.Data, action: jax.Array) -> jax.Array:
    """Relative wrist targets (from ``data.ctrl``) and absolute finger targets."""
    action = jnp.clip(action, -1.0, 1.0)
    wrist = jnp.clip(data.ctrl[:4] + action[:4] * self._wrist_step,
                     self._ctrl_lo[:4], self._ctrl_hi[:4])
    fingers = self._ctrl_mid[4:] + action[4:] * self._ctrl_half[4:]
    return jnp.concatenate([wrist, fingers])

  def ctrl_to_action(self, ctrl: jax.Array, data: Optional[mjx.Data] = None) -> jax.Array:
    """The action that moves the controls from ``data.ctrl`` toward ``ctrl``.

    The inverse of ``action_to_ctrl`` where ``ctrl`` is reachable in one step; wrist
    targets farther away are approached at full speed.
    """
    if data is None:
      raise ValueError("DexLift.ctrl_to_action needs `data`: its wrist actions are "
                       "relative to the current controls.")
    wrist = (ctrl[:4] - data.ctrl[:4]) / self._wrist_step
    fingers = (ctrl[4:] - self._ctrl_mid[4:]) / self._ctrl_half[4:]
    return jnp.clip(jnp.concatenate([wrist, fingers]), -1.0, 1.0)

  # ---------------------------------------------------------------- expert

  def expert_action(self, state: State, rng: jax.Array, noise: float = 0.0) -> jax.Array:
    """Top-down power grasp; the phase comes from ``info["step"]`` and the state."""
    cfg = self._config
    data, info = state.data, state.info
    t = info["step"]
    pos, quat, _, _ = self._object(data, info)
    # A block is grasped square to its faces: turn by its yaw modulo 90 degrees.
    yaw_obj = _quat_yaw(quat)
    yaw_goal = jnp.where(info["target"] == 0,
                         jnp.mod(yaw_obj + jnp.pi / 4, jnp.pi / 2) - jnp.pi / 4, 0.0)
    gx, gy, gz = self._grasp_local
    c, s = jnp.cos(yaw_goal), jnp.sin(yaw_goal)
    xy_goal = pos[:2] - jnp.stack([c * gx - s * gy, s * gx + c * gy])
    z_grasp = info["rest_z"] - gz            # the grasp site at the object's centre
    z_hover = z_grasp + 0.115                # the thumb tip clears the object's top

    # Once the hand closes, hold xy and yaw (the object moves with the hand, and a
    # block's yaw modulo 90 degrees could flip sides near 45 degrees).
    holding = t >= cfg.t_close
    wrist = data.qpos[self._qpos_idx[:2]]
    over = jnp.linalg.norm(xy_goal - wrist) < 0.015
    z_goal = jnp.where((over & (t >= cfg.t_descend)) | holding, z_grasp, z_hover)
    z_goal = jnp.where(t >= cfg.t_lift, z_grasp + 0.2, z_goal)
    goal = jnp.concatenate([xy_goal, z_goal[None], yaw_goal[None]])
    goal = jnp.where(jnp.array([True, True, False, True]) & holding, data.ctrl[:4], goal)

    close = jnp.clip((t - cfg.t_close + 1) / cfg.close_steps, 0.0, 1.0)
    fingers = self._open + close * (self._closed - self._open)
    action = self.ctrl_to_action(jnp.concatenate([goal, fingers]), data)
    action = action + noise * jax.random.normal(rng, action.shape)
    return jnp.clip(action, -1.0, 1.0)
