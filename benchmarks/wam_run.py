r"""A training run of the world action model, timed, and its evaluations.

  python -m benchmarks.wam_run --workdir=workdir/benchmarks/wam \
      --out=benchmarks/wam_run_cpu.json [--config=experiments/configs/wam.py:runlocal]

Runs ``python -m experiments.train --config=CONFIG --workdir=WORKDIR`` in a subprocess
(data collection included) unless the workdir already holds a finished run, and records:
- ``wall_seconds``: the subprocess's wall time (null when a finished run was reused;
  ``resumed``: the workdir had checkpoints before, so the time is not a whole run's);
- ``evals``: every evaluation of ``metrics.jsonl`` (held-out windows, PSNR/SSIM of the
  dreamed frames at horizons 1-3 against copying the last frame, joint MAE against
  "nothing moves", policy-mode action MSE);
- ``final``: the last training metrics of ``result.json`` (steps/s, in-run MFU, loss);
- ``datasets``: the training datasets of the run (``config.json``).
``make benchmarks`` runs it on an emptied workdir, so the model the later benchmarks
(dreams, plan, serve) load is trained by the current code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from absl import app, flags

from benchmarks import results as results_lib

_CONFIG = flags.DEFINE_string("config", "experiments/configs/wam.py:runlocal",
                              "The experiments.train config.")
_WORKDIR = flags.DEFINE_string("workdir", "workdir/benchmarks/wam", "The run's workdir.")
_OUT = flags.DEFINE_string("out", "benchmarks/wam_run.json", "Where to write the JSON results.")

EVAL_KEYS = ("psnr_h1", "psnr_h2", "psnr_h3", "psnr_copy_last_h1", "psnr_copy_last_h2",
             "psnr_copy_last_h3", "ssim_h1", "ssim_copy_last_h1", "psnr_reconstruction_h1",
             "joint_mae", "joint_mae_copy_last", "action_mse", "loss")
FINAL_KEYS = ("loss", "steps_per_second", "examples_per_second", "mfu")


def finished(workdir: str) -> bool:
  """Whether ``workdir`` holds a run that reached its ``num_steps``."""
  path = os.path.join(workdir, "result.json")
  if not os.path.exists(path):
    return False
  with open(path) as f:
    result = json.load(f)
  return result.get("step") == result.get("num_steps")


def summarize(workdir: str) -> dict:
  """Evaluations, final metrics and datasets of a finished run in ``workdir``."""
  evals = []
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    for line in f:
      row = json.loads(line)
      if "eval/psnr_h1" in row:
        evals.append({"step": row["step"],
                      **{k: row[f"eval/{k}"] for k in EVAL_KEYS if f"eval/{k}" in row}})
  with open(os.path.join(workdir, "result.json")) as f:
    result = json.load(f)
  datasets = {}
  config_path = os.path.join(workdir, "config.json")
  if os.path.exists(config_path):
    with open(config_path) as f:
      config = json.load(f)
    datasets = {name: os.path.basename(os.path.dirname(d["path"].rstrip("/")))
                for name, d in config["data"].get("datasets", {}).items()}
    config_summary = {"num_steps": config.get("num_steps"),
                      "batch_size": config["data"].get("batch_size"),
                      "image_size": config["data"].get("image_size"),
                      "cameras": config["data"].get("cameras"),
                      "variant": config.get("model", {}).get("variant")}
  else:
    config_summary = {}
  return {"steps": result["step"], "evals": evals, "datasets": datasets,
          "config": config_summary,
          "final": {k: result["metrics"][k] for k in FINAL_KEYS if k in result["metrics"]}}


def main(argv):
  del argv
  workdir = _WORKDIR.value
  resumed = os.path.isdir(os.path.join(workdir, "checkpoints"))
  wall = None
  if not finished(workdir):
    command = [sys.executable, "-m", "experiments.train", f"--config={_CONFIG.value}",
               f"--workdir={workdir}"]
    print(f"[benchmarks.wam_run] {' '.join(command)}", flush=True)
    start = time.perf_counter()
    subprocess.run(command, cwd=results_lib.ROOT, check=True)
    wall = time.perf_counter() - start
  else:
    print(f"[benchmarks.wam_run] {workdir} holds a finished run: not retrained, not timed",
          flush=True)
  results = {"config_arg": _CONFIG.value, "workdir": workdir, "wall_seconds": wall,
             "resumed": resumed, "reused": wall is None, **summarize(workdir)}
  last = results["evals"][-1] if results["evals"] else {}
  print(f"[benchmarks.wam_run] {results['steps']} steps"
        + (f" in {wall:.0f} s" if wall is not None else "")
        + (f"; last eval PSNR h1 {last['psnr_h1']:.2f} dB (copy "
           f"{last['psnr_copy_last_h1']:.2f})" if last else ""), flush=True)
  results_lib.write_json(_OUT.value, results)


if __name__ == "__main__":
  app.run(main)
