"""Collection policies whose actions vary independently of the state.

A world model trained on expert demonstrations alone never learns what an action does:
the expert's action is a function of the state and the instruction, so the model can
predict the next state from those and ignore the action (docs/controllability.md). These
policies make the action informative, as play data does for DreamDojo and DreamZero and
exploration data for TD-MPC2 and DreamerV3:

- ``waypoints``: a random target in action space (around the episode's first pose,
  ``scale`` wide) held for a random segment of ``hold`` steps, then the next one. For
  absolute joint targets this is joint-space play: the arm sweeps between random
  poses; for relative (velocity-like) slots it is a random constant-velocity segment.
- ``ou``: an Ornstein-Uhlenbeck process around the first pose: smooth, correlated
  wandering with stationary std ``scale``.
- ``dart``: the scripted expert plus Ornstein-Uhlenbeck noise of std ``scale``
  (DART, Laskey et al. 2017): the expert recovers from the perturbations it did not
  choose, so the data shows both the effect of off-expert actions and the way back.

All are :class:`StatefulPolicy` objects (their memory is a small pytree carried by
``dojo.rollout.make_rollout``), pure and jit-able, for one unbatched env. The rollout
records the action the env executed (clipped to [-1, 1]), never a clean label.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from dojo.env import Env, State

PLAY_POLICIES = ("waypoints", "ou", "dart")


class StatefulPolicy(NamedTuple):
  """A policy with memory: ``init(state, rng) -> carry`` at the episode's first state,
  then ``step(state, rng, carry) -> (action, carry)`` at every control step."""

  init: Callable[[State, jax.Array], Any]
  step: Callable[[State, jax.Array, Any], tuple[jax.Array, Any]]


@dataclasses.dataclass(frozen=True)
class PlayConfig:
  """Knobs of the play policies (action units: [-1, 1] spans a servo's range).

  Attributes:
    scale: how far the actions wander from the first pose (waypoints: half-width of
      the uniform box; ou and dart: stationary std of the noise).
    hold_min, hold_max: a waypoint is held for a uniform number of steps in this range.
    theta: OU mean reversion per step (1 / correlation time in steps).
  """

  scale: float = 0.2
  hold_min: int = 2
  hold_max: int = 8
  theta: float = 0.25

  def __post_init__(self):
    if self.scale < 0:
      raise ValueError(f"PlayConfig.scale must be >= 0, got {self.scale}.")
    if not 1 <= self.hold_min <= self.hold_max:
      raise ValueError(f"PlayConfig needs 1 <= hold_min <= hold_max, got "
                       f"{self.hold_min}, {self.hold_max}.")
    if not 0 < self.theta <= 1:
      raise ValueError(f"PlayConfig.theta must be in (0, 1], got {self.theta}.")


def home_action(env: Env, state: State) -> jax.Array:
  """The action that holds the current controls (the pose the episode started in)."""
  task = env.unwrapped
  return task.ctrl_to_action(state.data.ctrl, state.data)


def _ou_step(noise: jax.Array, rng: jax.Array, config: PlayConfig) -> jax.Array:
  # Discrete OU with stationary std ``scale``: x' = (1 - theta) x + sigma eps,
  # sigma = scale * sqrt(1 - (1 - theta)^2).
  decay = 1.0 - config.theta
  sigma = config.scale * jnp.sqrt(1.0 - decay ** 2)
  return decay * noise + sigma * jax.random.normal(rng, noise.shape)


def waypoint_policy(env: Env, config: PlayConfig = PlayConfig()) -> StatefulPolicy:
  """Random action-space waypoints around the first pose, each held for a segment."""
  size = env.action_size

  def init(state, rng):
    del rng
    home = home_action(env, state)
    return {"home": home, "target": home, "left": jnp.zeros((), jnp.int32)}

  def step(state, rng, carry):
    del state
    k_target, k_hold = jax.random.split(rng)
    new = carry["left"] <= 0
    drawn = jnp.clip(carry["home"] + config.scale * jax.random.uniform(
        k_target, (size,), minval=-1.0, maxval=1.0), -1.0, 1.0)
    target = jnp.where(new, drawn, carry["target"])
    hold = jax.random.randint(k_hold, (), config.hold_min, config.hold_max + 1)
    left = jnp.where(new, hold, carry["left"]) - 1
    return target, {**carry, "target": target, "left": left}

  return StatefulPolicy(init, step)


def ou_policy(env: Env, config: PlayConfig = PlayConfig()) -> StatefulPolicy:
  """Ornstein-Uhlenbeck wandering around the first pose."""
  size = env.action_size

  def init(state, rng):
    return {"home": home_action(env, state),
            "noise": config.scale * jax.random.normal(rng, (size,))}

  def step(state, rng, carry):
    del state
    noise = _ou_step(carry["noise"], rng, config)
    return jnp.clip(carry["home"] + noise, -1.0, 1.0), {**carry, "noise": noise}

  return StatefulPolicy(init, step)


def dart_policy(env: Env, config: PlayConfig = PlayConfig()) -> StatefulPolicy:
  """The clean scripted expert plus correlated (OU) noise that it must recover from."""
  task = env.unwrapped
  size = env.action_size

  def init(state, rng):
    del state
    return {"noise": config.scale * jax.random.normal(rng, (size,))}

  def step(state, rng, carry):
    k_expert, k_noise = jax.random.split(rng)
    noise = _ou_step(carry["noise"], k_noise, config)
    action = task.expert_action(state, k_expert, 0.0) + noise
    return jnp.clip(action, -1.0, 1.0), {"noise": noise}

  return StatefulPolicy(init, step)


def make_play_policy(env: Env, name: str, config: PlayConfig = PlayConfig()
                     ) -> StatefulPolicy:
  """The play policy called ``name`` (one of ``PLAY_POLICIES``)."""
  makers = {"waypoints": waypoint_policy, "ou": ou_policy, "dart": dart_policy}
  if name not in makers:
    raise ValueError(f"Unknown play policy {name!r}; choose one of {PLAY_POLICIES}.")
  return makers[name](env, config)
