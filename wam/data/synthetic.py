"""Small deterministic episodes for tests, benchmarks and examples (no simulator needed).

Each episode shows a coloured square moving across a dark background; the joints
follow the square and the action is the next step's joint change, so the values are
predictable from one another (a model can actually learn them) and every value is a
function of ``(seed, episode, step)``.
"""

from __future__ import annotations

from typing import Iterator, Optional, Sequence

import numpy as np

from wam.data.schema import Episode, EpisodeSpec, NUM_HAND_KEYPOINTS


def synthetic_episode(spec: EpisodeSpec, length: int, seed: int, *,
                      instruction: Optional[str] = None, task: str = "synthetic") -> Episode:
  """One episode of ``length`` steps that follows ``spec``."""
  rng = np.random.default_rng(seed)
  h, w = spec.image_size
  start, velocity = rng.uniform(0.2, 0.8, 2), rng.uniform(-0.02, 0.02, 2)
  t = np.arange(length)
  centre = np.clip(start[None] + velocity[None] * t[:, None], 0.05, 0.95)  # [T, 2]
  colour = rng.integers(80, 256, 3).astype(np.uint8)
  observation = {}
  ys, xs = np.mgrid[0:h, 0:w]
  size = max(2, min(h, w) // 8)
  for c, cam in enumerate(spec.cameras):
    frames = np.full((length, h, w, 3), 20 + 10 * c, np.uint8)
    cy, cx = (centre[:, 0] * h).astype(int), (centre[:, 1] * w).astype(int)
    inside = (np.abs(ys[None] - cy[:, None, None]) <= size) & (
        np.abs(xs[None] - cx[:, None, None]) <= size)
    frames[inside] = colour
    observation[f"image_{cam}"] = frames
  phase = rng.uniform(0, np.pi)
  for name in ("joints", "proprio"):
    dim = spec.layout(name).dim
    if dim:
      k = np.arange(dim)
      observation[name] = (np.sin(phase + 0.1 * t[:, None] * (1 + k[None] % 3))
                           + centre[:, :1]).astype(np.float32)
  if spec.hand_keypoints:
    base = np.concatenate([centre, np.zeros((length, 1))], axis=1)[:, None, :]
    offsets = rng.normal(0, 0.02, (1, NUM_HAND_KEYPOINTS, 3))
    observation["hand_keypoints"] = (base + offsets).astype(np.float32)
  if spec.privileged_dim:
    observation["privileged"] = np.tile(centre, (1, spec.privileged_dim))[
        :, :spec.privileged_dim].astype(np.float32)
  steps = {"observation": observation,
           "reward": (t == length - 1).astype(np.float32),
           "is_terminal": t == length - 1,
           "language_instruction": np.array([instruction or f"move the square {seed % 4}"]
                                            * length)}
  if spec.action.dim:
    action = rng.normal(0, 0.1, (length, spec.action.dim)).astype(np.float32)
    if "joints" in observation and spec.joints.dim == spec.action.dim:
      action[:-1] = np.diff(observation["joints"], axis=0)
    steps["action"] = action
    action[-1] = 0.0  # RLDS: the last step's action is padding
    steps["action_mask"] = t < length - 1
  return {"steps": steps, "metadata": {"task": task, "success": True,
                                       "instruction": instruction or f"move the square "
                                                                     f"{seed % 4}"}}


def synthetic_episodes(spec: EpisodeSpec, num_episodes: int,
                       lengths: int | Sequence[int] = 20, seed: int = 0
                       ) -> Iterator[Episode]:
  """``num_episodes`` episodes; ``lengths`` is one length or one per episode."""
  for e in range(num_episodes):
    length = lengths if isinstance(lengths, int) else lengths[e]
    yield synthetic_episode(spec, length, seed * 100_003 + e)
