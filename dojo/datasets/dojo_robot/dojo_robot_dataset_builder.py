"""``dojo_robot``: demonstrations collected in a Dream Dojo task, as a TFDS dataset.

Build from the command line (no TensorFlow needed):

    tfds build dojo/datasets/dojo_robot --config=reach_small --data_dir=~/tensorflow_datasets

or from Python with any size (``build``: the one way the experiments build it)::

    from dojo.datasets import dojo_robot
    path = dojo_robot.build("data", "push", num_episodes=200, image_size=(128, 128),
                            noise=0.2)   # <data_dir>/dojo_robot/<config name>/1.0.0

Episodes are first collected into ``<data_dir>/downloads/dojo_robot/<config>/episodes/``
as ``.npz`` files (an interrupted build resumes there: re-run the same command), then
written step-major as ArrayRecord with a ``train`` and a ``val`` split (the last
``val_fraction`` of the episodes). ``experiments.collect`` builds the same dataset from
the episodes it collected (``episodes_dir``).
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import json
import logging
import math
import os
import shutil
from typing import Any, Iterator, Optional, Sequence

import tensorflow_datasets as tfds

from dojo import collect as collect_lib
from dojo import registry
from wam.data.builder import EpisodeBuilder
from wam.data.layout import Layout
from wam.data.schema import EpisodeSpec

#: Tasks with named configs (``<task>`` and ``<task>_small``): every registered task.
TASKS = tuple(registry.names())


@dataclasses.dataclass
class DojoRobotConfig(tfds.core.BuilderConfig):
  """Size knobs of a ``dojo_robot`` dataset."""

  task: str = "pick_place"
  num_episodes: int = 1000
  cameras: tuple[str, ...] = ("front", "wrist")
  image_size: tuple[int, int] = (64, 64)
  policy: str = "noisy_expert"   # expert | noisy_expert | random
  noise: float = 0.1
  seed: int = 0
  num_steps: int = -1            # -1: the task's episode length
  batch_size: int = 64           # envs simulated at once while collecting
  val_fraction: float = 0.05
  impl: str = "auto"             # physics implementation (dojo.physics)
  instructions: str = "all"      # all | seen (leave held-out combinations for evaluation)
  # Task config overrides as sorted (key, value) pairs, e.g. (("joint_actions",
  # "relative"),): they change what the recorded actions mean.
  task_overrides: tuple[tuple[str, Any], ...] = ()


def _configs() -> list[DojoRobotConfig]:
  configs = []
  for task in TASKS:
    configs.append(DojoRobotConfig(
        name=task, task=task,
        description=f"1000 noisy-expert {task} episodes, front+wrist cameras at 64x64."))
    configs.append(DojoRobotConfig(
        name=f"{task}_small", task=task, num_episodes=32, batch_size=16,
        description=f"32 noisy-expert {task} episodes, front+wrist cameras at 64x64 "
                    "(minutes on a laptop CPU)."))
  return configs


@functools.lru_cache(maxsize=8)
def _spec(task: str, cameras: tuple[str, ...], image_size: tuple[int, int], impl: str,
          overrides: tuple[tuple[str, Any], ...] = ()) -> EpisodeSpec:
  env = _load(task, cameras, image_size, impl, "all", overrides)
  slots = env.data_slots()
  return EpisodeSpec(
      embodiment=env.embodiment, source="sim", cameras=tuple(cameras),
      image_size=tuple(image_size), joints=Layout.of(slots["joints"]),
      proprio=Layout.of(slots["proprio"]), action=Layout.of(slots["action"]),
      privileged_dim=int(env.observation_size["privileged"][0]), fps=1.0 / env.dt)


@functools.lru_cache(maxsize=8)  # the spec and the collection share one env
def _load(task: str, cameras: tuple[str, ...], image_size: tuple[int, int], impl: str,
          instructions: str, overrides: tuple[tuple[str, Any], ...] = ()):
  return registry.load(task, cameras=tuple(cameras), image_height=image_size[0],
                   image_width=image_size[1], impl=impl, instructions=instructions,
                   **dict(overrides))


class Builder(EpisodeBuilder):
  """Scripted-expert robot demonstrations from a Dream Dojo task (simulated, rendered)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Step-major episodes (episode schema v1) from the Dojo "
                            "collector, with train and val splits."}
  BUILDER_CONFIGS = _configs()
  DEFAULT_CONFIG_NAME = "pick_place_small"

  def __init__(self, *, episodes_dir: Optional[str] = None, **kwargs):
    """``episodes_dir``: use episodes already collected there (``experiments.collect``)
    instead of collecting into the download directory."""
    self._episodes_dir = episodes_dir
    super().__init__(**kwargs)

  def episode_spec(self) -> EpisodeSpec:
    c = self.builder_config
    return _spec(c.task, tuple(c.cameras), tuple(c.image_size), c.impl,
                 tuple(c.task_overrides))

  def split_episodes(self, dl_manager):
    c = self.builder_config
    episode_dir = self._episodes_dir
    if episode_dir is None:
      episode_dir = os.path.join(dl_manager.download_dir, "dojo_robot", c.name, "episodes")
      env = _load(c.task, tuple(c.cameras), tuple(c.image_size), c.impl, c.instructions,
                  tuple(c.task_overrides))
      num_steps = c.num_steps if c.num_steps > 0 else env.config.episode_length
      logging.info("Collecting %d %s episodes into %s", c.num_episodes, c.task, episode_dir)
      collect_lib.collect_to_dir(
          env, episode_dir, num_episodes=c.num_episodes, batch_size=c.batch_size,
          task_name=c.task, num_steps=num_steps, policy=c.policy, noise=c.noise,
          seed=c.seed, progress=lambda s: logging.info(
              "[dojo_robot %s] %d/%d episodes, success %.2f", c.name, s.total,
              c.num_episodes, s.success_rate))
    paths = [collect_lib.episode_path(episode_dir, i) for i in range(c.num_episodes)]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
      found = len(glob.glob(os.path.join(episode_dir, "episode_*.npz")))
      raise FileNotFoundError(f"{episode_dir} holds {found} episodes; config {c.name!r} "
                              f"needs {c.num_episodes} (first missing: {missing[0]}).")
    num_val = min(len(paths) - 1, math.ceil(c.val_fraction * len(paths)))
    splits = {"train": paths[:len(paths) - num_val]}
    if num_val > 0:
      splits["val"] = paths[len(paths) - num_val:]
    return {name: self._episodes(split_paths) for name, split_paths in splits.items()}

  def _episodes(self, paths: list[str]) -> Iterator[dict]:
    for path in paths:  # one episode in memory at a time
      yield collect_lib.read_npz(path)


def config_name(task: str, num_episodes: int, cameras: Sequence[str],
                image_size: Sequence[int], policy: str, noise: float, seed: int,
                num_steps: int = -1, instructions: str = "all",
                task_overrides: Sequence[tuple[str, Any]] = ()) -> str:
  """The config name ``build`` gives a dataset: every knob spelt out, so that another
  size never reuses it (the noisy expert's data keep the names they always had)."""
  kind = "noise" if policy == "noisy_expert" else policy
  # A string override by itself (``_relative``), a flag by its key (``_observe_target``).
  overrides = "".join(f"_{key}" if value is True else f"_{value}"
                      for key, value in task_overrides)
  return (f"{task}_{num_episodes}ep_{'_'.join(cameras)}_{image_size[0]}px_{kind}{noise}"
          f"_seed{seed}" + (f"_{num_steps}steps" if num_steps > 0 else "")
          + ("" if instructions == "all" else f"_{instructions}") + overrides
          ).replace(".", "p")


def build(data_dir: str, task: str, *, num_episodes: int,
          cameras: Sequence[str] = ("front", "wrist"), image_size: Sequence[int] = (64, 64),
          policy: str = "noisy_expert", noise: float = 0.1, seed: int = 0,
          num_steps: int = -1, batch_size: int = 64, val_fraction: float = 0.05,
          impl: str = "auto", instructions: str = "all",
          task_overrides: Sequence[tuple[str, Any]] = (), name: Optional[str] = None,
          description: str = "", episodes_dir: Optional[str] = None) -> str:
  """Builds (or reuses) a ``dojo_robot`` dataset; returns its versioned directory.

  Args:
    data_dir: the TFDS data directory.
    task, num_episodes, cameras, image_size, policy, noise, seed, num_steps, batch_size,
      val_fraction, impl, instructions, task_overrides: see :class:`DojoRobotConfig`.
    name: the config name (default: :func:`config_name`, every knob spelt out).
    description: the config's description.
    episodes_dir: episodes collected there already (``experiments.collect``) instead of
      collecting into the download directory.
  Returns:
    ``<data_dir>/dojo_robot/<name>/1.0.0``, readable with
    ``wam.data.reader.EpisodeDataset``. A complete dataset already there is reused if it
    holds ``num_episodes`` episodes, and rebuilt if not (more were collected since).
  """
  name = name or config_name(task, num_episodes, cameras, image_size, policy, noise, seed,
                             num_steps, instructions, task_overrides)
  config = DojoRobotConfig(
      name=name, task=task, num_episodes=num_episodes, num_steps=num_steps,
      cameras=tuple(cameras), image_size=tuple(image_size), policy=policy, noise=noise,
      seed=seed, val_fraction=val_fraction, instructions=instructions,
      task_overrides=tuple(task_overrides), batch_size=batch_size, impl=impl,
      description=description)
  builder = Builder(config=config, data_dir=data_dir, episodes_dir=episodes_dir)
  metadata_path = os.path.join(builder.data_dir, "metadata.json")
  if builder.is_prepared() and os.path.exists(metadata_path):
    with open(metadata_path) as f:
      index = json.load(f)["episodes"]
    if sum(len(split["length"]) for split in index.values()) != num_episodes:
      logging.info("Rebuilding %s for %d episodes.", builder.data_dir, num_episodes)
      shutil.rmtree(builder.data_dir)
      builder = Builder(config=config, data_dir=data_dir, episodes_dir=episodes_dir)
  if not builder.is_prepared():
    logging.info("Building the %s dataset (%d %s episodes) in %s.", task, num_episodes,
                 policy, builder.data_dir)
  builder.download_and_prepare()
  return os.fspath(builder.data_dir)
