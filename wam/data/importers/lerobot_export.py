"""Exports an episode dataset (Dojo-collected or imported) as a LeRobot v3.0 dataset.

The output is what lerobot's ``LeRobotDataset`` writer produces (layout in
:mod:`lerobot_format`): ``meta/info.json`` (features with shapes, dtypes and per-dim
names, fps, path templates), ``meta/tasks.parquet``, ``meta/episodes/chunk-000/
file-000.parquet`` (file indices, video timestamps and per-episode stats),
``meta/stats.json``, chunked ``data/`` parquet files and one MP4 stream per camera and
file, encoded with imageio-ffmpeg (``libsvtav1``, lerobot's default, or ``h264``:
yuv420p, GOP 2, CRF 30; or ``lossless``: RGB H.264 at -qp 0, frames decode bit-exact).

Schema fields become these features::

  observation/image_<cam>   observation.images.<cam>   video [H, W, 3]
  observation/joints        observation.state           float32 [J]
  observation/proprio       observation.proprio         float32 [P]
  observation/hand_keypoints observation.hand_keypoints float32 [63] (21 x 3, flat)
  observation/privileged    observation.environment_state float32 [S]
  action, action_mask       action, action_mask         float32 [A], bool
  reward, is_terminal       next.reward, next.done      float32, bool
  language_instruction      task (task_index -> meta/tasks.parquet)

Per-dim names come from the slot layouts (``gripper``, ``arm_joints_0``...); steps
without an instruction take the episode's task. Splits are written in order and listed
in ``info.json`` ``splits`` (``{"train": "0:90", "val": "90:100"}``). Each row of
``meta/episodes`` also carries ``episode_metadata`` (JSON: the episode's task, success
and source; lerobot keeps extra episode columns and ignores them), which the importer
reads back. With ``codec="lossless"`` and :func:`key_mapping`, export then import gives
back the same dataset, bit for bit: frames, vectors, masks, instructions, tasks,
success. Not exported: ``discount`` and the joints/proprio/keypoint masks (the importer
restores their defaults, 1 and True; the exporter warns when an episode has others).

Command line::

  python -m wam.data.importers.lerobot_export --dataset=data/my_lift/1.0.0 \\
      --out=export/my_lift --codec=libsvtav1   # or --codec=lossless
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from typing import Any, Callable, Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from absl import flags

from wam.data.importers import lerobot_format as fmt
from wam.data.importers.lerobot import METADATA_KEY, TASK_KEY
from wam.data.importers.mapping import KeyMapping, VectorKey
from wam.data.layout import Layout
from wam.data.reader import EpisodeDataset
from wam.data.schema import EpisodeSpec, as_text

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)  # lerobot's q01 ... q99
_ARROW = {"float32": pa.float32(), "int64": pa.int64(), "bool": pa.bool_()}


def dataset_splits(dataset_dir: str) -> list[str]:
  """The split names of an episode dataset, as its ``dataset_info.json`` lists them."""
  with open(os.path.join(dataset_dir, "dataset_info.json")) as f:
    return [s["name"] for s in json.load(f).get("splits", [])]


def _names(layout: Layout) -> list[str]:
  return [s.name if s.size == 1 else f"{s.name}_{i}" for s in layout.slots
          for i in range(s.size)]


def _features(spec: EpisodeSpec, codec: str) -> tuple[dict[str, dict], dict[str, str]]:
  """info.json features and ``{feature: schema field}`` for the spec."""
  h, w = spec.image_size
  features, fields = {}, {}
  for cam in spec.cameras:
    key = f"observation.images.{cam}"
    features[key] = {"dtype": "video", "shape": [h, w, 3],
                     "names": ["height", "width", "channels"],
                     "info": {"video.height": h, "video.width": w,
                              "video.codec": fmt.CODECS[codec].codec,
                              "video.pix_fmt": fmt.CODECS[codec].pix_fmt,
                              "video.is_depth_map": False, "video.fps": round(spec.fps),
                              "video.channels": 3, "has_audio": False}}
    fields[key] = f"observation/image_{cam}"
  for field, key in (("joints", "observation.state"), ("proprio", "observation.proprio")):
    if spec.layout(field).dim:
      features[key] = {"dtype": "float32", "shape": [spec.layout(field).dim],
                       "names": _names(spec.layout(field))}
      fields[key] = f"observation/{field}"
  if spec.hand_keypoints:
    # Flat (63,): a [21, 3] shape would be a datasets Array2D column in lerobot.
    features["observation.hand_keypoints"] = {"dtype": "float32", "shape": [63],
                                              "names": None}
    fields["observation.hand_keypoints"] = "observation/hand_keypoints"
  if spec.privileged_dim:
    features["observation.environment_state"] = {"dtype": "float32",
                                                 "shape": [spec.privileged_dim], "names": None}
    fields["observation.environment_state"] = "observation/privileged"
  if spec.action.dim:
    features["action"] = {"dtype": "float32", "shape": [spec.action.dim],
                          "names": _names(spec.action)}
    features["action_mask"] = {"dtype": "bool", "shape": [1], "names": None}
    fields.update(action="action", action_mask="action_mask")
  features["next.reward"] = {"dtype": "float32", "shape": [1], "names": None}
  features["next.done"] = {"dtype": "bool", "shape": [1], "names": None}
  fields.update({"next.reward": "reward", "next.done": "is_terminal"})
  features.update(json.loads(json.dumps(fmt.DEFAULT_FEATURES)))
  return features, fields


def key_mapping(spec: EpisodeSpec) -> KeyMapping:
  """The mapping that imports this exporter's output of a ``spec`` dataset back into
  ``spec`` (the same cameras, slot layouts, privileged state and keypoints)."""

  def vector(key: str, layout: Layout) -> tuple[VectorKey, ...]:
    if not layout.dim:
      return ()
    return (VectorKey(key, slots=tuple((s.name, s.size) for s in layout.slots)),)

  return KeyMapping(
      images={cam: f"observation.images.{cam}" for cam in spec.cameras},
      joints=vector("observation.state", spec.joints),
      proprio=vector("observation.proprio", spec.proprio),
      action=vector("action", spec.action),
      hand_keypoints="observation.hand_keypoints" if spec.hand_keypoints else None,
      privileged=("observation.environment_state",) if spec.privileged_dim else (),
      action_mask="action_mask" if spec.action.dim else None, reward="next.reward",
      is_terminal="next.done", instruction=TASK_KEY, metadata_json=METADATA_KEY)


def _lost_fields(steps: dict[str, Any]) -> list[str]:
  """Fields of an episode that differ from the defaults the importer restores."""
  lost = []
  if "discount" in steps and not np.all(np.asarray(steps["discount"]) == 1):
    lost.append("discount")
  for key, mask in steps["observation"].items():
    if key.endswith("_mask") and not np.all(mask):
      lost.append(f"observation/{key}")
  return lost


# ---------------------------------------------------------------------------- stats
def feature_stats(values: np.ndarray, image: bool = False) -> dict[str, np.ndarray]:
  """lerobot's per-episode stats: min, max, mean, std, count, q01..q99.

  Images are per channel in [0, 1] with shape (3, 1, 1), from up to ``n ** 0.75``
  evenly spaced frames (at least 100) as lerobot samples them; vectors per dimension.
  """
  n = len(values)
  if image:
    k = n if n < 100 else int(max(100, min(n ** 0.75, 10_000)))
    x = values[np.round(np.linspace(0, n - 1, k)).astype(int)].astype(np.float64) / 255.0
    x = x.transpose(0, 3, 1, 2)  # N, C, H, W
    flat, shape = x.transpose(1, 0, 2, 3).reshape(3, -1).T, (3, 1, 1)
    n = k
  else:
    flat = values.reshape(n, -1).astype(np.float64)
    shape = flat.shape[1:]
  stats = {"min": flat.min(0), "max": flat.max(0), "mean": flat.mean(0), "std": flat.std(0)}
  for q in QUANTILES:
    stats[f"q{round(q * 100):02d}"] = np.quantile(flat, q, axis=0)
  out = {k: v.reshape(shape) for k, v in stats.items()}
  out["count"] = np.array([n])
  return out


def aggregate_stats(episodes: Sequence[dict[str, dict[str, np.ndarray]]]
                    ) -> dict[str, dict[str, np.ndarray]]:
  """Dataset stats from per-episode ones, as lerobot's ``aggregate_stats`` computes them
  (count-weighted mean, pooled variance, count-weighted quantiles)."""
  out = {}
  for key in episodes[0]:
    s = {k: np.stack([e[key][k] for e in episodes]).astype(np.float64) for k in episodes[0][key]}
    counts = s["count"].reshape(-1, *([1] * (s["mean"].ndim - 1)))
    total = counts.sum(0)
    mean = (s["mean"] * counts).sum(0) / total
    var = ((s["std"] ** 2 + (s["mean"] - mean) ** 2) * counts).sum(0) / total
    agg = {"min": s["min"].min(0), "max": s["max"].max(0), "mean": mean, "std": np.sqrt(var),
           "count": np.array([int(s["count"].sum())])}
    for q in (k for k in s if k.startswith("q")):
      agg[q] = (s[q] * counts).sum(0) / total
    out[key] = agg
  return out


def _jsonable(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, list]]:
  return {k: {s: np.asarray(v).tolist() for s, v in d.items()} for k, d in stats.items()}


# ---------------------------------------------------------------------------- files
class _Files:
  """The chunked files one stream of episodes goes to (data, or one camera's video):
  episodes join the open file until it holds ``max_episodes`` or ``max_mb`` megabytes,
  then the next file opens (``chunks_size`` files per ``chunk-XXX``), as lerobot does."""

  def __init__(self, path: Callable[[int, int], str], open_file: Callable[[str], Any],
               chunks_size: int, max_mb: float, max_episodes: Optional[int]):
    self._path, self._open = path, open_file
    self._chunks_size, self._max_mb, self._max_episodes = chunks_size, max_mb, max_episodes
    self.chunk = self.file = self._episodes = 0
    self._writer: Any = None

  def next(self) -> Any:
    """The writer of the file the next episode goes to."""
    path = self._path(self.chunk, self.file)
    if self._writer is not None and (
        (self._max_episodes and self._episodes >= self._max_episodes)
        or (os.path.exists(path) and os.path.getsize(path) >= self._max_mb * 1e6)):
      self.close()
      self.chunk, self.file = fmt.next_file(self.chunk, self.file, self._chunks_size)
      path = self._path(self.chunk, self.file)
    if self._writer is None:
      os.makedirs(os.path.dirname(path), exist_ok=True)
      self._writer, self._episodes = self._open(path), 0
    self._episodes += 1
    return self._writer

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()
      self._writer = None


def _table(columns: dict[str, np.ndarray], features: dict[str, dict], schema: pa.Schema
           ) -> pa.Table:
  """One episode's frame rows: scalars as values, vectors as fixed-size lists (what
  ``datasets.Value`` and ``datasets.Sequence(length=...)`` store)."""
  arrays = []
  for key in schema.names:
    f, v = features[key], columns[key]
    values = pa.array(v.reshape(-1).astype(f["dtype"]), _ARROW[f["dtype"]])
    arrays.append(values if f["shape"] == [1] else pa.FixedSizeListArray.from_arrays(
        values, type=schema.field(key).type))
  return pa.Table.from_arrays(arrays, schema=schema)


# ---------------------------------------------------------------------------- export
def export_lerobot(dataset_dir: str, out_dir: str, *, splits: Optional[Sequence[str]] = None,
                   codec: str = "libsvtav1", crf: int = 30, robot_type: Optional[str] = None,
                   chunks_size: int = 1000, data_files_size_in_mb: float = 100,
                   video_files_size_in_mb: float = 200,
                   episodes_per_file: Optional[int] = None, overwrite: bool = False) -> str:
  """Writes an episode dataset as a LeRobot v3.0 dataset; returns ``out_dir``.

  Args:
    dataset_dir: an episode dataset (``<data_dir>/<name>/<version>``).
    out_dir: the LeRobot dataset root to create.
    splits: splits to export, in order (default: all, as listed in the dataset).
    codec: ``libsvtav1`` (AV1, lerobot's default), ``h264`` or ``lossless`` (RGB H.264,
      bit-exact frames; 3-4x the size of AV1 or h264 at CRF 30 on 16x16 Dojo frames).
    crf: the encoder's constant rate factor (lerobot: 30; lower is better quality;
      unused by ``lossless``).
    robot_type: info.json ``robot_type`` (default: the spec's embodiment).
    chunks_size: files per ``chunk-XXX`` directory.
    data_files_size_in_mb, video_files_size_in_mb: a file takes episodes until it
      reaches this size (lerobot's defaults: 100 and 200).
    episodes_per_file: also start a new file after this many episodes.
    overwrite: replace an existing ``out_dir``.
  """
  if codec not in fmt.CODECS:
    raise ValueError(f"codec must be one of {sorted(fmt.CODECS)}, got {codec!r}.")
  if os.path.exists(out_dir):
    if not overwrite:
      raise FileExistsError(f"{out_dir} exists; pass overwrite=True to replace it.")
    shutil.rmtree(out_dir)
  splits = list(splits or dataset_splits(dataset_dir))
  datasets = [EpisodeDataset(dataset_dir, s) for s in splits]
  spec = datasets[0].spec
  features, fields = _features(spec, codec)
  fps = spec.fps
  video_keys = [k for k, f in features.items() if f["dtype"] == "video"]
  data_keys = [k for k in features if k not in video_keys]
  # Vectors as datasets writes a Sequence(length=D): fixed_size_list<element: ...>[D].
  schema = pa.schema([(k, _ARROW[f["dtype"]] if f["shape"] == [1] else
                       pa.list_(pa.field("element", _ARROW[f["dtype"]]),
                                int(np.prod(f["shape"]))))
                      for k, f in features.items() if k in data_keys])
  tasks: dict[str, int] = {}
  rows: list[dict[str, Any]] = []
  all_stats: list[dict] = []
  frame, split_ranges, lost = 0, {}, set()
  data_files = _Files(
      lambda c, f: os.path.join(out_dir, fmt.V3_DATA_PATH.format(chunk_index=c, file_index=f)),
      lambda path: pq.ParquetWriter(path, schema, compression="snappy"),
      chunks_size, data_files_size_in_mb, episodes_per_file)
  video_files = {key: _Files(
      lambda c, f, k=key: os.path.join(out_dir, fmt.V3_VIDEO_PATH.format(
          video_key=k, chunk_index=c, file_index=f)),
      lambda path: fmt.VideoWriter(path, spec.image_size, fps, codec, crf),
      chunks_size, video_files_size_in_mb, episodes_per_file) for key in video_keys}
  try:
    for split, ds in zip(splits, datasets):
      if ds.spec != spec:
        raise ValueError(f"{dataset_dir}: split {split!r} has another spec than {splits[0]!r}.")
      start = len(rows)
      for i in range(len(ds)):
        e, episode = len(rows), ds.episode(i)
        steps, n = episode["steps"], int(ds.episode_lengths[i])
        flat = {"action": steps.get("action"), "action_mask": steps.get("action_mask"),
                "reward": steps["reward"], "is_terminal": steps["is_terminal"],
                **{f"observation/{k}": v for k, v in steps["observation"].items()}}
        texts = [as_text(t) or episode["metadata"]["task"] or "task"
                 for t in steps["language_instruction"]]
        for t in texts:
          tasks.setdefault(t, len(tasks))
        lost.update(_lost_fields(steps))
        columns = {"timestamp": (np.arange(n) / fps).astype(np.float32),
                   "frame_index": np.arange(n), "episode_index": np.full(n, e),
                   "index": np.arange(frame, frame + n),
                   "task_index": np.array([tasks[t] for t in texts])}
        columns = {k: np.asarray(columns[k] if k in columns else flat[fields[k]])
                   for k in data_keys}
        stats = {k: feature_stats(v.astype(np.float64)) for k, v in columns.items()}
        data_files.next().write_table(_table(columns, features, schema))
        row = {"episode_index": e, "tasks": list(dict.fromkeys(texts)), "length": n,
               "data/chunk_index": data_files.chunk, "data/file_index": data_files.file,
               "dataset_from_index": frame, "dataset_to_index": frame + n,
               fmt.EPISODE_METADATA: json.dumps({
                   "task": episode["metadata"]["task"],
                   "success": bool(episode["metadata"]["success"]), "source": spec.source})}
        for key in video_keys:
          frames = np.asarray(flat[fields[key]])
          video = video_files[key].next()
          begin = video.num_frames / fps  # the episode starts where the file's stream ends
          video.write(frames)
          row.update({f"videos/{key}/chunk_index": video_files[key].chunk,
                      f"videos/{key}/file_index": video_files[key].file,
                      f"videos/{key}/from_timestamp": begin,
                      f"videos/{key}/to_timestamp": begin + n / fps})
          stats[key] = feature_stats(frames, image=True)
        row.update({f"stats/{k}/{s}": np.asarray(v).tolist() for k, d in stats.items()
                    for s, v in d.items()})
        row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
        rows.append(row)
        all_stats.append(stats)
        frame += n
      split_ranges[split] = f"{start}:{len(rows)}"
  finally:
    data_files.close()
    for files in video_files.values():
      files.close()
  if lost:
    logging.warning("%s: %s are not exported (LeRobot has no such features); importing the "
                    "export back gives their defaults (discount 1, masks True).",
                    dataset_dir, sorted(lost))

  # ---------------------------------------------------------------- metadata
  episodes_path = os.path.join(out_dir, fmt.V3_EPISODES_PATH.format(chunk_index=0,
                                                                      file_index=0))
  os.makedirs(os.path.dirname(episodes_path), exist_ok=True)
  pq.write_table(pa.Table.from_pylist(rows), episodes_path, compression="snappy")
  pq.write_table(tasks_table(tasks), os.path.join(out_dir, fmt.V3_TASKS_PATH))
  with open(os.path.join(out_dir, fmt.STATS_PATH), "w") as f:
    json.dump(_jsonable(aggregate_stats(all_stats)), f, indent=4)
  info = {"codebase_version": "v3.0", "robot_type": robot_type or spec.embodiment,
          "total_episodes": len(rows), "total_frames": frame, "total_tasks": len(tasks),
          "chunks_size": chunks_size, "data_files_size_in_mb": data_files_size_in_mb,
          "video_files_size_in_mb": video_files_size_in_mb,
          "fps": int(fps) if float(fps).is_integer() else fps, "splits": split_ranges,
          "data_path": fmt.V3_DATA_PATH,
          "video_path": fmt.V3_VIDEO_PATH if video_keys else None, "features": features}
  with open(os.path.join(out_dir, fmt.INFO_PATH), "w") as f:
    json.dump(info, f, indent=4, ensure_ascii=False)
  logging.info("Exported %d episodes (%d frames, %d tasks) of %s to %s.", len(rows), frame,
               len(tasks), dataset_dir, out_dir)
  return out_dir


def tasks_table(tasks: dict[str, int]) -> pa.Table:
  """``meta/tasks.parquet`` as lerobot's pandas writer lays it out: a ``task_index`` column
  and the task strings as the frame's index named ``task`` (pandas metadata included, so
  ``pd.read_parquet`` gives lerobot the index back)."""
  table = pa.table({"task_index": pa.array(list(tasks.values()), pa.int64()),
                    "task": pa.array(list(tasks), pa.string())})
  pandas = {"index_columns": ["task"],
            "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode",
                                "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}],
            "columns": [{"name": "task_index", "field_name": "task_index",
                         "pandas_type": "int64", "numpy_type": "int64", "metadata": None},
                        {"name": "task", "field_name": "task", "pandas_type": "unicode",
                         "numpy_type": "object", "metadata": None}],
            "creator": {"library": "pyarrow", "version": pa.__version__},
            "pandas_version": "2.2.3"}
  return table.replace_schema_metadata({"pandas": json.dumps(pandas)})


# ---------------------------------------------------------------------------- CLI
def define_flags() -> None:
  """The exporter's flags (from ``__main__`` only: library code has none)."""
  flags.DEFINE_string("dataset", None, "Episode dataset directory (<data_dir>/<name>/<version>).")
  flags.DEFINE_string("out", None, "The LeRobot dataset root to write.")
  flags.DEFINE_list("splits", None, "Splits to export, in order (default: all).")
  flags.DEFINE_enum("codec", "libsvtav1", sorted(fmt.CODECS), "Video codec.")
  flags.DEFINE_integer("crf", 30, "Constant rate factor (lower: better quality, bigger "
                       "files); unused by --codec=lossless (bit-exact RGB H.264).")
  flags.DEFINE_string("robot_type", None, "info.json robot_type (default: the embodiment).")
  flags.DEFINE_integer("episodes_per_file", None, "Start a new data/video file after N episodes.")
  flags.DEFINE_bool("overwrite", False, "Replace an existing output directory.")
  flags.mark_flags_as_required(["dataset", "out"])


def main(argv: Sequence[str]) -> None:
  del argv
  f = flags.FLAGS
  print(export_lerobot(f.dataset, f.out, splits=f.splits, codec=f.codec, crf=f.crf,
                       robot_type=f.robot_type, episodes_per_file=f.episodes_per_file,
                       overwrite=f.overwrite))


if __name__ == "__main__":
  from absl import app  # pylint: disable=g-import-not-at-top
  define_flags()
  app.run(main)
