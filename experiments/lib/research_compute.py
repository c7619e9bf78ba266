"""The research loop over model size and data together: a compute budget, a Chinchilla
fit, the compute-optimal next run.

``experiments.research`` runs this loop when the config file names model sizes::

  RESEARCH_METRIC = "eval/loss/action"   # a result.json metric, lower is better
  MIN_SCALE = 8                           # smallest data scale of the grid
  MAX_SCALE = 270                         # optional: the data there is
  RESEARCH_SIZES = {"w64": 2.0e5, "toy": 7.9e5}   # size name -> parameters N
  def research_run(d: int, size: str) -> dict: ...   # overrides of a run
  def run_cost(d: int, size: str) -> float: ...      # its cost (e.g. N x steps)

Given a budget the loop

1. runs a grid: every size at the longest doubling grid of data scales from
   ``MIN_SCALE`` that fits in ``grid_fraction`` of the budget (3+ scales: the fit needs
   6 distinct (N, D) runs);
2. fits ``L = E + A N^-a + B D^-b`` (``egoscale.scaling.fit_chinchilla``) and checks it
   by leaving the costliest run out when 7+ runs allow it;
3. allocates the rest of the budget with ``compute_optimal`` (the continuous optimum
   ``N*``, ``D*`` on ``C = k N D``, with ``k`` read off ``run_cost``), then, since only
   the named sizes exist, buys for each size the most data the rest affords and keeps
   the one with the lowest predicted loss;
4. predicts that run's loss with a bootstrap interval over grid runs, launches it and
   compares.

Every decision goes to ``decisions.jsonl`` with its reason; ``research.json`` holds the
numbers (``prediction_error`` among them) and ``research.md`` the report.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Mapping, Optional

import numpy as np

from egoscale import scaling
from experiments.lib import sweep as sweep_lib
from experiments.lib import sweep_results
from experiments.lib.research import DecisionLog, ResearchError, plain_json
from wam.files import atomic_write_json


@dataclasses.dataclass
class SizeResearchSpec:
  """The knobs of a model-size x data loop (read by :func:`load_size_spec`)."""
  config: str
  metric: str
  min_scale: int
  sizes: Mapping[str, float]                     # name -> parameters
  run_overrides: Callable[[int, str], dict]
  run_cost: Callable[[int, str], float]
  max_scale: Optional[int] = None


def has_sizes(config_spec: str) -> bool:
  """Whether the config file names model sizes (``RESEARCH_SIZES``) for this loop."""
  module, _, _ = sweep_lib.load_config_module(config_spec)
  return bool(getattr(module, "RESEARCH_SIZES", None))


def load_size_spec(config_spec: str) -> SizeResearchSpec:
  """Reads the knobs of the module docstring from a config file."""
  module, config_file, _ = sweep_lib.load_config_module(config_spec)
  missing = [n for n in ("RESEARCH_METRIC", "MIN_SCALE", "RESEARCH_SIZES", "research_run",
                         "run_cost") if not hasattr(module, n)]
  if missing:
    raise ResearchError(f"{config_file} lacks {missing} needed by the model-size research "
                        "loop (see experiments/lib/research_compute.py).")
  sizes = dict(module.RESEARCH_SIZES)
  if len(sizes) < 2 or not all(float(n) > 0 for n in sizes.values()):
    raise ResearchError(f"{config_file}: RESEARCH_SIZES needs 2+ sizes with positive "
                        f"parameter counts, got {sizes}.")
  if len(set(sizes.values())) < len(sizes):
    raise ResearchError(f"{config_file}: two RESEARCH_SIZES have the same parameter count "
                        f"({sizes}); a size axis needs different models.")
  return SizeResearchSpec(config_spec, module.RESEARCH_METRIC, int(module.MIN_SCALE),
                          {k: float(v) for k, v in sizes.items()}, module.research_run,
                          module.run_cost, getattr(module, "MAX_SCALE", None))


def _run_name(size: str, d: int) -> str:
  return f"{size}-d{d}"


def choose_size_grid(spec: SizeResearchSpec, budget: float, *, grid_fraction: float = 0.5,
                     grid_points: int = 5, ratio: int = 2) -> list[int]:
  """The longest doubling grid of data scales that every size runs within the share."""
  scales: list[int] = []
  scale = spec.min_scale
  while len(scales) < grid_points and not (spec.max_scale and scale > spec.max_scale):
    cost = sum(spec.run_cost(d, s) for d in scales + [scale] for s in spec.sizes)
    if cost > grid_fraction * budget:
      break
    scales.append(scale)
    scale *= ratio
  if len(scales) < 3:
    raise ResearchError(
        f"A budget of {budget:g} runs {len(scales)} data scale(s) for each of "
        f"{len(spec.sizes)} sizes in its {grid_fraction:.0%} share; the fit needs 3 "
        f"({[spec.min_scale * ratio ** i for i in range(3)]}). Raise the budget.")
  return scales


def largest_data(spec: SizeResearchSpec, size: str, budget: float) -> int:
  """The largest data scale a run of ``size`` can have within ``budget`` (0 if none)."""
  if spec.run_cost(1, size) > budget:
    return 0
  lo, hi = 1, 2
  while spec.run_cost(hi, size) <= budget and not (spec.max_scale and hi >= spec.max_scale):
    lo, hi = hi, hi * 2
  while hi - lo > 1:
    mid = (lo + hi) // 2
    lo, hi = (mid, hi) if spec.run_cost(mid, size) <= budget else (lo, mid)
  top = hi if spec.run_cost(hi, size) <= budget else lo
  return min(top, spec.max_scale) if spec.max_scale else top


def _bootstrap(fit: scaling.ChinchillaFit, N, D, L, at, samples: int, seed: int = 0
               ) -> tuple[float, float, int]:
  """A 90% interval of the Chinchilla prediction at ``at`` over runs drawn with replacement.

  Each resample starts from ``fit`` (the fit on every run) rather than the 24 starts of a
  fresh fit: 20x faster, and a resample's optimum lies near the full one.
  """
  start = [fit.start]
  rng = np.random.default_rng(seed)
  preds, failed = [], 0
  for _ in range(samples):
    idx = rng.choice(N.size, size=N.size, replace=True)
    try:
      refit = scaling.fit_chinchilla(N[idx], D[idx], L[idx], starts=start)
    except scaling.ScalingFitError:
      failed += 1
      continue
    preds.append(float(refit.predict(*at)))
  if not preds:
    raise ResearchError(f"No bootstrap resample of the {N.size} grid runs could be fitted.")
  lo, hi = np.quantile(preds, [0.05, 0.95])
  return float(lo), float(hi), failed


def _points(results, spec: SizeResearchSpec, where: Mapping[str, tuple[str, int]]):
  N, D, L, missing = [], [], [], []
  for r in results:
    if r.name not in where:
      continue
    size, d = where[r.name]
    if r.status == "finished" and spec.metric in r.metrics:
      N.append(spec.sizes[size])
      D.append(d)
      L.append(r.metrics[spec.metric])
    elif r.status == "finished" and sweep_results.only_on_training_windows(r.metrics,
                                                                          spec.metric):
      missing.append(f"{r.name} (no held-out split: only eval_train/*)")
    else:
      missing.append(r.name)
  return (np.array(N, np.float64), np.array(D, np.float64), np.array(L, np.float64), missing)


def nearest_aside(nearest: Optional[str], chosen: str, options: Mapping[str, dict]) -> str:
  """Why the allocation did not take the named size nearest the continuous optimum."""
  if nearest in (None, chosen):
    return ""
  if nearest not in options:
    return f" (the size nearest N* is {nearest}, but the rest of the budget buys no run of it)"
  if options[nearest]["scale"] < options[chosen]["scale"]:
    return f" (the size nearest N* is {nearest}, but it affords less data)"
  return (f" (the size nearest N* is {nearest}: as much data or more, but a higher "
          "predicted loss)")


def allocate(spec: SizeResearchSpec, fit: scaling.ChinchillaFit, budget: float,
             log: DecisionLog, scale: int) -> tuple[str, int]:
  """The size and data scale the budget buys with the lowest predicted loss (logged).

  ``scale``: where ``k`` of ``C = k N D`` is read off ``run_cost`` (the grid's largest,
  past any floor of steps that small runs get).
  """
  k = float(np.median([spec.run_cost(scale, s) / (n * scale)
                       for s, n in spec.sizes.items()]))
  try:
    best = scaling.compute_optimal(fit, budget, flops_per_param_token=k)
    optimum = {"N": best.N, "D": best.D, "loss": best.loss}
    why = (f"compute-optimal on C = {k:.3g} N D: N* = {best.N:.3g} parameters, D* = "
           f"{best.D:.3g}, predicted {best.loss:.4g}")
  except scaling.ScalingFitError as e:
    optimum, why = None, f"no continuous optimum ({e})"
  options = {}
  for size, n in spec.sizes.items():
    d = largest_data(spec, size, budget)
    if d > 0:
      options[size] = {"parameters": n, "scale": d, "cost": float(spec.run_cost(d, size)),
                       "predicted": float(fit.predict(n, d))}
  if not options:
    raise ResearchError(f"The rest of the budget ({budget:g}) buys no run of any size.")
  size = min(options, key=lambda s: options[s]["predicted"])
  listed = "; ".join(f"{s}: scale {o['scale']}, predicted {o['predicted']:.4g}"
                     for s, o in options.items())
  nearest = (min(spec.sizes, key=lambda s: abs(np.log(spec.sizes[s] / optimum["N"])))
             if optimum else None)
  log.record("allocate", f"{why}; only the named sizes exist, and the rest of the budget "
             f"buys {listed}; {size} predicts the lowest loss"
             + nearest_aside(nearest, size, options),
             optimum=optimum, options=options, size=size, scale=options[size]["scale"], k=k)
  return size, options[size]["scale"]


def run_size_research(spec: SizeResearchSpec, directory: str, budget: float, *,
                      grid_points: int = 5, grid_fraction: float = 0.5, workers: int = 1,
                      bootstrap_samples: int = 100, env=None,
                      progress: Callable[[str], None] = print) -> dict:
  """Runs the loop of the module docstring in ``directory`` (resumable); returns
  what ``research.json`` holds.

  Raises:
    ResearchError: the budget is too small, the grid too thin to fit, or the rest of the
      budget buys nothing larger than the grid.
  """
  if not budget > 0:
    raise ResearchError(f"The budget must be positive, got {budget}.")
  os.makedirs(directory, exist_ok=True)
  log = DecisionLog(os.path.join(directory, "decisions.jsonl"), progress)
  scales = choose_size_grid(spec, budget, grid_fraction=grid_fraction,
                            grid_points=grid_points)
  where = {_run_name(s, d): (s, d) for s in spec.sizes for d in scales}
  grid_cost = float(sum(spec.run_cost(d, s) for s, d in where.values()))
  log.record("grid", f"{len(spec.sizes)} sizes x the longest doubling grid of data from "
             f"{spec.min_scale} within {grid_fraction:.0%} of the budget: {len(where)} runs "
             f"costing {grid_cost:g}; a fit over model size and data needs both to vary",
             sizes=dict(spec.sizes), scales=scales, cost=grid_cost, budget=budget)
  runs_dir = os.path.join(directory, "runs")
  grid = sweep_lib.make_sweep(spec.config, [sweep_lib.Run(n, spec.run_overrides(d, s))
                                            for n, (s, d) in where.items()])
  results = sweep_lib.run_sweep(grid, runs_dir, workers=workers, env=env, progress=progress)
  N, D, L, missing = _points(results, spec, where)
  losses = {r.name: r.metrics.get(spec.metric) for r in results if r.status == "finished"}
  log.record("grid_done", f"{N.size} of {len(where)} grid runs give {spec.metric}"
             + (f"; left out (failed or no metric): {missing}" if missing else ""),
             parameters=N, scales=D, losses=L)
  try:
    fit = scaling.fit_chinchilla(N, D, L)
  except scaling.ScalingFitError as e:
    raise ResearchError(f"{e} See {runs_dir}/summary.md.") from None
  check = _leave_costliest_out(spec, N, D, L)
  log.record("fit", f"L = {fit.E:.4g} + {fit.A:.4g} N^-{fit.a:.3g} + {fit.B:.4g} D^-{fit.b:.3g}"
             f" (R^2 {fit.r2:.3f})" + (f"; left out, the costliest grid run is predicted "
                                        f"{check['relative_error']:+.1%} off"
                                        if check else "; too few runs to leave one out"),
             params=fit.params, r2=fit.r2, leave_costliest_out=check)
  size, target = allocate(spec, fit, budget - grid_cost, log, max(scales))
  costliest = max(spec.run_cost(d, s) for s, d in where.values())
  if spec.run_cost(target, size) <= costliest:
    raise ResearchError(
        f"After the grid ({grid_cost:g}) the budget ({budget:g}) buys {size} at scale "
        f"{target}, costing no more than the costliest grid run ({costliest:g}): nothing "
        "to extrapolate to. Raise the budget or lower grid_fraction.")
  point = (spec.sizes[size], target)
  predicted = float(fit.predict(*point))
  lo, hi, failed = _bootstrap(fit, N, D, L, point, bootstrap_samples)
  log.record("predict", f"the fit at {size} (N {point[0]:.3g}), scale {target}: "
             f"{predicted:.4g}, 90% bootstrap over grid runs [{lo:.4g}, {hi:.4g}]",
             predicted=predicted, interval=[lo, hi], bootstrap_failed=failed)
  name = _run_name(size, target)
  log.record("launch", f"test the prediction: {name} is the run the allocation chose")
  big = sweep_lib.make_sweep(spec.config, [sweep_lib.Run(name, spec.run_overrides(target,
                                                                                  size))])
  result = sweep_lib.run_sweep(big, runs_dir, workers=1, env=env, progress=progress)[0]
  actual = result.metrics.get(spec.metric) if result.status == "finished" else None
  error = None if actual is None else (predicted - actual) / abs(actual)
  if actual is None:
    log.record("compare", f"run {name} did not produce {spec.metric} ({result.status}: "
               f"{result.error}); the prediction stays untested")
  else:
    inside = lo <= actual <= hi
    log.record("compare", f"predicted {predicted:.4g}, measured {actual:.4g} ({error:+.1%}); "
               f"{'inside' if inside else 'outside'} the interval",
               predicted=predicted, actual=actual, relative_error=error, inside=inside)
  out = {"config": spec.config, "metric": spec.metric, "budget": budget,
         "sizes": dict(spec.sizes), "grid_scales": scales,
         "grid": [{"size": s, "scale": d, spec.metric: losses.get(n)}
                  for n, (s, d) in where.items()],
         "fit": {**fit.params, "r2": fit.r2, "leave_costliest_out": check},
         "target": {"size": size, "parameters": point[0], "scale": target},
         "predicted": predicted, "interval": [lo, hi], "actual": actual,
         "prediction_error": None if error is None else abs(error),
         "decisions": log.entries}
  atomic_write_json(os.path.join(directory, "research.json"), out, indent=1,
                    default=plain_json)
  _write_report(directory, out)
  return out


def _leave_costliest_out(spec, N, D, L) -> Optional[dict]:
  """The fit without the run of largest N x D, predicting it (needs 7 runs)."""
  if N.size < 7:
    return None
  i = int(np.argmax(N * D))
  keep = np.arange(N.size) != i
  try:
    fit = scaling.fit_chinchilla(N[keep], D[keep], L[keep])
  except scaling.ScalingFitError:
    return None
  predicted = float(fit.predict(N[i], D[i]))
  return {"parameters": float(N[i]), "scale": float(D[i]), "measured": float(L[i]),
          "predicted": predicted, "relative_error": float((predicted - L[i]) / abs(L[i]))}


def _grid_table(out: dict) -> str:
  """The grid's losses: one row per size, one column per data scale."""
  loss = {(g["size"], g["scale"]): g.get(out["metric"]) for g in out["grid"]}
  lines = ["| size | " + " | ".join(f"{d}" for d in out["grid_scales"]) + " |",
           "|---|" + "---|" * len(out["grid_scales"])]
  for size in out["sizes"]:
    cells = [loss.get((size, d)) for d in out["grid_scales"]]
    lines.append(f"| {size} | " + " | ".join("-" if c is None else f"{c:.4g}" for c in cells)
                 + " |")
  return "\n".join(lines) + "\n"


def _write_report(directory: str, out: dict) -> None:
  t, f = out["target"], out["fit"]
  check = f.get("leave_costliest_out")
  lines = [f"# Research loop over model size and data: {out['config']}", "",
           f"Budget {out['budget']:g}; metric `{out['metric']}` (lower is better).", "",
           f"- sizes (parameters): {out['sizes']}; data scales {out['grid_scales']}",
           f"- fit: L = {f['E']:.4g} + {f['A']:.4g} N^-{f['a']:.3g} + {f['B']:.4g} "
           f"D^-{f['b']:.3g} (R^2 {f['r2']:.3f}); "
           + (f"the costliest grid run left out is predicted {check['predicted']:.4g} for "
              f"{check['measured']:.4g} ({check['relative_error']:+.1%})" if check else
              "too few runs to leave one out"),
           f"- larger run {t['size']} at scale {t['scale']}: predicted {out['predicted']:.4g} "
           f"[{out['interval'][0]:.4g}, {out['interval'][1]:.4g}], measured "
           + ("not measured" if out["actual"] is None else
              f"{out['actual']:.4g} (error {out['prediction_error']:.1%})"),
           "", "## Grid", "", _grid_table(out), "## Decisions", ""]
  lines += [f"{i + 1}. **{d['decision']}**: {d['reason']}"
            for i, d in enumerate(out["decisions"])]
  with open(os.path.join(directory, "research.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
