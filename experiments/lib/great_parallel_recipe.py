"""The main job's data, training and scaling stages (``experiments.lib.great_parallel``
lists them all; no absl flags).

Every model stage is a ``wam.trainer`` run in ``<workdir>/<stage>/`` (resumable); the
transfer between stages is ``config.init_from`` (wam/transfer.py): parameters whose
shapes match carry over, the action and state layers of a new embodiment start fresh.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional

import numpy as np
from absl import logging
from ml_collections import config_dict

from dojo import registry
from dojo.datasets import dojo_robot
from egoscale import scaling as fits
from egoscale.datasets import egocentric_human
from egoscale.latent_actions.model import LatentActionConfig
from egoscale.latent_actions.pairs import frame_pairs
from egoscale.latent_actions.probe import linear_probe
from egoscale.latent_actions.relabel import label_dataset
from egoscale.latent_actions.trainer import LatentActionTrainer
from experiments.lib import great_parallel_leaks as leak_check
from experiments.lib import sweep as sweep_lib
from experiments.lib import sweep_results
from wam import trainer
from wam.data.config import dataset_config
from wam.data.reader import EpisodeDataset

Results = Mapping[str, dict]

# Metrics of a training run kept in stage results (all from held-out windows).
EVAL_KEYS = ("eval/loss", "eval/loss/video", "eval/loss/state", "eval/loss/action",
             "eval/psnr_h1", "eval/psnr_copy_last_h1", "eval/joint_mae", "eval/action_mse")


# ------------------------------------------------------------------------------- data
def data_dir(config: config_dict.ConfigDict, workdir: str) -> str:
  return os.path.expanduser(config.data_dir) if config.data_dir else os.path.join(
      workdir, "data")


def human_dataset_name(config: config_dict.ConfigDict, hours: float) -> str:
  """The directory name ``build_human`` gives the pre-training video of ``hours``."""
  h = config.human
  return egocentric_human.config_name(hours, tuple(config.image_size), float(h.fps),
                                      int(h.episode_length), tuple(h.tasks), "human",
                                      int(h.seed), config.camera)


def build_human(config: config_dict.ConfigDict, root: str, *, hours: float,
                tasks: Optional[tuple] = None, seed: Optional[int] = None) -> dict:
  """Builds (or reuses) a synthetic human dataset of ``hours``; returns its description."""
  h = config.human
  path = egocentric_human.build(
      root, hours=hours, image_size=tuple(config.image_size), fps=float(h.fps),
      episode_length=int(h.episode_length), tasks=tuple(tasks or h.tasks), actions="human",
      seed=int(h.seed if seed is None else seed), val_fraction=float(h.val_fraction),
      camera=config.camera)  # named after every knob: another size never reuses it
  train = EpisodeDataset(path, "train")
  return {"path": path, "hours": hours, "train_episodes": len(train),
          "train_frames": int(train.num_steps),
          "train_hours": float(train.num_steps / h.fps / 3600.0)}


def human_data(config, stage_dir: str, results: Results) -> dict:
  """Stage: the human pre-training video (the largest scale the job uses)."""
  del results
  return build_human(config, data_dir(config, os.path.dirname(stage_dir)),
                     hours=config.human.hours)


def robot_dataset(config: config_dict.ConfigDict, root: str, *, num_episodes: int,
                  instructions: str, seed: int, task: str = "", policy: str = "noisy_expert",
                  noise: Optional[float] = None) -> str:
  """Builds (or reuses) one Dojo dataset: ``policy``'s episodes of ``task`` (default
  ``config.robot.task``) at the job's camera and image size."""
  r = config.robot
  return dojo_robot.build(
      root, task or r.task, num_episodes=num_episodes, cameras=(config.camera,),
      image_size=tuple(config.image_size), policy=policy,
      noise=r.noise if noise is None else noise, seed=seed, val_fraction=r.val_fraction,
      instructions=instructions, description="experiments.train")


def robot_mixture(config: config_dict.ConfigDict) -> dict[str, dict]:
  """``{dataset name: {task, policy, noise, num_episodes, weight, imitate}}`` of the
  robot data: per task of ``config.robot.tasks``, the noisy expert's demonstrations
  (``<task>``, imitated), DART (``<task>_dart``) and joint-space play (``<task>_play``),
  weighted 1:1:1 within a task and equally across tasks."""
  r = config.robot
  known = registry.names()
  unknown = [t for t in r.tasks if t not in known]
  if unknown:
    raise ValueError(f"config.robot.tasks names unknown task(s) {unknown}; known: "
                     f"{list(known)}.")
  out = {}
  for task in r.tasks:
    # The action noise of DART and play that the task registered (dojo.registry).
    dart, play = registry.data(task)["dart_noise"], registry.data(task)["play_noise"]
    for suffix, policy, noise, n, imitate in (
        ("", "noisy_expert", r.noise, r.num_episodes, True),
        ("_dart", "dart", dart, r.dart_episodes, False),
        ("_play", "waypoints", play, r.play_episodes, False)):
      if n > 0:
        out[task + suffix] = dict(task=task, policy=policy, noise=float(noise),
                                  num_episodes=int(n), weight=1.0, imitate=imitate)
  if not out:
    raise ValueError("config.robot collects nothing: every episode count is 0.")
  return out


def robot_data(config, stage_dir: str, results: Results) -> dict:
  """Stage: the robot mixture (``robot_mixture``) on seen instruction combinations."""
  del results
  root = data_dir(config, os.path.dirname(stage_dir))
  datasets = {}
  for i, (name, entry) in enumerate(robot_mixture(config).items()):
    path = robot_dataset(config, root, num_episodes=entry["num_episodes"],
                         instructions="seen", seed=config.robot.seed + i, task=entry["task"],
                         policy=entry["policy"], noise=entry["noise"])
    datasets[name] = dict(entry, path=path,
                          train_episodes=len(EpisodeDataset(path, "train")))
    logging.info("[robot_data] %s: %d %s episodes of %s", name, entry["num_episodes"],
                 entry["policy"], entry["task"])
  # Transfer to the unseen combinations is measured only if none is in the robot data.
  checked = leak_check.check_no_leak(
      {name: d["path"] for name, d in datasets.items()},
      leak_check.unseen_instructions({d["task"] for d in datasets.values()}))
  logging.info("[robot_data] no unseen instruction in %d robot episodes", checked)
  return {"datasets": datasets,
          "train_episodes": sum(d["train_episodes"] for d in datasets.values())}


def _robot_datasets(results: Results) -> dict[str, dict]:
  return {name: {k: d[k] for k in ("path", "weight", "imitate")}
          for name, d in results["robot_data"]["datasets"].items()}


# ----------------------------------------------------------------------------- models
def trainer_config(config: config_dict.ConfigDict, datasets: Mapping[str, Any], *,
                   num_steps: int, init_from: str = "") -> config_dict.ConfigDict:
  """A ``wam.trainer`` config: the job's model and window over ``datasets``.

  ``datasets``: name -> path, name -> (path, weight, max_episodes), or name -> a dict
  of ``wam.data.config.dataset_config``'s arguments.
  """
  c = trainer.default_config()
  c.model = config_dict.ConfigDict(config.model.to_dict())
  c.seed = config.seed
  for name, ds in datasets.items():
    if isinstance(ds, str):
      ds = dict(path=ds)
    elif not isinstance(ds, Mapping):
      ds = dict(zip(("path", "weight", "max_episodes"), ds))
    c.data.datasets[name] = dataset_config(**ds)
  t = config.train
  c.data.update(cameras=(config.camera,), image_size=tuple(config.image_size),
                num_frames=t.num_frames, action_chunk=t.action_chunk,
                batch_size=t.batch_size, max_instruction_length=t.max_instruction_length,
                worker_count=0, read_threads=2, seed=config.seed)
  c.num_steps = int(num_steps)
  c.optimizer.learning_rate = t.learning_rate
  c.optimizer.warmup_steps = min(t.warmup_steps, max(1, num_steps // 5))
  c.log_every = t.log_every
  c.checkpoint_every = max(1, num_steps // 2)
  c.max_checkpoints = 2
  c.eval.update(every=num_steps, batch_size=t.eval_batch_size, flow_steps=1, videos=4)
  c.peak_flops = t.peak_flops
  c.init_from = init_from
  return c


def train(config, stage_dir: str, datasets: Mapping[str, Any], *, num_steps: int,
          init_from: str = "") -> dict:
  """Trains one stage's model in ``stage_dir``; returns its held-out metrics."""
  result = trainer.train_and_evaluate(
      trainer_config(config, datasets, num_steps=num_steps, init_from=init_from), stage_dir)
  metrics = {k: result.metrics[k] for k in EVAL_KEYS if k in result.metrics}
  if not metrics and any(k.startswith("eval_train/") for k in result.metrics):
    logging.warning("Stage %s has no held-out split: its eval_train/* metrics are on "
                    "training windows and are not reported as held-out.", stage_dir)
  return {"workdir": stage_dir, "step": result.step, "init_from": init_from,
          "metrics": metrics}


def latent(config, stage_dir: str, results: Results) -> dict:
  """Stage: latent actions for the human video (used when ``human.actions='latent'``)."""
  source = results["human_data"]["path"]
  c = config.latent
  vae = LatentActionTrainer(LatentActionConfig(
      latent_dim=c.latent_dim, num_steps=c.num_steps, batch_size=c.batch_size,
      seed=config.seed), tuple(config.image_size))
  pairs = frame_pairs(EpisodeDataset(source, "train"), camera=config.camera,
                      max_episodes=c.max_episodes or None)
  vae.fit(pairs, workdir=stage_dir)
  # The probe: true human actions of held-out pairs from the latent, against an
  # untrained encoder (what the architecture alone gives); the whole action, and the
  # wrist motion alone (the part a pair of frames shows best).
  untrained = LatentActionTrainer(vae.config, tuple(config.image_size))
  probes = {}
  for name, slots in (("", ("wrist_motion", "hand_keypoints")), ("_wrist", ("wrist_motion",))):
    val = frame_pairs(EpisodeDataset(source, "val"), camera=config.camera,
                      action_slots=slots)
    probe = linear_probe(vae.encode_mean(val.prev, val.next), val.action)
    baseline = linear_probe(untrained.encode_mean(val.prev, val.next), val.action)
    probes.update({f"probe_r2{name}": probe.r2, f"probe_r2{name}_untrained": baseline.r2,
                   "probe_pairs": probe.num_test})
  path = label_dataset(vae, source, data_dir=data_dir(config, os.path.dirname(stage_dir)),
                       name="human_latent", camera=config.camera, overwrite=True)
  return {"path": path, **probes, "recon": vae.history[-1]["recon"],
          "copy_mse": vae.history[-1]["copy_mse"]}


def _human_path(config, results: Results) -> str:
  return results["latent"]["path"] if config.human.actions == "latent" else results[
      "human_data"]["path"]


def pretrain(config, stage_dir: str, results: Results) -> dict:
  """Stage: the world action model on human video only."""
  return train(config, stage_dir, {"human": _human_path(config, results)},
               num_steps=config.pretrain.num_steps)


def aligned_data(config, root: str) -> tuple[str, str]:
  """The aligned set: a little human video and a few robot demos of the target task."""
  human = build_human(config, root, hours=config.midtrain.human_hours,
                      tasks=tuple(config.midtrain.human_tasks), seed=config.human.seed + 1)
  robot = robot_dataset(config, root, num_episodes=config.midtrain.robot_episodes,
                        instructions="seen", seed=config.robot.seed + 1)
  return human["path"], robot


def midtrain(config, stage_dir: str, results: Results) -> dict:
  """Stage: aligned human + robot data of the same task, from the pre-trained model."""
  human, robot = aligned_data(config, data_dir(config, os.path.dirname(stage_dir)))
  w = config.midtrain.human_weight
  return train(config, stage_dir, {"robot": (robot, 1.0 - w, 0), "human": (human, w, 0)},
               num_steps=config.midtrain.num_steps, init_from=results["pretrain"]["workdir"])


def _starting_point(results: Results) -> str:
  return (results.get("midtrain") or results["pretrain"])["workdir"]


def posttrain(config, stage_dir: str, results: Results) -> dict:
  """Stage: the target robot task, from the human-pre-trained model."""
  return train(config, stage_dir, _robot_datasets(results),
               num_steps=config.posttrain.num_steps, init_from=_starting_point(results))


def scratch(config, stage_dir: str, results: Results) -> dict:
  """Stage: the same post-training without human pre-training (the baseline)."""
  return train(config, stage_dir, _robot_datasets(results),
               num_steps=config.posttrain.num_steps)


def oneshot(config, stage_dir: str, results: Results) -> dict:
  """Stage: a task never in the robot data, from 1 robot demo + human demos of it."""
  root = data_dir(config, os.path.dirname(stage_dir))
  robot = robot_dataset(config, root, num_episodes=config.oneshot.robot_episodes,
                        instructions="unseen", seed=config.robot.seed + 2)
  # Its starting points (post-training and scratch) never saw these combinations.
  leak_check.check_no_leak(
      {name: d["path"] for name, d in results["robot_data"]["datasets"].items()},
      leak_check.unseen_instructions({config.robot.task}))
  human = build_human(config, root, hours=config.oneshot.human_hours,
                      tasks=tuple(config.midtrain.human_tasks), seed=config.human.seed + 2)
  w = config.oneshot.human_weight
  mixture = {"robot": (robot, 1.0 - w, 0), "human": (human["path"], w, 0)}
  steps = config.oneshot.num_steps
  out = {}
  for name, init in (("pretrained", results["posttrain"]["workdir"]),
                     ("scratch", results["scratch"]["workdir"])):
    out[name] = train(config, os.path.join(stage_dir, name), mixture, num_steps=steps,
                      init_from=init)
  return out


# --------------------------------------------------------------------------- scaling
def scaling_steps(config, hours: float) -> int:
  """Training steps of the scaling run on ``hours`` of video: proportional to the data."""
  return max(int(config.scaling.min_steps), int(round(config.scaling.steps_per_hour * hours)))


def scaling_runs(config, human: Mapping[str, Any], human_path: str
                 ) -> tuple[list[sweep_lib.Run], dict[str, float]]:
  """The scaling sweep's runs (nested subsets, steps growing with them) and their hours.

  Each run trains on ``fraction`` of the human set's training episodes (rounded down,
  so 1/16 to all spans at least 16x).
  """
  episodes_per_hour = human["train_episodes"] / human["train_hours"]
  runs, hours = [], {}
  for f in config.scaling.fractions:
    n = max(1, int(f * human["train_episodes"]))
    name = f"episodes{n}"
    hours[name] = n / episodes_per_hour
    runs.append(sweep_lib.Run(name, {
        "data.datasets.human.path": human_path, "data.datasets.human.max_episodes": n,
        "num_steps": scaling_steps(config, hours[name])}))
  return runs, hours


def scaling(config, stage_dir: str, results: Results) -> dict:
  """Stage: pre-training at several data scales (separate processes), and the fits."""
  runs, hours = scaling_runs(config, results["human_data"], _human_path(config, results))
  metric = config.scaling.metric
  steps = {r.name: r.overrides["num_steps"] for r in runs}
  # The runs' config file (a path, not an import: configs import this module).
  config_file = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             "configs", "human_pretrain.py")
  sweep = sweep_lib.make_sweep(f"{config_file}:{_job_arg(config)}", runs)
  outcome = sweep_lib.run_sweep(sweep, stage_dir, workers=config.scaling.workers, retries=1,
                                progress=lambda line: logging.info("[scaling] %s", line))
  finished = [r for r in outcome if r.status == "finished" and metric in r.metrics]
  if len(finished) < 3:
    no_split = [r.name for r in outcome
                if sweep_results.only_on_training_windows(r.metrics or {}, metric)]
    raise RuntimeError(f"Only {len(finished)} scaling runs finished with a held-out "
                       f"{metric}; a fit needs 3. See {stage_dir}/summary.md."
                       + (f" Without a held-out split (eval_train/* only): {no_split}."
                          if no_split else ""))
  D = np.array([hours[r.name] for r in finished])
  L = np.array([r.metrics[metric] for r in finished])
  log_fit = fits.fit_log_linear(D, L)
  held = fits.leave_largest_out(fits.fit_log_linear, D, L)
  fitted, held_power = [log_fit], None
  try:
    fitted.append(fits.fit_power_law(D, L))
    held_power = fits.leave_largest_out(fits.fit_power_law, D, L)
  except fits.ScalingFitError as e:
    logging.warning("Power law not fitted: %s", e)
  # The band: the log-linear fit refitted on runs drawn with replacement (the power law
  # has too few distinct scales in most resamples of 5 runs).
  band = fits.bootstrap(fits.fit_log_linear, D, L, at=np.geomspace(D.min(), D.max(), 50))
  fits.plot_fit(D, L, fitted, os.path.join(stage_dir, "scaling.png"), band=band,
                xlabel="hours of human video (steps grow with them)",
                ylabel=f"{metric} (held-out human video)")
  def extrapolation(held):
    return None if held is None else {
        "hours": held.held_out.tolist(), "measured": held.measured.tolist(),
        "predicted": held.predicted.tolist(), "relative_error": held.relative_error.tolist()}

  return {"metric": metric, "hours": D.tolist(), "loss": L.tolist(),
          "steps": [steps[r.name] for r in finished],
          "runs": [r.name for r in finished],
          "log_linear": {"a": log_fit.a, "b": log_fit.b, "r2": log_fit.r2,
                         "b_interval90": band.param_intervals["b"]},
          "power_law": ({**fitted[1].params, "r2": fitted[1].r2} if len(fitted) > 1 else None),
          "leave_largest_out": extrapolation(held),
          "leave_largest_out_power_law": extrapolation(held_power),
          "plot": os.path.join(stage_dir, "scaling.png")}


def _job_arg(config) -> str:
  return config.get("arg", "runlocal")
