"""A Franka Emika Panda from an installed package reaching with the generic expert.

The arm is the one ``gymnasium-robotics`` ships for its kitchen tasks (STL meshes,
position actuators; ``envs/assets/kitchen_franka/franka_assets``): nothing is copied
or downloaded, and this file is the whole task. Those files are include fragments
(``assets.xml``, ``chain.xml``, ``actuator.xml``) written for a scene one folder up, so
``_load_spec`` wraps them in a model and points the meshes at ``meshes/``. The arm has
no gravity compensation: the expert's servo commands carry the gravity load
(``dojo.servo``), which otherwise sags the hand by a few centimetres.
"""

from __future__ import annotations

import os

import mujoco

from dojo.registry import register
from dojo.tasks.serial_arm import SerialArmReach, serial_arm_config

PANDA_DIR = "gymnasium_robotics:envs/assets/kitchen_franka/franka_assets"
ARM_JOINTS = tuple(f"robot:panda0_joint{i}" for i in range(1, 8))


@register("reach_panda")
class ReachPanda(SerialArmReach):
  """Bring the Panda's end-effector site to the instructed ball."""

  xml_path = PANDA_DIR + "/chain.xml"
  embodiment = "panda"
  joint_slots = (("panda_arm_joints", 7),)
  action_slots = (("panda_arm_joint_targets", 7), ("panda_fingers", 2))

  @classmethod
  def default_config(cls):
    config = serial_arm_config()
    config.arm_joints = ARM_JOINTS
    config.site = "end_effector"
    config.rest_pose = (0.0, -0.4, 0.0, -2.3, 0.0, 0.4, 0.785)
    config.workspace = ((0.35, -0.25, 0.1), (0.65, 0.25, 0.4))
    # The fragments say 2 ms; 4 ms is stable with these servos and halves the cost.
    config.sim_dt = 0.004
    # True draws the visual meshes (136k triangles: seconds to index, slow to
    # ray-cast); False (here) draws the 2.6k-triangle collision meshes in their place.
    config.detailed_meshes = False
    return config

  def _load_spec(self, path: str) -> mujoco.MjSpec:
    folder = os.path.dirname(path)
    spec = mujoco.MjSpec.from_string(
        f'<mujoco model="panda"><include file="{folder}/assets.xml"/><worldbody>'
        f'<include file="{folder}/chain.xml"/></worldbody>'
        f'<include file="{folder}/actuator.xml"/></mujoco>')
    # MuJoCo resolves a mesh file relative to the fragment that names it; the
    # fragments meant meshdir="franka_assets/meshes" relative to the kitchen scene.
    for mesh in spec.meshes:
      mesh.file = os.path.join(folder, "meshes", os.path.relpath(mesh.file, folder))
    return spec

  def _edit_spec(self, spec: mujoco.MjSpec) -> None:
    if not self._config.detailed_meshes:
      meshes = {m.name for m in spec.meshes}
      for geom in spec.geoms:
        if geom.type == mujoco.mjtGeom.mjGEOM_MESH and geom.meshname.endswith("_viz"):
          low = geom.meshname[:-4] + "_col"
          if low in meshes:
            geom.meshname = low
      for mesh in list(spec.meshes):
        if mesh.name.endswith("_viz") and mesh.name[:-4] + "_col" in meshes:
          spec.delete(mesh)
    super()._edit_spec(spec)

