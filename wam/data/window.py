"""Training windows cut from episodes, as a grain random-access data source.

A window is what the world action model learns from: ``num_frames`` time blocks, each a
camera frame, the joint angles and proprioception at that step and the chunk of
``action_chunk`` actions taken from it (frames are ``action_chunk`` steps apart). The
first ``num_context`` frames are context; the rest are to be predicted. A window starting
at step ``t0`` covers steps ``[t0, t0 + num_frames * action_chunk)``.

Element ``i`` of :class:`WindowSource` is a dict of numpy arrays (``T`` frames, ``V``
cameras, ``K`` actions per chunk; vectors padded to the shared layouts of a mixture):

  frames uint8[T,V,H,W,3]        camera_mask bool[V]
  joints f32[T,J]                joints_mask bool[T,J]
  proprio f32[T,P]               proprio_mask bool[T,P]
  actions f32[T,K,A]             action_mask bool[T,K,A]
  hand_keypoints f32[T,21,3]     hand_keypoints_mask bool[T]   (if configured)
  instruction int32[L]           instruction_mask bool[L]
  embodiment, dataset, episode, start, skipped: int32 scalars
  imitate: bool scalar (False: the actions only condition the world model)

Vectors are normalised with the statistics handed in (the pipeline pools them over the
datasets of one embodiment) before padding.
``skipped`` counts damaged windows replaced by another one when ``on_corrupt="skip"``.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Mapping, Optional, Sequence

import numpy as np

from wam.data import images, text
from wam.data.layout import Layout
from wam.data.reader import CorruptDataError, EpisodeDataset
from wam.data.schema import NUM_HAND_KEYPOINTS
from wam.data.statistics import Statistics, VECTOR_KEYS, MASK_KEYS

ON_CORRUPT = ("raise", "skip")
_MAX_SKIPS = 64


@dataclasses.dataclass(frozen=True)
class WindowConfig:
  """Shape of a training window."""

  num_frames: int = 4            # T: time blocks (frames) per window
  num_context: int = 1           # frames given as context; the rest are predicted
  action_chunk: int = 4          # K: actions per block; frames are K steps apart
  cameras: tuple[str, ...] = ("front",)
  image_size: tuple[int, int] = (64, 64)
  max_instruction_length: int = 64  # bytes
  window_stride: int = 1         # steps between the starts of consecutive windows
  hand_keypoints: bool = False

  def __post_init__(self):
    if self.num_frames < 1 or self.action_chunk < 1 or self.window_stride < 1:
      raise ValueError(f"num_frames, action_chunk and window_stride must be >= 1: {self}.")
    if not 0 <= self.num_context <= self.num_frames:
      raise ValueError(f"num_context must be in [0, num_frames], got {self.num_context}.")
    if not self.cameras:
      raise ValueError("A window needs at least one camera.")

  @property
  def span(self) -> int:
    """Steps covered by one window."""
    return self.num_frames * self.action_chunk


@dataclasses.dataclass(frozen=True)
class Layouts:
  """Shared padded layouts of a mixture's vectors."""

  joints: Layout
  proprio: Layout
  action: Layout

  def get(self, name: str) -> Layout:
    return getattr(self, name)


def check_instructions(dataset: EpisodeDataset, window: WindowConfig, name: str = "") -> None:
  """Raises ``ValueError`` if an instruction of ``dataset`` exceeds the window's length.

  ``text.encode`` would cut it silently (rope's side is its last word), training and
  serving would disagree (the policy server refuses long instructions), and a fix must
  not change a checkpoint's input size unnoticed. Reads the episode index: each
  episode's instruction, no pass over the data. ``name``: the dataset's name in the
  mixture (default: its own).
  """
  text.check_lengths(dataset.instructions[:len(dataset)], window.max_instruction_length,
                     where=f"Dataset {name or dataset.name!r} ({dataset.path}, split "
                           f"{dataset.split!r})")


class WindowSource:
  """All windows of one dataset, random access (implements grain's data source protocol)."""

  def __init__(self, dataset: EpisodeDataset, window: WindowConfig, *,
               layouts: Optional[Layouts] = None, statistics: Optional[Statistics] = None,
               normalization: str = "mean_std", embodiment_id: int = 0,
               dataset_id: int = 0, on_corrupt: str = "raise", imitate: bool = True):
    if on_corrupt not in ON_CORRUPT:
      raise ValueError(f"on_corrupt must be one of {ON_CORRUPT}, got {on_corrupt!r}.")
    spec = dataset.spec
    self.dataset = dataset
    self.window = window
    self.layouts = layouts or Layouts(spec.joints, spec.proprio, spec.action)
    self.statistics = statistics or {}
    missing = [n for n in VECTOR_KEYS if spec.layout(n).dim and n not in self.statistics
               and normalization != "none"]
    if missing and statistics is not None:
      logging.warning("%s: no statistics for %s (no step has them); left unnormalised.",
                      dataset, missing)
    self.normalization = normalization
    self.embodiment_id = embodiment_id
    self.dataset_id = dataset_id
    self.imitate = imitate
    self.on_corrupt = on_corrupt
    for name in VECTOR_KEYS:  # fail now, not at the first read, if a slot has no place
      self.layouts.get(name).scatter_index(spec.layout(name))
    self._image_plan = self._check_images()
    check_instructions(dataset, window)
    # Window starts per episode: 0, stride, ... up to length - span.
    counts = np.maximum(0, (dataset.episode_lengths - window.span) // window.window_stride + 1)
    if counts.sum() == 0:
      raise ValueError(
          f"A window of {window.num_frames} frames x {window.action_chunk} steps = "
          f"{window.span} steps is longer than every episode of {dataset.path} (longest "
          f"{int(dataset.episode_lengths.max())} steps); use fewer frames or a shorter chunk.")
    self._counts = counts
    self._offsets = np.concatenate([[0], np.cumsum(counts)])
    self._tokens = {}

  def _check_images(self) -> images.Plan:
    spec = self.dataset.spec
    try:
      plan = images.resize_plan(spec.image_size, self.window.image_size)
    except ValueError as e:
      raise ValueError(
          f"image_size: {self.dataset.path} has {spec.image_size} images, the window wants "
          f"{self.window.image_size}: {e}") from None
    if not set(self.window.cameras) & set(spec.cameras):
      logging.warning("%s has none of the window's cameras %s (it has %s): its frames are "
                      "all masked.", self.dataset, self.window.cameras, spec.cameras)
    return plan

  def __len__(self) -> int:
    return int(self._offsets[-1])

  def __repr__(self) -> str:
    return f"WindowSource({self.dataset!r}, {len(self)} windows)"

  def locate(self, index: int) -> tuple[int, int]:
    """``(episode, start step)`` of window ``index``."""
    index = int(index) % len(self)
    episode = int(np.searchsorted(self._offsets, index, side="right") - 1)
    return episode, int(index - self._offsets[episode]) * self.window.window_stride

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    index = int(index)
    for skipped in range(_MAX_SKIPS + 1):
      try:
        window = self._read(index)
        window["skipped"] = np.int32(skipped)
        return window
      except CorruptDataError as e:
        if self.on_corrupt == "raise":
          raise
        logging.warning("Skipping a damaged window: %s", e)
        # A fixed, well-spread replacement keeps skipping deterministic.
        index = (index * 2654435761 + 1) % len(self)
    raise CorruptDataError(f"{self.dataset.path}: {_MAX_SKIPS} damaged windows in a row; "
                           "the dataset is too damaged to train on.")

  def __getitems__(self, indices: Sequence[int]) -> list[dict[str, np.ndarray]]:
    return [self[i] for i in indices]

  def _read(self, index: int) -> dict[str, np.ndarray]:
    cfg, spec = self.window, self.dataset.spec
    episode, start = self.locate(index)
    T, K = cfg.num_frames, cfg.action_chunk
    frame_positions = np.arange(T) * K  # positions of frame steps inside the window
    steps = self.dataset.read_steps(episode, range(start, start + cfg.span),
                                    images=frame_positions.tolist())
    out: dict[str, np.ndarray] = {}
    h, w = cfg.image_size
    frames = np.zeros((T, len(cfg.cameras), h, w, 3), np.uint8)
    camera_mask = np.zeros(len(cfg.cameras), bool)
    for v, cam in enumerate(cfg.cameras):
      key = f"observation/image_{cam}"
      if key in steps:
        frames[:, v] = images.to_uint8(images.resize(steps[key], self._image_plan))
        camera_mask[v] = True
    out["frames"], out["camera_mask"] = frames, camera_mask
    for name in ("joints", "proprio"):
      values, mask = self._vector(steps, name)
      out[name], out[f"{name}_mask"] = values[frame_positions], mask[frame_positions]
    actions, action_mask = self._vector(steps, "action")
    out["actions"] = actions.reshape(T, K, -1)
    out["action_mask"] = action_mask.reshape(T, K, -1)
    if cfg.hand_keypoints:
      if spec.hand_keypoints:
        out["hand_keypoints"] = steps["observation/hand_keypoints"][frame_positions]
        out["hand_keypoints_mask"] = steps["observation/hand_keypoints_mask"][frame_positions]
      else:
        out["hand_keypoints"] = np.zeros((T, NUM_HAND_KEYPOINTS, 3), np.float32)
        out["hand_keypoints_mask"] = np.zeros(T, bool)
    instruction = str(steps["language_instruction"][0])
    if instruction not in self._tokens:
      # The episode index holds each episode's first instruction; a later step may differ.
      text.check_lengths([instruction], cfg.max_instruction_length,
                         where=f"{self.dataset.path} episode {episode} step {start}")
      self._tokens[instruction] = text.encode(instruction, cfg.max_instruction_length)
    out["instruction"], out["instruction_mask"] = self._tokens[instruction]
    out["embodiment"] = np.int32(self.embodiment_id)
    out["dataset"] = np.int32(self.dataset_id)
    out["imitate"] = np.bool_(self.imitate)
    out["episode"] = np.int32(episode)
    out["start"] = np.int32(start)
    return out

  def _vector(self, steps: Mapping[str, np.ndarray], name: str
              ) -> tuple[np.ndarray, np.ndarray]:
    """One vector over all window steps, normalised and padded: ``(values, mask)``."""
    target = self.layouts.get(name)
    key = VECTOR_KEYS[name]
    if key not in steps:  # the dataset has no such vector: all padding
      shape = (self.window.span, target.dim)
      return np.zeros(shape, np.float32), np.zeros(shape, bool)
    x = steps[key]
    if name in self.statistics:
      x = self.statistics[name].normalize(x, self.normalization)
    return target.pack(self.dataset.spec.layout(name), x, steps[MASK_KEYS[name]])

