"""Imports HDF5 episode files (ALOHA, robomimic, egocentric hand data, any layout).

Files are opened one at a time with h5py and arrays read lazily, so a dataset of any
size imports in the memory of one episode. A key is a path inside the episode group; a
key that is not a dataset is looked up as an attribute of its parent (``"sim"``: the
group's attribute ``sim``), and a leading ``/`` starts from the file's root.

Library use::

  from wam.data.importers import hdf5
  path = hdf5.import_hdf5("raw/aloha/episode_*.hdf5", hdf5.aloha(instruction="fold"),
                          name="aloha_fold", data_dir="data", image_size=(120, 160),
                          splits={"train": 0.9, "val": 0.1})

Command line::

  python -m wam.data.importers.hdf5 --files='raw/aloha/episode_*.hdf5' --preset=aloha \\
      --name=aloha_fold --data_dir=data --image_size=120,160 --splits=train=0.9,val=0.1
"""

from __future__ import annotations

import fnmatch
from typing import Any, Optional, Sequence

import h5py

from wam.data.importers import importer
from wam.data.importers.mapping import KeyMapping, Preset, VectorKey
from wam.data.importers.sources import EpisodeSource, SourceError, SourceFile, natural_key


# ---------------------------------------------------------------------------- presets
def aloha(instruction: str = "", cameras: Optional[Sequence[str]] = None) -> Preset:
  """ALOHA / ACT recordings: one episode per file ``episode_<i>.hdf5``.

  Expected layout (root group = the episode)::

    /observations/images/<cam>  uint8[N,H,W,3]  (cam_high, cam_left_wrist, ...; all found)
    /observations/qpos          f32[N,14]   joints
    /observations/qvel          f32[N,14]   proprio
    /action                     f32[N,14]   leader-arm joint targets
    attribute sim               bool        source "sim" if true, else "robot"

  The 14 values split into slots ``left_arm`` (6), ``left_gripper`` (1), ``right_arm``
  (6), ``right_gripper`` (1): the action uses the same names (a target of those joints:
  names mean the same part within one vector), proprio the names with a ``_vel``
  suffix. Images compressed with ``compress=True`` (JPEG bytes) are not supported.

  Args:
    instruction: the instruction of every episode (ALOHA files record none).
    cameras: cameras to import; default every ``observations/images/*``.
  """
  slots = (("left_arm", 6), ("left_gripper", 1), ("right_arm", 6), ("right_gripper", 1))
  images = ({c: f"observations/images/{c}" for c in cameras} if cameras
            else {"*": "observations/images/*"})
  return Preset(
      KeyMapping(images=images,
                 joints=(VectorKey("observations/qpos", slots=slots),),
                 proprio=(VectorKey("observations/qvel",
                                    slots=tuple((f"{n}_vel", s) for n, s in slots)),),
                 action=(VectorKey("action", slots=slots),),
                 default_instruction=instruction, sim_flag="sim", optional=("sim_flag",)),
      embodiment="aloha", fps=50.0, episode_groups="/", files="episode_*.hdf5")


def robomimic(instruction: str = "", instruction_key: Optional[str] = None) -> Preset:
  """robomimic ``demo.hdf5``: one file, one group per episode ``data/demo_<i>``.

  Expected layout of each ``data/demo_<i>``::

    obs/<camera>_image       uint8[N,H,W,3]  (agentview, robot0_eye_in_hand; all found)
    obs/robot0_joint_pos     f32[N,7]   joints slot arm_joints
    obs/robot0_gripper_qpos  f32[N,2]   joints slot gripper_qpos
    obs/robot0_eef_pos       f32[N,3]   proprio slot eef_pos
    actions                  f32[N,7]   slots eef_delta_pos (3), eef_delta_rot (3), gripper (1)
    rewards                  f32[N]     reward
    dones                    int[N]     is_terminal

  Args:
    instruction: the instruction of every episode (robomimic records none).
    instruction_key: where an episode's instruction is instead (a dataset or attribute
      of the demo group; missing falls back to ``instruction``).
  """
  return Preset(
      KeyMapping(images={"*": "obs/*_image"},
                 joints=(VectorKey("obs/robot0_joint_pos", name="arm_joints"),
                         VectorKey("obs/robot0_gripper_qpos", name="gripper_qpos")),
                 proprio=(VectorKey("obs/robot0_eef_pos", name="eef_pos"),),
                 action=(VectorKey("actions", slots=(("eef_delta_pos", 3),
                                                     ("eef_delta_rot", 3), ("gripper", 1))),),
                 instruction=instruction_key, default_instruction=instruction,
                 reward="rewards", is_terminal="dones", optional=("instruction",)),
      embodiment="robomimic_panda", source="robot", fps=20.0, episode_groups="data/demo_*",
      files="demo.hdf5")


def egocentric_hand(instruction: str = "", episode_groups: str = "*",
                    camera: str = "egocentric") -> Preset:
  """Egocentric human-hand recordings: one group per episode (default: every top-level
  group), source ``human``, no joints.

  Expected layout of each episode group::

    rgb              uint8[N,H,W,3]   camera ``egocentric``
    hand/keypoints   f32[N,21,3]      observation hand_keypoints
    hand/wrist_pose  f32[N,9]         wrist position (3) + 6D rotation (6)
    attribute text   str (optional)   the instruction

  The action at step ``t`` is the hand at ``t + 1``: slots ``wrist_pose`` (9) and
  ``hand_keypoints`` (63) hold the next step's wrist pose and keypoints (EgoScale's
  human action). The last step has no next step: its action is zero and masked out.

  Args:
    instruction: the instruction of episodes without a ``text`` attribute.
    episode_groups: glob of the episode groups.
    camera: the camera name of ``rgb``.
  """
  return Preset(
      KeyMapping(images={camera: "rgb"}, hand_keypoints="hand/keypoints",
                 action=(VectorKey("hand/wrist_pose", name="wrist_pose", next_step=True),
                         VectorKey("hand/keypoints", name="hand_keypoints", next_step=True)),
                 instruction="text", default_instruction=instruction,
                 optional=("instruction",)),
      embodiment="human_hand", source="human", fps=30.0, episode_groups=episode_groups,
      files="*.hdf5")


PRESETS = {"aloha": aloha, "robomimic": robomimic, "egocentric_hand": egocentric_hand}


# ---------------------------------------------------------------------------- h5py
class _H5Episode(EpisodeSource):
  """An episode group of an open HDF5 file."""

  def __init__(self, path: str, group: Any):
    super().__init__(path, group.name)
    self._group = group

  def find(self, key: str) -> Any:
    obj = self._group.get(key)
    if isinstance(obj, h5py.Dataset):
      # Datasets stay lazy (read on slicing); a scalar dataset is read now.
      return obj[()] if obj.shape == () else obj
    if obj is not None:
      raise SourceError(f"{self.where}: {key} is a group, not an array.")
    # Not a dataset: an attribute of the parent (the file's root for "/attr").
    parent, _, attr = key.rstrip("/").rpartition("/")
    if parent:
      holder = self._group.get(parent)
    else:
      holder = self._group.file if key.startswith("/") else self._group
    if holder is not None and attr in holder.attrs:
      return holder.attrs[attr]
    return None

  def keys(self) -> list[str]:
    keys = list(self._group.attrs)

    def visit(name: str, obj: Any) -> None:
      if isinstance(obj, h5py.Dataset):
        keys.append(name)
      keys.extend(f"{name}/{a}" for a in obj.attrs)

    self._group.visititems(visit)
    return sorted(keys, key=natural_key)


class H5File(SourceFile):
  """An HDF5 file opened read-only; an unreadable file raises naming itself."""

  def __init__(self, path: str):
    self.path = path
    try:
      self._file = h5py.File(path, "r")
    except Exception as e:  # OSError: not HDF5, truncated, locked...
      raise SourceError(f"{path}: cannot open as HDF5 ({type(e).__name__}: {e}); the file "
                        "is corrupt, truncated or not HDF5.") from e

  def groups(self, pattern: str) -> list[str]:
    if pattern.strip("/") == "":
      return ["/"]
    # Walk only as deep as the pattern, one component at a time (not the whole file).
    level = [("", self._file)]
    for part in pattern.strip("/").split("/"):
      level = [(f"{name}/{key}".lstrip("/"), child) for name, g in level
               for key, child in g.items()
               if isinstance(child, h5py.Group) and fnmatch.fnmatchcase(key, part)]
    found = [name for name, _ in level]
    if not found:
      top = sorted(k for k in self._file.keys())
      raise SourceError(f"{self.path}: no episode groups match {pattern!r}; the file's top "
                        f"level has {top}.")
    return sorted(found, key=natural_key)

  def episode(self, group: str) -> EpisodeSource:
    obj = self._file.get(group)
    if obj is None:
      raise SourceError(f"{self.path}: no group {group!r}.")
    return _H5Episode(self.path, obj)

  def close(self) -> None:
    self._file.close()


def import_hdf5(files: str | Sequence[str], mapping: KeyMapping | Preset, *, name: str,
                data_dir: str, **kwargs: Any) -> str:
  """Imports HDF5 episodes into an episode dataset; returns its directory.

  Args:
    files: paths or globs of ``.hdf5`` files (naturally sorted).
    mapping: a :class:`KeyMapping` or a preset (:func:`aloha`, :func:`robomimic`,
      :func:`egocentric_hand`).
    name: dataset name.
    data_dir: where datasets live.
    **kwargs: spec overrides (``embodiment``, ``source``, ``cameras``, ``image_size``,
      ``fps``), ``episode_groups`` ("/" or a glob like "data/demo_*"), ``splits``,
      ``max_episodes``, ``on_error`` ("raise" | "skip"), ``task``, ``version``,
      ``overwrite``: see :func:`wam.data.importers.importer.import_episodes`.
  """
  return importer.import_episodes(H5File, files, mapping, name=name, data_dir=data_dir,
                                  kind="HDF5", **kwargs)


def main(argv: Sequence[str]) -> None:
  del argv
  importer.run_cli(import_hdf5, PRESETS)


if __name__ == "__main__":
  from absl import app  # pylint: disable=g-import-not-at-top
  importer.define_flags(PRESETS, example="raw/episode_*.hdf5")
  app.run(main)
