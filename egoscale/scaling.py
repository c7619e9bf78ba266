"""Scaling-law fits: how a loss falls with data (and model size), with uncertainty.

  fit = fit_log_linear(D, L)             # L = a + b log D           (2 parameters)
  fit = fit_power_law(D, L)              # L = E + A D^-alpha        (3 parameters)
  fit.predict(4 * D.max())
  ci = bootstrap(fit_power_law, D, L, at=[4 * D.max()])   # resamples whole runs
  ext = leave_largest_out(fit_log_linear, D, L)           # predicted vs measured
  chin = fit_chinchilla(N, D, L)         # L = E + A N^-a + B D^-b   (5 parameters)
  compute_optimal(chin, C)               # N, D with 6 N D = C that minimise L
  plot_fit(D, L, fit, "fit.png", band=ci)

Non-linear fits minimise the Huber loss of ``log(prediction) - log(L)`` (robust to one
bad run; relative errors, so small and large losses count alike) with BFGS from
several starts, as in Hoffmann et al. (2022). A fit needs more points than parameters
(so that it can be wrong); losses must be positive and finite, scales positive.
numpy/scipy/matplotlib only.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Callable, Optional, Sequence

import matplotlib
import numpy as np
from matplotlib import ticker
from scipy import optimize, special

DEFAULT_HUBER_DELTA = 1e-3


class ScalingFitError(ValueError):
  """The points cannot support the requested fit (too few, non-positive, NaN)."""


# ------------------------------------------------------------------------------- input


def _points(D, L, *, min_points: int, what: str, names=("D", "L")) -> tuple[np.ndarray, ...]:
  D = np.asarray(D, np.float64).reshape(-1)
  L = np.asarray(L, np.float64).reshape(-1)
  if D.shape != L.shape:
    raise ScalingFitError(f"{what}: {names[0]} has {D.size} values, {names[1]} {L.size}.")
  for name, x in zip(names, (D, L)):
    bad = ~np.isfinite(x)
    if bad.any():
      raise ScalingFitError(f"{what}: {name} has NaN/inf at index {np.flatnonzero(bad).tolist()}.")
  if (D <= 0).any():
    raise ScalingFitError(f"{what}: {names[0]} must be positive (a log scale), got "
                          f"{D[D <= 0].tolist()}.")
  if (L <= 0).any() and what != "log-linear fit":
    raise ScalingFitError(f"{what}: losses must be positive (fitted in log space), got "
                          f"{L[L <= 0].tolist()}.")
  distinct = np.unique(D).size
  if distinct < min_points:
    raise ScalingFitError(f"{what} needs at least {min_points} distinct scales (one more "
                          f"than its parameters), got {distinct}: {np.unique(D).tolist()}.")
  return D, L


def r_squared(measured, predicted) -> float:
  """Coefficient of determination 1 - SS_res / SS_tot (of the losses themselves)."""
  y, yhat = np.asarray(measured, np.float64), np.asarray(predicted, np.float64)
  ss_tot = float(((y - y.mean()) ** 2).sum())
  ss_res = float(((y - yhat) ** 2).sum())
  return 1.0 - ss_res / ss_tot if ss_tot > 0 else float(ss_res == 0)


# ------------------------------------------------------------------------------- fits


@dataclasses.dataclass(frozen=True)
class LogLinearFit:
  """``L = a + b log D`` (least squares); ``b`` < 0 when more data helps."""
  a: float
  b: float
  r2: float
  num_points: int
  kind: str = "log_linear"
  num_params: int = 2

  def predict(self, D) -> np.ndarray:
    return self.a + self.b * np.log(np.asarray(D, np.float64))

  @property
  def params(self) -> dict:
    return {"a": self.a, "b": self.b}

  def describe(self) -> str:
    return (f"L = {self.a:.4g} + ({self.b:.4g}) log D   (R^2 {self.r2:.3f}, "
            f"{self.num_points} points)")


@dataclasses.dataclass(frozen=True)
class PowerLawFit:
  """``L = E + A D^-alpha``: a loss that saturates at ``E`` (the irreducible part)."""
  E: float
  A: float
  alpha: float
  r2: float
  num_points: int
  objective: float  # the Huber loss at the optimum
  kind: str = "power_law"
  num_params: int = 3

  def predict(self, D) -> np.ndarray:
    return self.E + self.A * np.asarray(D, np.float64) ** -self.alpha

  @property
  def params(self) -> dict:
    return {"E": self.E, "A": self.A, "alpha": self.alpha}

  @property
  def start(self) -> tuple[float, float, float]:
    """This optimum as a start of ``fit_power_law`` (``(log E, log A, alpha)``)."""
    return (float(np.log(self.E)), float(np.log(self.A)), self.alpha)

  def describe(self) -> str:
    return (f"L = {self.E:.4g} + {self.A:.4g} D^-{self.alpha:.4g}   (R^2 {self.r2:.3f}, "
            f"{self.num_points} points)")


def fit_log_linear(D, L) -> LogLinearFit:
  """Least-squares fit of ``L = a + b log D`` (needs 3 distinct scales)."""
  D, L = _points(D, L, min_points=3, what="log-linear fit")
  b, a = np.polyfit(np.log(D), L, 1)
  fit = LogLinearFit(float(a), float(b), 0.0, int(D.size))
  return dataclasses.replace(fit, r2=r_squared(L, fit.predict(D)))


def _huber(r: np.ndarray, delta: float) -> tuple[float, np.ndarray]:
  """Sum of Huber losses and its derivative with respect to ``r``."""
  small = np.abs(r) <= delta
  value = np.where(small, 0.5 * r ** 2, delta * (np.abs(r) - 0.5 * delta))
  grad = np.where(small, r, delta * np.sign(r))
  return float(value.sum()), grad


def _minimise(objective: Callable, starts: Sequence[Sequence[float]]) -> optimize.OptimizeResult:
  best = None
  for x0 in starts:
    res = optimize.minimize(objective, np.asarray(x0, np.float64), jac=True, method="BFGS")
    if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
      best = res
  if best is None:
    raise ScalingFitError("Every start of the fit diverged (non-finite objective).")
  return best


def _power_law_starts(L: np.ndarray) -> list[tuple[float, float, float]]:
  e0 = np.log(max(L.min(), 1e-12))
  a0 = np.log(max(L.max() - L.min(), 1e-6))
  return list(itertools.product((e0 - 2.0, e0 - 0.1), (a0, a0 + 3.0), (0.2, 0.6, 1.2)))


def fit_power_law(D, L, *, starts: Optional[Sequence[Sequence[float]]] = None,
                  huber_delta: float = DEFAULT_HUBER_DELTA) -> PowerLawFit:
  """Fits ``L = E + A D^-alpha`` by Huber loss in log space (needs 4 distinct scales).

  Args:
    D: scales (episodes, hours, tokens), positive.
    L: losses, positive.
    starts: initial ``(log E, log A, alpha)`` triples; default a 12-point grid.
    huber_delta: where the Huber loss turns from quadratic to linear (log units).
  """
  D, L = _points(D, L, min_points=4, what="power-law fit")
  logD, logL = np.log(D), np.log(L)

  def objective(x):
    e, a, alpha = x
    terms = np.stack([np.full_like(logD, e), a - alpha * logD])
    pred = special.logsumexp(terms, axis=0)
    value, g = _huber(pred - logL, huber_delta)
    w = special.softmax(terms, axis=0)  # d pred / d term
    grad = np.array([(g * w[0]).sum(), (g * w[1]).sum(), (g * w[1] * -logD).sum()])
    return value, grad

  res = _minimise(objective, starts or _power_law_starts(L))
  e, a, alpha = res.x
  fit = PowerLawFit(float(np.exp(e)), float(np.exp(a)), float(alpha), 0.0, int(D.size),
                    float(res.fun))
  return dataclasses.replace(fit, r2=r_squared(L, fit.predict(D)))


# ------------------------------------------------------------------ uncertainty, checks


@dataclasses.dataclass(frozen=True)
class Bootstrap:
  """Percentile intervals from refits on runs drawn with replacement."""
  at: np.ndarray                 # scales the predictions are for
  predictions: np.ndarray        # [samples, len(at)]
  params: dict                   # name -> [samples]
  level: float
  num_failed: int                # resamples too degenerate to fit (too few scales)

  def interval(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    q = (1 - self.level) / 2
    return np.quantile(values, q, axis=0), np.quantile(values, 1 - q, axis=0)

  @property
  def prediction_interval(self) -> tuple[np.ndarray, np.ndarray]:
    return self.interval(self.predictions)

  @property
  def param_intervals(self) -> dict:
    return {k: tuple(float(x) for x in self.interval(v)) for k, v in self.params.items()}


def bootstrap(fit_fn: Callable, D, L, *, at, runs=None, num_samples: int = 200,
              level: float = 0.9, seed: int = 0) -> Bootstrap:
  """Refits ``fit_fn`` on runs resampled with replacement; intervals of params and
  predictions.

  Args:
    fit_fn: ``fit_log_linear``, ``fit_power_law`` or any ``(D, L) -> fit``.
    D, L: the points.
    at: scales to predict.
    runs: a run id per point (several points of one run are drawn together, e.g.
      repeated evaluations); default one run per point.
    num_samples: resamples; those with too few distinct scales are skipped and counted.
    level: coverage of the intervals.
    seed: for the resampling.
  """
  D, L = np.asarray(D, np.float64), np.asarray(L, np.float64)
  full = fit_fn(D, L)  # the full fit must work (clear error otherwise)
  # Non-linear fits restart from the full fit's optimum rather than their grid of starts
  # (a resample's optimum lies near it): 12-24x fewer optimisations.
  start = getattr(full, "start", None)
  refit = fit_fn if start is None else (lambda d, l: fit_fn(d, l, starts=[start]))
  runs = np.arange(D.size) if runs is None else np.asarray(runs)
  ids = np.unique(runs)
  rng = np.random.default_rng(seed)
  at = np.atleast_1d(np.asarray(at, np.float64))
  preds, params, failed = [], [], 0
  for _ in range(num_samples):
    pick = rng.choice(ids, size=ids.size, replace=True)
    idx = np.concatenate([np.flatnonzero(runs == r) for r in pick])
    try:
      fit = refit(D[idx], L[idx])
    except ScalingFitError:
      failed += 1
      continue
    preds.append(fit.predict(at))
    params.append(fit.params)
  if not preds:
    raise ScalingFitError(f"No bootstrap resample of {ids.size} runs could be fitted.")
  return Bootstrap(at, np.array(preds), {k: np.array([p[k] for p in params])
                                         for k in params[0]}, level, failed)


@dataclasses.dataclass(frozen=True)
class Extrapolation:
  """A fit on the smaller runs predicting the largest ones it did not see."""
  held_out: np.ndarray
  measured: np.ndarray
  predicted: np.ndarray
  fit: object

  @property
  def relative_error(self) -> np.ndarray:
    return (self.predicted - self.measured) / np.abs(self.measured)


def leave_largest_out(fit_fn: Callable, D, L, *, num_held_out: int = 1) -> Extrapolation:
  """Fits without the ``num_held_out`` largest scales and predicts them."""
  D, L = np.asarray(D, np.float64), np.asarray(L, np.float64)
  largest = np.unique(D)[-num_held_out:] if num_held_out > 0 else np.array([])
  if not largest.size:
    raise ScalingFitError("num_held_out must be >= 1.")
  held = np.isin(D, largest)
  fit = fit_fn(D[~held], L[~held])
  return Extrapolation(D[held], L[held], fit.predict(D[held]), fit)


# ------------------------------------------------------------------ model size and data


@dataclasses.dataclass(frozen=True)
class ChinchillaFit:
  """``L = E + A N^-a + B D^-b`` over model size ``N`` and data ``D``."""
  E: float
  A: float
  a: float
  B: float
  b: float
  r2: float
  num_points: int

  def predict(self, N, D) -> np.ndarray:
    N, D = np.asarray(N, np.float64), np.asarray(D, np.float64)
    return self.E + self.A * N ** -self.a + self.B * D ** -self.b

  @property
  def params(self) -> dict:
    return {"E": self.E, "A": self.A, "a": self.a, "B": self.B, "b": self.b}

  @property
  def start(self) -> tuple[float, ...]:
    """This optimum as a start of ``fit_chinchilla`` (``(log E, log A, a, log B, b)``)."""
    return (float(np.log(self.E)), float(np.log(self.A)), self.a, float(np.log(self.B)),
            self.b)


def fit_chinchilla(N, D, L, *, starts=None,
                   huber_delta: float = DEFAULT_HUBER_DELTA) -> ChinchillaFit:
  """Fits ``L = E + A N^-a + B D^-b`` (Huber in log space; needs 6 distinct (N, D))."""
  N = np.asarray(N, np.float64).reshape(-1)
  D, L = _points(D, L, min_points=1, what="Chinchilla fit")
  _points(N, L, min_points=1, what="Chinchilla fit", names=("N", "L"))
  pairs = {(n, d) for n, d in zip(N, D)}
  if len(pairs) < 6 or np.unique(N).size < 2 or np.unique(D).size < 2:
    raise ScalingFitError(f"Chinchilla fit needs at least 6 distinct (N, D) runs with 2+ "
                          f"sizes and 2+ data scales, got {len(pairs)} runs.")
  logN, logD, logL = np.log(N), np.log(D), np.log(L)

  def objective(x):
    e, a_log, a, b_log, b = x
    terms = np.stack([np.full_like(logL, e), a_log - a * logN, b_log - b * logD])
    value, g = _huber(special.logsumexp(terms, axis=0) - logL, huber_delta)
    w = special.softmax(terms, axis=0)
    grad = np.array([(g * w[0]).sum(), (g * w[1]).sum(), (g * w[1] * -logN).sum(),
                     (g * w[2]).sum(), (g * w[2] * -logD).sum()])
    return value, grad

  e0 = np.log(L.min())
  starts = starts or [(e, s, x, s, y) for e in (e0 - 2, e0 - 0.2) for s in (0.0, 3.0, 6.0)
                      for x in (0.2, 0.5) for y in (0.2, 0.5)]
  res = _minimise(objective, starts)
  e, a_log, a, b_log, b = res.x
  fit = ChinchillaFit(float(np.exp(e)), float(np.exp(a_log)), float(a), float(np.exp(b_log)),
                      float(b), 0.0, int(L.size))
  return dataclasses.replace(fit, r2=r_squared(L, fit.predict(N, D)))


@dataclasses.dataclass(frozen=True)
class Allocation:
  """A compute-optimal split of a budget ``C = flops_per_param_token * N * D``."""
  compute: float
  N: float
  D: float
  loss: float


def compute_optimal(fit: ChinchillaFit, compute: float, *,
                    flops_per_param_token: float = 6.0) -> Allocation:
  """The ``N`` and ``D`` minimising the fitted loss on the budget curve ``C = k N D``.

  Closed form (Hoffmann et al. 2022, appendix): ``N = G (C/k)^(b/(a+b))``, ``D = (C/k)/N``
  with ``G = (a A / (b B))^(1/(a+b))``.
  """
  if not compute > 0:
    raise ScalingFitError(f"The compute budget must be positive, got {compute}.")
  if fit.a <= 0 or fit.b <= 0:
    raise ScalingFitError(f"No compute-optimal point: exponents a={fit.a:.3g}, b={fit.b:.3g} "
                          "must be positive (the loss does not fall with both N and D).")
  budget = compute / flops_per_param_token
  G = (fit.a * fit.A / (fit.b * fit.B)) ** (1 / (fit.a + fit.b))
  N = G * budget ** (fit.b / (fit.a + fit.b))
  D = budget / N
  return Allocation(float(compute), float(N), float(D), float(fit.predict(N, D)))


# ------------------------------------------------------------------------------- plots


def plot_fit(D, L, fits: Sequence[object] | object, path: str, *,
             band: Optional[Bootstrap] = None, measured_extra=None,
             xlabel: str = "data (D)", ylabel: str = "loss", title: str = "") -> str:
  """A PNG of the points, the fitted curves (log x axis) and a bootstrap band.

  Args:
    D, L: the fitted points.
    fits: one or several fits with ``predict`` and ``describe``.
    path: output PNG.
    band: a :class:`Bootstrap` whose ``at`` spans the curve (its interval is shaded).
    measured_extra: optional ``(D, L)`` of points not used by the fit (e.g. a larger run).
  """
  # pyplot only after choosing Agg: importing this module leaves the backend alone.
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fits = fits if isinstance(fits, (list, tuple)) else [fits]
  D, L = np.asarray(D, np.float64), np.asarray(L, np.float64)
  hi = D.max() if measured_extra is None else max(D.max(), np.max(measured_extra[0]))
  if band is not None:
    hi = max(hi, band.at.max())
  xs = np.geomspace(D.min(), hi, 200)
  fig, ax = plt.subplots(figsize=(5.5, 4))
  if band is not None:
    lo, up = band.prediction_interval
    ax.fill_between(band.at, lo, up, alpha=0.25, color="C0",
                    label=f"{int(band.level * 100)}% bootstrap band")
  for i, fit in enumerate(fits):
    ax.plot(xs, fit.predict(xs), color=f"C{i}", label=fit.describe())
  ax.scatter(D, L, color="k", zorder=3, label="runs (fitted)")
  if measured_extra is not None:
    ax.scatter(*measured_extra, color="C3", marker="*", s=120, zorder=4,
               label="measured, not fitted")
  ax.set_xscale("log")
  # Label the decades only: minor-tick labels of a narrow log range overlap.
  ax.xaxis.set_minor_formatter(ticker.NullFormatter())
  ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda x, _: f"{x:.3g}"))
  ax.set_xticks(D)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path
