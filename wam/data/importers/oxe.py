"""Key mappings of Open X-Embodiment datasets, in the style of Octo's OXE configs.

Octo (``octo/data/oxe/oxe_dataset_configs.py``) describes each dataset by its camera
roles (``image_obs_keys``: ``primary``, ``secondary``, ``wrist``), its proprio and its
action encoding, and standardises values with a per-dataset transform. Here the same
facts are a :class:`~wam.data.importers.mapping.KeyMapping`: cameras are named after the
roles, so datasets mix camera by camera; proprio and actions are named slots, so a slot
name is one quantity across datasets. Values are imported as recorded: Octo's
transforms (gripper binarisation, relative-to-absolute gripper actions, relabelled
actions) are not applied, and slots of a different convention get a different name
(``gripper_open`` in bridge, ``gripper_closedness_delta`` in fractal).

:func:`oxe_preset` builds a preset from Octo-like arguments, for datasets not listed.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

from wam.data.importers.mapping import KeyMapping, Preset, VectorKey

CAMERA_ROLES = ("primary", "secondary", "wrist")
# Octo's ActionEncoding.EEF_POS: end-effector delta position, delta rotation, gripper.
EEF_DELTA = (("eef_delta_pos", 3), ("eef_delta_rot", 3))


def oxe_preset(*, image_obs_keys: Mapping[str, Optional[str]],
               action: Sequence[VectorKey | str],
               proprio: Sequence[VectorKey | str] = (), joints: Sequence[VectorKey | str] = (),
               instruction: Optional[str] = "steps/language_instruction",
               default_instruction: str = "", embodiment: Optional[str] = None,
               source: str = "robot", fps: Optional[float] = None,
               mask_last_action: bool = False) -> Preset:
  """A preset for one RLDS dataset, from Octo-style facts.

  Args:
    image_obs_keys: ``{role: observation key}`` as in Octo (``None``: no such camera);
      the key is relative to ``steps/observation/``.
    action: vector keys of the action (full paths, e.g. ``steps/action``), with slots.
    proprio, joints: vector keys of the observation's proprio and joint state.
    instruction: the per-step instruction key (None: only ``default_instruction``).
    default_instruction: the instruction where the dataset has none.
    embodiment, source, fps: dataset defaults.
    mask_last_action: mask the last step's action (RLDS datasets recorded with envlogger
      pad it; most OXE conversions hold a real action there, and Octo trains on it).
  """
  unknown = sorted(set(image_obs_keys) - set(CAMERA_ROLES))
  if unknown:
    raise ValueError(f"Camera roles {unknown} are not {CAMERA_ROLES}.")
  images = {role: f"steps/observation/{key}" for role, key in image_obs_keys.items() if key}
  return Preset(
      KeyMapping(images=images, joints=tuple(joints), proprio=tuple(proprio),
                 action=tuple(action), instruction=instruction,
                 default_instruction=default_instruction, reward="steps/reward",
                 is_terminal="steps/is_terminal", mask_last_action=mask_last_action,
                 optional=("instruction", "reward", "is_terminal")),
      embodiment=embodiment, source=source, fps=fps, episode_groups="*",
      files="<tfds data_dir>/<dataset>/<version>")


def bridge(instruction: str = "") -> Preset:
  """BridgeData V2 (``bridge_dataset``, the RAIL copy that Octo trains on; WidowX, 5 Hz).

  ``image_0`` (primary) and ``image_1`` (secondary), 256x256; ``state`` [7] is the
  end-effector position, Euler angles and gripper; ``action`` [7] the end-effector
  delta and an absolute gripper command (1 open, 0 closed; Octo binarises it).
  """
  return oxe_preset(
      image_obs_keys={"primary": "image_0", "secondary": "image_1", "wrist": None},
      proprio=(VectorKey("steps/observation/state",
                         slots=(("eef_pos", 3), ("eef_euler", 3), ("gripper_state", 1))),),
      action=(VectorKey("steps/action", slots=EEF_DELTA + (("gripper_open", 1),)),),
      default_instruction=instruction, embodiment="widowx", fps=5.0)


def fractal(instruction: str = "") -> Preset:
  """RT-1 / fractal (``fractal20220817_data``; Google's mobile manipulator, 3 Hz).

  ``image`` (primary, 256x320); proprio ``base_pose_tool_reached`` [7] (position and
  quaternion) and ``gripper_closed`` [1]; action ``world_vector``, ``rotation_delta`` and
  ``gripper_closedness_action`` (relative: 1 close, -1 open, 0 stay; Octo makes it
  absolute); the instruction is ``observation/natural_language_instruction``.
  """
  return oxe_preset(
      image_obs_keys={"primary": "image", "secondary": None, "wrist": None},
      proprio=(VectorKey("steps/observation/base_pose_tool_reached",
                         slots=(("eef_pos", 3), ("eef_quat", 4))),
               VectorKey("steps/observation/gripper_closed", name="gripper_closed")),
      action=(VectorKey("steps/action/world_vector", name="eef_delta_pos"),
              VectorKey("steps/action/rotation_delta", name="eef_delta_rot"),
              VectorKey("steps/action/gripper_closedness_action",
                        name="gripper_closedness_delta")),
      instruction="steps/observation/natural_language_instruction",
      default_instruction=instruction, embodiment="google_robot", fps=3.0)


def libero(instruction: str = "") -> Preset:
  """LIBERO in OpenVLA's RLDS conversion (``libero_{spatial,object,goal,10}_no_noops``;
  simulated Franka Panda, 20 Hz).

  ``image`` (primary) and ``wrist_image`` (wrist), 256x256; ``joint_state`` [7];
  ``state`` [8] is the end-effector position, axis-angle and two gripper joints;
  ``action`` [7] the end-effector delta and the robosuite gripper command (-1 open,
  1 close: robomimic's ``gripper`` slot).
  """
  return oxe_preset(
      image_obs_keys={"primary": "image", "secondary": None, "wrist": "wrist_image"},
      joints=(VectorKey("steps/observation/joint_state", name="arm_joints"),),
      proprio=(VectorKey("steps/observation/state",
                         slots=(("eef_pos", 3), ("eef_axis_angle", 3), ("gripper_qpos", 2))),),
      action=(VectorKey("steps/action", slots=EEF_DELTA + (("gripper", 1),)),),
      default_instruction=instruction, embodiment="libero_panda", source="sim", fps=20.0)


def berkeley_cable_routing(instruction: str = "") -> Preset:
  """Berkeley cable routing (``berkeley_cable_routing``; Franka, 10 Hz).

  ``image`` (primary), ``top_image`` (secondary), ``wrist45_image`` (wrist), 128x128;
  proprio ``robot_state`` [7]; action ``world_vector`` (a velocity) and
  ``rotation_delta`` (an angular velocity), so named as velocities; no gripper.
  """
  return oxe_preset(
      image_obs_keys={"primary": "image", "secondary": "top_image", "wrist": "wrist45_image"},
      proprio=(VectorKey("steps/observation/robot_state", name="robot_state"),),
      action=(VectorKey("steps/action/world_vector", name="eef_velocity"),
              VectorKey("steps/action/rotation_delta", name="eef_angular_velocity")),
      instruction="steps/observation/natural_language_instruction",
      default_instruction=instruction, embodiment="franka_cable", fps=10.0)


PRESETS = {"bridge": bridge, "fractal": fractal, "libero": libero,
           "berkeley_cable_routing": berkeley_cable_routing}
