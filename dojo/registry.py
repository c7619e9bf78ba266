"""Task registry: task modules register themselves; ``dojo.load(name, **overrides)``.

A task module registers its task when it is imported, with a call or a decorator::

    @dojo.register("tap", data={"play_noise": 0.3})
    class Tap(MjxTask): ...

``names()`` and ``load()`` first import every module of the ``dojo.tasks`` package and
every module named in the environment variable ``DOJO_TASK_MODULES`` (comma-separated
import paths, e.g. ``DOJO_TASK_MODULES=my_tasks.tap``), so a new task file needs no
edit anywhere else: the launchers' configs, the ``dojo_robot`` dataset builder and the
benchmarks read the task list from here. A task outside both also loads by import
path, ``dojo.load("my_tasks.tap:Tap")`` (the module is imported, which registers what
it registers, and ``Tap`` is called).

``data`` holds what the experiment launchers use to collect and train on the task
(``DATA_DEFAULTS`` lists the keys and their meaning); most tasks need none of it.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import os
import pkgutil
from typing import Any, Callable, Mapping, Optional, Union

import dojo.tasks
from dojo.env import Env

Factory = Union[str, Callable[..., Env]]

#: The environment variable naming extra task modules to import (comma-separated).
TASK_MODULES_ENV = "DOJO_TASK_MODULES"

#: Keys of a task's ``data`` and their defaults, read by ``experiments/configs/wam.py``
#: and ``experiments/lib/great_parallel_recipe.py`` when they collect and train on the task.
DATA_DEFAULTS: Mapping[str, Any] = {
    # Action noise (action units) of the DART collection and of joint-space play.
    "dart_noise": 0.03,
    "play_noise": 0.2,
    # > 0: also play over the whole action range, waypoints this wide (dex_lift: 1.0).
    "wide_play_noise": 0.0,
    # `acting`: targets float above the table, so two fixed views (front + head) and the
    # target's position as a predicted-only proprio slot (the task's `observe_target`).
    "floating_targets": False,
    # `acting`: imitate with joint offsets (the task's `joint_actions="relative"`).
    "relative_joints": False,
}


@dataclasses.dataclass(frozen=True)
class TaskEntry:
  """One registered task: its name, how to build it and its data defaults."""

  name: str
  factory: Factory          # a callable returning an Env, or "module:attr"
  data: Mapping[str, Any]   # DATA_DEFAULTS with the task's values

  def resolve(self) -> Callable[..., Env]:
    """The factory itself (a ``"module:attr"`` string is imported here)."""
    return _import_attr(self.factory) if isinstance(self.factory, str) else self.factory


_TASKS: dict[str, TaskEntry] = {}
_discovered = False


def register(name: str, factory: Optional[Factory] = None, *,
             data: Optional[Mapping[str, Any]] = None):
  """Registers task ``name``; used as a call or, without ``factory``, as a decorator.

  Args:
    name: the task's name, as ``dojo.load(name)``, configs and datasets spell it.
    factory: a callable returning an Env (usually the task class), or a
      ``"module:attr"`` path to one (imported when the task is first loaded).
    data: values for ``DATA_DEFAULTS`` keys (collection noise, acting recipe).

  Returns:
    ``factory`` (so that a decorated class stays itself), or the decorator.

  Raises:
    ValueError: ``name`` is taken by another factory (the message names both; the
      same factory registered again, as when its module is reloaded, replaces it),
      or ``data`` has an unknown key.
  """
  if factory is None:
    return lambda f: register(name, f, data=data)
  unknown = sorted(set(data or {}) - set(DATA_DEFAULTS))
  if unknown:
    raise ValueError(f"Task {name!r}: unknown data key(s) {unknown}; valid keys: "
                     f"{sorted(DATA_DEFAULTS)}.")
  old = _TASKS.get(name)
  if old is not None and _qualname(old.factory) != _qualname(factory):
    raise ValueError(f"Task {name!r} is already registered to {_qualname(old.factory)}; "
                     f"cannot register it to {_qualname(factory)} as well. Choose another "
                     "name.")
  _TASKS[name] = TaskEntry(name, factory, {**DATA_DEFAULTS, **(data or {})})
  return factory


def unregister(name: str) -> None:
  """Removes task ``name`` (tests that register throwaway tasks clean up with it)."""
  _TASKS.pop(name, None)


def import_tasks(module: str) -> list[str]:
  """Imports task module ``module`` (an import path); returns the names it registered."""
  before = set(_TASKS)
  importlib.import_module(module)
  return sorted(set(_TASKS) - before)


def names() -> list[str]:
  """Names of every registered task (the built-in ones and ``DOJO_TASK_MODULES``)."""
  _discover()
  return sorted(_TASKS)


def entry(name: str) -> TaskEntry:
  """The registered task ``name``, or one given by import path ``"module:attr"``.

  Raises:
    KeyError: unknown task name (the message lists the known ones).
  """
  _discover()
  if name in _TASKS:
    return _TASKS[name]
  if ":" in name:
    module, attr = name.split(":", 1)
    import_tasks(module)
    if attr in _TASKS:             # "module:task_name"
      return _TASKS[attr]
    factory = _import_attr(name)   # "module:Class": registered under its own name or not
    for e in _TASKS.values():
      if e.factory is factory:
        return e
    return TaskEntry(name, factory, dict(DATA_DEFAULTS))
  close = difflib.get_close_matches(name, _TASKS, n=3)
  hint = f" Did you mean {close}?" if close else ""
  raise KeyError(f"Unknown Dojo task {name!r}.{hint} Known tasks: {names()}. A task "
                 f"outside dojo/tasks loads by import path ('my_module:MyTask') or from "
                 f"a module named in ${TASK_MODULES_ENV}.")


def data(name: str) -> Mapping[str, Any]:
  """Task ``name``'s data defaults (``DATA_DEFAULTS`` keys)."""
  return entry(name).data


def load(name: str, **overrides: Any) -> Env:
  """Builds task ``name`` with config ``overrides`` (``impl="jax"``, ``cameras=...``).

  ``name`` is a registered name or an import path ``"module:attr"``.

  Raises:
    KeyError: unknown task name (the message lists the known ones) or config key.
  """
  return entry(name).resolve()(**overrides)


def _discover() -> None:
  """Imports the built-in task modules (once) and those of ``DOJO_TASK_MODULES`` (an
  import of a module already imported costs nothing, so the variable may change)."""
  global _discovered
  if not _discovered:
    _discovered = True   # first, so that a task module may call names() at import
    try:
      for info in pkgutil.iter_modules(dojo.tasks.__path__, dojo.tasks.__name__ + "."):
        importlib.import_module(info.name)
    except BaseException:
      _discovered = False
      raise
  for module in os.environ.get(TASK_MODULES_ENV, "").split(","):
    if module.strip():
      try:
        importlib.import_module(module.strip())
      except ImportError as e:
        raise ImportError(f"${TASK_MODULES_ENV} names task module {module.strip()!r}, "
                          f"which does not import: {e}") from e


def _import_attr(path: str) -> Callable[..., Env]:
  module, sep, attr = path.partition(":")
  if not sep or not attr:
    raise ValueError(f"Task factory path {path!r} is not 'module:attr'.")
  mod = importlib.import_module(module)
  if not hasattr(mod, attr):
    raise KeyError(f"Module {module!r} has no task factory {attr!r} (and registered no "
                   f"task of that name).")
  return getattr(mod, attr)


def _qualname(factory: Factory) -> str:
  """``module:qualified.name`` of a factory, the same for its ``"module:attr"`` path."""
  if isinstance(factory, str):
    return factory
  return (f"{getattr(factory, '__module__', '?')}:"
          f"{getattr(factory, '__qualname__', repr(factory))}")
