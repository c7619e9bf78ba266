"""The library of ``experiments.evaluate``: closed-loop evaluation of trained models and
planners in MJX physics (flag-free; the controllers are in ``evaluate_controllers.py``).

``evaluate(config, workdir)`` runs every controller named in ``config.controllers`` for
``config.num_episodes`` episodes on each instruction split (``seen``: the combinations
the demonstrations used; ``unseen``: held-out combinations of known words) and writes

- ``results.json``: per controller and split, the success rate with its 95% Wilson
  interval, mean return and steps to success, plus the settings;
- ``results.md``: the same as a markdown table;
- ``videos/<controller>_<split>.gif``: the first episodes side by side;
- ``videos/dream_beside_reality.gif`` (``config.dream_videos`` > 0): expert episodes in
  MJX (top) above the WAM's dream of the same actions from the same first state.

Controllers: ``policy`` (the WAM in policy mode), ``bc`` (the behaviour-cloning
baseline, same backbone, actions only), ``state_bc`` (behaviour cloning of the privileged
state: robot and task state, no pixels; ``dojo.state_bc``, trained here in seconds on the
demonstrations in ``config.state_bc``), ``dream_cem`` (CEM inside the neural
simulator, i.e. dreaming), ``physics_cem`` (CEM inside MJX physics: the oracle),
``expert`` (the scripted expert, a ceiling). Also, by config: how well the dream
follows actions (``measure_controllability``), policies ranked in the dream
(``evaluate_policies_in_dreams``) and PPO trained in the dream (``rl_in_dreams``).
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

from dojo import closed_loop, state_bc, wrappers
from dojo.brax_training import ppo_train
from dojo.neural import controllability
from dojo.neural import controllers as neural_controllers
from dojo.neural.env import NeuralEnv
from dojo.neural.model_io import ModelIO
from experiments.lib.evaluate_controllers import (CONTROLLERS, SPLITS, BraxPolicy, Expert,
                                                  build_controller, load_task)
from experiments.lib import train as train_lib
from wam import loading, visualize

def _state_bc(config, workdir: str) -> state_bc.StateBC:
  """The state-only BC policy, trained on ``config.state_bc`` episodes (cached)."""
  path = os.path.join(workdir, "state_bc.npz")
  if os.path.exists(path):
    return state_bc.StateBC.load(path)
  chunk = loading.load(config.wam)[0].dims.action_chunk if config.wam else 4
  obs, chunks = state_bc.load_episodes(list(config.state_bc), chunk)
  policy = state_bc.train(obs, chunks, state_bc.StateBCConfig(chunk=chunk, seed=config.seed))
  logging.info("[evaluate %s] state BC trained on %d pairs from %s", config.task, len(obs),
               config.state_bc)
  policy.save(path)
  return policy


def _load_models(config, workdir: str) -> dict:
  models = {}
  if "state_bc" in config.controllers:
    models["state_bc"] = _state_bc(config, workdir)
  named = dict(config.get("policies", {}) or {})
  for name, path in (("policy", config.wam), ("bc", config.bc), *named.items()):
    if path:
      models[name] = loading.load(path)
      logging.info("Loaded %s model from %s (%s).", name, path,
                   models[name][1].config["model"].get("variant", "?"))
  return models


def _with_the_models_task(config: config_dict.ConfigDict, models: dict
                          ) -> config_dict.ConfigDict:
  """``config`` with the task overrides it leaves unset taken from the WAM's data (read
  off its slot names: relative joint actions, reach's target slot), so a model is
  evaluated on the task variant it learned without repeating them."""
  if "policy" not in models:
    return config
  layouts = (models["policy"][1].extra or {}).get("layouts")
  inherited = train_lib.task_overrides_of_model(config.task, layouts)
  config = config.copy_and_resolve_references()
  for key, value in inherited.items():
    if not config.get(key):
      logging.info("[evaluate %s] %s=%r, as the WAM's data.", config.task, key, value)
      config[key] = value
  return config


def evaluate(config: config_dict.ConfigDict, workdir: str) -> dict:
  """Runs the evaluation described in the module docstring; returns the results dict."""
  known = CONTROLLERS + tuple(config.get("policies", {}) or {})
  unknown = [c for c in config.controllers if c not in known]
  if unknown:
    raise KeyError(f"Unknown controllers {unknown}; choose from {known} (add more WAM "
                   "policies by name with config.policies.NAME=WORKDIR).")
  needs = {"policy": "wam", "dream_cem": "wam", "physics_cem": "wam", "bc": "bc",
           "state_bc": "state_bc"}
  for c in config.controllers:
    if c in needs and not config[needs[c]]:
      raise ValueError(f"Controller {c!r} needs config.{needs[c]} (a training workdir).")
  os.makedirs(os.path.join(workdir, "videos"), exist_ok=True)
  models = _load_models(config, workdir)
  config = _with_the_models_task(config, models)
  image = tuple(config.image_size)
  results: dict[str, Any] = {"task": config.task, "num_episodes": config.num_episodes,
                             "num_chunks": config.num_chunks, "controllers": {}}
  for split in config.splits:
    if split not in SPLITS:
      raise KeyError(f"Unknown split {split!r}; choose from {SPLITS}.")
    task = load_task(config, cameras=tuple(config.cameras), image_height=image[0],
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
      logging.info("[evaluate %s] %s on %s instructions: success %.2f (95%% CI %.2f-%.2f), "
                   "%d episodes, %.0f s", config.task, name, split, summary["success_rate"],
                   *summary["ci95"], summary["episodes"], summary["seconds"])
      frames = out["frames"][:config.video_episodes]          # [E, T, H, W, 3]
      video = np.stack([visualize.tile(list(f)) for f in np.swapaxes(frames, 0, 1)])
      visualize.write_video(os.path.join(workdir, "videos", f"{name}_{split}.gif"), video,
                            fps=4)
      write_results(workdir, results)
  if config.get("controllability") and config.controllability.episodes and config.wam:
    measure_controllability(config, workdir, results)
  if config.get("dream_videos") and config.wam:
    dream_beside_reality(config, workdir, config.dream_videos)
  if config.policy_evaluation:
    evaluate_policies_in_dreams(config, workdir, results)
  if config.ppo.num_timesteps:
    rl_in_dreams(config, workdir, results)
  return results


def _seen_task_and_dream(config: config_dict.ConfigDict, render: str = "anchored"):
  """The task on its seen instructions and the neural simulator of ``config.wam``."""
  task = load_task(config, cameras=tuple(config.cameras), image_height=config.image_size[0],
                   image_width=config.image_size[1], instructions="seen")
  engine, engine_meta = loading.load(config.wam)
  dream_env = NeuralEnv(engine, ModelIO.create(engine, engine_meta, task), task,
                        flow_steps=config.flow_steps, render=render)
  return task, dream_env


def measure_controllability(config: config_dict.ConfigDict, workdir: str,
                            results: dict) -> dict:
  """The neural simulator against MJX under play and random actions
  (``dojo.neural.controllability``): motion gain, correlation and tracking ratio."""
  c = config.controllability
  task, dream_env = _seen_task_and_dream(config, render="none")
  physics = wrappers.ChunkWrapper(task, dream_env.chunk)
  out = {}
  for source in controllability.ACTION_SOURCES:
    out[source] = controllability.track(task, physics, dream_env, source=source,
                                        episodes=c.episodes, chunks=c.chunks,
                                        scale=c.play_scale, seed=config.seed)
    logging.info("[evaluate %s] controllability under %s actions: motion gain %.2f "
                 "(correlation %.2f), tracking ratio %.2f", config.task, source,
                 out[source]["motion_gain"], out[source]["motion_correlation"],
                 out[source]["tracking_ratio"])
  results["controllability"] = out
  write_results(workdir, results)
  return out


def dream_beside_reality(config: config_dict.ConfigDict, workdir: str,
                         episodes: int = 4) -> str:
  """``videos/dream_beside_reality.gif``: the scripted expert's episodes in MJX (top row)
  above the WAM's open-loop dream of the same action chunks from the same first states
  (bottom row). Returns the path."""
  task, dream_env = _seen_task_and_dream(config)
  video = beside_reality_video(task, dream_env, Expert(config.task, dream_env.chunk,
                                                   overrides=train_lib.task_overrides(config)),
                               camera=config.cameras[0], episodes=episodes,
                               chunks=min(config.num_chunks, dream_env.max_chunks),
                               seed=config.seed)
  path = os.path.join(workdir, "videos", "dream_beside_reality.gif")
  os.makedirs(os.path.dirname(path), exist_ok=True)
  visualize.write_video(path, video, fps=4)
  logging.info("[evaluate %s] expert episodes beside their dreams: %s", config.task, path)
  return path


def beside_reality_video(task, dream_env, controller, *, camera: str, episodes: int,
                         chunks: int, seed: int = 0) -> np.ndarray:
  """uint8 [chunks + 1, H, W, 3]: ``controller``'s episodes in ``task`` (top row) above
  ``dream_env``'s dream of the same chunks from the same first states (bottom row)."""
  physics = wrappers.ChunkWrapper(task, dream_env.chunk)
  key = f"pixels/{camera}"

  def episode(rng):
    real = task.reset(rng)
    dreamt = dream_env.start(real)

    def body(carry, k):
      real, dreamt, memory = carry
      actions, memory = controller.act(memory, real, k)
      flat = actions.reshape(-1)
      real, dreamt = physics.step(real, flat), dream_env.step(dreamt, flat)
      return (real, dreamt, memory), (real.obs[key], dreamt.obs[key])

    _, (real_frames, dream_frames) = jax.lax.scan(
        body, (real, dreamt, controller.init(real)),
        jax.random.split(jax.random.fold_in(rng, 1), chunks))
    first = lambda s, rest: jnp.concatenate([s.obs[key][None], rest])
    return first(real, real_frames), first(dreamt, dream_frames)

  real, dreamt = jax.jit(jax.vmap(episode))(jax.random.split(jax.random.key(seed), episodes))
  real, dreamt = np.asarray(real), np.asarray(dreamt)
  if dreamt.shape[2:4] != real.shape[2:4]:   # the model's resolution: nearest up-sampling
    fy, fx = real.shape[2] // dreamt.shape[2], real.shape[3] // dreamt.shape[3]
    dreamt = dreamt.repeat(fy, axis=2).repeat(fx, axis=3)
  rows = [[visualize.tile(list(x[:, t])) for t in range(x.shape[1])] for x in (real, dreamt)]
  gap = np.full((2,) + rows[0][0].shape[1:], visualize.WHITE, np.uint8)
  return np.stack([np.concatenate([top, gap, bottom]) for top, bottom in zip(*rows)])


def _policy(spec: str, config) -> tuple[str, str, float]:
  """``"wam@500"`` -> (label, workdir, step); ``"expert@2.0"`` -> (label, "", noise)."""
  name, _, value = spec.partition("@")
  if name == "expert":
    try:
      return spec, "", float(value)
    except ValueError:
      pass
  elif name in ("wam", "bc") and value.isdigit():
    if not config[name]:
      raise ValueError(f"config.policy_evaluation names {spec!r} but config.{name} is empty.")
    return spec, config[name], int(value)
  raise ValueError(f"config.policy_evaluation entries look like 'wam@500', 'bc@3500' or "
                   f"'expert@2.0' (the scripted expert with that action noise), got {spec!r}.")


def evaluate_policies_in_dreams(config: config_dict.ConfigDict, workdir: str,
                                results: dict) -> dict:
  """Success of several policies in MJX and in the neural simulator, and the correlation.

  The neural simulator is built from the final WAM (``config.wam``); every policy in
  ``config.policy_evaluation`` (checkpoints of the WAM and BC runs in policy mode, and
  the scripted expert with graded action noise) acts in both, on the ``seen``
  instructions, from the same initial states.
  """
  from scipy import stats  # pylint: disable=import-outside-toplevel
  specs = [_policy(s, config) for s in config.policy_evaluation]
  task, dream_env = _seen_task_and_dream(config)
  chunks = min(config.num_chunks, dream_env.max_chunks)
  rows = []
  for label, path, value in specs:
    if path:
      model, metadata = loading.load(path, value)
      policy = neural_controllers.WamPolicy(model, ModelIO.create(model, metadata, task),
                                            flow_steps=config.flow_steps)
    else:
      policy = Expert(config.task, dream_env.chunk, value, train_lib.task_overrides(config))
    row = {"policy": label}
    for where, env in (("mjx", task), ("dream", dream_env)):
      out = closed_loop.run_episodes(env, policy, jax.random.key(config.seed),
                                     config.num_episodes, chunks,
                                     batch_size=config.batch_size)
      row[where] = closed_loop.summarize(out)["success_rate"]
    rows.append(row)
    logging.info("[evaluate %s] policy %s: success %.2f in MJX, %.2f in the dream",
                 config.task, label, row["mjx"], row["dream"])
  mjx_rates = np.array([r["mjx"] for r in rows])
  dream_rates = np.array([r["dream"] for r in rows])
  constant = np.ptp(mjx_rates) == 0 or np.ptp(dream_rates) == 0
  out = {"policies": rows, "num_chunks": chunks,
         "pearson": None if constant else float(stats.pearsonr(mjx_rates, dream_rates)[0]),
         "spearman": None if constant else float(stats.spearmanr(mjx_rates, dream_rates)[0])}
  results["policy_evaluation"] = out
  _plot_policy_evaluation(rows, os.path.join(workdir, "policy_evaluation.png"))
  write_results(workdir, results)
  return out


def _plot_policy_evaluation(rows: list[dict], path: str) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, ax = plt.subplots(figsize=(4, 4))
  ax.plot([0, 1], [0, 1], color="0.8", lw=1)
  for r in rows:
    ax.scatter(r["mjx"], r["dream"])
    ax.annotate(r["policy"], (r["mjx"], r["dream"]), fontsize=7)
  ax.set(xlabel="success in MJX physics", ylabel="success in the neural simulator",
         xlim=(-0.05, 1.05), ylim=(-0.05, 1.05))
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def rl_in_dreams(config: config_dict.ConfigDict, workdir: str, results: dict) -> dict:
  """PPO trained inside the neural simulator vs the same PPO budget in MJX physics.

  Both agents act on the same interface (one chunk per env step, the ``privileged``
  observation: robot state from the dreamed joints and the target positions) and both
  are scored in MJX physics on the seen instructions.
  """
  c = config.ppo
  # PPO reads the privileged observation only: no frames need decoding.
  _, dream_env = _seen_task_and_dream(config, render=config.get("plan_render", "none"))
  chunk = dream_env.chunk
  blind = load_task(config, cameras=(), instructions="seen")
  episode = min(config.num_chunks, dream_env.max_chunks)
  out = {"num_timesteps": c.num_timesteps, "episode_chunks": episode}
  for where, env in (("dream", dream_env), ("mjx", wrappers.ChunkWrapper(blind, chunk))):
    start = time.time()
    make_policy, params, _ = ppo_train(
        env, num_timesteps=c.num_timesteps, num_envs=c.num_envs, episode_length=episode,
        num_evals=2, unroll_length=c.unroll_length, batch_size=c.batch_size,
        num_minibatches=c.num_minibatches, num_updates_per_batch=c.num_updates_per_batch,
        learning_rate=c.learning_rate, entropy_cost=c.entropy_cost,
        discounting=c.discounting, normalize_observations=True, seed=config.seed)
    policy = BraxPolicy(make_policy(params, deterministic=True), chunk)
    episodes = closed_loop.run_episodes(blind, policy, jax.random.key(config.seed),
                                        config.num_episodes, episode,
                                        batch_size=config.batch_size)
    summary = closed_loop.summarize(episodes)
    summary["train_seconds"] = round(time.time() - start, 1)
    out[f"trained_in_{where}"] = summary
    logging.info("[evaluate %s] PPO trained in %s: success in MJX %.2f (95%% CI %.2f-%.2f)",
                 config.task, where, summary["success_rate"], *summary["ci95"])
  results["rl_in_dreams"] = out
  write_results(workdir, results)
  return out


def write_results(workdir: str, results: dict) -> None:
  """``results.json`` and ``results.md`` in ``workdir``."""
  os.makedirs(workdir, exist_ok=True)
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
  ranking = results.get("policy_evaluation")
  if ranking:
    lines += ["", "Policy evaluation in dreams (seen instructions):", "",
              "| policy | success in MJX | success in the neural simulator |", "|---|---|---|"]
    lines += [f"| {r['policy']} | {r['mjx']:.2f} | {r['dream']:.2f} |"
              for r in ranking["policies"]]
    fmt = lambda v: "n/a (constant)" if v is None else f"{v:.3f}"
    lines += ["", f"Pearson r = {fmt(ranking['pearson'])}, "
                  f"Spearman rho = {fmt(ranking['spearman'])}."]
  control = results.get("controllability")
  if control:
    lines += ["", ("Does the dream follow actions? Neural simulator against MJX from the "
                   "same states (first chunk; joint angles):"), "",
              "| actions | motion gain | correlation | tracking ratio |", "|---|---|---|---|"]
    lines += [f"| {source} | {r['motion_gain']:.2f} | {r['motion_correlation']:.2f} | "
              f"{r['tracking_ratio']:.2f} |" for source, r in control.items()]
  rl = results.get("rl_in_dreams")
  if rl:
    lines += ["", f"PPO, {rl['num_timesteps']} chunk steps, success in MJX physics:", "",
              "| PPO trained in | success (95% CI) |", "|---|---|"]
    for where in ("dream", "mjx"):
      r = rl.get(f"trained_in_{where}")
      if r:
        lines.append(f"| {'the neural simulator' if where == 'dream' else 'MJX physics'} | "
                     f"{r['success_rate']:.2f} ({r['ci95'][0]:.2f}–{r['ci95'][1]:.2f}) |")
  return "\n".join(lines) + "\n"
