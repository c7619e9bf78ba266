"""The Dojo environment contract, compatible with brax and MuJoCo Playground.

An environment is an object that holds only constants (the compiled model, sizes,
configuration) and two pure functions, ``reset(rng) -> State`` and
``step(state, action) -> State``. Everything that changes per environment (rng,
counters, the instruction, per-episode colours) lives in ``State.info`` so that
batching, episode limits, auto-reset and domain randomisation can be wrappers.
"""

from __future__ import annotations

import abc
from typing import Any, Mapping

import jax
from flax import struct

Observation = Mapping[str, jax.Array]


@struct.dataclass
class State:
  """One environment's state; a pytree with the same fields as Playground's."""

  data: Any
  obs: Observation
  reward: jax.Array
  done: jax.Array
  metrics: dict[str, jax.Array]
  info: dict[str, Any]

  def tree_replace(self, params: Mapping[str, Any]) -> "State":
    """Replaces nested fields given as dotted paths, e.g. ``{"data.qpos": q}``."""
    new = self
    for path, value in params.items():
      new = _replace_path(new, path.split("."), value)
    return new


def _replace_path(base: Any, path: list[str], value: Any) -> Any:
  if len(path) == 1:
    return base.replace(**{path[0]: value})
  return base.replace(
      **{path[0]: _replace_path(getattr(base, path[0]), path[1:], value)})


class Env(abc.ABC):
  """Abstract Dojo environment (physics or neural)."""

  @abc.abstractmethod
  def reset(self, rng: jax.Array) -> State:
    """Returns a fresh state drawn with ``rng``."""

  @abc.abstractmethod
  def step(self, state: State, action: jax.Array) -> State:
    """Advances one control step."""

  @property
  @abc.abstractmethod
  def action_size(self) -> int:
    """Dimension of the action vector (actions live in [-1, 1])."""

  @property
  @abc.abstractmethod
  def observation_size(self) -> Mapping[str, tuple[int, ...]]:
    """Shape of each observation entry, without batch dimensions."""

  @property
  def dt(self) -> float:
    """Control period in seconds."""
    raise NotImplementedError

  @property
  def unwrapped(self) -> "Env":
    return self


class Wrapper(Env):
  """Forwards everything to the wrapped env; subclasses override what they change."""

  def __init__(self, env: Env):
    self.env = env

  def reset(self, rng: jax.Array) -> State:
    return self.env.reset(rng)

  def step(self, state: State, action: jax.Array) -> State:
    return self.env.step(state, action)

  @property
  def action_size(self) -> int:
    return self.env.action_size

  @property
  def observation_size(self) -> Mapping[str, tuple[int, ...]]:
    return self.env.observation_size

  @property
  def dt(self) -> float:
    return self.env.dt

  @property
  def unwrapped(self) -> Env:
    return self.env.unwrapped

  def __getattr__(self, name: str) -> Any:
    if name == "env":  # not yet set: avoid infinite recursion during unpickling
      raise AttributeError(name)
    return getattr(self.env, name)


def sanitize_action(action: jax.Array, action_size: int,
                    where: str) -> tuple[jax.Array, jax.Array]:
  """Checks an unbatched action's shape and zeroes it if it holds NaN or inf.

  Returns ``(action, invalid)``; the caller ends only this env's episode when
  ``invalid`` so one bad env never poisons a batch.

  Raises:
    ValueError: the action's shape is not ``(action_size,)``.
  """
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  if action.shape != (action_size,):
    raise ValueError(f"{where}: action has shape {action.shape}, expected "
                     f"({action_size},) (batch with the vmap wrapper).")
  invalid = ~jnp.all(jnp.isfinite(action))
  return jnp.where(invalid, jnp.zeros_like(action), action), invalid
