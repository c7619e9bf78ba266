"""Normalisation statistics of a dataset's vectors, computed once and cached.

Statistics (per-dimension mean, std, min, max, 1st and 99th percentiles) of ``joints``,
``proprio`` and ``action`` are computed over the steps whose mask is set, from at most
``max_steps`` steps of whole episodes drawn at random (fixed seed), reading no images.
They are cached as JSON under ``<cache_dir>/<dataset name>-<key>.json`` where the key
hashes the dataset's fingerprint (spec, episode index, shard sizes) and the transform
(``max_steps``, seed, format version): a rebuilt dataset or a changed transform gets new
statistics, never stale ones.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from typing import Any, Mapping, Optional

import numpy as np

from wam.data.reader import EpisodeDataset
from wam.files import atomic_write_json

VECTOR_KEYS = {"joints": "observation/joints", "proprio": "observation/proprio",
               "action": "action"}
MASK_KEYS = {"joints": "observation/joints_mask", "proprio": "observation/proprio_mask",
             "action": "action_mask"}
FORMAT_VERSION = 1
DEFAULT_CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "wam", "statistics")
NORMALIZATIONS = ("mean_std", "bounds", "none")


class MissingStatisticsError(FileNotFoundError):
  """Statistics were required from the cache but have not been computed."""


@dataclasses.dataclass(frozen=True)
class VectorStatistics:
  """Per-dimension statistics of one vector."""

  mean: np.ndarray
  std: np.ndarray
  min: np.ndarray
  max: np.ndarray
  q01: np.ndarray
  q99: np.ndarray
  count: int

  def to_json(self) -> dict:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v)
            for k, v in dataclasses.asdict(self).items()}

  @classmethod
  def from_json(cls, d: Mapping) -> "VectorStatistics":
    return cls(**{k: (int(v) if k == "count" else np.asarray(v, np.float32))
                  for k, v in d.items()})

  def normalize(self, x: np.ndarray, mode: str) -> np.ndarray:
    """``mean_std``: zero mean, unit std; ``bounds``: [q01, q99] to [-1, 1], clipped."""
    if mode == "none":
      return x
    if mode == "mean_std":
      # Constant dimensions (std 0) map to 0 instead of blowing up.
      return np.where(self.std > 1e-6, (x - self.mean) / np.maximum(self.std, 1e-6),
                      0.0).astype(np.float32)
    if mode == "bounds":
      span = self.q99 - self.q01
      y = np.where(span > 1e-6, 2 * (x - self.q01) / np.maximum(span, 1e-6) - 1, 0.0)
      return np.clip(y, -1, 1).astype(np.float32)
    raise ValueError(f"Unknown normalisation {mode!r}; choose one of {NORMALIZATIONS}.")

  def denormalize(self, y: np.ndarray, mode: str) -> np.ndarray:
    """Inverse of :meth:`normalize` (up to clipping), e.g. for a model's actions."""
    if mode == "none":
      return y
    if mode == "mean_std":
      return (y * np.where(self.std > 1e-6, self.std, 0.0) + self.mean).astype(np.float32)
    if mode == "bounds":
      return ((y + 1) / 2 * (self.q99 - self.q01) + self.q01).astype(np.float32)
    raise ValueError(f"Unknown normalisation {mode!r}; choose one of {NORMALIZATIONS}.")


Statistics = dict  # vector name -> VectorStatistics (only vectors the dataset has)


def compute(dataset: EpisodeDataset, *, max_steps: int = 100_000, seed: int = 0
            ) -> Statistics:
  """Statistics of ``dataset``'s vectors from at most ``max_steps`` steps (no images)."""
  rng = np.random.default_rng(seed)
  order = rng.permutation(len(dataset))
  names = [n for n in VECTOR_KEYS if dataset.spec.layout(n).dim]
  samples: dict[str, list[np.ndarray]] = {n: [] for n in names}
  used = 0
  for e in order:
    if used >= max_steps:
      break
    length = int(dataset.episode_lengths[e])
    steps = dataset.read_steps(int(e), range(length), images=False)
    for n in names:
      mask = steps[MASK_KEYS[n]].astype(bool)
      samples[n].append(steps[VECTOR_KEYS[n]][mask].astype(np.float64))
    used += length
  stats = {}
  for n in names:
    x = np.concatenate(samples[n]) if samples[n] else np.zeros((0, dataset.spec.layout(n).dim))
    if len(x) == 0:
      continue  # e.g. unlabeled video: no step has an action
    stats[n] = VectorStatistics(
        mean=x.mean(0).astype(np.float32), std=x.std(0).astype(np.float32),
        min=x.min(0).astype(np.float32), max=x.max(0).astype(np.float32),
        q01=np.quantile(x, 0.01, axis=0).astype(np.float32),
        q99=np.quantile(x, 0.99, axis=0).astype(np.float32), count=int(len(x)))
  return stats


def pool(parts: list[Statistics]) -> Statistics:
  """Statistics of several datasets taken together, weighted by their step counts.

  Mean and std are exact for the union of the samples; min and max are exact; the 1st
  and 99th percentiles are the outermost of the parts' (a bound, not a quantile).
  """
  if len(parts) == 1:
    return parts[0]
  pooled = {}
  for name in sorted({n for p in parts for n in p}):
    have = [p[name] for p in parts if name in p]
    n = np.array([v.count for v in have], np.float64)
    w = (n / n.sum())[:, None]
    means = np.stack([v.mean for v in have]).astype(np.float64)
    mean = (w * means).sum(0)
    var = (w * (np.stack([v.std for v in have]).astype(np.float64) ** 2
                + (means - mean) ** 2)).sum(0)
    pooled[name] = VectorStatistics(
        mean=mean.astype(np.float32), std=np.sqrt(var).astype(np.float32),
        min=np.min([v.min for v in have], 0), max=np.max([v.max for v in have], 0),
        q01=np.min([v.q01 for v in have], 0), q99=np.max([v.q99 for v in have], 0),
        count=int(n.sum()))
  return pooled


def pool_by_slot(parts: list[Statistics], layouts: list[Mapping[str, Any]]
                 ) -> list[Statistics]:
  """``pool`` for datasets whose vectors have different named slots (``wam.data.layout``).

  Each named slot is pooled over the datasets that have it, so that, for example, the
  arm's joints share one normalisation across `reach` and `push` while only `push`
  carries the block's position. ``layouts[i]`` maps vector names to part ``i``'s
  ``Layout``; returns each part's statistics in its own layout.
  """
  if len(parts) == 1:
    return list(parts)
  out: list[dict] = [{} for _ in parts]
  for name in sorted({n for p in parts for n in p}):
    have = [i for i, p in enumerate(parts) if name in p]
    slices: dict[str, list] = {}   # slot name -> [(part, VectorStatistics of the slot)]
    for i in have:
      layout = layouts[i][name]
      for slot in layout.slots:
        start = layout.offset(slot.name)
        slices.setdefault(slot.name, []).append((i, _slice(parts[i][name], start,
                                                           start + slot.size)))
    pooled = {slot: pool([{name: v} for _, v in group])[name]
              for slot, group in slices.items()}
    for i in have:
      pieces = [pooled[slot.name] for slot in layouts[i][name].slots]
      out[i][name] = VectorStatistics(
          **{f: np.concatenate([getattr(v, f) for v in pieces]).astype(np.float32)
             for f in ("mean", "std", "min", "max", "q01", "q99")},
          count=max(v.count for v in pieces))
  return out


def _slice(v: VectorStatistics, start: int, stop: int) -> VectorStatistics:
  return VectorStatistics(**{f: getattr(v, f)[start:stop] for f in
                             ("mean", "std", "min", "max", "q01", "q99")}, count=v.count)


def cache_key(dataset: EpisodeDataset, *, max_steps: int, seed: int) -> str:
  """Hash of the dataset's contents and of how statistics are computed."""
  transform = json.dumps({"max_steps": max_steps, "seed": seed, "format": FORMAT_VERSION},
                         sort_keys=True)
  return hashlib.sha256((dataset.fingerprint() + transform).encode()).hexdigest()[:16]


def cache_path(dataset: EpisodeDataset, cache_dir: str, *, max_steps: int, seed: int) -> str:
  key = cache_key(dataset, max_steps=max_steps, seed=seed)
  return os.path.join(cache_dir, f"{dataset.name}-{dataset.split}-{key}.json")


def load_or_compute(dataset: EpisodeDataset, cache_dir: Optional[str] = None, *,
                    max_steps: int = 100_000, seed: int = 0, compute_if_missing: bool = True
                    ) -> Statistics:
  """Cached statistics of ``dataset``; computed and cached on a miss if allowed."""
  cache_dir = cache_dir or DEFAULT_CACHE_DIR
  path = cache_path(dataset, cache_dir, max_steps=max_steps, seed=seed)
  if os.path.exists(path):
    with open(path) as f:
      return {k: VectorStatistics.from_json(v) for k, v in json.load(f)["vectors"].items()}
  if not compute_if_missing:
    raise MissingStatisticsError(
        f"No normalisation statistics for {dataset.path} (split {dataset.split}) at {path}. "
        "Compute them first (wam.data.statistics.load_or_compute, or run once with "
        "compute_statistics=True); a rebuilt dataset needs new statistics.")
  logging.info("Computing normalisation statistics of %s (at most %d steps).", dataset,
               max_steps)
  stats = compute(dataset, max_steps=max_steps, seed=seed)
  os.makedirs(cache_dir, exist_ok=True)
  # Atomically: hosts sharing a cache never see half a file.
  atomic_write_json(path, {"dataset": dataset.path, "split": dataset.split,
                           "fingerprint": dataset.fingerprint(), "max_steps": max_steps,
                           "seed": seed, "vectors": {k: v.to_json() for k, v in stats.items()}},
                    indent=1)
  return stats
