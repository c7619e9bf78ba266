"""Reach: bring the gripper to the named one of four floating targets.

Two balls and two cubes float over the table (visual only). The instruction names a
colour and a shape; the scene always holds a distractor of the same shape in another
colour and one of the other shape in the same colour, so both words matter.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dojo.instructions import InstructionSpace
from dojo.registry import register
from dojo.tasks.arm import COLOURS, GRIPPER_OPEN, ArmTask, arm_config

SHAPES = ("ball", "cube")
#: Target slots: mocap bodies (and their geoms) per shape, two of each.
SLOTS = (("ball0", "ball1"), ("cube0", "cube1"))
#: Targets are drawn in distinct cells of this grid (plus jitter) so they never overlap.
GRID_X = (0.34, 0.46, 0.58)
GRID_Y = (-0.2, 0.0, 0.2)
#: The proprio slot of the instructed target's position (``config.observe_target``).
TARGET_SLOT = "reach_target"


@register("reach", data={"floating_targets": True})
class Reach(ArmTask):
  """Move the grasp point to within ``success_radius`` of the instructed target."""

  xml_path = "reach.xml"
  # No objects to randomise: the mass of the arm's distal links instead.
  randomized_bodies = ("link5", "link6", "link7", "hand")
  instruction_space = InstructionSpace(
      template="reach the {colour} {shape}",
      parts={"colour": tuple(COLOURS), "shape": SHAPES},
      held_out=(("green", "cube"), ("yellow", "ball")))

  def __init__(self, **overrides: Any):
    super().__init__(**overrides)
    names = [n for pair in SLOTS for n in pair]
    self._mocap = np.array([self._mj_model.body_mocapid[self.body_id(n)] for n in names],
                           np.int32)
    self._slot_geoms = np.array([self.geom_id(n) for n in names], np.int32)
    gx, gy = np.meshgrid(GRID_X, GRID_Y, indexing="ij")
    self._cells = jnp.asarray(np.stack([gx.ravel(), gy.ravel()], -1), jnp.float32)

  @classmethod
  def default_config(cls):
    config = arm_config()
    config.episode_length = 50
    config.success_radius = 0.04
    config.target_height = (0.05, 0.3)   # range of target heights above the table
    # The instructed target's position as the proprio slot `reach_target`: a perception
    # oracle if a model reads it, a perception training signal if the model only
    # predicts it (`model.predict_only`); docs/RESULTS.md.
    config.observe_target = False
    return config

  # ---------------------------------------------------------------- reset

  def _reset_data(self, rng, data, info):
    k_arm, k_cells, k_jit, k_z, k_slot, k_c1, k_c2, k_perm = jax.random.split(rng, 8)
    data = self._reset_arm(k_arm, data)
    colour = self.instruction_space.part(info["instruction"], "colour")
    shape = self.instruction_space.part(info["instruction"], "shape")
    n = len(COLOURS)
    # Slot colours: instructed shape gets {colour, other}, the other shape gets
    # {colour, another}; which slot of each pair is which is random.
    other1 = (colour + jax.random.randint(k_c1, (), 1, n)) % n
    other2 = (colour + jax.random.randint(k_c2, (), 1, n)) % n
    flip = jax.random.bernoulli(k_slot, 0.5, (2,)).astype(jnp.int32)
    same = jnp.stack([colour, other1])[jnp.stack([flip[0], 1 - flip[0]])]
    diff = jnp.stack([colour, other2])[jnp.stack([flip[1], 1 - flip[1]])]
    slot_colours = jnp.where(shape == 0, jnp.concatenate([same, diff]),
                             jnp.concatenate([diff, same]))
    target_slot = 2 * shape + flip[0]
    # Positions: four distinct grid cells with jitter, random heights.
    cells = self._cells[jax.random.permutation(k_cells, self._cells.shape[0])[:4]]
    xy = cells + jax.random.uniform(k_jit, (4, 2), minval=-0.03, maxval=0.03)
    lo, hi = self._config.target_height
    z = jax.random.uniform(k_z, (4, 1), minval=lo, maxval=hi)
    pos = jnp.concatenate([xy, z], -1)
    mocap_pos = data.mocap_pos.at[self._mocap].set(pos)
    rgba = info["geom_rgba"]
    for i, g in enumerate(self._slot_geoms):
      rgba = self._set_colour(rgba, g, slot_colours[i])
    info = {**info, "geom_rgba": rgba, "target_slot": target_slot,
            "target": pos[target_slot]}
    return data.replace(mocap_pos=mocap_pos), info

  # ---------------------------------------------------------------- task terms

  def _distance(self, data, info):
    return jnp.linalg.norm(self.grip_pos(data) - info["target"])

  def _reward(self, data, info, action):
    dist = self._distance(data, info)
    reward = 1.0 - jnp.tanh(dist / 0.1)
    return reward, {"distance": dist}

  def _success(self, data, info):
    return self._distance(data, info) < self._config.success_radius

  def _proprio_extra(self, data, info):
    extra = super()._proprio_extra(data, info)
    return jnp.concatenate([extra, info["target"]]) if self._config.observe_target else extra

  def data_slots(self):
    slots = super().data_slots()
    if self._config.observe_target:  # reach has no objects: the target ends the vector
      (name, size), = slots["proprio"]
      slots["proprio"] = [(name, size - 3), (TARGET_SLOT, 3)]
    return slots

  def _privileged(self, data, info):
    targets = data.mocap_pos[self._mocap].reshape(-1)
    return jnp.concatenate([self._robot_state(data), info["target"], targets,
                            jax.nn.one_hot(info["target_slot"], 4)])

  # ---------------------------------------------------------------- expert

  def expert_action(self, state, rng, noise=0.0):
    return self.arm_action(state.data, state.info["target"], jnp.zeros(()),
                           jnp.asarray(GRIPPER_OPEN), rng, noise)
