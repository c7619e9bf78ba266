"""Pairs of frames ``(frame_t, frame_t+gap)`` from a stored dataset, with their actions."""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import numpy as np

from wam.data.reader import EpisodeDataset


class FramePairs(NamedTuple):
  """Pairs of frames (uint8 [N,H,W,3]) with the true action between them if known."""
  prev: np.ndarray
  next: np.ndarray
  action: Optional[np.ndarray]   # f32[N, A] (the action at the first frame) or None

  def __len__(self) -> int:
    return len(self.prev)

  def take(self, idx: np.ndarray) -> "FramePairs":
    return FramePairs(self.prev[idx], self.next[idx],
                      None if self.action is None else self.action[idx])


def frame_pairs(dataset: EpisodeDataset, *, camera: Optional[str] = None, gap: int = 1,
                max_episodes: Optional[int] = None, action_slots: Optional[Sequence[str]] = None
                ) -> FramePairs:
  """All pairs ``(frame_t, frame_t+gap)`` of a stored dataset split.

  ``action``: the dataset's action at ``t`` (restricted to ``action_slots`` when given)
  where every step of the pair is labelled, else None (unlabeled video).
  """
  spec = dataset.spec
  camera = camera or (spec.cameras[0] if spec.cameras else None)
  if camera not in spec.cameras:
    raise ValueError(f"{dataset.path}: no camera {camera!r}; it has {list(spec.cameras)}.")
  key = f"observation/image_{camera}"
  columns = None
  if spec.action.dim and action_slots:
    sizes = {s.name: s.size for s in spec.action.slots}
    columns = np.concatenate([spec.action.offset(s) + np.arange(sizes[s])
                              for s in action_slots])
  prev, next_, actions = [], [], []
  count = len(dataset) if max_episodes is None else min(len(dataset), max_episodes)
  for e in range(count):
    steps = dataset.read_steps(e, range(int(dataset.episode_lengths[e])))
    frames = steps[key]
    if len(frames) <= gap:
      continue
    prev.append(frames[:-gap])
    next_.append(frames[gap:])
    if spec.action.dim:
      a = steps["action"][:-gap]
      mask = steps["action_mask"][:-gap]
      if not mask.all():
        # The pair is usable as video; drop the label of unlabeled steps entirely.
        a = np.where(mask[:, None], a, np.nan)
      actions.append(a if columns is None else a[:, columns])
  if not prev:
    raise ValueError(f"{dataset.path}: no episode is longer than gap={gap} steps.")
  action = None
  if actions:
    action = np.concatenate(actions).astype(np.float32)
  return FramePairs(np.concatenate(prev), np.concatenate(next_), action)
