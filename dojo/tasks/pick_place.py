"""Pick and place: grasp the named object, lift it and set it down on the named plate.

A cube and a brick (the same 4 cm across, the brick 7 cm long) lie on the table in
random order and yaw, one in the instructed colour and one in another; two white
plates lie to the robot's left (+y) and right (-y). The episode succeeds when the
object rests on the instructed plate and the gripper has let go of it.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dojo.instructions import InstructionSpace
from dojo.registry import register
from dojo.tasks.arm import COLOURS, GRIPPER_OPEN, ArmTask, arm_config

OBJECTS = ("cube", "brick")
TARGETS = ("left", "right")
HALF_HEIGHT = 0.02    # both objects rest with their centre this high
WIDTH = 0.04          # both objects are grasped across this width
#: Nominal x of the near and far object slots (each jittered by +-2 cm).
SLOT_X = (0.40, 0.53)
HOVER_HEIGHT = 0.1    # grasp-point height when moving to an object
CARRY_HEIGHT = 0.13   # grasp-point height when carrying (clears the other object)


@register("pick_place", data={"relative_joints": True})
class PickPlace(ArmTask):
  """Put the instructed object within ``success_radius`` of the instructed plate."""

  xml_path = "pick_place.xml"
  randomized_bodies = OBJECTS
  instruction_space = InstructionSpace(
      template="put the {colour} {object} on the {target} plate",
      parts={"colour": tuple(COLOURS), "object": OBJECTS, "target": TARGETS},
      held_out=(("red", "brick", "left"), ("green", "cube", "right"),
                ("blue", "cube", "left"), ("yellow", "brick", "right")))

  object_joints = OBJECTS
  object_slot = "pick_place_objects"

  def __init__(self, **overrides: Any):
    super().__init__(**overrides)
    model = self._mj_model
    self._obj_qpos = np.array([model.jnt_qposadr[self._joint_id(o)] for o in OBJECTS],
                              np.int32)
    self._obj_bodies = np.array([self.body_id(o) for o in OBJECTS], np.int32)
    self._obj_geoms = np.array([self.geom_id(o) for o in OBJECTS], np.int32)
    self._plate_mocap = np.array([model.body_mocapid[self.body_id(f"plate_{t}")]
                                  for t in TARGETS], np.int32)

  @classmethod
  def default_config(cls):
    config = arm_config()
    config.episode_length = 120
    config.success_radius = 0.04
    return config

  # ---------------------------------------------------------------- reset

  def _reset_data(self, rng, data, info):
    k_arm, k_slot, k_xy, k_yaw, k_px, k_py, k_col = jax.random.split(rng, 7)
    data = self._reset_arm(k_arm, data)
    instr = info["instruction"]
    colour = self.instruction_space.part(instr, "colour")
    obj = self.instruction_space.part(instr, "object")
    target = self.instruction_space.part(instr, "target")
    n = len(COLOURS)
    other = (colour + jax.random.randint(k_col, (), 1, n)) % n
    colours = jnp.where(obj == 0, jnp.stack([colour, other]), jnp.stack([other, colour]))
    # Which object takes the near slot is random.
    swap = jax.random.bernoulli(k_slot, 0.5)
    slot_x = jnp.where(swap, jnp.array(SLOT_X[::-1]), jnp.array(SLOT_X))
    qpos = self._place_objects(k_xy, k_yaw, data.qpos, self._obj_qpos,
                               jnp.stack([slot_x, jnp.zeros(2)], -1), HALF_HEIGHT, np.pi / 3)
    plates = self._left_right_pads(k_px, k_py, (0.38, 0.52), (0.17, 0.21))
    mocap_pos = data.mocap_pos.at[self._plate_mocap].set(plates)
    rgba = info["geom_rgba"]
    for i, g in enumerate(self._obj_geoms):
      rgba = self._set_colour(rgba, g, colours[i])
    info = {**info, "geom_rgba": rgba, "object": obj, "goal": plates[target]}
    return data.replace(qpos=qpos, mocap_pos=mocap_pos), info

  # ---------------------------------------------------------------- task terms

  def object_pos(self, data, info) -> jax.Array:
    return data.xpos[jnp.asarray(self._obj_bodies)[info["object"]]]

  def object_yaw(self, data, info) -> jax.Array:
    xmat = data.xmat[jnp.asarray(self._obj_bodies)[info["object"]]].reshape(3, 3)
    return jnp.arctan2(xmat[1, 0], xmat[0, 0])

  def _released(self, data, info) -> jax.Array:
    far = jnp.linalg.norm(self.grip_pos(data) - self.object_pos(data, info)) > 0.05
    return far | (self.finger_opening(data) > WIDTH + 0.01)

  def _on_plate(self, data, info) -> jax.Array:
    obj = self.object_pos(data, info)
    near = jnp.linalg.norm(obj[:2] - info["goal"][:2]) < self._config.success_radius
    return near & (obj[2] < HALF_HEIGHT + 0.01)

  def _reward(self, data, info, action):
    obj = self.object_pos(data, info)
    to_plate = jnp.linalg.norm(obj[:2] - info["goal"][:2])
    to_object = jnp.linalg.norm(self.grip_pos(data) - obj)
    lifted = (obj[2] > HALF_HEIGHT + 0.02).astype(jnp.float32)
    reward = (1.0 - jnp.tanh(to_plate / 0.1) + 0.3 * (1.0 - jnp.tanh(to_object / 0.1))
              + 0.2 * lifted)
    return reward, {"distance": to_plate, "gripper_to_object": to_object, "lifted": lifted}

  def _success(self, data, info):
    return self._on_plate(data, info) & self._released(data, info)

  def _privileged(self, data, info):
    objects = jnp.concatenate([data.qpos[a:a + 7] for a in self._obj_qpos])
    plates = data.mocap_pos[self._plate_mocap].reshape(-1)
    return jnp.concatenate([self._robot_state(data), self.object_pos(data, info),
                            self.object_yaw(data, info)[None], info["goal"], objects,
                            plates, jax.nn.one_hot(info["object"], 2)])

  # ---------------------------------------------------------------- expert

  def expert_action(self, state, rng, noise=0.0):
    """Approach, descend, close, lift, carry, lower, open, rise.

    The phase follows from the state alone: the object counts as held when the
    fingers have closed on its width around it, and as placed when it rests on the
    plate; otherwise the expert lines up above it, descends and closes.
    """
    data, info = state.data, state.info
    obj = self.object_pos(data, info)
    grip = self.grip_pos(data)
    goal = info["goal"]
    opening = self.finger_opening(data)
    offset = grip - obj                       # object's offset in the hand
    aligned = jnp.linalg.norm(offset[:2]) < 0.012
    at_grasp = aligned & (jnp.abs(offset[2]) < 0.012)
    held = ((opening < WIDTH + 0.004) & (opening > WIDTH - 0.015)
            & (jnp.linalg.norm(offset) < 0.03))
    placed = self._on_plate(data, info)

    # Not held: line up above the object (rising first when low), descend, close.
    hover = jnp.append(obj[:2], HOVER_HEIGHT)
    rise = jnp.append(grip[:2], HOVER_HEIGHT)
    approach = jnp.where(aligned, obj, jnp.where(grip[2] < 0.06, rise, hover))
    # Held: lift straight up, carry at height, then lower onto the plate.
    over_plate = jnp.linalg.norm(obj[:2] - goal[:2]) < 0.015
    lift = jnp.append(grip[:2], CARRY_HEIGHT)
    carry = jnp.append(goal[:2] + offset[:2], CARRY_HEIGHT)
    lower = jnp.append(goal[:2] + offset[:2], HALF_HEIGHT + 0.003 + offset[2])
    transport = jnp.where(over_plate, lower,
                          jnp.where(obj[2] < CARRY_HEIGHT - 0.04, lift, carry))
    # Placed: open, then rise once the fingers are clear.
    leave = jnp.where(opening > WIDTH + 0.015, rise, grip)

    target = jnp.where(placed, leave, jnp.where(held, transport, approach))
    gripper = jnp.where(placed, GRIPPER_OPEN,
                        jnp.where(held | at_grasp, 0.0, GRIPPER_OPEN))
    # Fingers across the object's width: its yaw modulo pi (brick) or pi/2 (cube).
    period = jnp.where(info["object"] == 0, np.pi / 2, np.pi)
    cur = self.grip_yaw(data)
    yaw = cur + (jnp.mod(self.object_yaw(data, info) - cur + period / 2, period)
                 - period / 2)
    yaw = jnp.where(held | placed, cur, yaw)
    return self.arm_action(data, target, yaw, gripper, rng, noise)
