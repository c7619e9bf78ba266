"""Closed-loop evaluation of trained models and planners in MJX physics (flag-free).

``evaluate(config, workdir)`` runs every controller named in ``config.controllers`` for
``config.num_episodes`` episodes on each instruction split (``seen``: the combinations
the demonstrations used; ``unseen``: held-out combinations of known words) and writes

- ``results.json``: per controller and split, the success rate with its 95% Wilson
  interval, mean return and steps to success, plus the settings;
- ``results.md``: the same as a markdown table;
- ``videos/<controller>_<split>.gif``: the first episodes side by side.

Controllers: ``policy`` (the WAM in policy mode), ``bc`` (the behaviour-cloning
baseline, same backbone, actions only), ``dream_cem`` (CEM inside the neural
simulator, i.e. dreaming), ``physics_cem`` (CEM inside MJX physics: the oracle),
``expert`` (the scripted expert, a ceiling).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from ml_collections import config_dict

import dojo
from dojo import closed_loop, controllers, planners, wrappers
from dojo.model_io import ModelIO
from dojo.neural_env import NeuralEnv
from wam import trainer, visualize

CONTROLLERS = ("policy", "bc", "dream_cem", "physics_cem", "expert")
SPLITS = ("seen", "unseen")


class _Expert:
  """The scripted expert, re-planned every step of a chunk from the chunk's first state."""

  def __init__(self, task, chunk: int):
    self.task, self.chunk = task, chunk

  def init(self, state):
    del state
    return jnp.zeros(())

  def act(self, carry, state, rng):
    action = self.task.expert_action(state, rng)
    return jnp.tile(action[None], (self.chunk, 1)), carry


def _planner_config(c: config_dict.ConfigDict) -> planners.PlannerConfig:
  return planners.PlannerConfig(method=c.method, horizon=c.horizon, chunk=1,
                                num_samples=c.num_samples, num_elites=c.num_elites,
                                iterations=c.iterations, init_std=c.init_std,
                                min_std=c.min_std, smoothing=c.smoothing)


def build_controller(name: str, config: config_dict.ConfigDict, task, models: dict) -> Any:
  """The controller ``name`` for ``task`` (models: name -> (model, metadata))."""
  if name not in CONTROLLERS:
    raise KeyError(f"Unknown controller {name!r}; choose from {CONTROLLERS}.")
  if name == "expert":
    chunk = models["policy"][0].dims.action_chunk if "policy" in models else 4
    return _Expert(task, chunk)
  if name in ("policy", "bc"):
    model, metadata = models[name]
    return controllers.WamPolicy(model, ModelIO.create(model, metadata, task),
                                 flow_steps=config.flow_steps)
  model, metadata = models["policy"]
  chunk = model.dims.action_chunk
  cost = planners.task_reward_cost(discount=config.planner.discount)
  if name == "dream_cem":
    env = NeuralEnv(model, ModelIO.create(model, metadata, task),
                    task, flow_steps=config.flow_steps)
    return controllers.dream_planner(planners.make_planner(env, _planner_config(config.planner),
                                                           cost))
  blind = dojo.load(config.task, cameras=())
  env = wrappers.ChunkWrapper(blind, chunk)
  return controllers.physics_planner(planners.make_planner(env, _planner_config(config.planner),
                                                           cost), chunk)


def _load_models(config) -> dict:
  models = {}
  for name, path in (("policy", config.wam), ("bc", config.bc)):
    if path:
      models[name] = trainer.load(path)
      logging.info("Loaded %s model from %s (%s).", name, path,
                   models[name][1].config["model"].get("variant", "?"))
  return models


def evaluate(config: config_dict.ConfigDict, workdir: str) -> dict:
  """Runs the evaluation described in the module docstring; returns the results dict."""
  unknown = [c for c in config.controllers if c not in CONTROLLERS]
  if unknown:
    raise KeyError(f"Unknown controllers {unknown}; choose from {CONTROLLERS}.")
  needs = {"policy": "wam", "dream_cem": "wam", "physics_cem": "wam", "bc": "bc"}
  for c in config.controllers:
    if c in needs and not config[needs[c]]:
      raise ValueError(f"Controller {c!r} needs config.{needs[c]} (a training workdir).")
  os.makedirs(os.path.join(workdir, "videos"), exist_ok=True)
  models = _load_models(config)
  image = tuple(config.image_size)
  results: dict[str, Any] = {"task": config.task, "num_episodes": config.num_episodes,
                             "num_chunks": config.num_chunks, "controllers": {}}
  for split in config.splits:
    if split not in SPLITS:
      raise KeyError(f"Unknown split {split!r}; choose from {SPLITS}.")
    task = dojo.load(config.task, cameras=tuple(config.cameras), image_height=image[0],
                     image_width=image[1], instructions=split)
    for name in config.controllers:
      controller = build_controller(name, config, task, models)
      start = time.time()
      out = closed_loop.run_episodes(task, controller, jax.random.key(config.seed),
                                     config.num_episodes, config.num_chunks,
                                     camera=config.cameras[0],
                                     batch_size=config.batch_size)
      summary = closed_loop.summarize(out)
      summary["seconds"] = round(time.time() - start, 1)
      results["controllers"].setdefault(name, {})[split] = summary
      logging.info("[evaluate] %s on %s instructions: success %.2f (95%% CI %.2f-%.2f), "
                   "%d episodes, %.0f s", name, split, summary["success_rate"],
                   *summary["ci95"], summary["episodes"], summary["seconds"])
      frames = out["frames"][:config.video_episodes]          # [E, T, H, W, 3]
      video = np.stack([visualize.tile(list(f)) for f in np.swapaxes(frames, 0, 1)])
      visualize.write_video(os.path.join(workdir, "videos", f"{name}_{split}.gif"), video,
                            fps=4)
      _write(workdir, results)
  return results


def _write(workdir: str, results: dict) -> None:
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(results, f, indent=1)
  with open(os.path.join(workdir, "results.md"), "w") as f:
    f.write(markdown_table(results))


def markdown_table(results: dict) -> str:
  """Success rates (95% Wilson interval) per controller and instruction split."""
  splits = sorted({s for r in results["controllers"].values() for s in r},
                  key=lambda s: SPLITS.index(s) if s in SPLITS else 99)
  lines = [f"Task `{results['task']}`, {results['num_episodes']} episodes per cell, "
           f"{results['num_chunks']} chunks per episode.", "",
           "| controller | " + " | ".join(f"{s} instructions" for s in splits) + " |",
           "|---|" + "---|" * len(splits)]
  for name, by_split in results["controllers"].items():
    cells = []
    for s in splits:
      r = by_split.get(s)
      cells.append("—" if r is None else
                   f"{r['success_rate']:.2f} ({r['ci95'][0]:.2f}–{r['ci95'][1]:.2f})")
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"
