"""Pictures for humans: image grids, videos, dreamed-vs-real rollouts and metric plots.

Host-side numpy and matplotlib only. Images are ``uint8[..., H, W, 3]``; functions
taking frames also accept float frames in ``[0, 1]`` (see :func:`to_uint8`). Plots use
matplotlib's ``Figure`` directly (Agg canvas), never ``pyplot``, so they neither change
the global backend nor need a display.
"""

from __future__ import annotations

import math
import os
from typing import Mapping, Optional, Sequence

import numpy as np

CONTEXT_COLOR = (40, 90, 230)  # blue border: a frame the model was given (context)
DREAM_COLOR = (220, 40, 40)  # red border: a frame the model imagined
WHITE = 255


def to_uint8(frames: np.ndarray) -> np.ndarray:
  """Converts float frames in ``[0, 1]`` to uint8 ``[0, 255]`` (rounded, clipped).

  Args:
    frames: float (numpy or JAX) array with values in ``[0, 1]``; uint8 input is
      returned unchanged.

  Returns:
    A uint8 numpy array of the same shape.
  """
  frames = np.asarray(frames)
  if frames.dtype == np.uint8:
    return frames
  return np.clip(np.rint(frames.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)


def tile(frames: Sequence[np.ndarray], pad: int = 2) -> np.ndarray:
  """Places equally sized [..., H, W, 3] images side by side with a white gap."""
  frames = [np.asarray(f) for f in frames]
  gap = np.full(frames[0].shape[:-2] + (pad, 3), WHITE, np.uint8)
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
  canvas = np.full((rows * (h + pad) - pad, columns * (w + pad) - pad, 3), WHITE, np.uint8)
  for i, img in enumerate(images):
    r, c = divmod(i, columns)
    canvas[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = img
  return canvas


def write_video(path: str, frames: np.ndarray, fps: float = 25.0) -> str:
  """Writes uint8[T, H, W, 3] frames as GIF or MP4 (by extension); returns the path.

  GIFs loop forever. Note that GIF writers merge consecutive identical frames (their
  display time adds up), so a GIF may hold fewer frames than ``frames``.
  """
  import imageio.v2 as imageio  # pylint: disable=import-outside-toplevel
  frames = np.asarray(frames)
  if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
    raise ValueError(f"write_video: expected uint8[T, H, W, 3] frames, got "
                     f"{frames.dtype}{list(frames.shape)}.")
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  if path.endswith(".gif"):
    # imageio >= 2.28 writes GIFs with Pillow, whose frame duration is in milliseconds.
    imageio.mimsave(path, list(frames), duration=1000.0 / fps, loop=0)
  elif path.endswith(".mp4"):
    # MP4 encoders want even sizes; pad with white.
    h, w = frames.shape[1:3]
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), constant_values=WHITE)
    imageio.mimsave(path, list(frames), fps=fps, macro_block_size=1)
  else:
    raise ValueError(f"write_video: unknown video extension in {path!r} (use .gif or .mp4).")
  return path


def _frame(image: np.ndarray, color: Optional[Sequence[int]], border: int) -> np.ndarray:
  """Surrounds ``[..., H, W, 3]`` images by ``border`` pixels of ``color`` (white if None)."""
  if border <= 0:
    return image
  h, w = image.shape[-3:-1]
  out = np.empty(image.shape[:-3] + (h + 2 * border, w + 2 * border, 3), np.uint8)
  out[...] = np.asarray(WHITE if color is None else color, np.uint8)
  out[..., border:border + h, border:border + w, :] = image
  return out


def _check_rollouts(real: np.ndarray, dreamed: np.ndarray,
                    num_context: int) -> tuple[np.ndarray, np.ndarray]:
  """uint8 real and dreamed ``[N, T, H, W, 3]``; dreamed context frames are the real ones.

  ``dreamed`` may also hold only the ``T - num_context`` imagined frames: the real
  context frames are then put in front.
  """
  real, dreamed = to_uint8(real), to_uint8(dreamed)
  if real.ndim != 5 or real.shape[-1] != 3:
    raise ValueError(f"expected real frames uint8[N, T, H, W, 3], got {list(real.shape)}.")
  n, t = real.shape[:2]
  if not 0 <= num_context <= t:
    raise ValueError(f"num_context={num_context} is not in [0, T={t}].")
  if dreamed.shape[1] == t - num_context and num_context:
    dreamed = np.concatenate([real[:, :num_context], dreamed], axis=1)
  if dreamed.shape != real.shape:
    raise ValueError(f"dreamed frames {list(dreamed.shape)} do not match real frames "
                     f"{list(real.shape)} (or hold T - num_context frames).")
  dreamed = dreamed.copy()
  dreamed[:, :num_context] = real[:, :num_context]
  return real, dreamed


def dream_grid(real: np.ndarray, dreamed: np.ndarray, num_context: int, pad: int = 2,
               border: int = 1) -> np.ndarray:
  """One image comparing real and dreamed rollouts frame by frame.

  Each of the ``N`` examples takes two rows of ``T`` columns: the real frames on top
  and the dreamed ones below, examples separated by a wider white gap. In the dreamed
  row the first ``num_context`` columns show the real context frames with a blue
  border (:data:`CONTEXT_COLOR`); imagined frames have a red border
  (:data:`DREAM_COLOR`). Real frames get a white border of the same width, so the
  columns line up.

  Args:
    real: ``uint8[N, T, H, W, 3]`` ground truth frames (float ``[0, 1]`` accepted).
    dreamed: ``uint8[N, T, H, W, 3]`` model frames; its first ``num_context`` frames
      are replaced by the real ones. It may also hold only the ``T - num_context``
      imagined frames.
    num_context: how many leading frames the model was given.
    pad: white gap between cells, in pixels.
    border: width of the colored border around each frame, in pixels.

  Returns:
    A uint8 image of shape ``(N * (2 h + pad) + (N - 1) * 3 pad, T w + (T - 1) pad, 3)``
    with ``h = H + 2 border`` and ``w = W + 2 border``.
  """
  real, dreamed = _check_rollouts(real, dreamed, num_context)
  t = real.shape[1]
  top = _frame(real, None, border)
  bottom = np.concatenate([_frame(dreamed[:, :num_context], CONTEXT_COLOR, border),
                           _frame(dreamed[:, num_context:], DREAM_COLOR, border)], axis=1)
  blocks = [grid(np.concatenate([top[i], bottom[i]]), columns=t, pad=pad)
            for i in range(real.shape[0])]
  gap = np.full((3 * pad,) + blocks[0].shape[1:], WHITE, np.uint8)
  out = []
  for i, block in enumerate(blocks):
    if i:
      out.append(gap)
    out.append(block)
  return np.concatenate(out, axis=0)


def dream_video(path: str, real: np.ndarray, dreamed: np.ndarray, fps: float = 4.0,
                num_context: int = 0, max_examples: int = 16, pad: int = 2,
                border: int = 1) -> str:
  """Writes a video (GIF or MP4, by extension) of real | dreamed rollouts over time.

  Frame ``t`` shows, for each of up to ``max_examples`` examples, the real frame ``t``
  and the dreamed frame ``t`` side by side; the examples are tiled in a near-square
  grid. The dreamed half has a blue border during the ``num_context`` context frames
  (where it shows the real frame) and a red border afterwards.

  Args:
    path: output file, ending in ``.gif`` or ``.mp4``.
    real: ``uint8[N, T, H, W, 3]`` ground truth frames (float ``[0, 1]`` accepted).
    dreamed: ``uint8[N, T, H, W, 3]`` model frames (or the ``T - num_context``
      imagined frames only).
    fps: frames per second of the video.
    num_context: how many leading frames the model was given.
    max_examples: at most this many examples are drawn.
    pad: white gap between images, in pixels.
    border: width of the colored border around each frame, in pixels.

  Returns:
    ``path``.
  """
  real, dreamed = _check_rollouts(real, dreamed, num_context)
  real, dreamed = real[:max_examples], dreamed[:max_examples]
  n, t = real.shape[:2]
  columns = math.ceil(math.sqrt(n))
  left = _frame(real, None, border)
  right = np.concatenate([_frame(dreamed[:, :num_context], CONTEXT_COLOR, border),
                          _frame(dreamed[:, num_context:], DREAM_COLOR, border)], axis=1)
  pairs = tile([left, right], pad=pad)  # [N, T, h, 2w + pad, 3]
  frames = np.stack([grid(pairs[:, i], columns=columns, pad=3 * pad) for i in range(t)])
  return write_video(path, frames, fps=fps)


def _figure(num_axes: int, width: float = 6.0, height: float = 2.6):
  """A matplotlib Figure with ``num_axes`` stacked subplots, drawn by the Agg canvas."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=import-outside-toplevel
  from matplotlib.figure import Figure  # pylint: disable=import-outside-toplevel
  fig = Figure(figsize=(width, height * num_axes), layout="constrained")
  FigureCanvasAgg(fig)
  axes = fig.subplots(num_axes, 1, squeeze=False)[:, 0]
  return fig, list(axes)


def _save(fig, out_png: str) -> str:
  os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
  fig.savefig(out_png, dpi=100)
  return out_png


def plot_curves(metrics_jsonl_path: str, out_png: str, keys: Sequence[str],
                x_key: str = "step", log_y: bool = True) -> Optional[str]:
  """Plots metrics of a ``metrics.jsonl`` against ``x_key``, one subplot per key.

  Lines that are not JSON objects are ignored, and so are lines lacking ``x_key`` or a
  key, and values that are not finite numbers (``null`` in the file). A key's y axis is
  logarithmic when ``log_y`` and all its values are positive.

  Args:
    metrics_jsonl_path: the file, one JSON object per line (see ``wam.metric_writer``).
    out_png: the PNG to write (its folder is created).
    keys: the metrics to plot, in subplot order; keys absent from the file are skipped.
    x_key: the x axis.
    log_y: whether to use a log y axis where possible.

  Returns:
    ``out_png``, or None (and no file) when no key has a value.
  """
  from wam.metric_writer import read_metrics  # pylint: disable=import-outside-toplevel
  rows = read_metrics(metrics_jsonl_path)
  series = {}
  for key in keys:
    points = [(row[x_key], row[key]) for row in rows
              if _is_number(row.get(x_key)) and _is_number(row.get(key))]
    if points:
      series[key] = np.asarray(sorted(points, key=lambda p: p[0]), np.float64)
  if not series:
    return None
  fig, axes = _figure(len(series))
  for ax, (key, points) in zip(axes, series.items()):
    ax.plot(points[:, 0], points[:, 1], lw=1.2)
    if log_y and np.all(points[:, 1] > 0):
      ax.set_yscale("log")
    ax.set_title(key, fontsize=9)
    ax.set_xlabel(x_key)
    ax.grid(True, alpha=0.3)
  return _save(fig, out_png)


def _is_number(value) -> bool:
  return (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value))


def plot_horizon(values: Mapping[str, Sequence[float]], out_png: str, ylabel: str,
                 xlabel: str = "horizon step", title: Optional[str] = None) -> str:
  """Plots a metric against the prediction horizon, one line per method.

  Args:
    values: method name (e.g. ``"model"``, ``"copy last frame"``) to its metric at
      horizon steps 1, 2, ...; lines may differ in length.
    out_png: the PNG to write (its folder is created).
    ylabel: the metric's name, for the y axis.
    xlabel: the x axis label.
    title: optional figure title.

  Returns:
    ``out_png``.
  """
  fig, (ax,) = _figure(1, height=3.5)
  for name, ys in values.items():
    ys = np.asarray(ys, np.float64).reshape(-1)
    ax.plot(np.arange(1, len(ys) + 1), ys, marker="o", ms=3, lw=1.2, label=name)
  from matplotlib.ticker import MaxNLocator  # pylint: disable=import-outside-toplevel
  ax.xaxis.set_major_locator(MaxNLocator(integer=True))
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  if title:
    ax.set_title(title, fontsize=10)
  ax.grid(True, alpha=0.3)
  if values:
    ax.legend(fontsize=8)
  return _save(fig, out_png)
