"""Imports LeRobot datasets (codebase v2.0, v2.1 and v3.0) into the episode schema.

The version is read from ``meta/info.json`` (layouts in :mod:`lerobot_format`). A dataset
directory is one source "file" of :func:`wam.data.importers.importer.import_episodes`,
its episodes are the groups ``episode_000000``, ``episode_000001``, ..., so imports have
the same two passes as the HDF5 and npz importers: a scan that checks every episode's
keys, parquet columns and video files (no frame is decoded), then a write pass that
reads one episode at a time. ``on_error="skip"`` leaves out bad episodes and lists them
in ``import_report.json``.

Keys of a :class:`KeyMapping` are LeRobot feature names (``observation.images.top``,
``observation.state``, ``action``, ``next.reward``), plus two that every episode has:
``task`` (one string per frame, from ``task_index`` and the tasks table: the
instruction) and ``episode_metadata`` (JSON: fps and ``robot_type``, plus the task, success
and source that :mod:`lerobot_export` records per episode). Cameras are decoded
with imageio-ffmpeg's bundled ffmpeg (AV1, h264, ...), seeking by timestamp inside the
multi-episode MP4s of v3.0; parquet is read with pyarrow. No torch.

Library use::

  from wam.data.importers import lerobot
  path = lerobot.import_lerobot("raw/so100_pick", lerobot.lerobot(), name="so100_pick",
                                data_dir="data", splits={"train": 0.9, "val": 0.1})

Command line::

  python -m wam.data.importers.lerobot --files=raw/so100_pick --preset=lerobot \\
      --name=so100_pick --data_dir=data --splits=train=0.9,val=0.1
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import glob
import json
import os
from typing import Any, Optional, Sequence

import imageio.v3 as iio
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from wam.data.importers import importer
from wam.data.importers import lerobot_format as fmt
from wam.data.importers.mapping import KeyMapping, Preset, VectorKey
from wam.data.importers.sources import (EpisodeSource, LazyArray, SourceError, SourceFile,
                                        as_list)

TASK_KEY = "task"                   # per-frame task strings (from task_index)
METADATA_KEY = "episode_metadata"   # JSON: fps, embodiment (robot_type)


# ---------------------------------------------------------------------------- presets
def lerobot(instruction: str = "", cameras: Optional[Sequence[str]] = None,
            state_slots: Sequence[tuple[str, int]] = (),
            action_slots: Sequence[tuple[str, int]] = ()) -> Preset:
  """The usual LeRobot features: ``observation.images.<camera>`` (all found),
  ``observation.state`` (joints, slot ``state``), ``action`` (slot ``action``), the
  frame's task as its instruction, and ``next.reward``, ``next.done`` and
  ``action_mask`` (written by :mod:`lerobot_export`) where present.

  Args:
    instruction: instruction of frames without a task (LeRobot always records one).
    cameras: camera names ``<c>`` of ``observation.images.<c>`` to import; default all.
    state_slots, action_slots: ``((name, size), ...)`` to split the state or action into
      named slots (e.g. ``(("arm_joints", 5), ("gripper", 1))``) instead of one slot.
  """
  images = ({c: f"observation.images.{c}" for c in cameras} if cameras
            else {"*": "observation.images.*"})
  return Preset(
      KeyMapping(images=images,
                 joints=(VectorKey("observation.state", name=None if state_slots else "state",
                                   slots=tuple(state_slots)),),
                 action=(VectorKey("action", name=None if action_slots else "action",
                                   slots=tuple(action_slots)),),
                 instruction=TASK_KEY, default_instruction=instruction,
                 reward="next.reward", is_terminal="next.done", action_mask="action_mask",
                 metadata_json=METADATA_KEY,
                 optional=("instruction", "reward", "is_terminal", "action_mask")),
      source="robot", episode_groups="episode_*", files="<dataset root>")


PRESETS = {"lerobot": lerobot}


# ---------------------------------------------------------------------------- metadata
@dataclasses.dataclass(frozen=True)
class EpisodeRow:
  """Where one episode's frames are: its data file and each camera's video and start."""

  index: int
  length: int
  tasks: tuple[str, ...]
  data_file: str
  videos: dict[str, tuple[str, float]]  # video key -> (path, from_timestamp)
  # v3.0 ``episode_metadata`` column (this project's exporter writes it): task, success...
  metadata: dict[str, Any] = dataclasses.field(default_factory=dict)


class LeRobotMeta:
  """info.json, the tasks and the episode index of one dataset (any supported version)."""

  def __init__(self, info_path: str):
    self.info_path = info_path
    self.root = os.path.dirname(os.path.dirname(os.path.abspath(info_path)))
    self.info = fmt.read_info(info_path)
    self.version = fmt.major_version(self.info, info_path)
    self.fps = float(self.info["fps"])
    self.features: dict[str, dict] = self.info["features"]
    self.video_keys = [k for k, f in self.features.items() if f.get("dtype") == "video"]
    self.tasks = self._read_tasks()
    self.episodes = self._read_episodes()
    self._footers: dict[tuple, tuple[pa.Schema, int]] = {}

  def path(self, template_key: str, **fields: Any) -> str:
    template = self.info.get(template_key)
    if not template:
      raise SourceError(f"{self.info_path}: no {template_key} template, yet the dataset "
                        f"needs it for {fields}.")
    return os.path.join(self.root, template.format(**fields))

  def footer(self, path: str, where: str) -> tuple[pa.Schema, int]:
    """Schema and row count of a data parquet file (its footer only; cached while the
    file is unchanged)."""
    try:
      stat = os.stat(path)
    except FileNotFoundError:
      raise SourceError(f"{where}: the data file {path} does not exist.") from None
    key = (path, stat.st_mtime_ns, stat.st_size)
    if key not in self._footers:
      try:
        meta = pq.ParquetFile(path).metadata
        self._footers[key] = (meta.schema.to_arrow_schema(), meta.num_rows)
      except Exception as e:  # ArrowInvalid: magic bytes, truncated footer...
        raise SourceError(f"{where}: cannot read the parquet file {path} "
                          f"({type(e).__name__}: {e}); it is corrupt or truncated.") from e
    return self._footers[key]

  def _read_tasks(self) -> dict[int, str]:
    if self.version == 2:
      rows = fmt.read_jsonl(os.path.join(self.root, fmt.V2_TASKS_PATH))
      return {int(r["task_index"]): str(r["task"]) for r in rows}
    path = os.path.join(self.root, fmt.V3_TASKS_PATH)
    table = _read_table(path, self.info_path)
    # lerobot writes a pandas frame indexed by the task string: the strings are the
    # index column ("__index_level_0__", or "task" when the index is named).
    index_cols = [c for c in (table.schema.pandas_metadata or {}).get("index_columns", [])
                  if isinstance(c, str)]
    text_col = next((c for c in ["task", *index_cols] if c in table.column_names), None)
    if "task_index" not in table.column_names or text_col is None:
      raise SourceError(f"{path}: expected columns task_index and task (or the pandas "
                        f"index), got {table.column_names}.")
    return {int(i): str(t) for i, t in zip(table.column("task_index").to_pylist(),
                                           table.column(text_col).to_pylist())}

  def _read_episodes(self) -> dict[int, EpisodeRow]:
    chunks_size = int(self.info.get("chunks_size", 1000))
    out = {}
    if self.version == 2:
      for r in fmt.read_jsonl(os.path.join(self.root, fmt.V2_EPISODES_PATH)):
        e = int(r["episode_index"])
        fields = {"episode_chunk": e // chunks_size, "episode_index": e}
        out[e] = EpisodeRow(e, int(r["length"]), tuple(r.get("tasks") or ()),
                            self.path("data_path", **fields),
                            {k: (self.path("video_path", video_key=k, **fields), 0.0)
                             for k in self.video_keys})
      return out
    files = sorted(glob.glob(os.path.join(self.root, fmt.V3_EPISODES_DIR, "*", "*.parquet")))
    if not files:
      raise SourceError(f"{self.root}: no {fmt.V3_EPISODES_DIR}/chunk-*/file-*.parquet; a "
                        "LeRobot v3.0 dataset lists its episodes there.")
    needed = ["episode_index", "length", "data/chunk_index", "data/file_index"]
    for k in self.video_keys:
      needed += [f"videos/{k}/chunk_index", f"videos/{k}/file_index",
                 f"videos/{k}/from_timestamp"]
    for path in files:
      table = _read_table(path, self.info_path)
      missing = [c for c in needed if c not in table.column_names]
      if missing:
        raise SourceError(f"{path}: episode metadata without the columns {missing}.")
      cols = {c: table.column(c).to_pylist() for c in needed}
      tasks = (table.column("tasks").to_pylist() if "tasks" in table.column_names
               else [[]] * table.num_rows)
      recorded = (table.column(fmt.EPISODE_METADATA).to_pylist()
                  if fmt.EPISODE_METADATA in table.column_names else [None] * table.num_rows)
      for i in range(table.num_rows):
        e = int(cols["episode_index"][i])
        data = self.path("data_path", chunk_index=int(cols["data/chunk_index"][i]),
                         file_index=int(cols["data/file_index"][i]))
        videos = {k: (self.path("video_path", video_key=k,
                                chunk_index=int(cols[f"videos/{k}/chunk_index"][i]),
                                file_index=int(cols[f"videos/{k}/file_index"][i])),
                      float(cols[f"videos/{k}/from_timestamp"][i])) for k in self.video_keys}
        out[e] = EpisodeRow(e, int(cols["length"][i]), tuple(tasks[i] or ()), data, videos,
                            _metadata(recorded[i], f"{path}, episode {e}"))
    return out


@functools.lru_cache(maxsize=8)
def _load_meta(info_path: str, stamp: tuple) -> LeRobotMeta:
  del stamp  # part of the cache key: changed metadata files are read again
  return LeRobotMeta(info_path)


def load_meta(info_path: str) -> LeRobotMeta:
  """The metadata of the dataset whose ``meta/info.json`` is ``info_path``, cached while
  the files under ``meta/`` are unchanged (the write pass opens the dataset once per
  episode; it parses the metadata once)."""
  if not os.path.exists(info_path):
    raise SourceError(f"{info_path} does not exist: a LeRobot dataset has meta/info.json.")
  stamp = []
  for folder, _, names in os.walk(os.path.dirname(os.path.abspath(info_path))):
    for name in names:
      stat = os.stat(os.path.join(folder, name))
      stamp.append((folder, name, stat.st_mtime_ns, stat.st_size))
  return _load_meta(os.path.abspath(info_path), tuple(sorted(stamp)))


def _metadata(text: Optional[str], where: str) -> dict[str, Any]:
  """A ``meta/episodes`` ``episode_metadata`` cell: a JSON object, or nothing."""
  if not text:
    return {}
  try:
    value = json.loads(text)
  except ValueError as e:
    raise SourceError(f"{where}: {fmt.EPISODE_METADATA} is not JSON: {e}") from e
  if not isinstance(value, dict):
    raise SourceError(f"{where}: {fmt.EPISODE_METADATA} is not a JSON object: "
                      f"{text[:80]!r}.")
  return value


def _read_table(path: str, where: str, **kwargs: Any) -> pa.Table:
  if not os.path.exists(path):
    raise SourceError(f"{where}: {path} does not exist.")
  try:
    return pq.read_table(path, **kwargs)
  except Exception as e:  # ArrowInvalid and friends
    raise SourceError(f"{where}: cannot read the parquet file {path} ({type(e).__name__}: "
                      f"{e}); it is corrupt or truncated.") from e


# ---------------------------------------------------------------------------- sources
class _LeRobotEpisode(EpisodeSource):
  """One episode of a LeRobot dataset; keys are its feature names."""

  def __init__(self, meta: LeRobotMeta, row: EpisodeRow, group: str):
    super().__init__(meta.info_path, group)
    self._meta, self._row = meta, row
    self._schema, num_rows = meta.footer(row.data_file, self.where)
    self._columns = set(self._schema.names)
    if meta.version == 2 and num_rows != row.length:
      raise SourceError(f"{self.where}: {row.data_file} has {num_rows} rows; "
                        f"{fmt.V2_EPISODES_PATH} says the episode has {row.length}.")
    self._table: Optional[pa.Table] = None

  def keys(self) -> list[str]:
    return [*self._meta.features, TASK_KEY, METADATA_KEY]

  def find(self, key: str) -> Any:
    meta, row, n = self._meta, self._row, self._row.length
    if key == TASK_KEY:
      return self._tasks()
    if key == METADATA_KEY:
      info = {**row.metadata, "fps": meta.fps, "lerobot_episode_index": row.index}
      if meta.info.get("robot_type"):
        info["embodiment"] = str(meta.info["robot_type"])
      return json.dumps(info)
    feature = meta.features.get(key)
    if feature is None:
      return None
    dtype = feature.get("dtype")
    where = f"{self.where}, key {key!r}"
    if dtype == "video":
      path, start = row.videos[key]
      if not os.path.exists(path):
        raise SourceError(f"{where}: the video {path} does not exist.")
      size = fmt.image_size(feature, key, where)
      return LazyArray((n, *size, 3), np.uint8,
                   lambda: fmt.read_video(path, start, n, meta.fps, size, where))
    if key not in self._columns:
      raise SourceError(f"{where}: info.json lists the feature but {row.data_file} has no "
                        f"such column; it has {sorted(self._columns)}.")
    if dtype == "image":
      size = fmt.image_size(feature, key, where)
      return LazyArray((n, *size, 3), np.uint8, lambda: self._images(key, size, where))
    shape = tuple(int(s) for s in feature.get("shape") or (1,))
    kind = self._schema.field(key).type
    if pa.types.is_fixed_size_list(kind) and kind.list_size != int(np.prod(shape)):
      raise SourceError(f"{where}: {row.data_file} holds {kind.list_size} values per frame; "
                        f"info.json says shape {list(shape)}.")
    np_dtype = object if dtype == "string" else np.dtype(dtype)
    full = (n,) if shape == (1,) else (n, *shape)
    return LazyArray(full, np_dtype, lambda: fmt.list_values(
        self._rows().column(key), shape, f"{where} ({row.data_file})", key))

  def _rows(self) -> pa.Table:
    """The episode's rows of its data file (all parquet columns), read once."""
    if self._table is None:
      row = self._row
      kwargs = ({} if self._meta.version == 2
                else {"filters": [("episode_index", "=", row.index)]})
      table = _read_table(row.data_file, self.where, **kwargs)
      if table.num_rows != row.length:
        raise SourceError(f"{self.where}: {row.data_file} has {table.num_rows} rows of "
                          f"episode {row.index}; the episode metadata says {row.length}.")
      if "frame_index" in table.column_names:
        order = np.argsort(table.column("frame_index").to_numpy(), kind="stable")
        if (order != np.arange(len(order))).any():
          table = table.take(pa.array(order))
      self._table = table
    return self._table

  def _tasks(self) -> np.ndarray:
    row = self._row
    if "task_index" not in self._columns:
      if not row.tasks:
        return None
      return np.array([row.tasks[0]] * row.length, dtype=object)
    indices = self._rows().column("task_index").to_numpy()
    unknown = sorted({int(i) for i in indices} - set(self._meta.tasks))
    if unknown:
      raise SourceError(f"{self.where}: task_index {unknown} of {row.data_file} is not in the "
                        f"tasks table (it has {len(self._meta.tasks)} tasks).")
    return np.array([self._meta.tasks[int(i)] for i in indices], dtype=object)

  def _images(self, key: str, size: tuple[int, int], where: str) -> np.ndarray:
    out = np.empty((self._row.length, *size, 3), np.uint8)
    for t, cell in enumerate(self._rows().column(key).to_pylist()):
      data = cell.get("bytes") if isinstance(cell, dict) else None
      if not data:
        raise SourceError(f"{where}: frame {t} has no embedded image bytes (image paths "
                          "outside the parquet file are not supported).")
      image = np.asarray(iio.imread(data))
      image = np.repeat(image[..., None], 3, -1) if image.ndim == 2 else image[..., :3]
      if image.shape != (*size, 3):
        raise SourceError(f"{where}: frame {t} is {image.shape}; info.json says {size}.")
      out[t] = image
    return out


class LeRobotSource(SourceFile):
  """A LeRobot dataset opened through its ``meta/info.json``; episodes are groups."""

  def __init__(self, info_path: str):
    self.path = info_path
    self.meta = load_meta(info_path)

  def groups(self, pattern: str) -> list[str]:
    names = [fmt.group_of(e) for e in sorted(self.meta.episodes)]
    if pattern.strip("/") in ("", "*"):
      return names
    found = [g for g in names if fnmatch.fnmatchcase(g, pattern.strip("/"))]
    if not found:
      raise SourceError(f"{self.path}: no episodes match {pattern!r}; they are "
                        f"{names[:3]}...{names[-1:]}.")
    return found

  def episode(self, group: str) -> EpisodeSource:
    row = self.meta.episodes.get(fmt.episode_of(group))
    if row is None:
      raise SourceError(f"{self.path}: no episode {group!r}.")
    return _LeRobotEpisode(self.meta, row, group)


# ---------------------------------------------------------------------------- import
def info_paths(roots: str | Sequence[str]) -> list[str]:
  """``meta/info.json`` of each dataset root (paths or globs of directories)."""
  out = []
  for pattern in as_list(roots):
    pattern = os.path.expanduser(os.fspath(pattern))
    found = sorted(glob.glob(pattern)) or [pattern]
    for path in found:
      info = path if path.endswith(".json") else os.path.join(path, fmt.INFO_PATH)
      if not os.path.exists(info):
        raise FileNotFoundError(f"{path} is not a LeRobot dataset: no {fmt.INFO_PATH}.")
      out.append(info)
  return out


def import_lerobot(roots: str | Sequence[str], mapping: KeyMapping | Preset | None = None,
                   *, name: str, data_dir: str, **kwargs: Any) -> str:
  """Imports LeRobot datasets into an episode dataset; returns its directory.

  Args:
    roots: dataset directories (holding ``meta/info.json``), paths or globs.
    mapping: a :class:`KeyMapping` whose keys are LeRobot feature names, or a preset
      (default :func:`lerobot`).
    name: dataset name.
    data_dir: where datasets live.
    **kwargs: spec overrides (``embodiment``, ``source``, ``cameras``, ``image_size``,
      ``fps``), ``episode_groups`` (glob of ``episode_000000`` names), ``splits``,
      ``max_episodes``, ``on_error`` ("raise" | "skip"), ``task``, ``version``,
      ``overwrite``: see :func:`wam.data.importers.importer.import_episodes`.
  """
  return importer.import_episodes(LeRobotSource, info_paths(roots), mapping or lerobot(),
                                  name=name, data_dir=data_dir, kind="LeRobot", **kwargs)


def main(argv: Sequence[str]) -> None:
  del argv
  importer.run_cli(import_lerobot, PRESETS)


if __name__ == "__main__":
  from absl import app  # pylint: disable=g-import-not-at-top
  importer.define_flags(PRESETS, example="raw/lerobot/so100_pick")
  app.run(main)
