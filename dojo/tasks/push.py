"""Push: slide the named block into the named goal zone on the table.

Two blocks of different colours stand in front of the robot, one nearer and one
farther (which is which is random), and two white zones lie to the robot's left
(+y) and right (-y). The instruction names the block's colour and the zone.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dojo.instructions import InstructionSpace
from dojo.registry import register
from dojo.tasks.arm import COLOURS, ArmTask, arm_config

TARGETS = ("left", "right")
BLOCK_HALF = 0.025
#: Nominal x of the near and far block slots (each jittered by +-2 cm).
BLOCK_X = (0.38, 0.54)
PUSH_HEIGHT = 0.025   # grasp-point height while pushing (fingertips 1 cm over the table)
HOVER_HEIGHT = 0.1    # grasp-point height while moving over the blocks
BEHIND = 0.06         # distance from block centre to the pusher before a push
FINGER_HALF = 0.011   # half thickness of the closed fingers along the push
BACK_OFF = 0.08       # how far from the block the pusher slides before rising
DONE_RADIUS = 0.015   # the expert backs off once the block is this close to the goal
PUSH_SPEED = 0.5      # fraction of the expert's speed limit while pushing


@register("push", data={"relative_joints": True})
class Push(ArmTask):
  """Push the instructed block until its centre is within ``success_radius`` of the
  instructed zone's centre."""

  xml_path = "push.xml"
  randomized_bodies = ("block0", "block1")
  instruction_space = InstructionSpace(
      template="push the {colour} block to the {target}",
      parts={"colour": tuple(COLOURS), "target": TARGETS},
      held_out=(("blue", "left"), ("yellow", "right")))

  object_joints = ("block0", "block1")
  object_slot = "push_blocks"

  def __init__(self, **overrides: Any):
    super().__init__(**overrides)
    model = self._mj_model
    self._block_qpos = np.array(
        [model.jnt_qposadr[self._joint_id(f"block{i}")] for i in range(2)], np.int32)
    self._block_qvel = np.array(
        [model.jnt_dofadr[self._joint_id(f"block{i}")] for i in range(2)], np.int32)
    self._block_bodies = np.array([self.body_id(f"block{i}") for i in range(2)], np.int32)
    self._block_geoms = np.array([self.geom_id(f"block{i}") for i in range(2)], np.int32)
    self._zone_mocap = np.array([model.body_mocapid[self.body_id(f"zone_{t}")]
                                 for t in TARGETS], np.int32)

  @classmethod
  def default_config(cls):
    config = arm_config()
    config.episode_length = 100
    config.success_radius = 0.04
    return config

  # ---------------------------------------------------------------- reset

  def _reset_data(self, rng, data, info):
    k_arm, k_which, k_bxy, k_yaw, k_zx, k_zy, k_col = jax.random.split(rng, 7)
    data = self._reset_arm(k_arm, data)
    colour = self.instruction_space.part(info["instruction"], "colour")
    target = self.instruction_space.part(info["instruction"], "target")
    block = jax.random.bernoulli(k_which, 0.5).astype(jnp.int32)   # instructed block
    n = len(COLOURS)
    other = (colour + jax.random.randint(k_col, (), 1, n)) % n
    colours = jnp.where(block == 0, jnp.stack([colour, other]), jnp.stack([other, colour]))
    qpos = self._place_objects(k_bxy, k_yaw, data.qpos, self._block_qpos,
                               jnp.asarray([[BLOCK_X[0], 0.0], [BLOCK_X[1], 0.0]]),
                               BLOCK_HALF, np.pi / 4)
    zones = self._left_right_pads(k_zx, k_zy, (0.37, 0.55), (0.15, 0.21))
    mocap_pos = data.mocap_pos.at[self._zone_mocap].set(zones)
    rgba = info["geom_rgba"]
    for i, g in enumerate(self._block_geoms):
      rgba = self._set_colour(rgba, g, colours[i])
    info = {**info, "geom_rgba": rgba, "block": block, "goal": zones[target]}
    return data.replace(qpos=qpos, mocap_pos=mocap_pos), info

  # ---------------------------------------------------------------- task terms

  def block_pos(self, data, info) -> jax.Array:
    return data.xpos[jnp.asarray(self._block_bodies)[info["block"]]]

  def _reward(self, data, info, action):
    block = self.block_pos(data, info)
    to_goal = jnp.linalg.norm(block[:2] - info["goal"][:2])
    to_block = jnp.linalg.norm(self.grip_pos(data) - block)
    reward = 1.0 - jnp.tanh(to_goal / 0.1) + 0.2 * (1.0 - jnp.tanh(to_block / 0.1))
    return reward, {"distance": to_goal, "gripper_to_block": to_block}

  def _success(self, data, info):
    block = self.block_pos(data, info)
    return jnp.linalg.norm(block[:2] - info["goal"][:2]) < self._config.success_radius

  def _privileged(self, data, info):
    blocks = jnp.concatenate([data.qpos[a:a + 7] for a in self._block_qpos])
    zones = data.mocap_pos[self._zone_mocap].reshape(-1)
    return jnp.concatenate([self._robot_state(data), self.block_pos(data, info),
                            info["goal"], blocks, zones,
                            jax.nn.one_hot(info["block"], 2)])

  # ---------------------------------------------------------------- expert

  def expert_action(self, state, rng, noise=0.0):
    """Get behind the block on the line to the goal, then push along that line.

    The phase follows from the state alone: pushing when the closed fingers are low
    and behind the block on that line; descending when above the pre-push point;
    rising when low beside the block; otherwise moving at hover height to the
    pre-push point; backing off once the block is on the goal.
    """
    data, info = state.data, state.info
    block = self.block_pos(data, info)
    grip = self.grip_pos(data)
    to_goal = info["goal"][:2] - block[:2]
    remaining = jnp.linalg.norm(to_goal)
    d = to_goal / jnp.maximum(remaining, 1e-6)
    perp = jnp.array([-d[1], d[0]])
    rel = grip[:2] - block[:2]
    along, lateral = rel @ d, rel @ perp
    pre = block[:2] - BEHIND * d

    # Pushing: aim past the contact point by what is left to go (the block slides a
    # little after the push stops) and steer back onto the line through its centre.
    contact = BLOCK_HALF + FINGER_HALF
    ahead = jnp.clip(remaining - 0.01, 0.0, 0.03)
    push_xy = block[:2] + (ahead - contact) * d - 0.5 * lateral * perp
    pushing = (along < -0.02) & (jnp.abs(lateral) < 0.025) & (grip[2] < 0.045)
    near_pre = jnp.linalg.norm(grip[:2] - pre) < 0.02
    dist_xy = jnp.linalg.norm(rel)
    low_near_block = (grip[2] < 0.07) & (dist_xy < BACK_OFF - 0.01)
    done = remaining < DONE_RADIUS
    # Leaving the block (done, or out of line): first slide straight away from it at
    # the current height, then rise; rising while touching it would drag it along.
    away = rel / jnp.maximum(dist_xy, 1e-6)
    back_off = jnp.append(block[:2] + BACK_OFF * away, grip[2])
    rise = jnp.append(grip[:2], HOVER_HEIGHT)
    leave = jnp.where(low_near_block, back_off, rise)
    target = jnp.where(
        pushing, jnp.append(push_xy, PUSH_HEIGHT),
        jnp.where(near_pre, jnp.append(pre, PUSH_HEIGHT),
                  jnp.where(low_near_block, back_off, jnp.append(pre, HOVER_HEIGHT))))
    target = jnp.where(done, leave, target)
    speed = jnp.where(pushing & ~done, PUSH_SPEED, 1.0)
    # Fingers across the push line; hold the yaw while leaving (d swings near the goal).
    yaw = jnp.where(done | (remaining < 0.03), self.grip_yaw(data), jnp.arctan2(d[1], d[0]))
    return self.arm_action(data, target, yaw, jnp.zeros(()), rng, noise, speed)
