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


def synthetic_batch(batch_size: int = 4, *, num_frames: int = 4, action_chunk: int = 2,
                    image_size: tuple[int, int] = (16, 16), cameras: Sequence[str] = ("front",),
                    joints: int = 3, proprio: int = 2, action: int = 3,
                    max_instruction_length: int = 16, seed: int = 0) -> dict[str, np.ndarray]:
  """A batch of training windows shaped like ``wam.data.Pipeline``'s, without a dataset.

  Windows are cut from :func:`synthetic_episode` (moving squares whose joints and
  actions follow the square), so a model can learn them; values are not normalised.
  """
  from wam.data import text  # pylint: disable=import-outside-toplevel
  from wam.data.schema import EpisodeSpec  # pylint: disable=import-outside-toplevel
  spec = EpisodeSpec.from_json(dict(
      embodiment="synthetic", source="sim", cameras=list(cameras), image_size=list(image_size),
      joints=[["q", joints]], proprio=[["p", proprio]] if proprio else [],
      action=[["a", action]], hand_keypoints=False, privileged_dim=0, fps=10.0))
  span = num_frames * action_chunk
  out: dict[str, list] = {}
  for b in range(batch_size):
    steps = synthetic_episode(spec, span + 1, seed * 7919 + b)["steps"]
    obs = steps["observation"]
    pos = np.arange(num_frames) * action_chunk
    window = {
        "frames": np.stack([obs[f"image_{c}"][pos] for c in cameras], 1),
        "camera_mask": np.ones(len(cameras), bool),
        "joints": obs["joints"][pos], "joints_mask": np.ones((num_frames, joints), bool),
        "proprio": obs["proprio"][pos] if proprio else np.zeros((num_frames, 0), np.float32),
        "proprio_mask": np.ones((num_frames, proprio), bool),
        "actions": steps["action"][:span].reshape(num_frames, action_chunk, action),
        "action_mask": np.ones((num_frames, action_chunk, action), bool),
        "embodiment": np.int32(0), "dataset": np.int32(0), "episode": np.int32(b),
        "start": np.int32(0), "skipped": np.int32(0)}
    tokens, mask = text.encode(str(steps["language_instruction"][0]), max_instruction_length)
    window["instruction"], window["instruction_mask"] = tokens, mask
    for k, v in window.items():
      out.setdefault(k, []).append(v)
  return {k: np.stack(v) for k, v in out.items()}
