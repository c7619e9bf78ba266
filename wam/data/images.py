"""Integer-factor image rescaling: area down-sampling, nearest up-sampling, per side.

Frames of another size than a dataset's (importers) or a window's (the loader) are
rescaled only by whole factors, so no pixel is interpolated from a guess.
"""

from __future__ import annotations

import numpy as np

Plan = tuple[tuple[str, int], tuple[str, int]]  # per side: ("same"|"down"|"up", factor)


def resize_plan(size: tuple[int, int], target: tuple[int, int]) -> Plan:
  """How to rescale ``size`` to ``target``; ValueError if a side has no integer factor."""
  plan = []
  for src, dst in zip(size, target):
    if src == dst:
      plan.append(("same", 1))
    elif src % dst == 0:
      plan.append(("down", src // dst))
    elif dst % src == 0:
      plan.append(("up", dst // src))
    else:
      raise ValueError(f"{size[0]}x{size[1]} does not rescale to {target[0]}x{target[1]} "
                       "by an integer factor per side.")
  return plan[0], plan[1]


def resize(frames: np.ndarray, plan: Plan) -> np.ndarray:
  """Applies ``plan`` to ``[..., H, W, C]`` frames; down-sampled results are float32.

  Uses array methods only, so numpy and (traced) JAX arrays both work.
  """
  for axis, (kind, factor) in zip((frames.ndim - 3, frames.ndim - 2), plan):
    if kind == "down":  # area: the mean of each factor-long block
      shape = frames.shape[:axis] + (frames.shape[axis] // factor, factor) + frames.shape[
          axis + 1:]
      frames = frames.reshape(shape).mean(axis=axis + 1, dtype=np.float32)
    elif kind == "up":  # nearest
      frames = frames.repeat(factor, axis=axis)
  return frames


def to_uint8(frames: np.ndarray) -> np.ndarray:
  """Rounds float pixel values in [0, 255] to uint8 (uint8 input is returned as is)."""
  if frames.dtype == np.uint8:
    return frames
  return np.clip(np.rint(frames), 0, 255).astype(np.uint8)
