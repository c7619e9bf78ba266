"""Image quality metrics (PSNR, SSIM) and per-horizon averages, in pure ``jnp``.

Every function here traces under ``jax.jit``: shapes are static, there is no host
round trip. Images are float ``[..., H, W, C]`` with values in ``[0, max_value]``
(``[0, 1]`` by default); leading axes are batch axes and each image gets one value.
Computation is in float32 whatever the input precision.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import jax
import jax.numpy as jnp

PSNR_CAP_DB = 100.0  # PSNR of identical images (MSE 0) and upper bound of every PSNR.
SSIM_WINDOW = 11  # Gaussian window of Wang et al. (2004), shrunk to fit small images.
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def psnr(pred: jax.Array, target: jax.Array, max_value: float = 1.0,
         axis: Sequence[int] = (-3, -2, -1), cap_db: float = PSNR_CAP_DB) -> jax.Array:
  """Peak signal-to-noise ratio ``10 log10(max_value^2 / MSE)`` in dB, per image.

  The MSE is clamped at a tiny epsilon and the result at ``cap_db`` (100 dB by default)
  so that identical images give ``cap_db`` instead of ``inf``: averages over a batch
  stay finite.

  Args:
    pred: predicted images, ``[..., H, W, C]``.
    target: reference images, same shape as ``pred``.
    max_value: the largest possible pixel value (1 for images in ``[0, 1]``).
    axis: the axes averaged into one MSE (the pixel and channel axes of an image).
    cap_db: upper bound of the result, reached by identical images.

  Returns:
    float32 PSNR in dB with ``axis`` reduced, e.g. ``[...]`` for ``[..., H, W, C]``.
  """
  pred = jnp.asarray(pred, jnp.float32)
  target = jnp.asarray(target, jnp.float32)
  mse = jnp.mean(jnp.square(pred - target), axis=tuple(axis))
  # Below this MSE the PSNR exceeds the cap anyway (by 20 dB), and log10 stays finite.
  eps = max_value**2 * 10.0**(-(cap_db + 20.0) / 10.0)
  value = 10.0 * jnp.log10(max_value**2 / jnp.maximum(mse, eps))
  return jnp.minimum(value, cap_db)


def _gaussian_window(size: int, sigma: float) -> jax.Array:
  """A normalised 1-D gaussian of ``size`` (odd) taps."""
  x = jnp.arange(size, dtype=jnp.float32) - (size - 1) / 2
  g = jnp.exp(-0.5 * jnp.square(x / sigma))
  return g / jnp.sum(g)


def _filter_valid(x: jax.Array, window: jax.Array, axis: int) -> jax.Array:
  """Correlates ``x`` with a 1-D ``window`` along ``axis`` with 'valid' padding."""
  size = window.shape[0]
  n = x.shape[axis] - size + 1
  out = 0.0
  for i in range(size):  # size <= 11 static slices: cheap to trace, any batch shape.
    out = out + window[i] * jax.lax.slice_in_dim(x, i, i + n, axis=axis)
  return out


def ssim_window_size(height: int, width: int, size: int = SSIM_WINDOW) -> int:
  """The SSIM window used for ``height x width`` images: ``min(size, H, W)``, made odd."""
  size = min(size, height, width)
  return size if size % 2 else size - 1


def ssim(pred: jax.Array, target: jax.Array, max_value: float = 1.0,
         window_size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> jax.Array:
  """Structural similarity (Wang et al., 2004), per image.

  Local means, variances and covariance come from a separable gaussian window
  (``sigma`` 1.5) of ``min(window_size, H, W)`` taps, made odd (so 11 for 32x32
  images, 11 for 16x16, 7 for 7x7), with 'valid' padding: only windows fully inside
  the image count. Variances are population (not sample) variances, and
  ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2`` with ``L = max_value``. The SSIM map is
  averaged over pixels per channel, then over channels. This matches
  ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=L, channel_axis=-1)``.

  Args:
    pred: predicted images, ``[..., H, W, C]``.
    target: reference images, same shape as ``pred``.
    max_value: the dynamic range ``L`` of pixel values (1 for images in ``[0, 1]``).
    window_size: the largest gaussian window (11 in the paper).
    sigma: the standard deviation of the gaussian window, in pixels.

  Returns:
    float32 SSIM in ``[-1, 1]`` (1 for identical images), shape ``[...]``.
  """
  pred = jnp.asarray(pred, jnp.float32)
  target = jnp.asarray(target, jnp.float32)
  if pred.shape != target.shape or pred.ndim < 3:
    raise ValueError(f"ssim: expected two [..., H, W, C] arrays of one shape, got "
                     f"{pred.shape} and {target.shape}.")
  size = ssim_window_size(pred.shape[-3], pred.shape[-2], window_size)
  window = _gaussian_window(size, sigma)

  def blur(x):
    return _filter_valid(_filter_valid(x, window, x.ndim - 3), window, x.ndim - 2)

  c1 = (SSIM_K1 * max_value)**2
  c2 = (SSIM_K2 * max_value)**2
  mu_p, mu_t = blur(pred), blur(target)
  var_p = blur(pred * pred) - mu_p * mu_p
  var_t = blur(target * target) - mu_t * mu_t
  cov = blur(pred * target) - mu_p * mu_t
  num = (2 * mu_p * mu_t + c1) * (2 * cov + c2)
  den = (mu_p * mu_p + mu_t * mu_t + c1) * (var_p + var_t + c2)
  per_channel = jnp.mean(num / den, axis=(-3, -2))
  return jnp.mean(per_channel, axis=-1)


def per_horizon(values: jax.Array, mask: Optional[jax.Array] = None) -> jax.Array:
  """Averages a metric over the batch for each horizon (time) step.

  Args:
    values: ``[B, T, ...]`` metric values; trailing axes (if any) are averaged first.
    mask: optional ``[B, T]`` validity (bool or 0/1); masked-out entries are ignored,
      even if they hold NaN.

  Returns:
    float32 ``[T]``: the mean over valid batch entries at each step, NaN at a step
    without any valid entry.
  """
  values = jnp.asarray(values, jnp.float32)
  if values.ndim < 2:
    raise ValueError(f"per_horizon: expected [B, T, ...] values, got {values.shape}.")
  if values.ndim > 2:
    values = jnp.mean(values, axis=tuple(range(2, values.ndim)))
  if mask is None:
    return jnp.mean(values, axis=0)
  mask = jnp.asarray(mask).astype(bool)
  total = jnp.sum(jnp.where(mask, values, 0.0), axis=0)
  count = jnp.sum(mask, axis=0)
  return jnp.where(count > 0, total / jnp.maximum(count, 1), jnp.nan)


def psnr_from_mse(mse: float, max_value: float = 1.0, cap_db: float = PSNR_CAP_DB) -> float:
  """The PSNR (dB, host float) of a known MSE, capped like :func:`psnr`."""
  if mse <= 0:
    return cap_db
  return min(10.0 * math.log10(max_value**2 / mse), cap_db)
