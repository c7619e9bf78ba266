"""A linear probe: how much of the true action a linear map reads from features."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class ProbeResult:
  """R^2 of ridge regression from features to actions on held-out pairs."""
  r2: float                  # variance-weighted over action dimensions
  r2_per_dim: np.ndarray
  num_train: int
  num_test: int


def linear_probe(features: np.ndarray, actions: np.ndarray, *, test_fraction: float = 0.3,
                 ridge: float = 1e-3, seed: int = 0) -> ProbeResult:
  """Fits ``actions ~ W features + b`` on a random split and scores the rest."""
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
  x = np.concatenate([features, np.ones((n, 1))], axis=1).astype(np.float64)
  y = actions.astype(np.float64)
  xt = x[train]
  w = np.linalg.solve(xt.T @ xt + ridge * len(train) * np.eye(x.shape[1]), xt.T @ y[train])
  residual = y[test] - x[test] @ w
  total = y[test] - y[train].mean(axis=0)
  ss_res, ss_tot = (residual ** 2).sum(axis=0), (total ** 2).sum(axis=0)
  per_dim = 1.0 - ss_res / np.maximum(ss_tot, 1e-12)
  return ProbeResult(r2=float(1.0 - ss_res.sum() / max(ss_tot.sum(), 1e-12)),
                     r2_per_dim=per_dim, num_train=len(train), num_test=num_test)
