"""Where a robot vector (joints, proprio) comes from in a Gymnasium env.

A field is a function ``field(env, obs, info) -> array`` or a string::

  obs                 the observation (flattened)
  obs.observation     a key of a dict observation (``.a.b`` for nested keys)
  info.qpos           a key of the step's info dict
  data.qpos           an attribute of ``env.unwrapped.data`` (MuJoCo's MjData)
  attr.robot.q        an attribute of ``env.unwrapped`` (``.a.b`` for nested ones)

each optionally followed by ``[i]``, ``[a:b]`` or ``[a:b:s]`` on the flattened values
(``data.qpos[:7]``). Several fields are concatenated in order.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping, Sequence, Union

import gymnasium as gym
import numpy as np

Field = Union[str, Callable[[gym.Env, Any, Mapping[str, Any]], Any]]
SOURCES = ("obs", "info", "data", "attr")
_FIELD = re.compile(r"^(obs|info|data|attr)((?:\.\w+)*)"
                    r"(?:\[\s*(-?\d*)\s*(?:(:)\s*(-?\d*)\s*(?::\s*(-?\d*)\s*)?)?\])?$")


def _walk(value: Any, path: Sequence[str], where: str) -> Any:
  for name in path:
    if isinstance(value, Mapping):
      if name not in value:
        raise KeyError(f"{where}: no key {name!r}; there are {sorted(value)}.")
      value = value[name]
    elif hasattr(value, name):
      value = getattr(value, name)
    else:
      raise KeyError(f"{where}: {type(value).__name__} has no {name!r}.")
  return value


def compile_field(field: Field) -> Callable[[gym.Env, Any, Mapping[str, Any]], np.ndarray]:
  """A function ``(env, obs, info) -> f32 [D]`` for one field.

  Raises:
    ValueError: a string that is not a field (the message shows the syntax).
  """
  if callable(field):
    return lambda env, obs, info: np.asarray(field(env, obs, info), np.float32).reshape(-1)
  match = _FIELD.match(str(field).strip())
  if not match:
    raise ValueError(f"Bad field {field!r}: use one of {list(SOURCES)}, then '.key' parts, "
                     "then an optional [i] or [a:b], e.g. 'obs[0:7]', 'obs.observation', "
                     "'info.qpos', 'data.qpos[:7]'.")
  source, path, start, colon, stop, step = match.groups()
  path = [p for p in path.split(".") if p]
  if colon:
    index: Any = slice(*(int(x) if x else None for x in (start, stop, step)))
  else:
    index = int(start) if start else None

  def read(env: gym.Env, obs: Any, info: Mapping[str, Any]) -> np.ndarray:
    root = {"obs": obs, "info": info, "data": getattr(env.unwrapped, "data", None),
            "attr": env.unwrapped}[source]
    if root is None:
      raise ValueError(f"Field {field!r}: {type(env.unwrapped).__name__} has no MuJoCo "
                       "'data' attribute.")
    values = np.asarray(_walk(root, path, f"field {field!r}"), np.float32).reshape(-1)
    if index is None:
      return values
    return np.atleast_1d(values[index])

  return read


def compile_vector(fields: Field | Sequence[Field]
                   ) -> Callable[[gym.Env, Any, Mapping[str, Any]], np.ndarray]:
  """A function ``(env, obs, info) -> f32 [D]``: ``fields`` concatenated."""
  if isinstance(fields, str) or callable(fields):
    fields = [fields]
  readers = [compile_field(f) for f in fields]
  if not readers:
    raise ValueError("A vector needs at least one field.")
  return lambda env, obs, info: np.concatenate([r(env, obs, info) for r in readers])
