"""The grain input pipeline: batches of windows from a weighted mixture of datasets.

    pipeline = Pipeline([DatasetRef(human_dir, weight=0.99), DatasetRef(robot_dir, 0.01)],
                        WindowConfig(num_frames=4, action_chunk=4), batch_size=32)
    iterator = iter(pipeline)
    batch = next(iterator)              # dict of numpy arrays, leading axis = batch
    state = iterator.get_state()        # JSON-able; save it beside the model checkpoint
    iterator.set_state(state)           # ... and resume exactly where it stopped

Each dataset becomes a :class:`~wam.data.window.WindowSource`; this process keeps every
``shard_count``-th window starting at ``shard_index`` (per-host sharding: by default
``jax.process_index()`` of ``jax.process_count()``), shuffles them with a fixed seed
(reshuffled each epoch) and repeats. Datasets are interleaved in proportion to their
weights (``grain.MapDataset.mix``), read by ``read_threads`` threads, batched, and
optionally produced by ``worker_count`` worker processes with prefetch. Everything is a
function of the seed and the position, so the iterator state is just a position.

The datasets of one mixture must agree: vectors are padded to the union of their
named-slot layouts (a slot with two sizes is an error naming the field and the slot),
and images must rescale to the window's size by an integer factor.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, Iterator, Optional, Sequence

import grain
import numpy as np

from wam.data import statistics as statistics_lib
from wam.data.layout import union
from wam.data.reader import EpisodeDataset
from wam.data.window import Layouts, WindowConfig, WindowSource


@dataclasses.dataclass(frozen=True)
class DatasetRef:
  """One dataset of a mixture: its directory, split and sampling weight."""

  path: str
  weight: float = 1.0
  split: str = "train"
  name: str = ""  # defaults to the dataset's TFDS name


class Pipeline:
  """Batches of training windows; iterate it for a checkpointable iterator."""

  def __init__(self, datasets: Sequence[DatasetRef], window: WindowConfig, *,
               batch_size: int, seed: int = 0, shuffle: bool = True,
               num_epochs: Optional[int] = None, shard_index: Optional[int] = None,
               shard_count: Optional[int] = None, normalization: str = "mean_std",
               statistics_dir: Optional[str] = None, compute_statistics: bool = True,
               statistics_max_steps: int = 100_000, worker_count: int = 0,
               worker_buffer_size: int = 2, read_threads: int = 4,
               prefetch_buffer_size: int = 64, on_corrupt: str = "raise",
               drop_remainder: bool = True):
    if not datasets:
      raise ValueError("A pipeline needs at least one dataset.")
    weights = np.array([d.weight for d in datasets], np.float64)
    if (weights <= 0).any() or not np.isfinite(weights).all():
      raise ValueError(f"Mixture weights must be positive, got {weights.tolist()}.")
    if normalization not in statistics_lib.NORMALIZATIONS:
      raise ValueError(f"Unknown normalization {normalization!r}; choose one of "
                       f"{statistics_lib.NORMALIZATIONS}.")
    shard_index, shard_count = _shard(shard_index, shard_count)
    if batch_size % shard_count:
      raise ValueError(f"The global batch size {batch_size} does not split evenly over "
                       f"{shard_count} hosts.")
    self.window = window
    self.global_batch_size = batch_size
    self.batch_size = batch_size // shard_count
    self.shard_index, self.shard_count = shard_index, shard_count
    self.weights = (weights / weights.sum()).tolist()
    self.datasets = [EpisodeDataset(d.path, d.split) for d in datasets]
    self.names = [d.name or ds.name for d, ds in zip(datasets, self.datasets)]
    if len(set(self.names)) != len(self.names):
      raise ValueError(f"Datasets in one mixture need distinct names, got {self.names}; "
                       "set DatasetRef.name.")
    specs = [ds.spec for ds in self.datasets]
    self.layouts = Layouts(*(union([s.layout(n) for s in specs], field=n)
                             for n in ("joints", "proprio", "action")))
    self.embodiments = sorted({s.embodiment for s in specs})
    self.statistics = {}
    if normalization != "none":
      for name, ds in zip(self.names, self.datasets):
        self.statistics[name] = statistics_lib.load_or_compute(
            ds, statistics_dir, max_steps=statistics_max_steps,
            compute_if_missing=compute_statistics)
    self.normalization = normalization
    self.sources = [
        WindowSource(ds, window, layouts=self.layouts,
                     statistics=self.statistics.get(name), normalization=normalization,
                     embodiment_id=self.embodiments.index(ds.spec.embodiment),
                     dataset_id=i, on_corrupt=on_corrupt)
        for i, (name, ds) in enumerate(zip(self.names, self.datasets))]
    parts = []
    for i, source in enumerate(self.sources):
      ds = grain.MapDataset.source(source)
      if shard_count > 1:
        if len(source) < shard_count:
          raise ValueError(f"{self.names[i]} has {len(source)} windows, fewer than the "
                           f"{shard_count} hosts that share it.")
        ds = ds[shard_index::shard_count]
      if shuffle:
        ds = ds.shuffle(seed=seed * 1_000_003 + i)
      parts.append(ds.repeat(num_epochs))
    mixed = parts[0] if len(parts) == 1 else grain.MapDataset.mix(parts, self.weights)
    iter_ds = mixed.to_iter_dataset(grain.ReadOptions(
        num_threads=read_threads, prefetch_buffer_size=prefetch_buffer_size))
    iter_ds = iter_ds.batch(self.batch_size, drop_remainder=drop_remainder)
    if worker_count > 0:
      _ensure_flags_parsed()
      iter_ds = iter_ds.mp_prefetch(grain.MultiprocessingOptions(
          num_workers=worker_count, per_worker_buffer_size=worker_buffer_size))
    self.dataset: grain.IterDataset = iter_ds
    logging.info("%s", self.describe())

  def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
    """A fresh iterator; it has ``get_state()`` and ``set_state(state)``."""
    return iter(self.dataset)

  def describe(self) -> str:
    lines = [f"Pipeline: batch {self.batch_size} per host (global {self.global_batch_size}), "
             f"host {self.shard_index}/{self.shard_count}, window {self.window}"]
    for name, weight, source in zip(self.names, self.weights, self.sources):
      lines.append(f"  {name}: weight {weight:.3f}, {len(source.dataset)} episodes, "
                   f"{len(source)} windows ({source.dataset.spec.embodiment})")
    lines.append(f"  layouts: joints {self.layouts.joints.names}, proprio "
                 f"{self.layouts.proprio.names}, action {self.layouts.action.names}")
    return "\n".join(lines)

  def element_spec(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of every field of a batch (e.g. to initialise a model)."""
    window = self.sources[0][0]
    return {k: ((self.batch_size,) + np.shape(v), np.asarray(v).dtype)
            for k, v in window.items()}

  def example_batch(self) -> dict[str, np.ndarray]:
    """A batch of the first windows of the first dataset (no shuffling), for tests and
    self-describing checkpoints."""
    source = self.sources[0]
    windows = [source[i % len(source)] for i in range(self.batch_size)]
    return {k: np.stack([w[k] for w in windows]) for k in windows[0]}


def _ensure_flags_parsed() -> None:
  """Grain's worker processes read absl flags; outside an absl app (notebooks, tests)
  nothing has parsed them, so take the defaults."""
  from absl import flags  # pylint: disable=import-outside-toplevel
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


def _shard(index: Optional[int], count: Optional[int]) -> tuple[int, int]:
  if index is None or count is None:
    import jax  # pylint: disable=import-outside-toplevel
    index = jax.process_index() if index is None else index
    count = jax.process_count() if count is None else count
  if not 0 <= index < count:
    raise ValueError(f"shard_index {index} is not in [0, {count}).")
  return index, count


def from_config(config: Any, *, shard_index: Optional[int] = None,
                shard_count: Optional[int] = None) -> Pipeline:
  """A :class:`Pipeline` from a ``data`` ConfigDict (see :mod:`wam.data.config`)."""
  refs = [DatasetRef(path=os.path.expanduser(d.path), weight=d.weight, split=d.split,
                     name=name) for name, d in sorted(config.datasets.items())]
  window = WindowConfig(num_frames=config.num_frames, num_context=config.num_context,
                        action_chunk=config.action_chunk, cameras=tuple(config.cameras),
                        image_size=tuple(config.image_size),
                        max_instruction_length=config.max_instruction_length,
                        window_stride=config.window_stride,
                        hand_keypoints=config.hand_keypoints)
  return Pipeline(refs, window, batch_size=config.batch_size, seed=config.seed,
                  shuffle=config.shuffle,
                  num_epochs=None if config.num_epochs <= 0 else config.num_epochs,
                  shard_index=shard_index, shard_count=shard_count,
                  normalization=config.normalization,
                  statistics_dir=config.statistics_dir or None,
                  compute_statistics=config.compute_statistics,
                  worker_count=config.worker_count, read_threads=config.read_threads,
                  prefetch_buffer_size=config.prefetch_buffer_size,
                  on_corrupt=config.on_corrupt)
