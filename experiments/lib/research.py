"""The library of ``experiments.research``, an automated research loop: spend a compute
budget to learn a scaling law and test it.

Given a budget (in the config's cost units, e.g. training steps), the loop

1. chooses a small geometric grid of data scales that costs at most ``grid_fraction`` of
   the budget (as many points as fit, up to ``grid_points``, at least 3);
2. runs it with the sweep runner (resumable: finished runs are read back);
3. fits ``L = a + b log D`` and, with 4+ points, ``L = E + A D^-alpha``, choosing the
   one whose leave-the-largest-out extrapolation is better;
4. predicts the loss of the largest run the rest of the budget buys, with a bootstrap
   interval, launches that run and reports predicted against actual;
5. refits on everything and proposes the next allocation (what the same budget buys
   next and whether the predicted gain exceeds the uncertainty).

Every decision goes to ``decisions.jsonl`` with its reason; ``research.md`` is the
report; ``fit.png`` the fit with its band. The config file supplies the knobs::

  RESEARCH_METRIC = "eval/joint_mae"      # a result.json metric, lower is better
  MIN_SCALE = 4                            # smallest data scale of the grid
  MAX_SCALE = 48                           # optional: largest scale the data allows
  def research_run(d: int) -> dict: ...    # the overrides of a run at scale d
  def run_cost(d: int) -> float: ...       # its cost in budget units

No absl flags here (``experiments.research`` is the command line).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Callable, Optional

import numpy as np

from egoscale import scaling
from experiments.lib import sweep as sweep_lib
from experiments.lib import sweep_results


class ResearchError(ValueError):
  """The budget or the config cannot support the loop (the message says why)."""


@dataclasses.dataclass
class ResearchSpec:
  """What the loop varies and measures (read from a config file by :func:`load_spec`)."""
  config: str                                 # FILE[:ARG] for the sweep runner
  metric: str
  min_scale: int
  run_overrides: Callable[[int], dict]
  run_cost: Callable[[int], float]
  max_scale: Optional[int] = None


def load_spec(config_spec: str) -> ResearchSpec:
  """Reads the research knobs of a config file (see the module docstring)."""
  module, config_file, _ = sweep_lib.load_config_module(config_spec)
  missing = [n for n in ("RESEARCH_METRIC", "MIN_SCALE", "research_run", "run_cost")
             if not hasattr(module, n)]
  if missing:
    raise ResearchError(f"{config_file} lacks {missing} needed by the research loop "
                        "(see experiments/lib/research.py).")
  return ResearchSpec(config_spec, module.RESEARCH_METRIC, int(module.MIN_SCALE),
                      module.research_run, module.run_cost,
                      getattr(module, "MAX_SCALE", None))


class DecisionLog:
  """``decisions.jsonl``: one JSON line per decision, each with its reason."""

  def __init__(self, path: str, echo: Callable[[str], None]):
    self.path = path
    self.echo = echo
    self.entries: list[dict] = []
    with open(path, "w"):
      pass

  def record(self, decision: str, reason: str, **data: Any) -> dict:
    entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "decision": decision,
             "reason": reason, **data}
    self.entries.append(entry)
    with open(self.path, "a") as f:
      f.write(json.dumps(entry, default=plain_json) + "\n")
    self.echo(f"[research] {decision}: {reason}")
    return entry


def plain_json(x):
  """A JSON stand-in for numpy values (``json.dump(..., default=plain_json)``)."""
  if isinstance(x, np.generic):
    return x.item()
  if isinstance(x, np.ndarray):
    return x.tolist()
  return str(x)


# ------------------------------------------------------------------------------ budget


def choose_grid(spec: ResearchSpec, budget: float, *, grid_points: int = 5,
                grid_fraction: float = 0.5, ratio: int = 2) -> list[int]:
  """The longest geometric grid ``min_scale * ratio^i`` within ``grid_fraction * budget``.

  Raises:
    ResearchError: not even 3 points fit (a fit needs them), or they pass ``max_scale``.
  """
  grid: list[int] = []
  scale = spec.min_scale
  while len(grid) < grid_points:
    if spec.max_scale and scale > spec.max_scale:
      break
    if sum(spec.run_cost(d) for d in grid + [scale]) > grid_fraction * budget:
      break
    grid.append(scale)
    scale *= ratio
  if len(grid) < 3:
    three = [spec.min_scale * ratio ** i for i in range(3)]
    raise ResearchError(
        f"A budget of {budget:g} allows {len(grid)} grid run(s) in its {grid_fraction:.0%} "
        f"share; a fit needs 3 ({three} cost {sum(spec.run_cost(d) for d in three):g}"
        + (f", within max scale {spec.max_scale}" if spec.max_scale else "")
        + "). Raise the budget or lower MIN_SCALE.")
  return grid


def largest_affordable(spec: ResearchSpec, budget: float) -> int:
  """The largest integer scale whose run costs at most ``budget`` (0 if none)."""
  if spec.run_cost(1) > budget:
    return 0
  lo, hi = 1, 2
  while spec.run_cost(hi) <= budget and (not spec.max_scale or hi < spec.max_scale):
    lo, hi = hi, hi * 2
  while hi - lo > 1:  # run_cost(lo) <= budget < run_cost(hi) (or hi at the cap)
    mid = (lo + hi) // 2
    lo, hi = (mid, hi) if spec.run_cost(mid) <= budget else (lo, mid)
  top = hi if spec.run_cost(hi) <= budget else lo
  return min(top, spec.max_scale) if spec.max_scale else top


# ------------------------------------------------------------------------------- fits


def _fit_points(results, spec: ResearchSpec, scales: dict[str, int]):
  D, L, missing = [], [], []
  for r in results:
    if r.name not in scales:
      continue
    if r.status == "finished" and spec.metric in r.metrics:
      D.append(scales[r.name])
      L.append(r.metrics[spec.metric])
    elif r.status == "finished" and sweep_results.only_on_training_windows(r.metrics, spec.metric):
      missing.append(f"{r.name} (no held-out split: only eval_train/*)")
    else:
      missing.append(r.name)
  return np.array(D, np.float64), np.array(L, np.float64), missing


def choose_fit(D: np.ndarray, L: np.ndarray, log: DecisionLog, decision: str = "fit"):
  """The better of the log-linear and power-law fits by leave-largest-out error."""
  candidates = {"log_linear": scaling.fit_log_linear}
  if np.unique(D).size >= 5:  # the power law's own leave-largest-out fit needs 4 points
    candidates["power_law"] = scaling.fit_power_law
  errors = {}
  for name, fn in candidates.items():
    try:
      errors[name] = float(abs(scaling.leave_largest_out(fn, D, L).relative_error[0]))
    except scaling.ScalingFitError:
      errors[name] = float("inf")
  if np.unique(D).size < 4:
    name = "log_linear"
    reason = (f"{np.unique(D).size} scales: enough for L = a + b log D only, and too few "
              "to test it by leaving the largest out (that needs 4)")
  else:
    name = min(errors, key=errors.get)
    reason = ("smallest leave-the-largest-out relative error among "
              + ", ".join(f"{k} {v:.2%}" for k, v in errors.items())
              + ("" if "power_law" in errors else
                 " (the power law needs 5 scales for its own check)"))
  fit = candidates[name](D, L)
  log.record(decision, reason, model=name, params=fit.params, r2=fit.r2,
             extrapolation_error=errors, points=int(D.size))
  return candidates[name], fit


# ------------------------------------------------------------------------------- loop


@dataclasses.dataclass
class ResearchReport:
  """What the loop found (also in research.md)."""
  grid: list[int]
  target_scale: int
  predicted: float
  interval: tuple[float, float]
  actual: Optional[float]
  fit: object
  proposal: dict
  decisions: list[dict]


def run_research(spec: ResearchSpec, directory: str, budget: float, *,
                 grid_points: int = 5, grid_fraction: float = 0.5, workers: int = 1,
                 bootstrap_samples: int = 200, env=None,
                 progress: Callable[[str], None] = print) -> ResearchReport:
  """Runs the loop of the module docstring in ``directory`` (resumable).

  Args:
    spec: from :func:`load_spec`.
    directory: holds ``runs/`` (the sweep), ``decisions.jsonl``, ``research.md``,
      ``fit.png``.
    budget: compute for the grid and the larger run together, in ``run_cost`` units.
    grid_points: at most this many grid runs.
    grid_fraction: the share of the budget the grid may use.
    workers: runs at a time.
    bootstrap_samples: resamples for the prediction interval.
    env: environment of the runs (default this process's).
    progress: receives progress and decision lines.

  Raises:
    ResearchError: the budget is too small, or too few grid runs finished to fit.
  """
  if not budget > 0:
    raise ResearchError(f"The budget must be positive, got {budget}.")
  os.makedirs(directory, exist_ok=True)
  log = DecisionLog(os.path.join(directory, "decisions.jsonl"), progress)

  # -- Grid ------------------------------------------------------------------------
  grid = choose_grid(spec, budget, grid_points=grid_points, grid_fraction=grid_fraction)
  grid_cost = float(sum(spec.run_cost(d) for d in grid))
  log.record("grid", f"the longest doubling grid from {spec.min_scale} within "
             f"{grid_fraction:.0%} of the budget ({grid_fraction * budget:g}) costs "
             f"{grid_cost:g}; more scales make the fit and its check possible",
             scales=grid, cost=grid_cost, budget=budget)
  target = largest_affordable(spec, budget - grid_cost)
  if target <= max(grid):
    raise ResearchError(
        f"After the grid ({grid_cost:g}) the budget ({budget:g}) buys scale {target}, not "
        f"more than the grid's largest ({max(grid)}): nothing to extrapolate to. Raise the "
        "budget or lower grid_fraction.")
  capped = bool(spec.max_scale) and target == spec.max_scale
  log.record("target", f"the rest of the budget ({budget - grid_cost:g}) buys one run "
             f"at scale {target} ({target / max(grid):.1f}x the largest grid run)"
             + (f", capped at the data there is (MAX_SCALE {spec.max_scale})" if capped
                else ""),
             scale=target, cost=float(spec.run_cost(target)))

  runs_dir = os.path.join(directory, "runs")
  scales = {f"d{d}": d for d in grid}
  grid_sweep = sweep_lib.make_sweep(spec.config, [sweep_lib.Run(n, spec.run_overrides(d))
                                                   for n, d in scales.items()])
  results = sweep_lib.run_sweep(grid_sweep, runs_dir, workers=workers, env=env,
                                progress=progress)
  reused = [r.name for r in results if r.reused]
  D, L, missing = _fit_points(results, spec, scales)
  log.record("grid_done", f"{len(D)} of {len(grid)} grid runs give {spec.metric}"
             + (f"; {reused} were already finished and read back" if reused else "")
             + (f"; left out (failed or no metric): {missing}" if missing else ""),
             scales=D, losses=L)
  if np.unique(D).size < 3:
    raise ResearchError(f"Only {np.unique(D).size} grid scales finished with "
                        f"{spec.metric}; a fit needs 3. See {runs_dir}/summary.md.")

  # -- Fit and predict ---------------------------------------------------------------
  fit_fn, fit = choose_fit(D, L, log)
  boot = scaling.bootstrap(fit_fn, D, L, at=[target], num_samples=bootstrap_samples)
  lo, hi = (float(x[0]) for x in boot.prediction_interval)
  predicted = float(fit.predict(target))
  used = boot.predictions.shape[0]
  caveat = ("" if boot.num_failed <= used else
            f"; only {used} of {used + boot.num_failed} resamples had enough distinct scales "
            "to fit, so the interval understates the uncertainty")
  log.record("predict", f"{fit.describe()} extrapolated to scale {target}; the interval "
             f"is the {boot.level:.0%} bootstrap over grid runs{caveat}", scale=target,
             predicted=predicted, interval=[lo, hi], bootstrap_failed=boot.num_failed)

  # -- The larger run ------------------------------------------------------------------
  name = f"d{target}"
  scales[name] = target
  big = sweep_lib.make_sweep(spec.config, [sweep_lib.Run(name, spec.run_overrides(target))])
  log.record("launch", f"test the prediction: run {name} is the largest the budget allows")
  big_result = sweep_lib.run_sweep(big, runs_dir, workers=1, env=env, progress=progress)[0]
  actual = big_result.metrics.get(spec.metric) if big_result.status == "finished" else None
  if actual is None:
    log.record("compare", f"run {name} did not produce {spec.metric} ({big_result.status}: "
               f"{big_result.error}); the prediction stays untested")
  else:
    error = (predicted - actual) / abs(actual)
    inside = lo <= actual <= hi
    log.record("compare", f"predicted {predicted:.4g}, measured {actual:.4g} "
               f"({error:+.1%}); {'inside' if inside else 'outside'} the interval "
               f"[{lo:.4g}, {hi:.4g}]" + ("" if inside else
                                           ": the fit is not trustworthy this far out"),
               predicted=predicted, actual=actual, relative_error=error, inside=inside)

  # -- Next allocation -----------------------------------------------------------------
  all_D = np.append(D, target) if actual is not None else D
  all_L = np.append(L, actual) if actual is not None else L
  refit_fn, refit = choose_fit(all_D, all_L, log, "refit")
  proposal = propose_next(spec, budget, refit_fn, refit, all_D, all_L, bootstrap_samples,
                          log)
  _plot(directory, fit_fn, fit, D, L, target, actual, spec, bootstrap_samples)
  report = ResearchReport(grid, target, predicted, (lo, hi), actual, fit, proposal,
                          log.entries)
  write_report(directory, report, spec, budget)
  return report


def propose_next(spec: ResearchSpec, budget: float, fit_fn, fit, D, L, samples: int,
                 log: DecisionLog) -> dict:
  """What the same budget should buy next, with the reason (logged)."""
  best = float(np.max(D))
  nxt = largest_affordable(spec, budget)
  if spec.max_scale and nxt >= spec.max_scale and best >= spec.max_scale:
    log.record("propose", f"the data is exhausted at scale {spec.max_scale}: collect more "
               "data or scale the model instead", scale=None)
    return {"scale": None}
  if nxt <= best:
    nxt = int(best * 2)
    why_scale = f"the budget buys no larger run, so it needs {spec.run_cost(nxt):g}"
  else:
    why_scale = f"the largest run a budget of {budget:g} buys"
  boot = scaling.bootstrap(fit_fn, D, L, at=[nxt], num_samples=samples)
  lo, hi = (float(x[0]) for x in boot.prediction_interval)
  current = float(fit.predict(best))
  predicted = float(fit.predict(nxt))
  gain = current - predicted
  worth = gain > (hi - lo) / 2
  reason = (f"scale {nxt} ({why_scale}) is predicted at {predicted:.4g} "
            f"[{lo:.4g}, {hi:.4g}], {gain:+.3g} better than scale {best:g}: "
            + ("larger than the uncertainty, so spend it on more data"
               if worth else "within the uncertainty, so more data of this kind is not "
               "clearly worth it: scale the model or change the data instead"))
  proposal = {"scale": nxt, "cost": float(spec.run_cost(nxt)), "predicted": predicted,
              "interval": [lo, hi], "gain": gain, "worth_it": bool(worth),
              "overrides": spec.run_overrides(nxt)}
  log.record("propose", reason, **proposal)
  return proposal


def _plot(directory, fit_fn, fit, D, L, target, actual, spec, samples: int) -> None:
  band = scaling.bootstrap(fit_fn, D, L, at=np.geomspace(D.min(), target, 40),
                           num_samples=samples)
  scaling.plot_fit(D, L, fit, os.path.join(directory, "fit.png"), band=band,
                   measured_extra=None if actual is None else ([target], [actual]),
                   ylabel=spec.metric, xlabel="data scale",
                   title="grid fit, extrapolated to the larger run")


def write_report(directory: str, report: ResearchReport, spec: ResearchSpec,
                 budget: float) -> str:
  """``research.md``: the grid, the fit, predicted vs actual, the proposal, decisions."""
  lo, hi = report.interval
  actual = "not measured" if report.actual is None else f"{report.actual:.4g}"
  lines = [f"# Research loop: {spec.config}", "",
           f"Budget {budget:g}; metric `{spec.metric}` (lower is better).", "",
           f"- grid scales: {report.grid}",
           f"- fit: {report.fit.describe()}",
           f"- larger run at scale {report.target_scale}: predicted {report.predicted:.4g} "
           f"[{lo:.4g}, {hi:.4g}], measured {actual}",
           f"- next: {report.proposal}", "", "![fit](fit.png)", "", "## Decisions", ""]
  lines += [f"{i + 1}. **{d['decision']}**: {d['reason']}"
            for i, d in enumerate(report.decisions)]
  path = os.path.join(directory, "research.md")
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
  return path
