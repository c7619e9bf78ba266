"""Random access to a stored episode dataset, without TensorFlow and without loading it.

:class:`EpisodeDataset` opens the directory a builder wrote (``<data_dir>/<name>/
[<config>/]<version>``), reads the spec and episode index from its metadata and reads
steps on demand from the ArrayRecord shards. Shard files open lazily, so the object is
cheap to pickle into grain worker processes.

Damaged data names itself: a shard with fewer records than ``dataset_info.json`` says
(a truncated file) and a record that fails its checksum raise :class:`CorruptDataError`
with the file, the record and the episode step it holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from typing import Any, Optional, Sequence

import numpy as np

from wam.data.schema import Episode, EpisodeSpec, as_text, flatten, nest


class CorruptDataError(RuntimeError):
  """A shard file is truncated or a record in it is damaged."""


class EpisodeDataset:
  """One split of a stored episode dataset, opened for random access."""

  def __init__(self, path: str, split: str = "train"):
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
    path = os.fspath(path)
    if not os.path.exists(os.path.join(path, "dataset_info.json")):
      raise FileNotFoundError(
          f"{path} is not a built dataset (no dataset_info.json). Pass the versioned "
          "directory, e.g. <data_dir>/dojo_robot/pick_place/1.0.0.")
    builder = tfds.builder_from_directory(path)
    info = builder.info
    if "spec" not in info.metadata:
      raise ValueError(f"{path} is a TFDS dataset but not an episode dataset (its "
                       "metadata.json has no 'spec'). Import it with wam.data.importers.")
    if split not in info.splits:
      raise KeyError(f"{path} has no split {split!r}; it has {sorted(info.splits)}.")
    self.path = path
    self.split = split
    self.name = info.name
    self.version = str(info.version)
    self.config_name = info.config_name or ""
    self.spec = EpisodeSpec.from_json(info.metadata["spec"])
    self.features = info.features
    index = info.metadata["episodes"].get(split)
    if not index or not index["length"]:
      raise ValueError(f"{path}: split {split!r} has no episodes.")
    self.episode_lengths = np.asarray(index["length"], np.int64)
    self.episode_starts = np.concatenate([[0], np.cumsum(self.episode_lengths)[:-1]])
    self.tasks: list[str] = list(index["task"])
    self.instructions: list[str] = list(index["instruction"])
    self.successes = np.asarray(index["success"], bool)
    split_info = info.splits[split]
    self.shard_files = [os.path.join(path, f) for f in split_info.filenames]
    self.shard_lengths = [int(n) for n in split_info.shard_lengths]
    self.shard_starts = np.concatenate([[0], np.cumsum(self.shard_lengths)[:-1]])
    self.num_steps = int(sum(self.shard_lengths))
    if self.num_steps != int(self.episode_lengths.sum()):
      raise CorruptDataError(
          f"{path}: the shards hold {self.num_steps} steps but the episode index in "
          f"metadata.json sums to {int(self.episode_lengths.sum())}.")
    self._image_keys = [f"image_{c}" for c in self.spec.cameras]
    self._readers: dict[int, Any] = {}
    self._lock = threading.Lock()

  # Readers are opened per process: drop them when pickled into a worker.
  def __getstate__(self):
    state = self.__dict__.copy()
    state["_readers"] = {}
    state["_lock"] = None
    return state

  def __setstate__(self, state):
    self.__dict__.update(state)
    self._lock = threading.Lock()

  def __len__(self) -> int:
    return len(self.episode_lengths)

  def __repr__(self) -> str:
    return (f"EpisodeDataset({self.path!r}, split={self.split!r}: {len(self)} episodes, "
            f"{self.num_steps} steps, {self.spec.embodiment}/{self.spec.source})")

  def fingerprint(self) -> str:
    """A hash that changes when the data changes (spec, index, shard names and sizes)."""
    h = hashlib.sha256()
    h.update(json.dumps([self.name, self.config_name, self.version, self.split,
                         self.spec.to_json()], sort_keys=True).encode())
    h.update(self.episode_lengths.tobytes())
    for f in self.shard_files:
      h.update(os.path.basename(f).encode())
      h.update(str(os.path.getsize(f)).encode())
    return h.hexdigest()[:16]

  # ------------------------------------------------------------------ reading
  def _reader(self, shard: int):
    reader = self._readers.get(shard)
    if reader is not None:
      return reader
    from array_record.python import array_record_module  # pylint: disable=import-outside-toplevel
    with self._lock:
      if shard in self._readers:
        return self._readers[shard]
      path = self.shard_files[shard]
      try:
        reader = array_record_module.ArrayRecordReader(path, "readahead_buffer_size:0")
        count = reader.num_records()
      except Exception as e:  # missing file, unreadable footer...
        raise CorruptDataError(f"{path}: cannot open the shard: {e}") from e
      if count != self.shard_lengths[shard]:
        raise CorruptDataError(
            f"{path}: the shard holds {count} records but dataset_info.json says "
            f"{self.shard_lengths[shard]}; the file is truncated or damaged.")
      self._readers[shard] = reader
      return reader

  def _locate(self, index: int) -> tuple[int, int]:
    shard = int(np.searchsorted(self.shard_starts, index, side="right") - 1)
    return shard, int(index - self.shard_starts[shard])

  def _describe(self, index: int) -> str:
    episode = int(np.searchsorted(self.episode_starts, index, side="right") - 1)
    return f"step {index - self.episode_starts[episode]} of episode {episode}"

  def read_raw(self, indices: Sequence[int]) -> list[bytes]:
    """Serialized records at global step ``indices``; damage raises CorruptDataError."""
    by_shard: dict[int, list[tuple[int, int]]] = {}
    for i, index in enumerate(indices):
      if not 0 <= index < self.num_steps:
        raise IndexError(f"Step {index} out of range [0, {self.num_steps}) in {self.path}.")
      shard, record = self._locate(int(index))
      by_shard.setdefault(shard, []).append((i, record))
    out: list[Optional[bytes]] = [None] * len(indices)
    for shard, items in by_shard.items():
      reader = self._reader(shard)
      try:
        records = reader.read([r for _, r in items])
      except Exception:  # find the damaged record to name it
        for i, record in items:
          try:
            out[i] = reader.read([record])[0]
          except Exception as e:
            raise CorruptDataError(
                f"{self.shard_files[shard]}: record {record} "
                f"({self._describe(indices[i])}) is damaged: {e}") from e
        continue
      for (i, _), data in zip(items, records):
        out[i] = data
    return out  # type: ignore[return-value]

  def read_steps(self, episode: int, steps: Sequence[int], *, images: bool | Sequence[int] = True
                 ) -> dict[str, np.ndarray]:
    """Steps ``steps`` of ``episode``, stacked, as flat ``"observation/joints"`` keys.

    ``images``: decode camera images for all steps (True), none (False) or the listed
    positions in ``steps`` only (images of other steps are left out).
    """
    from tensorflow_datasets.core import decode  # pylint: disable=import-outside-toplevel
    if not 0 <= episode < len(self):
      raise IndexError(f"Episode {episode} out of range [0, {len(self)}) in {self.path}.")
    length = int(self.episode_lengths[episode])
    if min(steps) < 0 or max(steps) >= length:
      raise IndexError(f"Steps {min(steps)}..{max(steps)} out of range for episode {episode} "
                       f"of length {length} in {self.path}.")
    start = int(self.episode_starts[episode])
    indices = [start + int(t) for t in steps]
    raw = self.read_raw(indices)
    if images is True:
      with_images = set(range(len(steps)))
    elif images is False:
      with_images = set()
    else:
      with_images = set(int(i) for i in images)
    skip = {"observation": {k: decode.SkipDecoding() for k in self._image_keys}}
    rows = []
    for i, (record, index) in enumerate(zip(raw, indices)):
      try:
        row = self.features.deserialize_example_np(
            record, decoders=None if i in with_images else skip)
      except Exception as e:
        shard, r = self._locate(index)
        raise CorruptDataError(f"{self.shard_files[shard]}: record {r} "
                               f"({self._describe(index)}) does not decode: {e}") from e
      if int(row["episode_index"]) != episode or int(row["step_index"]) != steps[i]:
        shard, r = self._locate(index)
        raise CorruptDataError(
            f"{self.shard_files[shard]}: record {r} holds step {row['step_index']} of "
            f"episode {row['episode_index']}, the index says {self._describe(index)}.")
      rows.append(flatten(row))
    out = {}
    for key in rows[0]:
      if key.startswith("observation/image_"):
        if with_images:
          out[key] = np.stack([rows[i][key] for i in sorted(with_images)])
      elif key == "language_instruction":
        out[key] = np.array([as_text(r[key]) for r in rows], dtype=object)
      else:
        out[key] = np.stack([np.asarray(r[key]) for r in rows])
    return out

  def episode(self, e: int) -> Episode:
    """The whole episode ``e`` in the schema's nested layout (for inspection, videos)."""
    steps = self.read_steps(e, range(int(self.episode_lengths[e])))
    nested = nest({k: v for k, v in steps.items()
                   if k not in ("episode_index", "step_index")})
    metadata = {"embodiment": self.spec.embodiment, "source": self.spec.source,
                "fps": self.spec.fps, "task": self.tasks[e],
                "instruction": self.instructions[e], "success": bool(self.successes[e])}
    return {"steps": nested, "metadata": metadata}
