"""The LeRobot dataset format (v2.0/v2.1 and v3.0): its layout, metadata and videos.

A LeRobot dataset is a directory (the Hugging Face ``lerobot`` library writes it; DreamZero,
DreamDojo and GR00T read it)::

  meta/info.json            codebase_version, fps, features, path templates, chunks_size
  v2.x: meta/episodes.jsonl {"episode_index", "tasks", "length"} per line
        meta/tasks.jsonl    {"task_index", "task"} per line
        data/chunk-000/episode_000000.parquet            one file per episode
        videos/chunk-000/<video_key>/episode_000000.mp4  one per episode and camera
  v3.0: meta/episodes/chunk-000/file-000.parquet  one row per episode: its data and video
          file indices (``data/chunk_index``, ``videos/<key>/from_timestamp`` ...), stats
        meta/tasks.parquet  task_index, indexed by the task string
        data/chunk-000/file-000.parquet             many episodes per file
        videos/<video_key>/chunk-000/file-000.mp4   many episodes per file, back to back

Every frame row holds the features of ``info.json`` (vectors as fixed-size lists) and
``timestamp``, ``frame_index``, ``episode_index``, ``index`` and ``task_index``. Cameras
(dtype ``video``) live in the MP4s, at ``from_timestamp + frame_index / fps``.

Videos are read and written with imageio-ffmpeg's bundled ffmpeg (AV1 through libdav1d
and libsvtav1, h264 through libx264, lossless RGB H.264 through libx264rgb), so nothing
here needs torch, PyAV or torchcodec.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any, Sequence

import imageio_ffmpeg
import numpy as np
import pyarrow as pa

from wam.data.importers.sources import SourceError

INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
V2_EPISODES_PATH = "meta/episodes.jsonl"
V2_TASKS_PATH = "meta/tasks.jsonl"
V3_TASKS_PATH = "meta/tasks.parquet"
V3_EPISODES_DIR = "meta/episodes"
V3_EPISODES_PATH = V3_EPISODES_DIR + "/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
V3_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
V3_VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
V2_DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
V2_VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
# The columns every frame row has (lerobot's DEFAULT_FEATURES), in its order.
DEFAULT_FEATURES = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
# A meta/episodes column of this project's exporter: JSON of the episode's task, success
# and source (lerobot carries extra episode columns along and ignores them).
EPISODE_METADATA = "episode_metadata"
VERSIONS = {"v2.0": 2, "v2.1": 2, "v3.0": 3}


@dataclasses.dataclass(frozen=True)
class Codec:
  """How one ``--codec`` choice encodes: the ffmpeg encoder, the pixel format it is fed,
  and what info.json says of the stream (``video.codec``, ``video.pix_fmt``: the decoder's
  view, as lerobot's ``get_video_info`` records it)."""

  encoder: str
  codec: str        # info.json "video.codec"
  pix_fmt: str      # info.json "video.pix_fmt"
  encode_pix_fmt: str
  lossless: bool = False


# lerobot's default is libsvtav1 (AV1, yuv420p: lossy in both the chroma subsampling and
# the CRF). ``lossless`` is H.264 High 4:4:4 Predictive straight from RGB (libx264rgb,
# -qp 0): frames decode bit-exact to the RGB written (checked with the bundled ffmpeg and
# PyAV 18.1; any decoder that converts its gbrp output to RGB without resampling agrees).
CODECS = {"libsvtav1": Codec("libsvtav1", "av1", "yuv420p", "yuv420p"),
          "av1": Codec("libsvtav1", "av1", "yuv420p", "yuv420p"),
          "h264": Codec("libx264", "h264", "yuv420p", "yuv420p"),
          "libx264": Codec("libx264", "h264", "yuv420p", "yuv420p"),
          "lossless": Codec("libx264rgb", "h264", "gbrp", "rgb24", lossless=True)}


def read_info(info_path: str) -> dict[str, Any]:
  """``meta/info.json``, checked for the fields a reader needs."""
  try:
    with open(info_path) as f:
      info = json.load(f)
  except FileNotFoundError:
    raise SourceError(f"{info_path} does not exist: a LeRobot dataset has meta/info.json."
                      ) from None
  except ValueError as e:
    raise SourceError(f"{info_path} is not JSON: {e}") from e
  missing = [k for k in ("codebase_version", "fps", "features", "data_path") if k not in info]
  if missing:
    raise SourceError(f"{info_path}: no {missing}; is this a LeRobot dataset's info.json?")
  return info


def major_version(info: dict[str, Any], where: str) -> int:
  """2 for the per-episode layout (v2.0, v2.1), 3 for the chunked one (v3.0)."""
  version = str(info.get("codebase_version"))
  if version not in VERSIONS:
    raise SourceError(f"{where}: LeRobot codebase_version {version!r} is not supported; this "
                      f"importer reads {sorted(VERSIONS)}. Convert older datasets with "
                      "lerobot's convert_dataset_v1_to_v2 (then v21_to_v30) first.")
  return VERSIONS[version]


def read_jsonl(path: str) -> list[dict[str, Any]]:
  """The objects of a JSON-lines file, one per non-empty line."""
  if not os.path.exists(path):
    raise SourceError(f"{path} does not exist (a LeRobot v2 dataset has it).")
  out = []
  with open(path) as f:
    for i, line in enumerate(f):
      if line.strip():
        try:
          out.append(json.loads(line))
        except ValueError as e:
          raise SourceError(f"{path}: line {i + 1} is not JSON: {e}") from e
  return out


def image_size(feature: dict[str, Any], key: str, where: str) -> tuple[int, int]:
  """(height, width) of a ``video`` or ``image`` feature of info.json."""
  info = feature.get("info") or {}
  if "video.height" in info and "video.width" in info:
    return int(info["video.height"]), int(info["video.width"])
  shape, names = list(feature.get("shape") or ()), list(feature.get("names") or ())
  if len(shape) == 3 and len(names) == 3:
    by_name = dict(zip([str(n).rstrip("s") for n in names], shape))
    if "height" in by_name and "width" in by_name:
      return int(by_name["height"]), int(by_name["width"])
  if len(shape) == 3 and shape[-1] in (1, 3, 4):
    return int(shape[0]), int(shape[1])
  if len(shape) == 3 and shape[0] in (1, 3, 4):
    return int(shape[1]), int(shape[2])
  raise SourceError(f"{where}: camera {key} has shape {shape} (names {names}) in info.json; "
                    "expected [height, width, channels].")


# ---------------------------------------------------------------------------- video
def read_video(path: str, start_s: float, num_frames: int, fps: float,
               size: tuple[int, int], where: str) -> np.ndarray:
  """``num_frames`` frames from ``start_s`` seconds into ``path``, uint8[N,H,W,3].

  The seek goes to half a frame before ``start_s`` so that the frame at ``start_s`` is
  the first one out, whatever the rounding of the container's time base.
  """
  if not os.path.exists(path):
    raise SourceError(f"{where}: the video {path} does not exist.")
  seek = max(0.0, float(start_s) - 0.5 / fps)
  frames = []
  reader = None
  try:
    reader = imageio_ffmpeg.read_frames(
        path, input_params=["-ss", f"{seek:.6f}"] if seek > 0 else None,
        output_params=["-frames:v", str(int(num_frames))])
    w, h = next(reader)["size"]
    if (h, w) != tuple(size):
      raise SourceError(f"{where}: the video {path} is {h}x{w}; info.json says "
                        f"{size[0]}x{size[1]}.")
    for data in reader:
      frames.append(np.frombuffer(data, np.uint8).reshape(h, w, 3))
  except SourceError:
    raise
  except Exception as e:  # imageio-ffmpeg raises IOError/RuntimeError for broken files
    text = str(e).strip()
    if "no decoder found" in text.lower() or "decoder not found" in text.lower():
      stream = re.search(r"Video: ([^,\n]+)", text)
      raise SourceError(
          f"{where}: the video {path} is in a codec the bundled ffmpeg cannot decode "
          f"({stream.group(1).strip() if stream else 'unknown'}); re-encode it as AV1 or "
          "H.264 (ffmpeg -c:v libsvtav1 or libx264).") from e
    last = text.splitlines()[-1] if text else ""
    raise SourceError(f"{where}: cannot decode the video {path} ({type(e).__name__}: "
                      f"{last}); it is corrupt, truncated or not a video.") from e
  finally:
    if reader is not None:
      reader.close()
  if len(frames) != num_frames:
    raise SourceError(f"{where}: the video {path} has {len(frames)} frames from "
                      f"{start_s:.3f}s; the episode has {num_frames} (frames and data rows "
                      "disagree).")
  return np.stack(frames)


class VideoWriter:
  """Encodes frames into one MP4 as they come (lerobot's settings: GOP 2; yuv420p, or
  RGB for the ``lossless`` codec)."""

  def __init__(self, path: str, size: tuple[int, int], fps: float, codec: str = "libsvtav1",
               crf: int = 30, gop: int = 2):
    if codec not in CODECS:
      raise ValueError(f"Unknown codec {codec!r}; choose one of {sorted(CODECS)}.")
    h, w = size
    spec = CODECS[codec]
    if spec.encode_pix_fmt == "yuv420p" and (h % 2 or w % 2):
      raise ValueError(f"{path}: yuv420p video needs an even frame size, got {h}x{w}; "
                       "the lossless codec takes any size.")
    self.codec_name = spec.codec
    # -qp 0 is x264's lossless mode; a CRF would quantise.
    params = ["-g", str(gop), *(["-qp", "0"] if spec.lossless else ["-crf", str(crf)])]
    if spec.encoder == "libsvtav1":
      params += ["-preset", "12"]
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    self.path = path
    self.size = (h, w)
    self.num_frames = 0
    # quality=None: no imageio -qscale:v next to the rate control chosen here.
    self._gen = imageio_ffmpeg.write_frames(
        path, (w, h), fps=fps, codec=spec.encoder, pix_fmt_in="rgb24",
        pix_fmt_out=spec.encode_pix_fmt, quality=None, macro_block_size=1,
        output_params=params, ffmpeg_log_level="error")
    # ffmpeg starts here; SVT-AV1 logs its whole configuration to stderr unless SVT_LOG
    # says otherwise (1: errors only), and the user's own setting wins.
    quiet = "SVT_LOG" not in os.environ
    if quiet:
      os.environ["SVT_LOG"] = "1"
    try:
      self._gen.send(None)
    finally:
      if quiet:
        os.environ.pop("SVT_LOG", None)

  def write(self, frames: np.ndarray) -> None:
    for frame in frames:
      if frame.shape != (*self.size, 3):
        raise ValueError(f"{self.path}: frame of shape {frame.shape}, the video is "
                         f"{self.size}.")
      self._gen.send(np.ascontiguousarray(frame, np.uint8))
      self.num_frames += 1

  def close(self) -> None:
    self._gen.close()


# ---------------------------------------------------------------------------- parquet
def list_values(column: Any, shape: Sequence[int], where: str, key: str) -> np.ndarray:
  """A pyarrow column of scalars or (nested, fixed-size) lists as ``[N, *shape]``."""
  array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
  n = len(array)
  while pa.types.is_list(array.type) or pa.types.is_fixed_size_list(array.type) or \
      pa.types.is_large_list(array.type):
    array = array.flatten()
  values = array.to_numpy(zero_copy_only=False)
  per_row = int(np.prod(shape)) if len(shape) else 1
  if values.size != n * per_row:
    raise SourceError(f"{where}: column {key!r} holds {values.size / max(n, 1):g} values per "
                      f"frame; info.json says shape {list(shape)}.")
  return values.reshape((n, *shape)) if tuple(shape) not in ((), (1,)) else values.reshape(n)


def next_file(chunk: int, file: int, chunks_size: int) -> tuple[int, int]:
  """The (chunk, file) index after ``(chunk, file)``: ``chunks_size`` files per chunk."""
  return (chunk + 1, 0) if file == chunks_size - 1 else (chunk, file + 1)


def episode_of(group: str) -> int:
  """``"episode_000042"`` -> 42."""
  return int(group.rsplit("_", 1)[-1])


def group_of(episode: int) -> str:
  return f"episode_{int(episode):06d}"
