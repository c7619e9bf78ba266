"""Reach with any serial arm: the scene, the task and a generic scripted expert.

A new arm's reach task is one subclass that names the arm's MJCF file and, in its
config, the arm's joints, the site to bring to the target, a rest pose and the
workspace; ``dojo/tasks/reach_dojo_arm.py`` and ``dojo/tasks/reach_panda.py`` are
complete examples. The robot file needs no Dojo additions: the task dresses the scene
(``_edit_spec``) with a floor and ``front``/``head``/``wrist`` cameras where it has none, two
floating target balls (mocap, visual only) and, unless ``config.collisions``, no
collisions at all (reaching touches nothing; collision pairs dominate physics cost).

The expert (``expert_action``) is generic: it steps the site toward the instructed
ball at ``expert_speed``, solves damped-least-squares inverse kinematics for the arm's
joints on a ``SerialChain`` read from the model, and turns the joint targets into servo
commands that cancel the servos' lag and static load (``dojo.servo``), all from the
model's own constants. Actuators that are not the arm's keep their current controls.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from ml_collections import config_dict

from dojo import mjcf
from dojo.instructions import InstructionSpace
from dojo.kinematics import SerialChain
from dojo.render.camera import look_at
from dojo.servo import PositionServos
from dojo.task import MjxTask, base_config

COLOURS = {"red": (0.85, 0.15, 0.12), "green": (0.15, 0.65, 0.2),
           "blue": (0.15, 0.3, 0.85), "yellow": (0.9, 0.8, 0.1)}
TARGETS = ("target0", "target1")   # the instructed ball, the distractor
TARGET_RADIUS = 0.025


def serial_arm_config() -> config_dict.ConfigDict:
  """``base_config()`` with the keys a serial-arm reach task sets (see the module)."""
  config = base_config()
  config.episode_length = 50
  config.arm_joints = ()             # the arm's hinge joints, base to tip
  config.site = ""                   # the site brought to the target
  config.rest_pose = ()              # rad per arm joint: the reset pose and IK posture
  config.init_joint_noise = 0.1      # std (rad) of the reset pose around rest_pose
  # Box (world frame, m) the target balls are drawn from: (lower corner, upper corner).
  config.workspace = ((0.3, -0.25, 0.1), (0.6, 0.25, 0.4))
  config.success_radius = 0.04       # m between the site and the instructed ball
  config.collisions = False          # keep the scene's contacts (off: nothing collides)
  config.expert_speed = 0.6          # m/s the expert moves the site at most
  config.expert_ik_iterations = 4
  config.expert_rest_weight = 0.02   # pull of the IK toward rest_pose (redundancy)
  # Expert action noise: ``noise`` times this std (rad) on each arm joint's command.
  config.expert_joint_noise = 0.05
  config.servo_lead = True           # cancel servo lag and load (dojo.servo)
  config.naconmax = 1024             # warp: few or no contacts
  config.njmax = 64
  return config


class SerialArmReach(MjxTask):
  """Bring ``config.site`` within ``success_radius`` of the instructed ball.

  Subclasses set ``xml_path`` (any MJCF or URDF: ``dojo.mjcf``), ``embodiment`` and a
  ``default_config()`` extending ``serial_arm_config()`` with the arm's names.
  """

  embodiment = "serial_arm"
  instruction_space = InstructionSpace(
      template="reach the {colour} ball", parts={"colour": tuple(COLOURS)},
      held_out=(("yellow",),))

  @classmethod
  def default_config(cls) -> config_dict.ConfigDict:
    return serial_arm_config()

  @property
  def robot_joints(self) -> tuple[str, ...]:
    return tuple(self._config.arm_joints)

  def __init__(self, **overrides: Any):
    super().__init__(**overrides)
    c = self._config
    where = type(self).__name__
    if not c.arm_joints or not c.site:
      raise ValueError(f"{where}: config.arm_joints and config.site name the arm; the "
                       f"model's joints: {mjcf.names(self._mj_model, mujoco.mjtObj.mjOBJ_JOINT)}"
                       f", sites: {mjcf.names(self._mj_model, mujoco.mjtObj.mjOBJ_SITE)}.")
    if len(c.rest_pose) != len(c.arm_joints):
      raise ValueError(f"{where}: config.rest_pose has {len(c.rest_pose)} angles for "
                       f"{len(c.arm_joints)} arm joints.")
    model = self._mj_model
    self.chain = SerialChain(model, c.site, c.arm_joints)
    self._site = self.site_id(c.site)
    self._rest = jnp.asarray(c.rest_pose, jnp.float32)
    rest_qpos = model.qpos0.copy()
    rest_qpos[self._qpos_idx] = c.rest_pose
    self.servos = PositionServos(model, c.arm_joints, c.ctrl_dt, qpos=rest_qpos)
    self._arm_actuators = jnp.asarray(self.servos.actuators)
    self._mocap = np.array([model.body_mocapid[self.body_id(n)] for n in TARGETS], np.int32)
    self._target_geoms = np.array([self.geom_id(n) for n in TARGETS], np.int32)
    self._palette = jnp.asarray(list(COLOURS.values()), jnp.float32)
    self._box = jnp.asarray(c.workspace, jnp.float32)
    noise_std = np.zeros(model.nu, np.float32)
    noise_std[self.servos.actuators] = (c.expert_joint_noise
                                        / np.asarray(self._ctrl_half)[self.servos.actuators])
    self._noise_std = jnp.asarray(noise_std)

  # ---------------------------------------------------------------- scene

  def _edit_spec(self, spec: mujoco.MjSpec) -> None:
    """Adds what the robot file lacks: floor, cameras and the two target balls."""
    site = spec.site(self._config.site) if self._config.site else None
    if spec.camera("wrist") is None and site is not None:
      # Beside the site, looking along its z axis (the way a gripper points), on the
      # site's body. The site's frame in its body is read from a first compile.
      model = spec.compile()
      sid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, self._config.site)
      rot = np.zeros(9)
      mujoco.mju_quat2Mat(rot, model.site_quat[sid])
      rot = rot.reshape(3, 3)
      quat = np.zeros(4)
      mujoco.mju_mat2Quat(quat, (rot @ np.diag([1.0, -1.0, -1.0])).reshape(-1))
      site.parent.add_camera(name="wrist", quat=quat, fovy=75.0,
                             pos=model.site_pos[sid] - 0.05 * rot[:, 2] + 0.08 * rot[:, 0])
    lo, hi = (np.asarray(v, np.float64) for v in self._config.workspace)
    centre = (lo + hi) / 2
    if not any(g.type == mujoco.mjtGeom.mjGEOM_PLANE for g in spec.worldbody.geoms):
      spec.worldbody.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE,
                              size=[2.0, 2.0, 0.05], rgba=[0.72, 0.62, 0.5, 1.0])
    # A three-quarter view from across the table of the robot (base at the origin) and
    # the workspace, and one from behind the robot down onto the workspace.
    scene = np.array([centre[0] / 2, centre[1], centre[2] + 0.15])
    for name, eye, at in (("front", scene + [1.2, -0.9, 0.5], scene),
                          ("head", np.array([-0.35, 0.25, centre[2] + 0.85]), centre)):
      if spec.camera(name) is None:
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, np.asarray(look_at(jnp.asarray(eye), jnp.asarray(at)),
                                             np.float64).reshape(-1))
        spec.worldbody.add_camera(name=name, pos=eye, quat=quat, fovy=50.0)
    for name in TARGETS:
      body = spec.worldbody.add_body(name=name, mocap=True, pos=centre)
      body.add_geom(name=name, type=mujoco.mjtGeom.mjGEOM_SPHERE,
                    size=[TARGET_RADIUS, 0, 0], contype=0, conaffinity=0,
                    rgba=[0.85, 0.15, 0.12, 1.0])
    if not self._config.collisions:
      for geom in spec.geoms:
        geom.contype = 0
        geom.conaffinity = 0

  # ---------------------------------------------------------------- reset

  def _reset_data(self, rng, data, info):
    k_q, k_pos, k_other = jax.random.split(rng, 3)
    q = self._rest + self._config.init_joint_noise * jax.random.normal(
        k_q, self._rest.shape)
    q = jnp.clip(q, self.chain.lower, self.chain.upper)
    # The instructed ball anywhere in the box; the distractor mirrored across its
    # middle in y (at another x and z), so the two rarely overlap.
    lo, hi = self._box[0], self._box[1]
    pos = jax.random.uniform(k_pos, (2, 3), minval=lo, maxval=hi)
    pos = pos.at[1, 1].set(lo[1] + hi[1] - pos[0, 1])
    colour = self.instruction_space.part(info["instruction"], "colour")
    other = (colour + jax.random.randint(k_other, (), 1, len(COLOURS))) % len(COLOURS)
    rgba = info["geom_rgba"]
    for geom, c in zip(self._target_geoms, (colour, other)):
      rgba = rgba.at[geom, :3].set(self._palette[c])
    ctrl = data.ctrl.at[self._arm_actuators].set(q)
    data = data.replace(qpos=data.qpos.at[self._qpos_idx].set(q), ctrl=ctrl,
                        mocap_pos=data.mocap_pos.at[self._mocap].set(pos))
    return data, {**info, "geom_rgba": rgba, "target": pos[0], "distractor": pos[1]}

  # ---------------------------------------------------------------- task terms

  def site_pos(self, data) -> jax.Array:
    """World position of ``config.site``."""
    return data.site_xpos[self._site]

  def _distance(self, data, info):
    return jnp.linalg.norm(self.site_pos(data) - info["target"])

  def _reward(self, data, info, action):
    dist = self._distance(data, info)
    return 1.0 - jnp.tanh(dist / 0.1), {"distance": dist}

  def _success(self, data, info):
    return self._distance(data, info) < self._config.success_radius

  def _proprio_extra(self, data, info):
    return self.site_pos(data)

  def _privileged(self, data, info):
    return jnp.concatenate([data.qpos[self._qpos_idx], data.qvel[self._qvel_idx],
                            self.site_pos(data), info["target"], info["distractor"]])

  # ---------------------------------------------------------------- expert

  def joint_targets(self, data, target: jax.Array) -> jax.Array:
    """Joint angles that move the site one speed-limited step toward ``target``."""
    q = data.qpos[self._qpos_idx]
    pos = self.site_pos(data)
    delta = target - pos
    max_step = self._config.expert_speed * self._config.ctrl_dt
    waypoint = pos + delta * jnp.minimum(1.0, max_step / jnp.maximum(
        jnp.linalg.norm(delta), 1e-6))
    return self.chain.solve(q, waypoint, rest=self._rest,
                            iterations=self._config.expert_ik_iterations,
                            rest_weight=self._config.expert_rest_weight)

  def expert_action(self, state, rng, noise=0.0):
    data = state.data
    q_target = self.joint_targets(data, state.info["target"])
    arm = self.servos.command(data, q_target, lead=self._config.servo_lead)
    ctrl = data.ctrl.at[self._arm_actuators].set(arm)
    action = self.ctrl_to_action(ctrl, data)
    action = action + noise * self._noise_std * jax.random.normal(rng, action.shape)
    return jnp.clip(action, -1.0, 1.0)
