"""The library of ``experiments.train``: build the ``dojo_robot`` datasets of
``config.dojo`` on demand and point the trainer's config at them (no absl flags here, so
tests can import it).

``config.dojo`` describes the demonstrations (task, cameras, size, the noisy expert's
``num_episodes`` and ``noise``); ``config.dojo.mixture`` adds collections made by other
policies, each its own dataset with its own sampling weight::

    config.dojo.mixture.play = dict(policy="waypoints", noise=0.2, num_episodes=400,
                                    weight=1.0)

``num_steps`` (default: the task's episode length) shortens an entry's episodes: many
short episodes show many more scenes (target placements, objects) for the same
rendering cost, which is what perception learns from (docs/RESULTS.md).

The demonstrations themselves are the mixture entry ``demos`` with weight
``config.dojo.weight`` (``num_episodes=0`` leaves them out). Every entry shares the task,
cameras, image size and instruction split, so their layouts agree by construction.
Mixture entries default to ``imitate=False``: their actions condition the world model
but are never policy-mode targets (``wam.objective``).
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from ml_collections import config_dict

from dojo import collect as collect_lib
from dojo import registry
from dojo.datasets import dojo_robot
from dojo.tasks import arm, reach
from wam.data.config import dataset_config

_MIXTURE_KEYS = ("policy", "noise", "num_episodes", "weight", "seed", "imitate", "num_steps")


def prepare_dojo_data(dojo_config, workdir: str, *, policy: str = "noisy_expert",
                      noise: float | None = None, num_episodes: int | None = None,
                      seed: int | None = None, num_steps: int = -1) -> str:
  """Builds (or reuses) one ``dojo_robot`` dataset of ``dojo_config``'s task and size.

  ``policy``, ``noise``, ``num_episodes`` and ``seed`` default to the demonstrations'
  (``noisy_expert``, ``dojo_config.noise``, ...); a mixture entry passes its own.
  ``num_steps`` > 0 cuts episodes to that many steps (-1: the task's length).
  """
  c = dojo_config
  if policy not in collect_lib.POLICIES:
    raise ValueError(f"Unknown collection policy {policy!r} in config.dojo; choose one of "
                     f"{collect_lib.POLICIES}.")
  return dojo_robot.build(
      os.path.expanduser(c.data_dir) if c.data_dir else os.path.join(workdir, "tfds"),
      c.task, num_episodes=c.num_episodes if num_episodes is None else num_episodes,
      cameras=tuple(c.cameras), image_size=tuple(c.image_size), policy=policy,
      noise=c.noise if noise is None else noise, seed=c.seed if seed is None else seed,
      num_steps=num_steps, batch_size=c.get("collect_batch_size", 64),
      val_fraction=c.val_fraction, instructions=c.get("instructions", "all"),
      task_overrides=task_overrides(c), description="experiments.train")


def task_overrides(config) -> tuple[tuple[str, str], ...]:
  """The task config overrides a data or evaluation config asks for, as sorted pairs:
  ``joint_actions`` ("absolute" or "relative" for the arm tasks; "" keeps the task's)
  and ``observe_target`` (reach's perception oracle; False keeps it off)."""
  pairs = []
  if config.get("joint_actions", ""):
    pairs.append(("joint_actions", config.joint_actions))
  if config.get("observe_target", False):
    pairs.append(("observe_target", True))
  return tuple(pairs)


def task_overrides_of_model(task: str, layouts: Mapping[str, list] | None) -> dict[str, Any]:
  """The overrides of ``task`` that a model's data had, read off its slot names
  (``layouts``: the run's recorded ``{"proprio": [[name, size], ...], "action": ...}``):
  relative joint actions and reach's target slot, each where ``task``'s config has the
  key (``joint_actions``: the arm tasks; ``observe_target``: reach)."""
  names = {field: {slot[0] for slot in (layouts or {}).get(field, [])}
           for field in ("proprio", "action")}
  default_config = getattr(registry.entry(task).resolve(), "default_config", None)
  keys = set(default_config()) if default_config is not None else set()
  overrides: dict[str, Any] = {}
  if "joint_actions" in keys and arm.RELATIVE_JOINT_SLOT in names["action"]:
    overrides["joint_actions"] = "relative"
  if "observe_target" in keys and reach.TARGET_SLOT in names["proprio"]:
    overrides["observe_target"] = True
  return overrides


def episodes_dir(dataset_path: str) -> str:
  """The episode files (``dojo.collect``) a ``dojo_robot`` dataset was built from.

  ``<data_dir>/dojo_robot/<name>/<version>`` -> ``<data_dir>/downloads/dojo_robot/<name>/
  episodes``; raises ``FileNotFoundError`` if they are not there.
  """
  version_dir = os.path.normpath(dataset_path)
  name_dir = os.path.dirname(version_dir)
  root = os.path.dirname(os.path.dirname(name_dir))
  path = os.path.join(root, "downloads", "dojo_robot", os.path.basename(name_dir), "episodes")
  if not os.path.isdir(path):
    raise FileNotFoundError(f"No episodes of {dataset_path} at {path}.")
  return path


def mixture_entries(dojo_config) -> dict[str, dict]:
  """``{name: {policy, noise, num_episodes, weight, seed}}`` of every dataset to build.

  Raises ``ValueError`` naming the entry for unknown keys or policies, or a mixture
  with nothing in it.
  """
  c = dojo_config
  entries = {}
  if c.num_episodes > 0:
    entries["demos"] = dict(policy="noisy_expert", noise=c.noise, num_episodes=c.num_episodes,
                            weight=c.get("weight", 1.0), seed=c.seed, imitate=True)
  for name, entry in (c.get("mixture") or {}).items():
    entry = dict(entry)
    unknown = sorted(set(entry) - set(_MIXTURE_KEYS))
    if unknown:
      raise ValueError(f"config.dojo.mixture.{name} has unknown key(s) {unknown}; valid: "
                       f"{list(_MIXTURE_KEYS)}.")
    if entry.get("policy") not in collect_lib.POLICIES:
      raise ValueError(f"config.dojo.mixture.{name}.policy is {entry.get('policy')!r}; "
                       f"choose one of {collect_lib.POLICIES}.")
    if name in entries:
      raise ValueError(f"config.dojo.mixture.{name}: the name is taken by the demonstrations.")
    entries[name] = dict(policy=entry["policy"], noise=float(entry.get("noise", c.noise)),
                         num_episodes=int(entry.get("num_episodes", c.num_episodes)),
                         weight=float(entry.get("weight", 1.0)),
                         seed=int(entry.get("seed", c.seed + 1 + len(entries))),
                         # Play and perturbed data teach dynamics, not behaviour.
                         imitate=bool(entry.get("imitate", False)),
                         num_steps=int(entry.get("num_steps", -1)))
  if not entries:
    raise ValueError("config.dojo collects nothing: num_episodes is 0 and the mixture is "
                     "empty.")
  return entries


def trainer_config(config: config_dict.ConfigDict, workdir: str) -> config_dict.ConfigDict:
  """The library trainer's config: datasets filled in from ``config.dojo`` if needed."""
  config = config_dict.ConfigDict(config.to_dict())
  dojo_config = config.get("dojo")
  if "dojo" in config:
    del config["dojo"]
  collected = [p for p in str((dojo_config or {}).get("collected", "") or "").split(",") if p]
  if not config.data.datasets and collected:
    # Datasets that experiments.collect wrote: trained on as they are, nothing built.
    for path in collected:
      path = os.path.abspath(os.path.expanduser(path))
      if not os.path.isfile(os.path.join(path, "dataset_info.json")):
        raise FileNotFoundError(
            f"config.dojo.collected names {path}, which is not a built dataset (no "
            "dataset_info.json); experiments.collect writes "
            "<workdir>/tfds/dojo_robot/<task>_collected/1.0.0.")
      name = os.path.basename(os.path.dirname(os.path.normpath(path)))
      config.data.datasets[name] = dataset_config(
          path, weight=dojo_config.weight, max_episodes=dojo_config.get("max_episodes", 0))
  if not config.data.datasets:
    if dojo_config is None:
      raise ValueError("The config names no datasets (config.data.datasets) and no "
                       "config.dojo to build one from.")
    entries = mixture_entries(dojo_config)  # validated before any collection starts
    for name, entry in entries.items():
      path = prepare_dojo_data(dojo_config, workdir, policy=entry["policy"],
                               noise=entry["noise"], num_episodes=entry["num_episodes"],
                               seed=entry["seed"], num_steps=entry.get("num_steps", -1))
      # dojo.max_episodes (0: all) trains on the first episodes only: data-scale sweeps.
      # The demonstrations keep the dataset name "robot" that earlier runs recorded.
      config.data.datasets["robot" if name == "demos" else name] = dataset_config(
          path, weight=entry["weight"], max_episodes=dojo_config.get("max_episodes", 0),
          imitate=entry["imitate"])
  return config
