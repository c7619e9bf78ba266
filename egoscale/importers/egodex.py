"""Imports real egocentric video with tracked hands in Apple's EgoDex layout.

EgoDex ships one episode as two files, ``<root>/<task>/<i>.hdf5`` and ``<i>.mp4``:

  transforms/<joint>    f32[N,4,4]  joint -> world transforms (ARKit world: y up), for
                                    ``camera``, ``leftHand``/``rightHand`` and the finger
                                    joints (``rightIndexFingerKnuckle``, ...)
  confidences/<joint>   f32[N]      tracking confidence in [0, 1] (optional here)
  camera/intrinsic      f32[3,3]    pinhole intrinsics (optional here; kept in the report)
  attributes            ``llm_description`` (the instruction), ``llm_description2``...
  <i>.mp4               N frames, 30 fps (1920x1080 in the release)

Each episode becomes one episode of the schema (:mod:`wam.data.schema`), like
:mod:`egoscale.synthetic`'s so that real and synthetic human data mix:

  observation/image_ego            uint8[N',H,W,3]  the video, resized by integer factors
  observation/proprio              f32[N',18]  camera_pose(9): the camera in the world
                                   (z up), wrist_pose(9): the wrist in the camera frame
  observation/hand_keypoints       f32[N',21,3] in the camera frame, MediaPipe order
  observation/hand_keypoints_mask  bool[N']  every keypoint's confidence >= min_confidence
  action                           ``human``: wrist_motion(9) + hand_keypoints(63) of
                                   :mod:`egoscale.actions`; ``retargeted``: dex_lift's
                                   wrist_delta(4) + hand_joint_targets(20) from
                                   :func:`egoscale.retarget.retarget_episode`; ``both``
                                   (all four slots); ``none`` (unlabeled)

Frames: the camera frame is ARKit's and MuJoCo's (x right, y up, looking along -z), as
in :mod:`egoscale.synthetic`. The world is ARKit's turned to z up (``x, y, z`` ->
``x, -z, y``). The wrist pose's rotation is built from the keypoints (x toward the
middle-finger MCP, z out of the back of the hand, the :mod:`egoscale.hand` and Dojo-hand
convention), not taken from ARKit's hand joint, whose axes follow another convention.
A left hand gets the mirror-image frame (its y points away from the thumb); for
retargeting onto the right-handed Dojo hand it is mirrored (world x -> -x) first.

Import (library or command line; the command line lives in the ``__main__`` block, so the
library defines no absl flags)::

  python -m egoscale.importers.egodex --root=raw/egodex/part1 --name=egodex_part1 \\
      --data_dir=data --image_size=135,240 --stride=3

Two passes, :mod:`wam.data.importers.two_pass`'s: a scan that opens every HDF5 and
video (joint names, shapes, video size; :mod:`egoscale.importers.egodex_files`) before
anything is written, then a write pass that decodes one episode at a time; the video's
frame count is checked against the pose stream there. ``on_error="skip"`` logs, counts
and leaves out a bad episode; every skip is listed in ``import_report.json`` next to the
dataset.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Optional, Sequence

import numpy as np
from absl import flags

from egoscale import actions, retarget
from egoscale.importers.egodex_files import (EGODEX_JOINTS, HANDS, EgoDexError, EpisodeInfo,
                                             find_episodes, read_frames, read_transforms,
                                             resize_plan, scan_episode, video_path)
from wam.data.importers.sources import SourceError
from wam.data.importers.two_pass import ON_ERROR, REPORT_FILE, Scan, Skips, import_two_pass
from wam.data.layout import Layout
from wam.data.schema import Episode, EpisodeSpec

CAMERA = "ego"                 # egoscale.scenes.CAMERA
EMBODIMENT = "human_hand"      # egoscale.synthetic.EMBODIMENT
PROPRIO_LAYOUT = Layout.of([("camera_pose", 9), ("wrist_pose", 9)])  # as egoscale.synthetic
HUMAN_ACTION = tuple((s.name, s.size) for s in actions.ACTION_LAYOUT.slots)  # 9 + 63
RETARGETED_ACTION = (("wrist_delta", 4), ("hand_joint_targets", 20))  # dex_lift
ACTIONS = ("human", "retargeted", "both", "none")
# ARKit world (y up) -> z-up world.
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]], np.float32)


@dataclasses.dataclass(frozen=True)
class EgoDexOptions:
  """How EgoDex episodes are converted (everything but where they are and go).

  Attributes:
    image_size: stored (height, width); ``None``: the video's own size. Must be an
      integer-factor down- or up-sampling of each side (1080x1920 -> 135x240, 270x480).
    hand: ``"right"`` or ``"left"``: the hand whose keypoints are imported.
    actions: one of :data:`ACTIONS`.
    joints: the 21 joint names after the hand prefix, MediaPipe order (the mapping).
    min_confidence: a step's keypoints are valid when all 21 confidences reach this.
    stride: keep every ``stride``-th frame (30 fps -> 10 fps with 3).
    fps: the recording's frame rate (before ``stride``).
    length_tolerance: frames by which video and poses may differ (the longer is cut);
      0 makes any difference an error.
    retarget_variant: ``full``, ``fingertips`` or ``wrist`` (egoscale.retarget.VARIANTS).
  """

  image_size: Optional[tuple[int, int]] = None
  hand: str = "right"
  actions: str = "human"
  joints: tuple[str, ...] = EGODEX_JOINTS
  min_confidence: float = 0.5
  stride: int = 1
  fps: float = 30.0
  length_tolerance: int = 0
  retarget_variant: str = "full"

  def __post_init__(self):
    if self.hand not in HANDS:
      raise ValueError(f"hand must be one of {HANDS}, got {self.hand!r}.")
    if self.actions not in ACTIONS:
      raise ValueError(f"actions must be one of {ACTIONS}, got {self.actions!r}.")
    if len(self.joints) != 21:
      raise ValueError(f"joints must name the 21 MediaPipe keypoints, got {len(self.joints)}.")
    if self.stride < 1 or self.fps <= 0 or self.length_tolerance < 0:
      raise ValueError(f"stride >= 1, fps > 0 and length_tolerance >= 0 needed, got "
                       f"{self.stride}, {self.fps}, {self.length_tolerance}.")
    if self.image_size is not None:
      object.__setattr__(self, "image_size", tuple(int(s) for s in self.image_size))

  def joint_names(self) -> tuple[str, ...]:
    return tuple(self.hand + j for j in self.joints)

  def action_layout(self) -> Layout:
    return Layout.of({"human": HUMAN_ACTION, "retargeted": RETARGETED_ACTION,
                      "both": HUMAN_ACTION + RETARGETED_ACTION, "none": ()}[self.actions])

  def spec(self, image_size: tuple[int, int]) -> EpisodeSpec:
    return EpisodeSpec(embodiment=EMBODIMENT, source="human", cameras=(CAMERA,),
                       image_size=tuple(image_size), proprio=PROPRIO_LAYOUT,
                       action=self.action_layout(), hand_keypoints=True,
                       fps=self.fps / self.stride)


# ---------------------------------------------------------------------------- geometry
def wrist_rotation(kp: np.ndarray, hand: str = "right") -> np.ndarray:
  """Wrist frames f32[...,3,3] from keypoints [...,21,3]: x toward the middle-finger MCP,
  z out of the back of the hand (from the index and little MCPs), y = z x x."""
  wrist, index, middle, little = kp[..., 0, :], kp[..., 5, :], kp[..., 9, :], kp[..., 17, :]
  x = _unit(middle - wrist)
  back = np.cross(little - wrist, index - wrist)
  if hand == "left":  # the mirror image: the same cross product points into the palm
    back = -back
  z = _unit(back - np.sum(back * x, -1, keepdims=True) * x)
  y = np.cross(z, x)
  return np.stack([x, y, z], axis=-1).astype(np.float32)


def _unit(v: np.ndarray) -> np.ndarray:
  return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _pose(position: np.ndarray, rot: np.ndarray) -> np.ndarray:
  """Position + 6D rotation (first two columns), as egoscale.hand.make_pose."""
  return np.concatenate([position, rot[..., :, 0], rot[..., :, 1]], -1).astype(np.float32)


def convert_poses(transforms: Mapping[str, np.ndarray], confidences: Mapping[str, np.ndarray],
                  options: EgoDexOptions) -> dict[str, np.ndarray]:
  """EgoDex transforms -> the episode's hand streams (every frame, before ``stride``).

  Args:
    transforms: ``camera`` and the 21 joints (``options.joint_names()``): f32[N,4,4].
    confidences: per joint f32[N] (missing joints count as confident).
    options: the conversion options.

  Returns:
    ``keypoints_world`` f32[N,21,3] (z-up world), ``keypoints`` f32[N,21,3] (camera
    frame), ``camera_pose`` f32[N,9] (world), ``wrist_pose`` f32[N,9] (camera frame),
    ``wrist_pose_world`` f32[N,9], ``valid`` bool[N].
  """
  cam = np.asarray(transforms["camera"], np.float64)
  cam_pos = cam[:, :3, 3] @ Y_UP_TO_Z_UP.T
  cam_rot = Y_UP_TO_Z_UP @ cam[:, :3, :3]
  world = np.stack([np.asarray(transforms[j], np.float64)[:, :3, 3]
                    for j in options.joint_names()], axis=1) @ Y_UP_TO_Z_UP.T
  camera = np.einsum("nkj,nji->nki", world - cam_pos[:, None], cam_rot)
  valid = np.ones(len(cam), bool)
  for j in options.joint_names():
    if j in confidences:
      valid &= np.asarray(confidences[j]) >= options.min_confidence
  valid &= np.isfinite(world).all(axis=(1, 2)) & np.isfinite(cam).all(axis=(1, 2))
  world = np.where(valid[:, None, None], world, 0.0)
  camera = np.where(valid[:, None, None], camera, 0.0)
  rot_w = wrist_rotation(world, options.hand)
  rot_c = wrist_rotation(camera, options.hand)
  return {"keypoints_world": world.astype(np.float32), "keypoints": camera.astype(np.float32),
          "camera_pose": _pose(cam_pos, cam_rot),
          "wrist_pose": _pose(camera[:, 0], rot_c),
          "wrist_pose_world": _pose(world[:, 0], rot_w), "valid": valid}


def _human_actions(wrist_world: np.ndarray, kp_world: np.ndarray, where: str) -> np.ndarray:
  action, _ = actions.human_actions(wrist_world, kp_world, where=where)
  return np.asarray(action, np.float32)


def _retargeted_actions(kp_world: np.ndarray, valid: np.ndarray, options: EgoDexOptions,
                        where: str) -> np.ndarray:
  kp = kp_world.copy()
  if options.hand == "left":  # mirror into a right hand for the right-handed Dojo hand
    kp[..., 0] = -kp[..., 0]
  out = retarget.retarget_episode(kp, valid=valid, episode=where,
                                  variant=options.retarget_variant)
  return out["action"]


# ---------------------------------------------------------------------------- episodes
def read_episode(info: EpisodeInfo, options: EgoDexOptions,
                 image_size: tuple[int, int]) -> Episode:
  """One EgoDex episode in the schema (``options.spec(image_size).validate`` accepts it)."""
  path = info.path
  transforms, confidences, attrs = read_transforms(path, options.joint_names(), options.hand)
  n = len(transforms["camera"])
  frames = read_frames(video_path(path), image_size, path)
  if len(frames) != n:
    if abs(len(frames) - n) > options.length_tolerance:
      raise EgoDexError(f"{path}: the video {video_path(path)} has {len(frames)} frames but "
                        f"the pose stream has {n} (length_tolerance="
                        f"{options.length_tolerance}).")
    n = min(n, len(frames))
    frames = frames[:n]
    transforms = {k: v[:n] for k, v in transforms.items()}
    confidences = {k: v[:n] for k, v in confidences.items()}
  hand = convert_poses(transforms, confidences, options)
  keep = slice(None, None, options.stride)
  hand = {k: v[keep] for k, v in hand.items()}
  frames = frames[keep]
  n = len(frames)
  if n < 2:
    raise EgoDexError(f"{path}: {n} frames after stride {options.stride}; need 2 or more.")
  valid = hand["valid"]
  observation = {f"image_{CAMERA}": frames,
                 "proprio": np.concatenate([hand["camera_pose"], hand["wrist_pose"]], -1),
                 "hand_keypoints": hand["keypoints"], "hand_keypoints_mask": valid}
  steps: dict[str, Any] = {"observation": observation}
  if options.actions != "none":
    parts = []
    if options.actions in ("human", "both"):
      parts.append(_human_actions(hand["wrist_pose_world"], hand["keypoints_world"], path))
    if options.actions in ("retargeted", "both"):
      parts.append(_retargeted_actions(hand["keypoints_world"], valid, options, path))
    action_mask = np.zeros(n, bool)
    action_mask[:-1] = valid[:-1] & valid[1:]  # an action needs both of its hand poses
    steps["action"] = np.concatenate(parts, -1)
    steps["action_mask"] = action_mask
  instruction = attrs.get("llm_description") or info.task.replace("_", " ")
  metadata = {"task": info.task, "instruction": str(instruction), "source_file": path,
              "success": True}
  return {"steps": steps, "metadata": metadata}


def import_egodex(root: str, *, name: str, data_dir: str,
                  options: EgoDexOptions = EgoDexOptions(),
                  tasks: Optional[Sequence[str]] = None,
                  splits: Optional[Mapping[str, float]] = None,
                  max_episodes: Optional[int] = None, on_error: str = "raise",
                  version: str = "1.0.0", overwrite: bool = False) -> str:
  """Imports EgoDex episodes under ``root`` into an episode dataset; returns its directory.

  Args:
    root: the directory holding ``<task>/<i>.hdf5`` + ``<task>/<i>.mp4``.
    name: dataset name (lower_snake_case).
    data_dir: the dataset goes to ``<data_dir>/<name>/<version>``.
    options: conversion options (:class:`EgoDexOptions`: image size, hand, actions...).
    tasks: import only these task directories.
    splits: ``{split: fraction}`` taken in episode order; default all ``train``.
    max_episodes: import only the first ``max_episodes`` episodes (in order).
    on_error: ``"raise"`` or ``"skip"`` bad episodes (listed in ``import_report.json``).
    version: dataset version.
    overwrite: replace an existing dataset of that name and version.

  Returns:
    The dataset directory, readable with :class:`wam.data.reader.EpisodeDataset`.
  """
  image_size = options.image_size  # None: the first episode's video size (set by scan)

  def scan(skips: Skips) -> Scan[EpisodeInfo]:
    nonlocal image_size
    paths = find_episodes(root, tasks)
    infos: list[EpisodeInfo] = []
    for path in paths:
      if max_episodes is not None and len(infos) >= max_episodes:
        break
      try:
        infos.append(scan_episode(path, options.joint_names(), options.hand))
      except Exception as e:  # pylint: disable=broad-except
        skips.failed(path, "scan", e, file=path)
    if not infos:
      raise EgoDexError(f"No EgoDex episodes to import under {root} ({len(skips)} "
                        f"skipped).{skips.first_error()}")
    image_size = image_size or infos[0].video_size
    checked = []
    for info in infos:  # every video must rescale to the one stored size
      try:
        resize_plan(info.video_size, image_size, info.path)
        checked.append(info)
      except EgoDexError as e:
        skips.failed(info.path, "scan", e, file=info.path)
    if not checked:
      raise EgoDexError(f"No EgoDex episodes to import under {root}: "
                        f"{skips.skipped[0]['error']}")
    description = (f"{name}: {len(checked)} EgoDex episodes imported by "
                   f"egoscale.importers.egodex from {root} (hand={options.hand}, "
                   f"actions={options.actions}, stride={options.stride}); skips are listed "
                   f"in {REPORT_FILE}.")
    return Scan(checked, options.spec(image_size), where=lambda info: info.path,
                source=lambda info: {"file": info.path}, description=description,
                num_files=len(paths),
                sources={"root": os.fspath(root), "files": [i.path for i in checked]},
                settings={"options": {**dataclasses.asdict(options),
                                      "image_size": list(image_size)},
                          "intrinsics": {i.path: i.intrinsic for i in checked}})

  return import_two_pass(scan, lambda info: read_episode(info, options, image_size),
                         name=name, data_dir=data_dir, kind="EgoDex", splits=splits,
                         on_error=on_error, error_type=EgoDexError,
                         passthrough=(SourceError,), version=version, overwrite=overwrite)


# ---------------------------------------------------------------------------- CLI
def define_flags() -> None:
  """The command line's flags (called from ``__main__`` only: library code has none)."""
  flags.DEFINE_string("root", None, "EgoDex directory with <task>/<i>.hdf5 and .mp4.")
  flags.DEFINE_string("name", None, "Dataset name (lower_snake_case).")
  flags.DEFINE_string("data_dir", None, "Where the dataset goes: <data_dir>/<name>/<version>.")
  flags.DEFINE_list("image_size", None, "Stored 'height,width' (integer factors of the "
                    "video's, e.g. 135,240); default the video's size.")
  flags.DEFINE_enum("hand", "right", list(HANDS), "Which hand to import.")
  flags.DEFINE_enum("actions", "human", list(ACTIONS), "Action slots to write.")
  flags.DEFINE_integer("stride", 1, "Keep every N-th frame (3: 30 -> 10 fps).")
  flags.DEFINE_float("min_confidence", 0.5, "Keypoints below it are masked.")
  flags.DEFINE_integer("length_tolerance", 0, "Frames video and poses may differ by.")
  flags.DEFINE_list("tasks", None, "Only these task directories.")
  flags.DEFINE_list("splits", ["train=1"], "Split fractions in episode order.")
  flags.DEFINE_integer("max_episodes", None, "Import only the first N episodes.")
  flags.DEFINE_enum("on_error", "raise", list(ON_ERROR), "Bad episodes.")
  flags.DEFINE_string("version", "1.0.0", "Dataset version.")
  flags.DEFINE_bool("overwrite", False, "Replace an existing dataset.")
  flags.mark_flags_as_required(["root", "name", "data_dir"])


def main(argv: Sequence[str]) -> None:
  del argv
  f = flags.FLAGS
  options = EgoDexOptions(
      image_size=tuple(int(s) for s in f.image_size) if f.image_size else None,
      hand=f.hand, actions=f.actions, stride=f.stride, min_confidence=f.min_confidence,
      length_tolerance=f.length_tolerance)
  splits = {}
  for item in f.splits:
    split, _, fraction = item.partition("=")
    splits[split] = float(fraction or 1)
  print(import_egodex(f.root, name=f.name, data_dir=f.data_dir, options=options,
                      tasks=f.tasks, splits=splits, max_episodes=f.max_episodes,
                      on_error=f.on_error, version=f.version, overwrite=f.overwrite))


if __name__ == "__main__":
  from absl import app  # pylint: disable=g-import-not-at-top
  define_flags()
  app.run(main)
