"""The controllers of ``experiments.evaluate`` by name (flag-free): the WAM in policy
mode, behaviour cloning, state-only BC, CEM inside the dream or inside MJX physics, the
scripted expert, and a brax PPO policy as a chunk controller."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from ml_collections import config_dict

import dojo
from dojo import controllers, planners, play, wrappers
from dojo.env import State
from dojo.neural import controllers as neural_controllers
from dojo.neural.env import NeuralEnv
from dojo.neural.model_io import ModelIO
from experiments.lib import train as train_lib

CONTROLLERS = ("policy", "bc", "state_bc", "dream_cem", "physics_cem", "expert")
SPLITS = ("seen", "unseen")


class Stateless:
  """A controller without memory between chunks (``init`` returns a dummy carry)."""

  chunk: int

  def init(self, state):
    del state
    return jnp.zeros(())


class Expert(Stateless):
  """The scripted expert (with action noise ``noise``), per step: it writes each chunk by
  stepping a copy of the physics (it is privileged anyway) without cameras. Holding its
  first action for the whole chunk overshoots the relative wrist moves of ``dex_lift``.
  In a dream it reads the physics state the neural simulator keeps (the robot and
  objects at their dreamed positions)."""

  def __init__(self, task_name: str, chunk: int, noise: float = 0.0,
               overrides: tuple[tuple[str, str], ...] = ()):
    self.task = dojo.load(task_name, cameras=(), **dict(overrides))
    self.chunk, self.noise = chunk, noise

  def act(self, carry, state, rng):
    if isinstance(state.data, dict):   # a NeuralEnv state
      state = State(state.data["physics"], state.obs, state.reward, state.done,
                    {k: v for k, v in state.metrics.items() if k != "dream_end"},
                    {k: v for k, v in state.info.items() if k != "dream_rng"})
    state = controllers.without_pixels(state)

    def one(s, key):
      action = self.task.expert_action(s, key, self.noise)
      return self.task.step(s, action), action
    _, actions = jax.lax.scan(one, state, jax.random.split(rng, self.chunk))
    return actions, carry


def load_task(config: config_dict.ConfigDict, **kwargs):
  """``config.task`` with ``kwargs`` and the config's task overrides (joint actions)."""
  return dojo.load(config.task, **kwargs, **dict(train_lib.task_overrides(config)))


def planner_config(c: config_dict.ConfigDict) -> planners.PlannerConfig:
  return planners.PlannerConfig(method=c.method, horizon=c.horizon, chunk=1,
                                num_samples=c.num_samples, num_elites=c.num_elites,
                                iterations=c.iterations, init_std=c.init_std,
                                min_std=c.min_std, smoothing=c.smoothing)


def build_controller(name: str, config: config_dict.ConfigDict, task, models: dict) -> Any:
  """The controller ``name`` for ``task`` (models: name -> (model, metadata))."""
  extra = tuple(config.get("policies", {}) or {})
  if name not in CONTROLLERS + extra:
    raise KeyError(f"Unknown controller {name!r}; choose from {CONTROLLERS + extra}.")
  if name == "expert":
    chunk = models["policy"][0].dims.action_chunk if "policy" in models else 4
    return Expert(config.task, chunk, overrides=train_lib.task_overrides(config))
  if name == "state_bc":
    return models["state_bc"]
  if name in ("policy", "bc") + extra:
    model, metadata = models[name]
    return neural_controllers.WamPolicy(model, ModelIO.create(model, metadata, task),
                                        flow_steps=config.flow_steps)
  model, metadata = models["policy"]
  chunk = model.dims.action_chunk
  cost = planners.task_reward_cost(discount=config.planner.discount)
  # Both planners start each episode from "hold the current pose" (or zeros).
  initial = ((lambda s: play.home_action(task, s))
             if config.planner.get("start", "zeros") == "hold" else None)
  if name == "dream_cem":
    env = NeuralEnv(model, ModelIO.create(model, metadata, task),
                    task, flow_steps=config.flow_steps, render=config.get("plan_render", "none"))
    return neural_controllers.dream_planner(
        planners.make_planner(env, planner_config(config.planner), cost), initial)
  blind = load_task(config, cameras=())
  env = wrappers.ChunkWrapper(blind, chunk)
  return controllers.physics_planner(planners.make_planner(env, planner_config(config.planner),
                                                           cost), chunk, initial)


class BraxPolicy(Stateless):
  """A brax PPO policy (flat ``chunk * A`` actions from ``obs``) as a chunk controller."""

  def __init__(self, policy, chunk: int):
    self.policy, self.chunk = policy, chunk

  def act(self, carry, state, rng):
    action, _ = self.policy(state.obs, rng)
    return action.reshape(self.chunk, -1), carry
