"""PSNR, SSIM and per-horizon means against closed forms and a plain numpy SSIM."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wam import image_metrics


def _images(shape, seed=0, low=0.2, high=0.8):
  return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


def _ssim_reference(x, y, max_value=1.0, size=11, sigma=1.5):
  """Wang et al. SSIM of two [H, W, C] images with explicit 2-D windows (slow, clear)."""
  size = image_metrics.ssim_window_size(x.shape[0], x.shape[1], size)
  r = np.arange(size) - (size - 1) / 2
  g = np.exp(-0.5 * (r / sigma)**2)
  w = np.outer(g, g) / np.outer(g, g).sum()
  c1, c2 = (0.01 * max_value)**2, (0.03 * max_value)**2
  x, y = x.astype(np.float64), y.astype(np.float64)
  per_channel = []
  for c in range(x.shape[2]):
    values = []
    for i in range(x.shape[0] - size + 1):
      for j in range(x.shape[1] - size + 1):
        a, b = x[i:i + size, j:j + size, c], y[i:i + size, j:j + size, c]
        ma, mb = (w * a).sum(), (w * b).sum()
        va, vb = (w * a * a).sum() - ma**2, (w * b * b).sum() - mb**2
        cov = (w * a * b).sum() - ma * mb
        values.append((2 * ma * mb + c1) * (2 * cov + c2) /
                      ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    per_channel.append(np.mean(values))
  return np.mean(per_channel)


def test_psnr_identical_is_cap():
  x = _images((2, 16, 16, 3))
  np.testing.assert_array_equal(image_metrics.psnr(x, x), [100.0, 100.0])
  assert float(image_metrics.psnr(x[0], x[0], cap_db=60.0)) == 60.0


def test_psnr_known_noise():
  x = _images((2, 16, 16, 3))
  sign = np.where(np.random.default_rng(1).random(x.shape) < 0.5, -1.0, 1.0)
  y = x + 0.1 * sign.astype(np.float32)  # MSE 0.01 exactly (no clipping): 20 dB
  np.testing.assert_allclose(image_metrics.psnr(y, x), [20.0, 20.0], atol=1e-3)
  np.testing.assert_allclose(image_metrics.psnr(255 * y, 255 * x, max_value=255.0),
                             [20.0, 20.0], atol=1e-3)
  noise = np.random.default_rng(2).normal(0, 0.05, x.shape).astype(np.float32)
  mse = np.mean(noise[0].astype(np.float64)**2)
  assert float(image_metrics.psnr(x[0] + noise[0], x[0])) == pytest.approx(
      image_metrics.psnr_from_mse(mse), abs=1e-3)


@pytest.mark.parametrize("size", [16, 32])
def test_ssim_identity_and_reference(size):
  x = _images((size, size, 3), seed=size)
  assert float(image_metrics.ssim(x, x)) == pytest.approx(1.0, abs=1e-5)
  y = np.clip(x + np.random.default_rng(3).normal(0, 0.1, x.shape), 0, 1).astype(np.float32)
  assert float(image_metrics.ssim(y, x)) == pytest.approx(_ssim_reference(y, x), abs=1e-4)


def test_ssim_small_images_use_odd_window():
  assert image_metrics.ssim_window_size(8, 8) == 7
  assert image_metrics.ssim_window_size(16, 10) == 9
  assert image_metrics.ssim_window_size(64, 64) == 11
  x = _images((8, 8, 1))
  y = _images((8, 8, 1), seed=1)
  assert float(image_metrics.ssim(y, x)) == pytest.approx(_ssim_reference(y, x), abs=1e-4)


def test_ssim_decreases_with_noise():
  x = _images((16, 16, 3), low=0.0, high=1.0)
  rng = np.random.default_rng(4)
  values = [float(image_metrics.ssim(np.clip(x + rng.normal(0, s, x.shape), 0, 1), x))
            for s in (0.01, 0.05, 0.2)]
  assert 1.0 > values[0] > values[1] > values[2]


def test_agrees_with_skimage():
  metrics = pytest.importorskip("skimage.metrics")
  x = _images((32, 32, 3))
  y = np.clip(x + np.random.default_rng(5).normal(0, 0.05, x.shape), 0, 1).astype(np.float32)
  expected = metrics.structural_similarity(y, x, data_range=1.0, channel_axis=-1,
                                           gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False)
  assert float(image_metrics.ssim(y, x)) == pytest.approx(expected, abs=1e-4)
  assert float(image_metrics.psnr(y, x)) == pytest.approx(
      metrics.peak_signal_noise_ratio(x, y, data_range=1.0), abs=1e-3)


def test_jit_and_per_horizon():
  x = _images((2, 3, 16, 16, 3))
  y = _images((2, 3, 16, 16, 3), seed=1)
  mask = np.array([[1, 1, 0], [1, 0, 0]], bool)

  @jax.jit
  def metrics(a, b, m):
    p, s = image_metrics.psnr(a, b), image_metrics.ssim(a, b)
    return p, s, image_metrics.per_horizon(p, m), image_metrics.per_horizon(s)

  p, s, p_t, s_t = metrics(x, y, mask)
  assert p.shape == s.shape == (2, 3) and p_t.shape == s_t.shape == (3,)
  np.testing.assert_allclose(s, image_metrics.ssim(x, y), atol=1e-5)
  np.testing.assert_allclose(p_t[:2], [(p[0, 0] + p[1, 0]) / 2, p[0, 1]], rtol=1e-5)
  assert np.isnan(p_t[2])  # no valid entry at the last step
  np.testing.assert_allclose(s_t, np.mean(s, axis=0), rtol=1e-6)


def test_per_horizon_ignores_masked_nan_and_trailing_axes():
  values = jnp.array([[[1.0, 3.0], [jnp.nan, jnp.nan]], [[5.0, 7.0], [4.0, 4.0]]])
  out = image_metrics.per_horizon(values, jnp.array([[True, False], [True, True]]))
  np.testing.assert_allclose(out, [4.0, 4.0])
