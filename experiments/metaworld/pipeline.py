"""The stages of the Meta-World job (``experiments.lib.stages``: each runs once, resumable).

| stage | runs | writes under ``<workdir>/<stage>/`` |
|---|---|---|
| ``demos`` | ``wam-gym-record`` per task, Meta-World's scripted expert, in its venv | ``<task>/episode_*.npz``, ``mapping.json``, ``record.json`` |
| ``dataset`` | ``wam.data.importers.npz`` on the successful demos of all tasks | ``data/metaworld/1.0.0`` (train + val) |
| ``train_wam`` / ``train_bc`` | ``experiments.train`` on configs/metaworld.py (``bc``: the baseline) | a training workdir |
| ``eval_wam`` / ``eval_bc`` | ``experiments.serve`` + ``wam-gym-evaluate`` per task and block of held-out seeds | ``<task>/seed_<first>/summary.json``, GIFs, ``server.log`` |
| ``report`` | :mod:`experiments.metaworld.report` | ``<workdir>/summary.json``, ``results.md`` |

Inside a stage, finished tasks are kept too: a killed recording or evaluation resumes
at its first unfinished task (or block of seeds), a killed training from its last
checkpoint.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from typing import Any, Mapping, Optional, Sequence

from absl import logging
from ml_collections import config_dict

from experiments.configs import metaworld as metaworld_config
from experiments.metaworld import commands, report, served, tasks as tasks_lib
from experiments.lib.stages import Stage
from wam.data.importers import two_pass

Results = Mapping[str, dict]
MODELS = ("wam", "bc")
DATASET_NAME = "metaworld"


def job_config(size: str, tasks: Optional[Sequence[str]] = None) -> config_dict.ConfigDict:
  """The job's config: ``pipeline_config(size)``, with ``tasks`` where given."""
  job = metaworld_config.pipeline_config(size)
  if tasks:
    job.tasks = tuple(tasks)
  check_job(job)
  return job


def check_job(job: config_dict.ConfigDict) -> None:
  """Refuses unknown tasks and evaluation blocks that overlap each other or the demos.

  Raises:
    ValueError: saying which value is wrong.
  """
  tasks_lib.check(*job.tasks)
  seeds = job.eval_seeds
  if isinstance(seeds, (int, str)) or not seeds:
    raise ValueError(f"eval_seeds={seeds!r}: give a tuple of first seeds, e.g. "
                     "--config.eval_seeds=\"(100000, 200000)\".")
  blocks = sorted((int(s), int(s) + job.eval_episodes) for s in seeds)
  if blocks[0][0] < job.demos_per_task:
    raise ValueError(f"eval_seeds={tuple(seeds)}: seed {blocks[0][0]} is a demonstration's "
                     f"(seeds 0..{job.demos_per_task - 1}); held-out scenes start above.")
  for (a, end), (b, _) in zip(blocks, blocks[1:]):
    if b < end:
      raise ValueError(f"eval_seeds={tuple(seeds)}: the blocks from {a} and {b} overlap "
                       f"({job.eval_episodes} episodes each); space them further apart.")


def block_dir(seed: int) -> str:
  """The directory of one block of evaluation seeds, under the task's."""
  return f"seed_{int(seed)}"


def complete(summary: Optional[Mapping[str, Any]], episodes: int) -> bool:
  """Whether a record/evaluate summary holds all ``episodes`` (a rerun's is then kept)."""
  return summary is not None and int(summary.get("episodes", -1)) == int(episodes)


def run(command: Sequence[str], *, log: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None) -> None:
  """Runs ``command`` in the repository (output to ``log``, else to this console).

  Raises:
    RuntimeError: it failed; the message names the log and quotes its end.
  """
  if log is None:
    done = subprocess.run(list(command), cwd=commands.REPO, env=env, check=False)
  else:
    with open(log, "w") as f:
      f.write("$ " + " ".join(command) + "\n")
      f.flush()
      done = subprocess.run(list(command), cwd=commands.REPO, env=env, stdout=f,
                            stderr=subprocess.STDOUT, check=False)
  if done.returncode:
    tail = ""
    if log:
      with open(log, errors="replace") as f:
        tail = "; it ends with:\n" + "\n".join(f.read().splitlines()[-12:])
    raise RuntimeError(f"{os.path.basename(command[0])} {command[1] if len(command) > 1 else ''}"
                       f" failed (exit {done.returncode}){f', log {log}' if log else ''}{tail}")


def interleave(files: Mapping[str, Sequence[str]]) -> list[tuple[str, str]]:
  """``(link name, target)`` pairs: every task's k-th episode before any (k+1)-th, so that
  the importer's consecutive splits (names sort naturally) hold episodes of every task."""
  out: list[tuple[str, str]] = []
  for k in range(max((len(v) for v in files.values()), default=0)):
    for task, paths in files.items():
      if k < len(paths):
        out.append((f"episode_{len(out):05d}_{task}.npz", paths[k]))
  return out


# ----------------------------------------------------------------------------- demos


def record_demos(venv_dir: str, job: config_dict.ConfigDict, stage_dir: str,
                 results: Results) -> dict:
  """Records every task's demonstrations (tasks already recorded are kept)."""
  del results
  per_task = {}
  env = commands.sim_env(venv_dir)
  for task in job.tasks:
    out = os.path.join(stage_dir, task)
    summary = report.read_json(os.path.join(out, report.RECORD_SUMMARY))
    if not complete(summary, job.demos_per_task):
      shutil.rmtree(out, ignore_errors=True)
      os.makedirs(out)
      logging.info("[metaworld] recording %d %s demonstrations", job.demos_per_task, task)
      run(commands.record(venv_dir, job, task, out), log=os.path.join(out, "record.log"),
          env=env)
      summary = report.read_json(os.path.join(out, report.RECORD_SUMMARY))
    files = [os.path.join(out, r["file"]) for r in summary["results"] if r["success"]]
    if not files:
      raise RuntimeError(f"No {task} demonstration succeeded ({out}/record.json).")
    per_task[task] = {"episodes": summary["episodes"], "successes": len(files),
                      "steps": summary["steps"], "files": files}
    logging.info("[metaworld] %s: %d/%d demonstrations succeeded", task, len(files),
                 summary["episodes"])
  return {"tasks": per_task}


def build_dataset(job: config_dict.ConfigDict, stage_dir: str, results: Results) -> dict:
  """Imports the successful demonstrations of every task into one dataset."""
  demos = results["demos"]["tasks"]
  mappings = {}
  for task in job.tasks:
    with open(os.path.join(os.path.dirname(demos[task]["files"][0]), "mapping.json")) as f:
      mappings[task] = json.load(f)
  first = job.tasks[0]
  differ = [t for t in job.tasks if mappings[t] != mappings[first]]
  if differ:
    raise RuntimeError(f"The recordings of {differ} map differently from {first}'s.")
  mapping = os.path.join(stage_dir, "mapping.json")
  with open(mapping, "w") as f:
    json.dump(mappings[first], f, indent=1)
  staged = os.path.join(stage_dir, "episodes")
  shutil.rmtree(staged, ignore_errors=True)
  os.makedirs(staged)
  links = interleave({t: demos[t]["files"] for t in job.tasks})
  for name, target in links:
    os.symlink(os.path.abspath(target), os.path.join(staged, name))
  data_dir = os.path.join(stage_dir, "data")
  logging.info("[metaworld] importing %d demonstrations of %d tasks", len(links), len(job.tasks))
  run(commands.import_npz(os.path.join(staged, "episode_*.npz"), mapping, data_dir,
                          job.val_fraction, DATASET_NAME),
      log=os.path.join(stage_dir, "import.log"))
  path = os.path.join(data_dir, DATASET_NAME, "1.0.0")
  if not os.path.exists(os.path.join(path, "dataset_info.json")):
    raise RuntimeError(f"The import wrote no dataset at {path}.")
  return {"path": path, "episodes": len(links)}


# ----------------------------------------------------------------------------- train


def steps_per_second(metrics_path: str) -> Optional[float]:
  """The last logged training rate (the first window includes compilation)."""
  rates = []
  try:
    with open(metrics_path) as f:
      for line in f:
        row = json.loads(line)
        if "steps_per_second" in row:
          rates.append(float(row["steps_per_second"]))
  except (OSError, ValueError):
    return None
  return rates[-1] if rates else None


def train(model: str, job: config_dict.ConfigDict, stage_dir: str, results: Results) -> dict:
  """Trains the WAM or the BC baseline on the dataset (resumes from checkpoints)."""
  logging.info("[metaworld] training %s (log in %s/logs)", model, stage_dir)
  run(commands.train(job.size, model == "bc", stage_dir, results["dataset"]["path"],
                     job.train_flags[model]))
  result = report.read_json(os.path.join(stage_dir, "result.json"))
  if result is None or result["step"] < result["num_steps"]:
    raise RuntimeError(f"Training {model} did not finish ({stage_dir}/result.json).")
  keep = ("loss", "eval/loss", "loss/action", "eval/loss/action")
  return {"workdir": stage_dir, "step": result["step"],
          "metrics": {k: v for k, v in result["metrics"].items() if k in keep},
          "steps_per_second": steps_per_second(os.path.join(stage_dir, "metrics.jsonl"))}


# ----------------------------------------------------------------------------- evaluate


def evaluate(model: str, venv_dir: str, job: config_dict.ConfigDict, stage_dir: str,
             results: Results) -> dict:
  """Serves the trained model and evaluates it on every task and block of seeds
  (finished ones kept)."""
  blocks = [block_dir(s) for s in job.eval_seeds]
  todo = [(t, s) for t in job.tasks for s in job.eval_seeds if not complete(
      report.read_json(os.path.join(stage_dir, t, block_dir(s), report.EVAL_SUMMARY)),
      job.eval_episodes)]
  if todo:
    train_dir = results[f"train_{model}"]["workdir"]
    env = commands.sim_env(venv_dir)
    with served.served(commands.serve(train_dir, job.flow_steps),
                       os.path.join(stage_dir, "server.log"), cwd=commands.REPO) as url:
      for task, seed in todo:
        out = os.path.join(stage_dir, task, block_dir(seed))
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        logging.info("[metaworld] evaluating %s on %s (%d episodes from seed %d)", model,
                     task, job.eval_episodes, seed)
        run(commands.evaluate(venv_dir, job, task, url, seed, out),
            log=os.path.join(out, "evaluate.log"), env=env)
  collected = report.collect({model: stage_dir}, job.tasks, blocks=blocks)[model]
  for task, r in collected["tasks"].items():
    logging.info("[metaworld] %s on %s: %s", model, task, report.cell(r))
  return collected


# ----------------------------------------------------------------------------- report


def write_report(job: config_dict.ConfigDict, stage_dir: str, results: Results) -> dict:
  """``<workdir>/summary.json`` and ``results.md`` from the stages' results."""
  workdir = os.path.dirname(stage_dir)
  models = report.collect({"experts": os.path.join(workdir, "demos")}, job.tasks,
                          report.RECORD_SUMMARY)
  for model in MODELS:
    models[model] = {k: v for k, v in results[f"eval_{model}"].items()
                     if k in ("tasks", "overall", "blocks")}
  train_info = {m: {**{k: results[f"train_{m}"].get(k) for k in
                       ("step", "steps_per_second", "metrics", "seconds")},
                    "flags": job.train_flags[m]}
                for m in MODELS}
  seconds = {name: r.get("seconds") for name, r in results.items()}
  # The demonstrations trained on: the successful ones, less the val split.
  splits = two_pass.read_report(results["dataset"]["path"])["episodes"]
  paths = report.write(workdir, models, job.tasks, {
      "size": job.size, "eval_seeds": list(job.eval_seeds),
      "eval_episodes_per_block": job.eval_episodes, "demos_per_task": job.demos_per_task,
      "train_demos_per_task": splits.get("train", 0) / len(job.tasks),
      "dataset_splits": splits, "train": train_info, "stage_seconds": seconds,
      "demos": {t: {k: v for k, v in r.items() if k != "files"}
                for t, r in results["demos"]["tasks"].items()},
      "dataset": results["dataset"]})
  return {"summary": paths[0], "table": paths[1]}


def stages(venv_dir: str) -> list[Stage]:
  """The job, in order."""
  out = [Stage("demos", functools.partial(record_demos, venv_dir),
               "Meta-World's scripted experts, recorded through wam-gym-record"),
         Stage("dataset", build_dataset, "the npz importer: one dataset of all tasks",
               needs=("demos",))]
  out += [Stage(f"train_{m}", functools.partial(train, m),
                f"experiments.train ({'pixel BC baseline' if m == 'bc' else 'world action model'})",
                needs=("dataset",)) for m in MODELS]
  out += [Stage(f"eval_{m}", functools.partial(evaluate, m, venv_dir),
                "experiments.serve + wam-gym-evaluate on blocks of held-out seeds",
                needs=(f"train_{m}",)) for m in MODELS]
  out.append(Stage("report", write_report, "summary.json and results.md",
                   needs=tuple(f"eval_{m}" for m in MODELS) + ("demos", "dataset")
                   + tuple(f"train_{m}" for m in MODELS)))
  return out
