"""Rope straightening: drag a crumpled rope until it lies straight toward a named side.

The scene (``assets/rope.xml``) is a table with a limp rope, a chain of ``num_links``
capsules with a yaw and a pitch hinge per link (MJX has no flex), whose first link hangs
from a gantry gripper on three slide joints. The gripper holds that end for the whole
episode (it is the root of the chain), so the task is the "drag" half of rope
manipulation: reset lays the rope flat on the table in a random coil, and the robot must
pull it straight, with the held end toward the side the instruction names and the free
end trailing behind. Success: end-to-end distance >= 90% of the rope's length and the
free-to-held direction within 30 degrees of that side.

Sides are world directions as seen by the ``front`` camera: ``left`` is -x, ``right``
is +x, ``back`` is +y (towards the robot's gantry) and ``front`` is -y.

Physics choices (measured with C MuJoCo over 100 episodes of random actions and with
the scripted drag): the rope links are light (25 g), so the hinges carry a small
armature (1e-4) and damping (1e-3) and the servos are force-limited (25 N); with these
the 8 ms physics step is stable under random actions. More joint damping (5e-3) makes a
tight coil refuse to unroll under tension; less armature needs a 4 ms step.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from dojo.env import State
from dojo.instructions import InstructionSpace
from dojo.registry import register
from dojo.task import MjxTask, base_config

COLOURS = {
    "red": (0.85, 0.15, 0.12),
    "blue": (0.15, 0.3, 0.85),
    "green": (0.15, 0.65, 0.2),
    "yellow": (0.9, 0.8, 0.1),
}
SIDES = {
    "left": (-1.0, 0.0),
    "right": (1.0, 0.0),
    "back": (0.0, 1.0),
    "front": (0.0, -1.0),
}

# Scripted expert's constants.
_EXPERT_LEAD = 0.12   # m: the most the servo target leads the gripper
_EXPERT_TURN = 0.2    # rad per control step that the pull direction turns
_EXPERT_GAIN = 3.0    # servo target = gripper + gain * (goal - gripper), then clipped
_EXPERT_LIFT = 0.012  # m: the held end rides this high so that it does not scrape
_EXPERT_REACH = 1.05  # goal distance from the free end, in rope lengths


@register("rope")
class RopeStraighten(MjxTask):
  """Straighten the rope so that its held end points to a named side of the table."""

  xml_path = "rope.xml"
  robot_joints = ("gripper_x", "gripper_y", "gripper_z")
  embodiment = "dojo_gantry"
  joint_slots = (("gantry_xyz", 3),)
  action_slots = (("gantry_xyz_targets", 3),)
  num_links = 8  # rope0 .. rope7 in rope.xml
  randomized_bodies = tuple(f"rope{i}" for i in range(num_links))
  instruction_space = InstructionSpace(
      template="straighten the {colour} rope toward the {side}",
      parts={"colour": tuple(COLOURS), "side": tuple(SIDES)},
      # A Latin diagonal: every word is still seen, only these pairings are new.
      held_out=(("red", "left"), ("blue", "back"), ("green", "right"),
                ("yellow", "front")))

  def __init__(self, **overrides: Any):
    super().__init__(**overrides)
    model = self._mj_model
    if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, f"rope{self.num_links}") >= 0:
      raise ValueError(f"{self.xml_path} has more than num_links={self.num_links} links.")
    self._rope_bodies = np.array([self.body_id(f"rope{i}") for i in range(self.num_links)],
                                 np.int32)
    self._rope_geoms = np.array([self.geom_id(f"rope{i}") for i in range(self.num_links)],
                                np.int32)
    self._gripper = self.body_id("gripper")
    self._grip_site = self.site_id("grip")
    self._end_site = self.site_id("rope_end")
    seg = model.geom_size[self._rope_geoms, 1] * 2  # capsule half-length -> length
    self.rope_length = float(np.sum(seg))
    yaw = [model.jnt_qposadr[self._joint_id(f"rope{i}_yaw")] for i in range(self.num_links)]
    pitch = [model.jnt_qposadr[self._joint_id(f"rope{i}_pitch")]
             for i in range(self.num_links)]
    self._yaw_idx = np.array(yaw, np.int32)
    self._pitch_idx = np.array(pitch, np.int32)
    self._colours = jnp.asarray(np.array(list(COLOURS.values()), np.float32))
    self._sides = jnp.asarray(np.array(list(SIDES.values()), np.float32))
    lo, hi = model.actuator_ctrlrange[:2, 0], model.actuator_ctrlrange[:2, 1]
    self._xy_lo, self._xy_hi = jnp.asarray(lo), jnp.asarray(hi)

  @classmethod
  def default_config(cls):
    config = base_config()
    config.sim_dt = 0.008             # 5 substeps per control step (see the docstring)
    config.episode_length = 80
    config.cameras = ("front", "wrist", "head")
    # MuJoCo Warp: contact slots over all worlds of a batch (a settled rope makes about
    # 20 per world), constraint rows per world (pyramidal friction: 4 per contact).
    config.naconmax = 32 * 1024
    config.njmax = 160
    config.straight_fraction = 0.9    # success: end-to-end distance >= this * length
    config.max_angle_deg = 30.0       # success: held - free end within this of the side
    config.start_spread = 0.08        # the gripper starts within +-this of the centre (m)
    config.curl = (0.45, 0.8)         # per-joint bend of the reset coil (rad), either sign
    config.curl_noise = 0.3           # extra per-joint bend noise (rad)
    return config

  # ---------------------------------------------------------------- reset

  def _reset_data(self, rng, data, info):
    cfg = self._config
    k_pos, k_head, k_curl, k_sign, k_noise, k_shade = jax.random.split(rng, 6)
    start = jax.random.uniform(k_pos, (2,), minval=-cfg.start_spread,
                               maxval=cfg.start_spread)
    # A coil: constant bend plus noise, with a random heading for the first link.
    heading = jax.random.uniform(k_head, (), minval=-jnp.pi, maxval=jnp.pi)
    curl = jax.random.uniform(k_curl, (), minval=cfg.curl[0], maxval=cfg.curl[1])
    sign = jnp.where(jax.random.bernoulli(k_sign), 1.0, -1.0)
    bends = sign * curl + cfg.curl_noise * jax.random.normal(k_noise, (self.num_links - 1,))
    yaw = jnp.concatenate([heading[None], bends])
    qpos = data.qpos.at[0:2].set(start).at[2].set(0.0)
    qpos = qpos.at[self._yaw_idx].set(yaw).at[self._pitch_idx].set(0.0)
    ctrl = jnp.zeros(self.action_size).at[0:2].set(start)
    # Ground the instruction's colour: every rope link takes it, with a small shade
    # variation along the rope so that its motion is visible.
    colour = self._colours[self.instruction_space.part(info["instruction"], "colour")]
    shade = jax.random.uniform(k_shade, (self.num_links, 1), minval=0.85, maxval=1.1)
    rgba = info["geom_rgba"].at[self._rope_geoms, :3].set(jnp.clip(colour * shade, 0, 1))
    side = self._sides[self.instruction_space.part(info["instruction"], "side")]
    data = data.replace(qpos=qpos, qvel=jnp.zeros_like(data.qvel), ctrl=ctrl)
    return data, {**info, "geom_rgba": rgba, "side": side}

  # ---------------------------------------------------------------- task terms

  def _ends(self, data):
    return data.site_xpos[self._grip_site], data.site_xpos[self._end_site]

  def _terms(self, data, info):
    held, free = self._ends(data)
    span = held - free
    straightness = jnp.linalg.norm(span) / self.rope_length
    flat = span[:2] / jnp.maximum(jnp.linalg.norm(span[:2]), 1e-6)
    alignment = jnp.dot(flat, info["side"])
    return straightness, alignment

  def _reward(self, data, info, action):
    straightness, alignment = self._terms(data, info)
    # Straightness counts fully only when the rope points the right way.
    reward = straightness * (0.5 + 0.5 * jnp.maximum(alignment, 0.0))
    return reward, {"straightness": straightness, "alignment": alignment}

  def _success(self, data, info):
    straightness, alignment = self._terms(data, info)
    return ((straightness >= self._config.straight_fraction)
            & (alignment >= np.cos(np.deg2rad(self._config.max_angle_deg))))

  def _privileged(self, data, info):
    _, free = self._ends(data)
    return jnp.concatenate([
        data.xpos[self._rope_bodies].reshape(-1), free,
        data.xpos[self._gripper], data.qvel[self._qvel_idx], info["side"]])

  def _proprio_extra(self, data, info):
    return data.site_xpos[self._grip_site]

  # ---------------------------------------------------------------- expert

  def expert_action(self, state: State, rng: jax.Array, noise: float = 0.0) -> jax.Array:
    """Pulls the rope taut, then swings it round its free end to the named side.

    The gripper's goal is a point ``_EXPERT_REACH`` rope lengths from the free end. Its
    bearing starts as the rope's current end-to-end bearing (pulling straight out, so
    the free end trails and the rope does not fold over) and, once the rope is nearly
    taut, turns toward the instructed side by at most ``_EXPERT_TURN`` per step, so the
    taut rope sweeps round its free end like a rod. Everything is recomputed from the
    state each step (no memory). The servo target leads the gripper by a gain times the
    error, at most ``_EXPERT_LEAD``, which makes the slow servo move at a steady speed.
    """
    data = state.data
    held, free = self._ends(data)
    side = state.info["side"]
    rel = held[:2] - free[:2]
    dist = jnp.linalg.norm(rel)
    bearing = jnp.where(dist > 0.02, rel / jnp.maximum(dist, 1e-6), side)
    angle = jnp.arctan2(bearing[0] * side[1] - bearing[1] * side[0],
                        jnp.dot(bearing, side))
    taut = jnp.clip((dist / self.rope_length - 0.75) / 0.15, 0.0, 1.0)
    turn = jnp.clip(angle, -_EXPERT_TURN, _EXPERT_TURN) * taut
    c, s = jnp.cos(turn), jnp.sin(turn)
    heading = jnp.array([c * bearing[0] - s * bearing[1], s * bearing[0] + c * bearing[1]])
    goal = jnp.clip(free[:2] + heading * self.rope_length * _EXPERT_REACH,
                    self._xy_lo, self._xy_hi)
    pos = data.qpos[self._qpos_idx[:2]]
    delta = _EXPERT_GAIN * (goal - pos)
    norm = jnp.maximum(jnp.linalg.norm(delta), 1e-6)
    delta = delta * jnp.minimum(1.0, _EXPERT_LEAD / norm)
    ctrl = jnp.concatenate([pos + delta, jnp.array([_EXPERT_LIFT])])
    action = self.ctrl_to_action(ctrl)
    return jnp.clip(action + noise * jax.random.normal(rng, action.shape), -1.0, 1.0)

