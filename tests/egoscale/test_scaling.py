"""Scaling-law fits recover known parameters from synthetic points; bad input is refused."""

import os

import numpy as np
import pytest

from egoscale import scaling

D = np.geomspace(10, 10_000, 8)


def test_log_linear_recovers_slope_and_intercept():
  rng = np.random.default_rng(0)
  L = 3.0 - 0.25 * np.log(D) + rng.normal(0, 0.005, D.size)
  fit = scaling.fit_log_linear(D, L)
  assert fit.a == pytest.approx(3.0, abs=0.03) and fit.b == pytest.approx(-0.25, abs=0.005)
  assert fit.r2 > 0.99
  np.testing.assert_allclose(fit.predict(D), L, atol=0.02)


def test_power_law_recovers_parameters_despite_an_outlier():
  L = 1.5 + 40.0 * D ** -0.5
  L_bad = L.copy()
  L_bad[3] *= 1.3  # one broken run: the Huber loss keeps the fit on the others
  for points in (L, L_bad):
    fit = scaling.fit_power_law(D, points)
    assert fit.E == pytest.approx(1.5, rel=0.02)
    assert fit.A == pytest.approx(40.0, rel=0.05)
    assert fit.alpha == pytest.approx(0.5, rel=0.03)
  assert scaling.fit_power_law(D, L).r2 > 0.9999


def test_bootstrap_interval_covers_the_truth_and_extrapolation_is_close():
  rng = np.random.default_rng(1)
  L = 1.5 + 40.0 * D ** -0.5 * np.exp(rng.normal(0, 0.01, D.size))
  boot = scaling.bootstrap(scaling.fit_power_law, D, L, at=[1e5], num_samples=30, seed=0)
  lo, hi = boot.prediction_interval
  truth = 1.5 + 40.0 * 1e5 ** -0.5
  assert lo[0] <= truth <= hi[0] and hi[0] - lo[0] < 0.2
  e_lo, e_hi = boot.param_intervals["E"]
  assert e_lo <= 1.5 <= e_hi
  ext = scaling.leave_largest_out(scaling.fit_power_law, D, L)
  assert ext.held_out.tolist() == [D[-1]]
  assert abs(ext.relative_error[0]) < 0.02
  # A straight line in log D misses the curvature: its extrapolation is worse.
  worse = scaling.leave_largest_out(scaling.fit_log_linear, D, L)
  assert abs(worse.relative_error[0]) > abs(ext.relative_error[0])


def test_bootstrap_draws_whole_runs():
  # Two evaluations per run: a resample holds both or neither.
  DD, LL = np.repeat(D[:5], 2), np.repeat(3.0 - 0.2 * np.log(D[:5]), 2)
  LL = LL + np.tile([0.01, -0.01], 5)
  boot = scaling.bootstrap(scaling.fit_log_linear, DD, LL, at=[1e4],
                           runs=np.repeat(np.arange(5), 2), num_samples=40)
  assert boot.predictions.shape[1] == 1 and boot.predictions.shape[0] + boot.num_failed == 40


def test_chinchilla_fit_and_compute_optimal_allocation():
  true = scaling.ChinchillaFit(E=1.7, A=400.0, a=0.34, B=410.0, b=0.28, r2=1.0, num_points=0)
  N, Dg = [x.ravel() for x in np.meshgrid(np.geomspace(1e5, 1e8, 5), np.geomspace(1e6, 1e10, 5))]
  fit = scaling.fit_chinchilla(N, Dg, true.predict(N, Dg))
  for k, v in true.params.items():
    assert fit.params[k] == pytest.approx(v, rel=0.05), k
  C = 1e20
  best = scaling.compute_optimal(fit, C)
  assert 6 * best.N * best.D == pytest.approx(C)
  # The closed form is the minimum along the budget curve (checked on a grid).
  grid = np.geomspace(best.N / 100, best.N * 100, 2001)
  losses = true.predict(grid, C / 6 / grid)
  assert grid[np.argmin(losses)] == pytest.approx(best.N, rel=0.05)
  assert best.loss == pytest.approx(losses.min(), rel=1e-3)


def test_bad_input_is_a_clear_error():
  with pytest.raises(scaling.ScalingFitError, match="at least 4 distinct scales"):
    scaling.fit_power_law([1, 2, 3], [3, 2, 1])
  with pytest.raises(scaling.ScalingFitError, match="at least 3 distinct scales"):
    scaling.fit_log_linear([5, 5, 10], [1, 1, 0.9])
  with pytest.raises(scaling.ScalingFitError, match="D must be positive"):
    scaling.fit_log_linear([0, 1, 2, 3], [1, 1, 1, 1])
  with pytest.raises(scaling.ScalingFitError, match=r"NaN/inf at index \[1\]"):
    scaling.fit_power_law([1, 2, 3, 4], [1, np.nan, 1, 1])
  with pytest.raises(scaling.ScalingFitError, match="losses must be positive"):
    scaling.fit_power_law([1, 2, 3, 4], [1, -1, 1, 1])
  with pytest.raises(scaling.ScalingFitError, match="6 distinct"):
    scaling.fit_chinchilla([1, 2, 3], [1, 2, 3], [3, 2, 1])


def test_plot_fit_writes_a_png(tmp_path):
  L = 1.5 + 40.0 * D ** -0.5
  fit = scaling.fit_power_law(D[:-1], L[:-1])
  boot = scaling.bootstrap(scaling.fit_power_law, D[:-1], L[:-1],
                           at=np.geomspace(D[0], D[-1], 20), num_samples=10)
  path = scaling.plot_fit(D[:-1], L[:-1], [fit, scaling.fit_log_linear(D[:-1], L[:-1])],
                          str(tmp_path / "fit.png"), band=boot,
                          measured_extra=([D[-1]], [L[-1]]))
  with open(path, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  assert os.path.getsize(path) > 5000
