"""A tiny two-link task used by the wrapper, renderer and contract tests."""

from __future__ import annotations

import os
import tempfile

import jax
import jax.numpy as jnp

from dojo.instructions import InstructionSpace
from dojo.task import MjxTask, base_config

TOY_XML = """
<mujoco model="toy">
  <option timestep="0.004" iterations="8"/>
  <worldbody>
    <light pos="0 0 2"/>
    <geom name="floor" type="plane" size="1 1 0.1" rgba="0.8 0.8 0.8 1"/>
    <camera name="front" pos="0 -1.2 0.6" xyaxes="1 0 0 0 0.45 0.9"/>
    <body name="link1" pos="0 0 0.3">
      <joint name="j1" type="hinge" axis="0 0 1" damping="0.5"/>
      <geom type="capsule" fromto="0 0 0 0.2 0 0" size="0.03" rgba="0.2 0.4 0.8 1"/>
      <body name="link2" pos="0.2 0 0">
        <joint name="j2" type="hinge" axis="0 0 1" damping="0.5"/>
        <geom type="capsule" fromto="0 0 0 0.2 0 0" size="0.03" rgba="0.8 0.4 0.2 1"/>
        <site name="tip" pos="0.2 0 0"/>
        <camera name="wrist" pos="0.2 0 0.05" xyaxes="0 1 0 0 0 1"/>
      </body>
    </body>
    <body name="box" pos="0.3 0.2 0.05">
      <freejoint/>
      <geom name="box" type="box" size="0.04 0.04 0.04" rgba="0.9 0.1 0.1 1"/>
    </body>
    <geom name="target" type="sphere" size="0.03" pos="0.2 0.2 0.3" rgba="0.1 0.9 0.1 1"
          contype="0" conaffinity="0"/>
  </worldbody>
  <actuator>
    <position joint="j1" kp="5" ctrlrange="-3 3"/>
    <position joint="j2" kp="5" ctrlrange="-2.5 2.5"/>
  </actuator>
</mujoco>
"""


def _xml_file() -> str:
  path = os.path.join(tempfile.gettempdir(), "dojo_toy_task.xml")
  if not os.path.exists(path) or open(path).read() != TOY_XML:
    with open(path, "w") as f:
      f.write(TOY_XML)
  return path


class Toy(MjxTask):
  """Move the tip of a two-link arm to a point; reward = -distance."""

  robot_joints = ("j1", "j2")
  randomized_bodies = ("box",)
  instruction_space = InstructionSpace(
      template="touch the {colour} point", parts={"colour": ("green", "blue")},
      held_out=(("blue",),))

  def __init__(self, **overrides):
    self.xml_path = _xml_file()
    super().__init__(**overrides)
    self._tip = self.site_id("tip")

  @classmethod
  def default_config(cls):
    config = base_config()
    config.naconmax = 512
    config.njmax = 64
    return config

  def _reset_data(self, rng, data, info):
    q = jax.random.uniform(rng, (2,), minval=-0.5, maxval=0.5)
    qpos = data.qpos.at[:2].set(q)
    return data.replace(qpos=qpos, ctrl=q), {**info, "goal": jnp.array([0.2, 0.2, 0.3])}

  def _reward(self, data, info, action):
    dist = jnp.linalg.norm(data.site_xpos[self._tip] - info["goal"])
    return -dist, {"distance": dist}

  def _success(self, data, info):
    return jnp.linalg.norm(data.site_xpos[self._tip] - info["goal"]) < 0.05

  def _privileged(self, data, info):
    return jnp.concatenate([data.qpos[:2], data.qvel[:2], info["goal"]])

  def expert_action(self, state, rng, noise=0.0):
    target = jnp.array([0.785, 0.0])
    return self.ctrl_to_action(target) + noise * jax.random.normal(rng, (2,))
