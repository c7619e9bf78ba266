"""A linear probe: how much of the true action a linear map reads from features."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

# Ridge strengths tried (per training pair, on standardised features); the one that
# scores best on a fifth of the training pairs is used.
RIDGES = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


@dataclasses.dataclass
class ProbeResult:
  """R^2 of ridge regression from features to actions on held-out pairs."""
  r2: float                  # variance-weighted over action dimensions
  r2_per_dim: np.ndarray
  num_train: int
  num_test: int
  ridge: float = 0.0         # the strength chosen on the training pairs


def _r2(y: np.ndarray, predicted: np.ndarray, reference_mean: np.ndarray
        ) -> tuple[float, np.ndarray]:
  ss_res = ((y - predicted) ** 2).sum(axis=0)
  ss_tot = ((y - reference_mean) ** 2).sum(axis=0)
  return (float(1.0 - ss_res.sum() / max(ss_tot.sum(), 1e-12)),
          1.0 - ss_res / np.maximum(ss_tot, 1e-12))


def _ridge_solutions(x: np.ndarray, y: np.ndarray, ridges: Sequence[float]):
  """``(x_mean, y_mean, [W per ridge])`` of ridge regressions on centred ``x``, ``y``.

  One thin SVD serves every strength: ``W = V diag(s / (s^2 + lam n)) U^T y``, which is
  also cheap when there are more features than pairs (pixels).
  """
  x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
  u, s, vt = np.linalg.svd(x - x_mean, full_matrices=False)
  uty = u.T @ (y - y_mean)
  return x_mean, y_mean, [vt.T @ ((s / (s ** 2 + lam * len(x)))[:, None] * uty)
                          for lam in ridges]


def linear_probe(features: np.ndarray, actions: np.ndarray, *, test_fraction: float = 0.3,
                 ridge: float | Sequence[float] = RIDGES, seed: int = 0) -> ProbeResult:
  """Fits ``actions ~ W features + b`` on a random split and scores the rest.

  Features are standardised on the training pairs, so the ridge shrinks the weights by
  the same amount whatever the features' units, and never the intercept. With several
  strengths (the default), the one scoring best on a fifth of the training pairs is
  refitted on all of them: a probe over thousands of pixels would otherwise overfit.
  """
  if len(features) != len(actions):
    raise ValueError(f"linear_probe: {len(features)} feature rows but {len(actions)} "
                     "action rows.")
  keep = np.isfinite(actions).all(axis=1)
  features, actions = features[keep], actions[keep]
  n = len(features)
  if n < 10:
    raise ValueError(f"linear_probe: {n} labelled pairs; need at least 10.")
  order = np.random.default_rng(seed).permutation(n)
  num_test = max(1, int(n * test_fraction))
  test, train = order[:num_test], order[num_test:]
  x, y = features.astype(np.float64), actions.astype(np.float64)
  x = x / np.maximum(x[train].std(axis=0), 1e-12)
  ridges = [float(ridge)] if np.isscalar(ridge) else [float(r) for r in ridge]
  if len(ridges) > 1:
    num_select = max(1, len(train) // 5)
    select, fit = train[:num_select], train[num_select:]
    x_mean, y_mean, solutions = _ridge_solutions(x[fit], y[fit], ridges)
    scores = [_r2(y[select], (x[select] - x_mean) @ w + y_mean, y[fit].mean(axis=0))[0]
              for w in solutions]
    ridges = [ridges[int(np.argmax(scores))]]
  x_mean, y_mean, (w,) = _ridge_solutions(x[train], y[train], ridges)
  r2, per_dim = _r2(y[test], (x[test] - x_mean) @ w + y_mean, y[train].mean(axis=0))
  return ProbeResult(r2=r2, r2_per_dim=per_dim, num_train=len(train), num_test=num_test,
                     ridge=ridges[0])
