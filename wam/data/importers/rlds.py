"""Imports RLDS datasets (Open X-Embodiment, Octo, LIBERO): TFDS directories of episodes.

An RLDS dataset is a TFDS directory (``dataset_info.json``, ``features.json``, shards)
whose examples are episodes: a nested ``steps`` dataset (``observation/<...>``,
``action``, ``language_instruction``, ``reward``, ``is_first``, ``is_last``,
``is_terminal``...) and ``episode_metadata``. Both shard formats are read without
TensorFlow: ArrayRecord with ``array_record``, TFRecord (how Open X-Embodiment is
published) with :mod:`wam.data.importers.tfrecord`. An episode is parsed with TFDS's own NumPy
``tf.train.Example`` parser and decoded with the dataset's own TFDS features (images
with PIL, frame chunks at a time), so a key holds what ``tfds`` would give.

A key is the ``/``-joined feature path in one episode: ``steps/observation/image``,
``steps/action/world_vector``, ``episode_metadata/file_path``. Presets for known Open
X-Embodiment datasets are in :mod:`wam.data.importers.oxe`.

Library use::

  from wam.data.importers import oxe, rlds
  path = rlds.import_rlds("~/tensorflow_datasets/bridge_dataset/1.0.0", oxe.bridge(),
                          name="bridge", data_dir="data", image_size=(128, 128))

Command line::

  python -m wam.data.importers.rlds --files=~/tensorflow_datasets/bridge_dataset/1.0.0 \\
      --preset=bridge --name=bridge --data_dir=data --image_size=128,128
"""

from __future__ import annotations

import glob
import logging
import os
import re
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import tensorflow_datasets as tfds
from absl import flags
from array_record.python import array_record_module
from tensorflow_datasets.core import example_parser

from wam.data.importers import importer, oxe, two_pass
from wam.data.importers.mapping import KeyMapping, Preset
from wam.data.importers.sources import EpisodeSource, SourceError, SourceFile, natural_key
from wam.data.importers.tfrecord import TFRecordFile

SOURCE_SPLITS = "source"  # ``splits=SOURCE_SPLITS``: keep the dataset's own splits
_FORMATS = ("array_record", "tfrecord")


# ---------------------------------------------------------------------------- dataset
class RldsDataset:
  """The metadata of a TFDS directory of RLDS episodes: features, splits and shards."""

  def __init__(self, path: str):
    path = find_dataset_dir(path)
    try:
      builder = tfds.builder_from_directory(path)
    except Exception as e:  # bad json, unknown feature types...
      raise SourceError(f"{path}: cannot open as a TFDS dataset ({type(e).__name__}: "
                        f"{e}).") from e
    info = builder.info
    self.path = path
    self.name = f"{info.name} {info.version}"
    self.features = info.features
    self.file_format = info.file_format.value if info.file_format else "tfrecord"
    if self.file_format not in _FORMATS:
      raise SourceError(f"{path}: shards are {self.file_format}; readable formats are "
                        f"{_FORMATS}.")
    if "steps" not in self.features or not isinstance(self.features["steps"],
                                                      tfds.features.Dataset):
      raise SourceError(f"{path} is a TFDS dataset but not RLDS: it has no 'steps' "
                        f"dataset feature (features: {sorted(self.features.keys())}).")
    self.parser = example_parser.ExampleParserNp(self.features.get_serialized_info())
    self.leaves = _leaf_features(self.features)
    self.splits: dict[str, list[str]] = {}
    self.shard_lengths: dict[str, int] = {}
    self.episode_starts: dict[str, int] = {}
    for split, split_info in info.splits.items():
      paths = [_norm(p) for p in split_info.filepaths]
      self.splits[split] = paths
      start = 0
      for p, n in zip(paths, split_info.shard_lengths):
        self.shard_lengths[p] = int(n)
        self.episode_starts[p] = start
        start += int(n)

  def num_episodes(self, split: str) -> int:
    return sum(self.shard_lengths[p] for p in self.splits[split])

  def split_of(self, shard: str) -> str:
    return next(s for s, paths in self.splits.items() if _norm(shard) in paths)

  def check_splits(self, splits: Sequence[str]) -> None:
    unknown = [s for s in splits if s not in self.splits]
    if unknown:
      raise SourceError(f"{self.path}: no splits {unknown}; it has {sorted(self.splits)}.")

  def open_shard(self, path: str) -> "RldsShard":
    return RldsShard(self, _norm(path))

  def episode(self, split: str, index: int) -> "RldsEpisode":
    """Episode ``index`` of ``split`` (in TFDS's read order: shards, then records)."""
    self.check_splits([split])
    for shard in self.splits[split]:
      start = self.episode_starts[shard]
      if index < start + self.shard_lengths[shard]:
        with self.open_shard(shard) as handle:
          handle.groups("*")
          return handle.episode(str(index - start))
    raise IndexError(f"{self.name}: split {split!r} has {self.num_episodes(split)} "
                     f"episodes, asked for {index}.")

  def describe(self) -> str:
    """The splits and every key with its per-episode shape (to write a mapping)."""
    counts = {s: self.num_episodes(s) for s in self.splits}
    lines = [f"{self.name} at {self.path} ({self.file_format}); splits {counts}; keys:"]
    for key, feature in sorted(self.leaves.items()):
      steps = "[N] + " if key.startswith("steps/") else ""
      lines.append(f"  {key}: {steps}{type(feature).__name__}{tuple(feature.shape)} "
                   f"{np.dtype(feature.np_dtype).name}")
    return "\n".join(lines)


def find_dataset_dir(path: str) -> str:
  """``path`` if it holds ``dataset_info.json``, else its only (or newest) version dir."""
  path = os.path.expanduser(os.fspath(path))
  if os.path.exists(os.path.join(path, "dataset_info.json")):
    return path
  found = sorted(glob.glob(os.path.join(path, "*", "dataset_info.json")),
                 key=natural_key)
  if not found:
    raise FileNotFoundError(f"{path} is not a TFDS dataset directory (no dataset_info.json "
                            "in it or in a version directory under it).")
  if len(found) > 1:
    logging.info("%s holds versions %s; reading the newest.", path,
                 [os.path.basename(os.path.dirname(f)) for f in found])
  return os.path.dirname(found[-1])


def _norm(path: Any) -> str:
  """One spelling of a shard's path (they key the shard tables)."""
  return os.path.normpath(os.path.abspath(os.fspath(path)))


def _leaf_features(features: Any, prefix: str = "") -> dict[str, Any]:
  """``{"steps/observation/image": Image(...), ...}``: every leaf feature by its path."""
  if isinstance(features, tfds.features.Dataset):
    return _leaf_features(features.feature, prefix)
  if isinstance(features, tfds.features.FeaturesDict):
    out = {}
    for name, feature in features.items():
      out.update(_leaf_features(feature, f"{prefix}{name}/"))
    return out
  return {prefix.rstrip("/"): features}


# ---------------------------------------------------------------------------- sources
class RldsShard(SourceFile):
  """One shard file; its episode groups are the record numbers ``"0"``, ``"1"``, ...

  (``episode_groups`` does not apply: every record of a shard is one episode.)
  """

  def __init__(self, dataset: RldsDataset, path: str):
    self.dataset = dataset
    self.path = path
    self.split = dataset.split_of(path) if path in dataset.shard_lengths else "?"
    try:
      if dataset.file_format == "tfrecord":
        self._records: Any = TFRecordFile(path)
        count = len(self._records)
      else:
        self._records = array_record_module.ArrayRecordReader(path, "readahead_buffer_size:0")
        count = self._records.num_records()
    except SourceError:
      raise
    except Exception as e:  # missing file, unreadable footer...
      raise SourceError(f"{path}: cannot open the {dataset.file_format} shard: {e}") from e
    expected = dataset.shard_lengths.get(path)
    if expected is not None and count != expected:
      raise SourceError(f"{path}: the shard holds {count} episodes but dataset_info.json "
                        f"says {expected}; the file is truncated or damaged.")
    self._count = count

  def groups(self, pattern: str) -> list[str]:
    del pattern
    return [str(i) for i in range(self._count)]

  def episode(self, group: str) -> "RldsEpisode":
    record = int(group)
    index = self.dataset.episode_starts.get(self.path, 0) + record
    where = (f"{self.dataset.name} split {self.split!r} episode {index} "
             f"({os.path.basename(self.path)} record {record})")
    try:
      data = (self._records.read(record) if isinstance(self._records, TFRecordFile)
              else self._records.read([record])[0])
      parsed = self.dataset.parser.parse_example(data)
    except SourceError:
      raise
    except Exception as e:  # bad protobuf, a record the features do not describe
      raise SourceError(f"{where}: the record does not parse as an episode "
                        f"({type(e).__name__}: {e}).") from e
    return RldsEpisode(self.path, group, where, parsed, self.dataset.leaves)

  def close(self) -> None:
    self._records.close()


class RldsEpisode(EpisodeSource):
  """One parsed episode: every leaf feature by its key, decoded when read."""

  def __init__(self, path: str, group: str, where: str, parsed: Mapping[str, Any],
               leaves: Mapping[str, Any]):
    super().__init__(path, group)
    self._where = where
    self._leaves = leaves
    self._raw = flatten(parsed)
    self._values: dict[str, Any] = {}

  @property
  def where(self) -> str:
    return self._where

  def keys(self) -> list[str]:
    return sorted(self._leaves)

  def find(self, key: str) -> Any:
    key = key.strip("/")
    if key not in self._leaves:
      return None
    if key not in self._values:
      if key not in self._raw:
        raise SourceError(f"{self._where}: the record has no value for feature {key!r}.")
      feature, raw = self._leaves[key], self._raw[key]
      if key.startswith("steps/"):
        self._values[key] = (_Frames(raw, feature, key, self._where)
                             if isinstance(feature, tfds.features.Image)
                             else _step_values(raw, feature, key, self._where))
      else:
        self._values[key] = _decode(feature, raw, key, self._where)
    return self._values[key]


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  """A nested feature dict as one level of ``/``-joined keys (``steps/action/x``)."""
  out = {}
  for k, v in tree.items():
    if isinstance(v, Mapping):
      out.update(flatten(v, f"{prefix}{k}/"))
    else:
      out[f"{prefix}{k}"] = v
  return out


def _decode(feature: Any, value: Any, key: str, where: str) -> Any:
  try:
    return feature.decode_example_np(value)
  except Exception as e:  # pylint: disable=broad-except
    raise SourceError(f"{where}: {key} does not decode ({type(e).__name__}: {e}).") from e


def _step_values(raw: Any, feature: Any, key: str, where: str) -> np.ndarray:
  """``[N, ...]`` values of a per-step non-image feature, as TFDS decodes them."""
  if isinstance(feature, tfds.features.Text):
    return np.asarray(list(raw), dtype=object)
  if isinstance(feature, tfds.features.Tensor) and not feature.shape.count(None):
    try:  # plain tensors: one reshape (per-step decoding gives the same, slower)
      array = np.asarray(raw)
      if array.dtype != object:
        return array.astype(feature.np_dtype, copy=False).reshape(-1, *feature.shape)
    except ValueError:
      pass
  values = [_decode(feature, v, key, where) for v in raw]
  try:
    return np.stack([np.asarray(v) for v in values]) if values else np.asarray(values)
  except ValueError as e:
    raise SourceError(f"{where}: {key} has steps of different shapes ({e}).") from e


class _Frames:
  """Encoded per-step images, decoded (PIL) only when sliced: ``[N, H, W, C]``."""

  def __init__(self, encoded: Any, feature: Any, key: str, where: str):
    self._encoded = list(encoded)
    self._feature = feature
    self._key = key
    self._where = where
    self.dtype = np.dtype(feature.np_dtype)
    shape = tuple(feature.shape)
    if None in shape and self._encoded:  # variable-size images: the first frame's size
      shape = self._frame(0).shape
    self.shape = (len(self._encoded), *shape)

  def _frame(self, t: int) -> np.ndarray:
    frame = np.asarray(_decode(self._feature, self._encoded[t], self._key,
                               f"{self._where} step {t}"))
    if hasattr(self, "shape") and frame.shape != self.shape[1:]:
      raise SourceError(f"{self._where}: {self._key} step {t} is {frame.shape}, expected "
                        f"{self.shape[1:]} (the feature's shape, or the first frame's).")
    return frame

  def __len__(self) -> int:
    return self.shape[0]

  def __getitem__(self, index: Any) -> np.ndarray:
    steps = range(self.shape[0])[index]
    if isinstance(steps, int):
      return self._frame(steps)
    out = np.empty((len(steps), *self.shape[1:]), self.dtype)
    for i, t in enumerate(steps):
      out[i] = self._frame(t)
    return out

  def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
    frames = self[:]
    return frames if dtype is None else frames.astype(dtype)


# ---------------------------------------------------------------------------- import
def import_rlds(dataset_dir: str, mapping: KeyMapping | Preset, *, name: str, data_dir: str,
                source_splits: Optional[Sequence[str]] = None,
                splits: str | Mapping[str, float] = SOURCE_SPLITS, **kwargs: Any) -> str:
  """Imports an RLDS (TFDS) dataset directory into an episode dataset; returns its dir.

  Args:
    dataset_dir: the TFDS directory (``<tfds data_dir>/<name>/<version>``; a directory
      holding version directories means its newest version).
    mapping: a :class:`KeyMapping` of feature paths (``steps/observation/image``) or a
      preset of :mod:`wam.data.importers.oxe`.
    name: dataset name.
    data_dir: where datasets live.
    source_splits: the dataset's splits to read (default all), read in the natural order
      of their shard files (``test`` before ``train`` before ``val``).
    splits: ``"source"`` (default) keeps each source split as the split of that name;
      ``{split: fraction}`` re-splits the episodes read, in order.
    **kwargs: spec overrides (``embodiment``, ``source``, ``cameras``, ``image_size``,
      ``fps``), ``max_episodes``, ``on_error``, ``task``, ``version``, ``overwrite``:
      see :func:`wam.data.importers.importer.import_episodes`.
  """
  dataset = RldsDataset(dataset_dir)
  chosen = list(source_splits) if source_splits else list(dataset.splits)
  dataset.check_splits(chosen)
  patterns = [p for s in chosen for p in _shard_patterns(dataset, s)]
  order = importer.expand_files(patterns)  # the order import_episodes will read
  keep = splits == SOURCE_SPLITS
  if keep:
    if kwargs.get("on_error", "raise") != "raise" or kwargs.get("max_episodes") is not None:
      raise ValueError("splits='source' keeps the dataset's splits, so it imports every "
                       "episode: use on_error='raise' and no max_episodes, or give split "
                       "fractions ({'train': 0.9, 'val': 0.1}).")
    counts: dict[str, int] = {}
    for shard in order:  # the splits must be consecutive runs of `order`
      split = dataset.split_of(shard)
      if split in counts and split != list(counts)[-1]:
        raise SourceError(f"{dataset.path}: the shard files of the splits interleave in "
                          "name order; import one source split at a time.")
      counts[split] = counts.get(split, 0) + dataset.shard_lengths[_norm(shard)]
    splits = {s: float(n) for s, n in counts.items() if n}
  kwargs.pop("episode_groups", None)  # every record of a shard is an episode
  out = importer.import_episodes(dataset.open_shard, patterns, mapping, name=name,
                                 data_dir=data_dir, kind=f"RLDS ({dataset.name})",
                                 splits=splits, **kwargs)
  if keep:
    written = two_pass.read_report(out)["episodes"]
    if {s: int(n) for s, n in written.items()} != {s: int(n) for s, n in splits.items()}:
      raise SourceError(f"{out}: wrote {written} episodes per split, the source has "
                        f"{ {s: int(n) for s, n in splits.items()} }.")
  return out


def _shard_patterns(dataset: RldsDataset, split: str) -> list[str]:
  """The shards of ``split``: one glob if one matches exactly them (a short dataset
  description), else the paths."""
  shards = dataset.splits[split]
  missing = [s for s in shards if not os.path.exists(s)]
  if missing:
    raise SourceError(f"{dataset.path}: split {split!r} is missing shard files "
                      f"{[os.path.basename(m) for m in missing[:5]]}.")
  pattern = re.sub(r"-\d{5}-of-(\d{5})$", r"-*-of-\1", shards[0])
  return [pattern] if sorted(glob.glob(pattern)) == sorted(shards) else list(shards)


# ---------------------------------------------------------------------------- CLI
def _cli_import(files: Sequence[str], mapping: KeyMapping | Preset, *,
                splits: Mapping[str, float], **kwargs: Any) -> str:
  if len(files) != 1:
    raise flags.UsageError(f"--files is one TFDS dataset directory, got {list(files)}.")
  if list(splits) == [SOURCE_SPLITS]:
    splits = SOURCE_SPLITS
  return import_rlds(files[0], mapping, splits=splits,
                     source_splits=flags.FLAGS.source_splits, **kwargs)


def main(argv: Sequence[str]) -> None:
  del argv
  importer.run_cli(_cli_import, oxe.PRESETS)


if __name__ == "__main__":
  from absl import app  # pylint: disable=g-import-not-at-top
  importer.define_flags(oxe.PRESETS, example="~/tensorflow_datasets/bridge_dataset/1.0.0")
  flags.FLAGS.set_default("splits", [SOURCE_SPLITS])
  flags.DEFINE_list("source_splits", None, "The dataset's splits to import (default all). "
                    "--files is the TFDS dataset directory; --splits=source (default) keeps "
                    "its splits, --splits=train=0.9,val=0.1 re-splits them in order.")
  app.run(main)
