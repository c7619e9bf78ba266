"""Camera frames as the policy server takes them: uint8 [H, W, 3] at a chosen size.

``resize`` is exact area resampling (each output pixel is the mean of the source area it
covers, partial pixels weighted by overlap), so any size maps to any other. At whole
factors it equals what the server and the data loader do (``wam.data.images``: area
down-sampling, nearest up-sampling), up to rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def as_rgb(image: Any) -> np.ndarray:
  """uint8 [H, W, 3] from uint8 or float-in-[0, 1] images, grey [H, W] or RGBA.

  Raises:
    ValueError: an image that is none of those.
  """
  image = np.asarray(image)
  if image.ndim == 2:
    image = np.repeat(image[..., None], 3, axis=-1)
  if image.ndim != 3 or image.shape[-1] not in (3, 4):
    raise ValueError(f"A camera image is [H, W, 3] (or grey or RGBA), got {image.shape}.")
  image = image[..., :3]
  if image.dtype == np.uint8:
    return image
  if image.dtype.kind == "f":
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
  return np.clip(image, 0, 255).astype(np.uint8)


def _area_weights(src: int, dst: int) -> np.ndarray:
  """[dst, src]: how much of each source pixel each output pixel covers (rows sum to 1)."""
  edges = np.arange(dst + 1, dtype=np.float64) * (src / dst)
  pixels = np.arange(src, dtype=np.float64)[None, :]
  overlap = np.minimum(edges[1:, None], pixels + 1) - np.maximum(edges[:-1, None], pixels)
  overlap = np.clip(overlap, 0.0, None)
  return overlap / overlap.sum(axis=1, keepdims=True)


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """``image`` uint8 [H, W, 3] at ``size`` (height, width) by area resampling."""
  image = as_rgb(image)
  height, width = int(size[0]), int(size[1])
  if image.shape[:2] == (height, width):
    return image
  rows = _area_weights(image.shape[0], height)
  cols = _area_weights(image.shape[1], width)
  out = np.einsum("ih,hwc,jw->ijc", rows, image.astype(np.float64), cols)
  return np.clip(np.rint(out), 0, 255).astype(np.uint8)
