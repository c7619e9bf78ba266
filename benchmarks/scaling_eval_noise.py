r"""How much of a scaling fit is evaluation noise? The sweep's runs, re-evaluated.

  python -m benchmarks.scaling_eval_noise --sweep=workdir/scaling-compute/scaling \
      [--windows=512 --draws=8 --out=benchmarks/scaling_eval_noise_cpu.json]

Each run of a data-scaling sweep logs its held-out loss on a fixed batch of
``eval.batch_size`` windows (32 at ``runlocal``) averaged over a few draws of flow time
and noise. This loads every run's final checkpoint, rebuilds the same held-out split
the trainer used, and evaluates the same loss on ``--windows`` windows spread over it,
in batches of the run's own eval size with ``--draws`` draws each:

  logged        the number the run logged (what the sweep fitted)
  reproduced    the trainer's own batch and draws again (checks that this is the same
                quantity: it equals ``logged`` up to float rounding)
  many windows  the mean over all batches, with its standard error across batches

and fits ``L = a + b log D`` (R^2, leave-the-largest-out error) to each, plus the spread
of R^2 when each run is scored on one other batch of the same size: how far the choice
of 32 windows alone moves the fit.
"""

from __future__ import annotations

import functools
import glob
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from flax import nnx
from ml_collections import config_dict

from benchmarks import results as results_lib
from egoscale import scaling
from wam import evaluation, loading, trainer
from wam.data import pipeline as data_pipeline

_SWEEP = flags.DEFINE_string("sweep", None, "A sweep directory (one run per subdirectory).",
                             required=True)
_SCALE_KEY = flags.DEFINE_string("scale_key", "data.datasets.human.max_episodes",
                                 "The config key that is the run's data scale D.")
_METRIC = flags.DEFINE_string("metric", "loss/action", "The loss term fitted (eval/<it>).")
_WINDOWS = flags.DEFINE_integer("windows", 512, "Held-out windows (a multiple of the eval "
                                "batch size) spread over the split.")
_DRAWS = flags.DEFINE_integer("draws", 8, "Draws of flow time and noise per batch.")
_OUT = flags.DEFINE_string("out", "", "JSON results file ('' = print only).")


def _get(config: config_dict.ConfigDict, dotted: str):
  value = config
  for part in dotted.split("."):
    value = value[part]
  return value


def _logged(run: str, metric: str) -> float:
  with open(os.path.join(run, "result.json")) as f:
    return float(json.load(f)["metrics"][f"eval/{metric}"])


def evaluate_run(run: str, metric: str, windows: int, draws: int) -> dict:
  """The run's held-out ``metric``: as logged, reproduced, and over ``windows`` windows."""
  model, meta = loading.load(run)
  config = config_dict.ConfigDict(meta.config)
  size = int(config.eval.batch_size)
  if windows % size:
    raise ValueError(f"--windows={windows} is not a multiple of {run}'s eval batch ({size}).")
  data = data_pipeline.from_config(config.data)
  own, found = trainer.eval_batch(config, data)
  if not found:
    raise ValueError(f"{run} has no held-out {config.eval.split!r} split to evaluate on.")
  config.eval.batch_size = windows
  many, _ = trainer.eval_batch(config, data)
  graphdef, params = nnx.split(model)
  rng = jax.random.key(config.seed + 1)   # the trainer's evaluation key

  @functools.partial(jax.jit, static_argnums=3)
  def loss(params, batch, rng, num_draws):
    m = nnx.merge(graphdef, params)
    keys = jax.random.split(rng, num_draws)
    return jnp.mean(jax.lax.map(lambda k: m.loss(batch, k)[1][metric], keys))

  reproduced = float(loss(params, {k: jnp.asarray(v) for k, v in own.items()}, rng,
                          evaluation.VAL_LOSS_DRAWS))
  per_batch = []
  for start in range(0, windows, size):
    # Interleaved batches: each spans the whole split, as the trainer's batch does.
    batch = {k: jnp.asarray(v[start // size::windows // size]) for k, v in many.items()}
    per_batch.append(float(loss(params, batch, jax.random.fold_in(rng, start), draws)))
  per_batch = np.array(per_batch)
  return {"run": os.path.basename(run), "scale": float(_get(config, _SCALE_KEY.value)),
          "logged": _logged(run, metric), "reproduced": reproduced,
          "many_windows": float(per_batch.mean()),
          "standard_error": float(per_batch.std(ddof=1) / np.sqrt(per_batch.size)),
          "per_batch": per_batch.tolist(), "batch_size": size}


def fit(D: np.ndarray, L: np.ndarray) -> dict:
  """The log-linear fit's R^2 and its leave-the-largest-out relative error."""
  held = scaling.leave_largest_out(scaling.fit_log_linear, D, L)
  return {"r2": scaling.fit_log_linear(D, L).r2,
          "leave_largest_out_error": float(held.relative_error[0])}


def main(argv):
  del argv
  runs = sorted(os.path.dirname(p) for p in glob.glob(os.path.join(_SWEEP.value, "*",
                                                                   "result.json")))
  if len(runs) < 3:
    raise app.UsageError(f"{_SWEEP.value} holds {len(runs)} finished runs; a fit needs 3.")
  rows = sorted((evaluate_run(r, _METRIC.value, _WINDOWS.value, _DRAWS.value) for r in runs),
                key=lambda r: r["scale"])
  D = np.array([r["scale"] for r in rows])
  fits = {k: fit(D, np.array([r[k] for r in rows]))
          for k in ("logged", "reproduced", "many_windows")}
  per_batch = np.array([r["per_batch"] for r in rows])   # [runs, batches]
  one_batch = [fit(D, per_batch[:, b]) for b in range(per_batch.shape[1])]
  r2 = np.array([f["r2"] for f in one_batch])
  err = np.array([f["leave_largest_out_error"] for f in one_batch])
  spread = {"r2_quantiles_5_50_95": np.quantile(r2, [0.05, 0.5, 0.95]).tolist(),
            "r2_at_least_0.95": float(np.mean(r2 >= 0.95)),
            "abs_error_quantiles_5_50_95": np.quantile(np.abs(err), [0.05, 0.5, 0.95]).tolist(),
            "abs_error_at_most_0.05": float(np.mean(np.abs(err) <= 0.05))}
  print(f"{'run':>12} {'D':>6} {'logged':>8} {'reprod.':>8} {'many':>8} {'s.e.':>7}")
  for r in rows:
    print(f"{r['run']:>12} {r['scale']:6g} {r['logged']:8.4f} {r['reproduced']:8.4f} "
          f"{r['many_windows']:8.4f} {r['standard_error']:7.4f}")
  for k, f in fits.items():
    print(f"log-linear on {k:>12}: R^2 {f['r2']:.3f}, leave-largest-out "
          f"{100 * f['leave_largest_out_error']:+.1f}%")
  print(f"one other batch of {rows[0]['batch_size']} windows per run ({r2.size} choices): "
        f"R^2 5/50/95% {np.round(spread['r2_quantiles_5_50_95'], 3).tolist()}, "
        f"|error| 5/50/95% {np.round(spread['abs_error_quantiles_5_50_95'], 3).tolist()}")
  if _OUT.value:
    results_lib.write_json(_OUT.value, {
        "sweep": _SWEEP.value, "metric": f"eval/{_METRIC.value}", "windows": _WINDOWS.value,
        "draws": _DRAWS.value, "runs": rows, "fits": fits, "one_batch_spread": spread,
        "devices": str(jax.devices())})


if __name__ == "__main__":
  app.run(main)
