"""EgoDex's files on disk: finding episodes, checking their HDF5 and video, decoding.

EgoDex ships one episode as two files, ``<root>/<task>/<i>.hdf5`` and ``<i>.mp4``
(the layout is described in :mod:`egoscale.importers.egodex`). Everything here reads
those files and knows nothing of the episode schema: :func:`scan_episode` checks one
episode cheaply (joint names, shapes, the video's size), :func:`read_transforms` and
:func:`read_frames` read it.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from typing import Any, Optional, Sequence

import h5py
import imageio.v2 as imageio
import numpy as np

from wam.data import images
from wam.data.importers.sources import SourceError, natural_key
from wam.data.schema import as_text

HANDS = ("right", "left")
# EgoDex (ARKit) joint names of the 21 MediaPipe keypoints, after the "left"/"right"
# prefix. ARKit's thumb "Knuckle" is the CMC and a finger's "Knuckle" its MCP; the
# ``...Metacarpal`` joints near the wrist have no MediaPipe counterpart.
EGODEX_JOINTS = (
    "Hand",
    "ThumbKnuckle", "ThumbIntermediateBase", "ThumbIntermediateTip", "ThumbTip",
    "IndexFingerKnuckle", "IndexFingerIntermediateBase", "IndexFingerIntermediateTip",
    "IndexFingerTip",
    "MiddleFingerKnuckle", "MiddleFingerIntermediateBase", "MiddleFingerIntermediateTip",
    "MiddleFingerTip",
    "RingFingerKnuckle", "RingFingerIntermediateBase", "RingFingerIntermediateTip",
    "RingFingerTip",
    "LittleFingerKnuckle", "LittleFingerIntermediateBase", "LittleFingerIntermediateTip",
    "LittleFingerTip",
)
_FRAME_CHUNK = 64  # frames resized at a time


class EgoDexError(SourceError):
  """An EgoDex episode cannot be read or converted; the message names its file."""


def find_episodes(root: str, tasks: Optional[Sequence[str]] = None) -> list[str]:
  """The ``<root>/<task>/<i>.hdf5`` files (naturally sorted), optionally of some tasks."""
  root = os.path.expanduser(os.fspath(root))
  if not os.path.isdir(root):
    raise FileNotFoundError(f"EgoDex root {root!r} is not a directory.")
  paths = glob.glob(os.path.join(root, "*", "*.hdf5"))
  if tasks is not None:
    paths = [p for p in paths if os.path.basename(os.path.dirname(p)) in set(tasks)]
  if not paths:
    raise FileNotFoundError(f"No <task>/<i>.hdf5 files under {root!r}"
                            f"{' for tasks ' + str(list(tasks)) if tasks else ''}.")
  return sorted(paths, key=lambda p: natural_key(os.path.relpath(p, root)))


def video_path(hdf5_path: str) -> str:
  return os.path.splitext(hdf5_path)[0] + ".mp4"


@dataclasses.dataclass(frozen=True)
class EpisodeInfo:
  """What the scan learned about one episode (no array read)."""

  path: str
  task: str
  length: int                      # pose frames
  video_size: tuple[int, int]      # (height, width)
  intrinsic: Optional[list]        # 3x3, if the file has one


def scan_episode(path: str, joint_names: Sequence[str], hand: str) -> EpisodeInfo:
  """Checks one episode's HDF5 (``camera`` and ``joint_names``, shapes) and video (opens,
  size); cheap. ``hand`` names the hand in errors."""
  try:
    f = h5py.File(path, "r")
  except Exception as e:  # OSError: not HDF5, truncated
    raise EgoDexError(f"{path}: cannot open as HDF5 ({type(e).__name__}: {e}).") from e
  with f:
    n = check_transforms(f, path, joint_names, hand)
    intrinsic = None
    if "camera/intrinsic" in f:
      k = np.asarray(f["camera/intrinsic"], np.float64)
      if k.shape != (3, 3):
        raise EgoDexError(f"{path}: camera/intrinsic has shape {k.shape}, expected (3, 3).")
      intrinsic = k.tolist()
  size = _video_size(video_path(path), path)
  return EpisodeInfo(path, os.path.basename(os.path.dirname(path)), n, size, intrinsic)


def check_transforms(f: Any, path: str, joint_names: Sequence[str], hand: str) -> int:
  """Checks the transforms (and confidences) of an open EgoDex HDF5; returns the number
  of pose frames."""
  if "transforms" not in f:
    raise EgoDexError(f"{path}: no 'transforms' group; the file's top level has "
                      f"{sorted(f.keys())}.")
  group = f["transforms"]
  names = ("camera", *joint_names)
  missing = [j for j in names if j not in group]
  if missing:
    raise EgoDexError(f"{path}: missing joints {missing} in transforms/ (hand="
                      f"{hand!r}); it has {sorted(group.keys())[:40]}. Pass "
                      "joints=... if the file names them differently.")
  lengths = set()
  for j in names:
    shape = group[j].shape
    if len(shape) != 3 or shape[1:] != (4, 4):
      raise EgoDexError(f"{path}: transforms/{j} has shape {shape}, expected [N, 4, 4].")
    lengths.add(shape[0])
  if len(lengths) != 1:
    raise EgoDexError(f"{path}: transforms have different lengths {sorted(lengths)}.")
  n = lengths.pop()
  if n < 2:
    raise EgoDexError(f"{path}: {n} pose frames; an episode needs at least 2.")
  conf = f.get("confidences")
  for j in joint_names:
    if conf is not None and j in conf and conf[j].shape != (n,):
      raise EgoDexError(f"{path}: confidences/{j} has shape {conf[j].shape}; expected "
                        f"({n},), one value per pose frame.")
  return n


def read_transforms(path: str, joint_names: Sequence[str], hand: str
                    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
  """The ``camera`` and joint transforms, the joints' confidences (those the file has)
  and the file's attributes (text decoded) of one episode."""
  with h5py.File(path, "r") as f:
    check_transforms(f, path, joint_names, hand)
    transforms = {j: np.asarray(f["transforms"][j]) for j in ("camera", *joint_names)}
    conf = f.get("confidences")
    confidences = {j: np.asarray(conf[j]) for j in joint_names
                   if conf is not None and j in conf}
    attrs = {k: as_text(v) if isinstance(v, (bytes, str, np.bytes_)) else v
             for k, v in f.attrs.items()}
  return transforms, confidences, attrs


def _open_video(video: str, where: str) -> Any:
  if not os.path.exists(video):
    raise EgoDexError(f"{where}: its video {video} does not exist.")
  try:
    return imageio.get_reader(video, format="FFMPEG")
  except Exception as e:  # imageio raises OSError/RuntimeError for broken files
    raise EgoDexError(f"{where}: cannot read the video {video} ({type(e).__name__}: "
                      f"{str(e).splitlines()[0] if str(e) else ''}); it is corrupt, "
                      "truncated or not a video.") from e


def _video_size(video: str, where: str) -> tuple[int, int]:
  reader = _open_video(video, where)
  try:
    w, h = reader.get_meta_data()["size"]
  finally:
    reader.close()
  return int(h), int(w)


def read_frames(video: str, image_size: tuple[int, int], where: str) -> np.ndarray:
  """All frames of ``video`` as uint8[N,H,W,3] at ``image_size`` (integer factors)."""
  reader = _open_video(video, where)
  out, chunk, plan = [], [], None
  try:
    for frame in reader:
      frame = np.asarray(frame)
      if plan is None:
        plan = resize_plan(frame.shape[:2], image_size, where)
      chunk.append(frame[..., :3])
      if len(chunk) == _FRAME_CHUNK:
        out.append(images.to_uint8(images.resize(np.stack(chunk), plan)))
        chunk = []
  except EgoDexError:
    raise
  except Exception as e:  # a stream that breaks part-way
    raise EgoDexError(f"{where}: decoding {video} failed after "
                      f"{sum(len(o) for o in out) + len(chunk)} frames ({type(e).__name__}: "
                      f"{str(e).splitlines()[0] if str(e) else ''}).") from e
  finally:
    reader.close()
  if chunk:
    out.append(images.to_uint8(images.resize(np.stack(chunk), plan)))
  if not out:
    raise EgoDexError(f"{where}: the video {video} has no frames.")
  return np.concatenate(out)


def resize_plan(size: tuple[int, int], target: tuple[int, int], where: str) -> images.Plan:
  """The integer-factor rescaling from ``size`` to ``target``, or an error naming sizes
  that work."""
  try:
    return images.resize_plan(tuple(size), tuple(target))
  except ValueError:
    h, w = size
    sizes = [(h // k, w // k) for k in (1, 2, 4, 8, 16) if h % k == 0 and w % k == 0]
    raise EgoDexError(f"{where}: the video is {h}x{w}, image_size {target[0]}x{target[1]} "
                      f"is not an integer-factor rescaling of each side; e.g. one of "
                      f"{sizes}.") from None
