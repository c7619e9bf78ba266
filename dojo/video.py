"""Writing frames to GIF/MP4 and image grids (for humans looking at episodes)."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np


def tile(frames: Sequence[np.ndarray], pad: int = 2) -> np.ndarray:
  """Places equally sized [..., H, W, 3] images side by side with a white gap."""
  frames = [np.asarray(f) for f in frames]
  gap = np.full(frames[0].shape[:-2] + (pad, 3), 255, np.uint8)
  out = []
  for i, f in enumerate(frames):
    if i:
      out.append(gap)
    out.append(f)
  return np.concatenate(out, axis=-2)


def grid(images: np.ndarray, columns: int, pad: int = 2) -> np.ndarray:
  """Arranges uint8[N, H, W, 3] images in a grid with ``columns`` columns."""
  images = np.asarray(images)
  n, h, w, _ = images.shape
  rows = -(-n // columns)
  canvas = np.full((rows * (h + pad) - pad, columns * (w + pad) - pad, 3), 255, np.uint8)
  for i, img in enumerate(images):
    r, c = divmod(i, columns)
    canvas[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = img
  return canvas


def write_video(path: str, frames: np.ndarray, fps: float = 25.0) -> str:
  """Writes uint8[T, H, W, 3] frames as GIF or MP4 (by extension); returns the path."""
  import imageio.v2 as imageio  # pylint: disable=import-outside-toplevel
  frames = np.asarray(frames)
  if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
    raise ValueError(f"write_video: expected uint8[T, H, W, 3] frames, got "
                     f"{frames.dtype}{list(frames.shape)}.")
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  if path.endswith(".gif"):
    imageio.mimsave(path, list(frames), duration=1.0 / fps, loop=0)
  elif path.endswith(".mp4"):
    # MP4 encoders want even sizes; pad with white.
    h, w = frames.shape[1:3]
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), constant_values=255)
    imageio.mimsave(path, list(frames), fps=fps, macro_block_size=1)
  else:
    raise ValueError(f"write_video: unknown video extension in {path!r} (use .gif or .mp4).")
  return path
