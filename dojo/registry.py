"""Task registry: ``dojo.load(name, **overrides)``."""

from __future__ import annotations

import difflib
import importlib
from typing import Any, Callable, Union

from dojo.env import Env

# name -> "module:ClassName" (imported lazily so that loading one task is cheap)
_TASKS: dict[str, Union[str, Callable[..., Env]]] = {
    "reach": "dojo.tasks.reach:Reach",
    "push": "dojo.tasks.push:Push",
    "pick_place": "dojo.tasks.pick_place:PickPlace",
    "dex_lift": "dojo.tasks.dex_lift:DexLift",
    "rope": "dojo.tasks.rope:RopeStraighten",
}


def register(name: str, factory: Union[str, Callable[..., Env]]) -> None:
  """Adds a task: a callable returning an Env, or a ``"module:attr"`` path to one."""
  if name in _TASKS:
    raise ValueError(f"Task {name!r} is already registered.")
  _TASKS[name] = factory


def names() -> list[str]:
  """Names of every registered task."""
  return sorted(_TASKS)


def load(name: str, **overrides: Any) -> Env:
  """Builds task ``name`` with config ``overrides`` (``impl="jax"``, ``cameras=...``).

  Raises:
    KeyError: unknown task name (the message lists the known ones) or config key.
  """
  if name not in _TASKS:
    close = difflib.get_close_matches(name, _TASKS, n=3)
    hint = f" Did you mean {close}?" if close else ""
    raise KeyError(f"Unknown Dojo task {name!r}.{hint} Known tasks: {names()}.")
  factory = _TASKS[name]
  if isinstance(factory, str):
    module, attr = factory.split(":")
    factory = getattr(importlib.import_module(module), attr)
  return factory(**overrides)
