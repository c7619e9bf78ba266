"""The Dojo arm reaching with the generic serial-arm expert (``dojo.tasks.serial_arm``).

The whole task is this file: the arm's MJCF (``dojo/assets/arm.xml``, which holds no
targets), its joint and site names, a rest pose and a workspace. ``reach`` is the
richer task on the same arm (four targets, colour and shape words, its own expert).
"""

from __future__ import annotations

from dojo.registry import register
from dojo.tasks.serial_arm import SerialArmReach, serial_arm_config


@register("reach_dojo_arm")
class ReachDojoArm(SerialArmReach):
  """Bring the Dojo arm's grasp point to the instructed ball."""

  xml_path = "arm.xml"
  # Its own embodiment: the proprioception differs from the arm tasks' (no gripper
  # yaw or opening), while joint and action slots are the same quantities as theirs.
  embodiment = "dojo_arm_reach"
  joint_slots = (("arm_joints", 7),)
  action_slots = (("arm_joint_targets", 7), ("gripper", 1))

  @classmethod
  def default_config(cls):
    config = serial_arm_config()
    config.arm_joints = tuple(f"j{i}" for i in range(1, 8))
    config.site = "grip"
    config.rest_pose = (0.0, 0.45, 0.0, 1.9, 0.0, 0.8, 0.0)
    config.workspace = ((0.31, -0.23, 0.05), (0.61, 0.23, 0.3))
    config.sim_dt = 0.008   # as the other arm tasks: half the substeps of arm.xml's 4 ms
    return config
