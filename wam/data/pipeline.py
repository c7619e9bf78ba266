"""The grain input pipeline: batches of windows from a weighted mixture of datasets.

    pipeline = Pipeline([DatasetRef(human_dir, weight=0.99), DatasetRef(robot_dir, 0.01)],
                        WindowConfig(num_frames=4, action_chunk=4), batch_size=32)
    iterator = iter(pipeline)
    batch = next(iterator)              # dict of numpy arrays, leading axis = batch
    state = iterator.get_state()        # JSON-able; save it beside the model checkpoint
    iterator.set_state(state)           # ... and resume exactly where it stopped

Each dataset becomes a :class:`~wam.data.window.WindowSource` (optionally of its first
``max_episodes`` episodes only), shuffled with a fixed seed (reshuffled each epoch) and
repeated. Datasets are interleaved in proportion to their weights
(``grain.MapDataset.mix``) into one global stream of windows that every host computes
alike; global batch ``k`` is elements ``[k*B, (k+1)*B)`` of that stream and host
``shard_index`` of ``shard_count`` reads only its contiguous block of ``B/shard_count``
rows of it (per-host sharding: by default ``jax.process_index()`` of
``jax.process_count()``). So the global batches do not depend on the number of hosts:
two processes train on exactly the batches that one process would. Windows are read by
``read_threads`` threads, batched, and optionally produced by ``worker_count`` worker
processes with prefetch. Everything is a function of the seed and the position, so the
iterator state is just a position.

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
from wam.data.window import Layouts, WindowConfig, WindowSource, check_instructions


@dataclasses.dataclass(frozen=True)
class DatasetRef:
  """One dataset of a mixture: its directory, split and sampling weight."""

  path: str
  weight: float = 1.0
  split: str = "train"
  name: str = ""  # defaults to the dataset's TFDS name
  max_episodes: int = 0  # > 0: only the split's first max_episodes episodes (data scaling)
  # True: the actions are behaviour to imitate (policy-mode targets). False: they only
  # condition the world model (play or exploration data; batch["imitate"] is False).
  imitate: bool = True


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
    self.datasets = [_first_episodes(EpisodeDataset(d.path, d.split), d.max_episodes)
                     for d in datasets]
    self.names = [d.name or ds.name for d, ds in zip(datasets, self.datasets)]
    if len(set(self.names)) != len(self.names):
      raise ValueError(f"Datasets in one mixture need distinct names, got {self.names}; "
                       "set DatasetRef.name.")
    # Before the statistics, which can take minutes (WindowSource checks again).
    for name, ds in zip(self.names, self.datasets):
      check_instructions(ds, window, name)
    specs = [ds.spec for ds in self.datasets]
    self.layouts = Layouts(*(union([s.layout(n) for s in specs], field=n)
                             for n in ("joints", "proprio", "action")))
    self.embodiments = sorted({s.embodiment for s in specs})
    self.statistics = {}
    if normalization != "none":
      own = {name: statistics_lib.load_or_compute(
          ds, statistics_dir, max_steps=statistics_max_steps,
          compute_if_missing=compute_statistics)
             for name, ds in zip(self.names, self.datasets)}
      # Datasets of one embodiment share one normalisation (pooled over them): an action
      # must mean the same motion in demonstrations and in play data.
      # Pooled per named slot: `push` shares the arm's slots with `reach` and adds its
      # block's position.
      for embodiment in self.embodiments:
        group = [(n, ds) for n, ds in zip(self.names, self.datasets)
                 if ds.spec.embodiment == embodiment]
        pooled = statistics_lib.pool_by_slot(
            [own[n] for n, _ in group],
            [{v: ds.spec.layout(v) for v in ("joints", "proprio", "action")}
             for _, ds in group])
        self.statistics.update({n: p for (n, _), p in zip(group, pooled)})
    self.normalization = normalization
    self.sources = [
        WindowSource(ds, window, layouts=self.layouts,
                     statistics=self.statistics.get(name), normalization=normalization,
                     embodiment_id=self.embodiments.index(ds.spec.embodiment),
                     dataset_id=i, on_corrupt=on_corrupt, imitate=ref.imitate)
        for i, (name, ds, ref) in enumerate(zip(self.names, self.datasets, datasets))]
    parts = []
    for i, source in enumerate(self.sources):
      ds = grain.MapDataset.source(source)
      if shuffle:
        ds = ds.shuffle(seed=seed * 1_000_003 + i)
      parts.append(ds.repeat(num_epochs))
    mixed = parts[0] if len(parts) == 1 else grain.MapDataset.mix(parts, self.weights)
    if shard_count > 1:
      mixed = grain.MapDataset.range(_host_length(len(mixed), batch_size, shard_index,
                                                  shard_count)).map(
          _HostRows(mixed, batch_size, shard_index, shard_count))
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


class _HostRows:
  """Element ``j`` of one host's stream: its row ``j % b`` of global batch ``j // b``."""

  def __init__(self, stream, global_batch: int, shard_index: int, shard_count: int):
    self.stream = stream
    self.local = global_batch // shard_count
    self.global_batch = global_batch
    self.offset = shard_index * self.local

  def __call__(self, j: int):
    batch, row = divmod(int(j), self.local)
    return self.stream[batch * self.global_batch + self.offset + row]


def _host_length(total: int, global_batch: int, shard_index: int, shard_count: int) -> int:
  """How many of ``total`` stream elements fall in this host's rows."""
  local = global_batch // shard_count
  full, rest = divmod(total, global_batch)
  return full * local + min(local, max(0, rest - shard_index * local))


class _FirstEpisodes:
  """The first ``n`` episodes of an :class:`EpisodeDataset` (everything else delegated).

  Windows and normalisation statistics both see only these episodes; the fingerprint
  changes with ``n``, so cached statistics of the whole split are not reused. The first
  episodes (not a random subset) so that smaller data scales are nested in larger ones.
  """

  def __init__(self, dataset: EpisodeDataset, n: int):
    self._dataset = dataset
    self.episode_lengths = dataset.episode_lengths[:n]

  def __getattr__(self, name: str):
    if name.startswith("__") or name == "_dataset":  # e.g. while unpickling in a worker
      raise AttributeError(name)
    return getattr(self._dataset, name)

  def __len__(self) -> int:
    return len(self.episode_lengths)

  def __repr__(self) -> str:
    return f"{self._dataset!r}[:{len(self)} episodes]"

  def fingerprint(self) -> str:
    return f"{self._dataset.fingerprint()}-first{len(self)}"


def _first_episodes(dataset: EpisodeDataset, max_episodes: int):
  if max_episodes < 0:
    raise ValueError(f"max_episodes must be >= 0 (0: all), got {max_episodes} for "
                     f"{dataset.path}.")
  if max_episodes == 0 or max_episodes >= len(dataset):
    if max_episodes > len(dataset):
      logging.warning("%s has %d episodes, fewer than max_episodes=%d: using all.",
                      dataset, len(dataset), max_episodes)
    return dataset
  return _FirstEpisodes(dataset, max_episodes)


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
                     name=name, max_episodes=d.get("max_episodes", 0),
                     imitate=d.get("imitate", True))
          for name, d in sorted(config.datasets.items())]
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
