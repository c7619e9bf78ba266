# my_tasks/tap.py
"""Tap: touch the instructed one of two coloured balls with a two-link arm's tip."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from dojo.instructions import InstructionSpace
from dojo.registry import register
from dojo.task import MjxTask, base_config

COLOURS = {"red": (0.9, 0.1, 0.1), "blue": (0.1, 0.2, 0.9), "yellow": (0.9, 0.8, 0.1)}
LINK = 0.2   # both links, as in tap.xml


@register("tap")   # importing this module registers the task (section 8)
class Tap(MjxTask):
  """Bring the arm's tip within ``success_radius`` of the instructed ball."""

  xml_path = os.path.join(os.path.dirname(__file__), "tap.xml")
  robot_joints = ("shoulder", "elbow")
  embodiment = "planar_arm"
  joint_slots = (("planar_arm_joints", 2),)
  action_slots = (("planar_arm_joint_targets", 2),)
  instruction_space = InstructionSpace(
      template="tap the {colour} ball", parts={"colour": tuple(COLOURS)},
      held_out=(("yellow",),))

  def __init__(self, **overrides):
    super().__init__(**overrides)
    self._tip = self.site_id("tip")
    self._mocap = np.array([self._mj_model.body_mocapid[self.body_id(f"target{i}")]
                            for i in range(2)], np.int32)
    self._ball_geoms = np.array([self.geom_id(f"target{i}") for i in range(2)], np.int32)
    self._palette = jnp.asarray(list(COLOURS.values()), jnp.float32)

  @classmethod
  def default_config(cls):
    config = base_config()
    config.episode_length = 40
    config.success_radius = 0.03
    config.naconmax = 256   # warp: nothing in this scene collides (contype 0)
    config.njmax = 32
    return config

  def _reset_data(self, rng, data, info):
    k_q, k_r, k_a, k_other = jax.random.split(rng, 4)
    q = jax.random.uniform(k_q, (2,), minval=-0.5, maxval=0.5)
    # Two balls at reachable radii, on opposite sides of the arm.
    radius = jax.random.uniform(k_r, (2,), minval=0.2, maxval=0.36)
    angle = jax.random.uniform(k_a, (), minval=0.3, maxval=1.2) * jnp.array([1.0, -1.0])
    pos = jnp.stack([radius * jnp.cos(angle), radius * jnp.sin(angle),
                     jnp.full((2,), 0.16)], -1)
    # Ball 0 wears the instructed colour, ball 1 another one.
    colour = self.instruction_space.part(info["instruction"], "colour")
    other = (colour + jax.random.randint(k_other, (), 1, len(COLOURS))) % len(COLOURS)
    rgba = info["geom_rgba"]
    for geom, c in zip(self._ball_geoms, (colour, other)):
      rgba = rgba.at[geom, :3].set(self._palette[c])
    data = data.replace(qpos=data.qpos.at[:2].set(q), ctrl=q,
                        mocap_pos=data.mocap_pos.at[self._mocap].set(pos))
    return data, {**info, "geom_rgba": rgba, "target": pos[0]}

  def _distance(self, data, info):
    return jnp.linalg.norm(data.site_xpos[self._tip] - info["target"])

  def _reward(self, data, info, action):
    dist = self._distance(data, info)
    return 1.0 - jnp.tanh(dist / 0.1), {"distance": dist}

  def _success(self, data, info):
    return self._distance(data, info) < self._config.success_radius

  def _privileged(self, data, info):
    return jnp.concatenate([data.qpos[:2], data.qvel[:2], data.site_xpos[self._tip],
                            info["target"]])

  def _proprio_extra(self, data, info):
    return data.site_xpos[self._tip]   # the tip position, beside the joint velocities

  def expert_action(self, state, rng, noise=0.0):
    # Planar two-link inverse kinematics to the target (elbow-down solution).
    x, y = state.info["target"][0], state.info["target"][1]
    d2 = jnp.clip(x * x + y * y, 1e-6, (2 * LINK) ** 2)
    elbow = jnp.arccos(jnp.clip((d2 - 2 * LINK ** 2) / (2 * LINK ** 2), -1.0, 1.0))
    shoulder = jnp.arctan2(y, x) - jnp.arctan2(LINK * jnp.sin(elbow),
                                               LINK + LINK * jnp.cos(elbow))
    action = self.ctrl_to_action(jnp.stack([shoulder, elbow]))
    return jnp.clip(action + noise * jax.random.normal(rng, action.shape), -1.0, 1.0)
