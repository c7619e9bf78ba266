"""The main job's acting stage: the world action model acts on every robot task.

For each task of ``config.acting.tasks`` the stage runs ``experiments.lib.evaluate``
in ``<stage>/<task>/`` with the ladder of controllers, all in MJX physics from the same
initial states, on seen and held-out instruction combinations:

  expert          the scripted expert (the ceiling)
  bc              state-only behaviour cloning of the task's demonstrations (privileged
                  robot and task state, no pixels; trained in seconds, ``dojo.state_bc``)
  wam_policy      the post-trained world action model in policy mode
  scratch_policy  the same model post-trained without human pre-training
  dream_planner   CEM over action chunks inside the post-trained model's dream
  mjx_planner     the same CEM inside MJX physics (the oracle)

plus how well the dream follows actions (motion gain under play and uniformly random
actions, tracking ratio), GIFs of expert episodes beside their dreams, and, on
``config.acting.rank_task``, policy evaluation in the dream (the scripted expert with
graded noise and the WAM policy, scored in MJX and in the dream) and PPO trained in the
dream against PPO trained in MJX on the same budget.

``summary(results)`` turns the stage's results into the ``acting``, ``policy_evaluation``
and ``rl_in_dreams`` keys of ``report.json``.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Mapping
from concurrent import futures
from typing import Any

from absl import logging
from ml_collections import config_dict

import dojo
from experiments.lib import console, evaluate
from experiments.lib import sweep as sweep_lib
from experiments.lib import train as train_lib
from experiments.lib.evaluate_controllers import SPLITS

Results = Mapping[str, dict]

# The settings of experiments.evaluate's config file, read by path as the commands read
# it (libraries never import experiments.configs: the configs import them).
_EVALUATE_CONFIG = sweep_lib.load_config_module(os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "evaluate.py"))[0]

# The ladder's names in reports -> experiments.lib.evaluate's controller names.
CONTROLLERS = {"expert": "expert", "bc": "state_bc", "wam_policy": "policy",
               "scratch_policy": "scratch", "dream_planner": "dream_cem",
               "mjx_planner": "physics_cem"}
DESCRIPTIONS = {
    "expert": "scripted expert",
    "bc": "state-only BC (privileged state, MLP)",
    "wam_policy": "WAM, policy mode (post-trained after human pre-training)",
    "scratch_policy": "WAM, policy mode (post-trained from scratch)",
    "dream_planner": "CEM inside the WAM's dream",
    "mjx_planner": "CEM inside MJX physics (oracle)"}


def check_config(config: config_dict.ConfigDict) -> None:
  """Names unknown controllers, splits and tasks before any compute."""
  a = config.acting
  unknown = [c for c in a.controllers if c not in CONTROLLERS]
  if unknown:
    raise KeyError(f"config.acting.controllers names unknown controller(s) {unknown}; "
                   f"choose from {list(CONTROLLERS)}.")
  bad = [s for s in a.splits if s not in SPLITS]
  if bad:
    raise KeyError(f"config.acting.splits: unknown split(s) {bad}; choose from "
                   f"{SPLITS}.")
  missing = [t for t in a.tasks if t not in config.robot.tasks]
  if missing:
    raise ValueError(f"config.acting.tasks {missing} are not in config.robot.tasks "
                     f"{tuple(config.robot.tasks)}: the model never saw them.")
  if a.rank_task and a.rank_task not in a.tasks:
    raise ValueError(f"config.acting.rank_task {a.rank_task!r} is not one of "
                     f"config.acting.tasks {tuple(a.tasks)}.")
  for key in ("planner_tasks", "planner_splits"):
    allowed = a.tasks if key == "planner_tasks" else a.splits
    bad = [x for x in (a.get(key) or ()) if x not in allowed]
    if bad:
      raise ValueError(f"config.acting.{key} names {bad}, not in {tuple(allowed)}.")
  for spec in a.policy_evaluation:
    if spec != "wam_policy" and not spec.startswith("expert@"):
      raise ValueError(f"config.acting.policy_evaluation entries are 'expert@NOISE' or "
                       f"'wam_policy', got {spec!r}.")


def evaluate_config(config: config_dict.ConfigDict, task: str, results: Results
                    ) -> config_dict.ConfigDict:
  """The ``experiments.lib.evaluate`` config of ``task`` for the job's models: every
  controller on every split, controllability and, on ``rank_task``, policy evaluation
  and PPO (``work_units`` splits it into parts)."""
  a = config.acting
  c = _EVALUATE_CONFIG.get_config("runlocal")
  wam = results["posttrain"]["workdir"]
  chunks = a.num_chunks.get(task) if a.get("num_chunks") else None
  if not chunks:
    chunks = dojo.load(task, cameras=()).config.episode_length // config.train.action_chunk
  demos = [d["path"] for d in results["robot_data"]["datasets"].values()
           if d["task"] == task and d["imitate"]]
  rank = task == a.rank_task
  c.update(wam=wam, task=task, splits=tuple(a.splits), num_episodes=a.num_episodes,
           num_chunks=int(chunks), cameras=(config.camera,),
           image_size=tuple(config.image_size), batch_size=a.batch_size, video_episodes=4,
           seed=config.seed, dream_videos=4,
           controllers=tuple(CONTROLLERS[n] for n in a.controllers))
  c.state_bc = tuple(train_lib.episodes_dir(p) for p in demos)
  c.policies = config_dict.ConfigDict(
      {"scratch": results["scratch"]["workdir"]} if "scratch_policy" in a.controllers
      and "scratch" in results else {})
  c.planner.num_samples, c.planner.num_elites = a.cem_samples, a.cem_elites
  c.controllability.episodes = a.controllability_episodes
  step = results["posttrain"]["step"]
  c.policy_evaluation = tuple(f"wam@{step}" if p == "wam_policy" else p
                              for p in a.policy_evaluation) if rank else ()
  c.ppo.num_timesteps = a.ppo_timesteps if rank else 0
  return c


PLANNERS = ("dream_planner", "mjx_planner")


def work_units(config: config_dict.ConfigDict, task: str, results: Results
               ) -> dict[str, config_dict.ConfigDict]:
  """``task``'s evaluation as independent parts, ``{unit name: evaluate config}``:
  the ladder per split (the first also measures controllability and writes the GIFs of
  episodes beside their dreams), and on ``rank_task`` policy evaluation and PPO.

  Planners run on the tasks of ``acting.planner_tasks`` and the splits of
  ``acting.planner_splits`` only (all when empty): CEM in MJX physics is the costliest
  part of an evaluation on a CPU host.
  """
  a = config.acting
  full = evaluate_config(config, task, results)
  planner_tasks = tuple(a.get("planner_tasks") or a.tasks)
  planner_splits = tuple(a.get("planner_splits") or a.splits)
  units = {}
  for i, split in enumerate(a.splits):
    names = [n for n in a.controllers if n not in PLANNERS
             or (task in planner_tasks and split in planner_splits)]
    c = config_dict.ConfigDict(full.to_dict())
    c.update(splits=(split,), controllers=tuple(CONTROLLERS[n] for n in names),
             policy_evaluation=(), dream_videos=full.dream_videos if i == 0 else 0)
    c.controllability.episodes = full.controllability.episodes if i == 0 else 0
    c.ppo.num_timesteps = 0
    units[split] = c
  if full.policy_evaluation:
    c = config_dict.ConfigDict(full.to_dict())
    c.update(controllers=(), dream_videos=0)
    c.controllability.episodes, c.ppo.num_timesteps = 0, 0
    units["ranking"] = c
  if full.ppo.num_timesteps:
    c = config_dict.ConfigDict(full.to_dict())
    c.update(controllers=(), dream_videos=0, policy_evaluation=())
    c.controllability.episodes = 0
    units["ppo"] = c
  return units


def _evaluate(config: config_dict.ConfigDict, workdir: str) -> dict:
  """One unit's evaluation (in a worker process: its progress lines at INFO)."""
  logging.set_verbosity(logging.INFO)
  return evaluate.evaluate(config, workdir)


def _merge(parts: list[dict]) -> dict:
  """One task's results from its units' (controllers merged per split)."""
  merged = {k: parts[0][k] for k in ("task", "num_episodes", "num_chunks")}
  merged["controllers"] = {}
  for r in parts:
    for name, by_split in r["controllers"].items():
      merged["controllers"].setdefault(name, {}).update(by_split)
    for key in ("controllability", "policy_evaluation", "rl_in_dreams"):
      if key in r:
        merged[key] = r[key]
  return merged


def acting(config, stage_dir: str, results: Results) -> dict:
  """Stage: the ladder, controllability, policy evaluation and RL in dreams per task.

  Every task's work units (``work_units``) run in ``config.acting.workers`` processes
  at once, the costliest first: most of an evaluation's time on a CPU host is XLA
  compiling one program per controller and split, which keeps one core busy. Each unit
  writes ``<stage>/<task>/<unit>/``; each task's merged results go to
  ``<stage>/<task>/results.{json,md}``.
  """
  check_config(config)
  units = {(task, name): c for task in config.acting.tasks
           for name, c in work_units(config, task, results).items()}
  # Costliest first (planners, ranking, PPO), so that the pool ends evenly.
  cost = lambda c: (3 * sum(n in ("dream_cem", "physics_cem") for n in c.controllers)
                    + 3 * bool(c.policy_evaluation) + 2 * bool(c.ppo.num_timesteps)
                    + len(c.controllers) / 10) * c.num_chunks
  order = sorted(units, key=lambda k: -cost(units[k]))
  workdir = lambda k: os.path.join(stage_dir, *k)
  workers = min(int(config.acting.get("workers", 1)), len(units))
  if workers > 1:
    context = multiprocessing.get_context("spawn")   # a fresh JAX per process
    # The workers log like this process: progress on the console, all in the stage's log.
    with futures.ProcessPoolExecutor(workers, mp_context=context,
                                     initializer=console.configure_worker,
                                     initargs=(console.worker_settings(),)) as pool:
      running = {k: pool.submit(_evaluate, units[k], workdir(k)) for k in order}
      done = {k: f.result() for k, f in running.items()}
  else:
    done = {k: _evaluate(units[k], workdir(k)) for k in order}
  out: dict[str, Any] = {}
  for task in config.acting.tasks:
    out[task] = _merge([done[k] for k in units if k[0] == task])
    evaluate.write_results(os.path.join(stage_dir, task), out[task])
  if "oneshot" in results:
    out["oneshot"] = _oneshot(config, os.path.join(stage_dir, "oneshot"), results)
  return out


def _oneshot(config, workdir: str, results: Results) -> dict:
  """The one-shot models (EgoScale recipe) in policy mode on the unseen instructions."""
  shots = {f"oneshot_{k}": v["workdir"] for k, v in results["oneshot"].items()
           if isinstance(v, dict) and "workdir" in v}
  c = evaluate_config(config, config.robot.task, results)
  c.update(wam=shots["oneshot_pretrained"], splits=("unseen",),
           controllers=tuple(shots) + ("expert",), policy_evaluation=(), dream_videos=0)
  c.policies = config_dict.ConfigDict(shots)
  c.controllability.episodes = 0
  c.ppo.num_timesteps = 0
  return evaluate.evaluate(c, workdir)


def _rate(r: Mapping | None) -> float | None:
  return None if r is None else r["success_rate"]


def summary(config, results: Results) -> dict:
  """The report keys: ``acting.<task>.success.<controller>.<split>`` (and ``ci95``,
  ``episodes``, ``motion_gain.{play,random}``, ``tracking_ratio``),
  ``policy_evaluation.{pearson, spearman, real_success_span}`` and
  ``rl_in_dreams.{dream, mjx}`` (MJX success of PPO trained in each)."""
  stage = results.get("acting") or {}
  out: dict[str, Any] = {"acting": {}}
  names = {v: k for k, v in CONTROLLERS.items()}
  for task in config.acting.tasks:
    r = stage.get(task)
    if not r:
      continue
    entry: dict[str, Any] = {"episodes": r["num_episodes"], "success": {}, "ci95": {}}
    # The ladder's order, from the expert down to the oracle.
    rank = list(CONTROLLERS.values())
    for name, by_split in sorted(r["controllers"].items(),
                                 key=lambda kv: rank.index(kv[0]) if kv[0] in rank else 99):
      label = names.get(name, name)
      entry["success"][label] = {s: _rate(v) for s, v in by_split.items()}
      entry["ci95"][label] = {s: v["ci95"] for s, v in by_split.items()}
    control = r.get("controllability")
    if control:
      entry["motion_gain"] = {src: control[src]["motion_gain"] for src in control}
      entry["tracking_ratio"] = control["play"]["tracking_ratio"]
    out["acting"][task] = entry
    ranking = r.get("policy_evaluation")
    if ranking:
      real = [p["mjx"] for p in ranking["policies"]]
      out["policy_evaluation"] = {
          "task": task, "pearson": ranking["pearson"], "spearman": ranking["spearman"],
          "real_success_span": max(real) - min(real), "policies": ranking["policies"]}
    rl = r.get("rl_in_dreams")
    if rl:
      out["rl_in_dreams"] = {"task": task, "num_timesteps": rl["num_timesteps"],
                             "dream": rl["trained_in_dream"]["success_rate"],
                             "mjx": rl["trained_in_mjx"]["success_rate"]}
  return out


def markdown(config, results: Results) -> list[str]:
  """``report.md``'s acting section: the ladder per task, controllability, GIFs."""
  keys = summary(config, results)
  if not keys["acting"]:
    return []
  lines = ["## The world action model acts (MJX physics)", ""]
  for task, entry in keys["acting"].items():
    splits = [s for s in config.acting.splits]
    lines += [f"### `{task}`: success, {entry['episodes']} episodes per cell (95% interval)",
              "", "| controller | " + " | ".join(splits) + " |",
              "|---|" + "---|" * len(splits)]
    for label, by_split in entry["success"].items():
      cells = []
      for s in splits:
        rate, ci = by_split.get(s), entry["ci95"][label].get(s)
        cells.append("—" if rate is None else f"{rate:.2f} ({ci[0]:.2f}–{ci[1]:.2f})")
      lines.append(f"| {DESCRIPTIONS.get(label, label)} | " + " | ".join(cells) + " |")
    if "motion_gain" in entry:
      lines += ["", (f"Dream against physics: motion gain {entry['motion_gain']['play']:.2f} "
                     f"under play actions, {entry['motion_gain']['random']:.2f} under "
                     f"uniformly random ones; tracking ratio {entry['tracking_ratio']:.2f} "
                     "(dreamed joint error after one chunk / the error of \"nothing "
                     "moves\").")]
    videos = os.path.join("acting", task, config.acting.splits[0], "videos")
    lines += ["", (f"![{task}: expert episodes (top) beside their dreams (bottom)]"
                   f"({videos}/dream_beside_reality.gif) "
                   f"![{task}: WAM policy]({videos}/policy_{config.acting.splits[0]}.gif)"), ""]
  ranking = keys.get("policy_evaluation")
  if ranking:
    fmt = lambda v: "n/a (constant)" if v is None else f"{v:.3f}"
    lines += [f"### Policy evaluation in the dream (`{ranking['task']}`)", "",
              "| policy | success in MJX | success in the dream |", "|---|---|---|"]
    lines += [f"| {p['policy']} | {p['mjx']:.2f} | {p['dream']:.2f} |"
              for p in ranking["policies"]]
    lines += ["", (f"Pearson r = {fmt(ranking['pearson'])}, Spearman rho = "
                   f"{fmt(ranking['spearman'])}; real success spans "
                   f"{ranking['real_success_span']:.2f}."), ""]
  rl = keys.get("rl_in_dreams")
  if rl:
    lines += [f"### PPO in the dream (`{rl['task']}`, {rl['num_timesteps']} chunk steps)", "",
              (f"Success in MJX of PPO trained in the dream {rl['dream']:.2f}, trained in "
               f"MJX {rl['mjx']:.2f}."), ""]
  oneshot = (results.get("acting") or {}).get("oneshot")
  if oneshot:
    lines += ["### One-shot task (never in robot data)", "",
              evaluate.markdown_table(oneshot)]
  return lines
