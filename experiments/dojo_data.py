"""Dream Dojo training data for experiment launchers: build a ``dojo_robot`` dataset on
demand and point a training config at it (no absl flags here, so tests can import it)."""

from __future__ import annotations

import os

from absl import logging
from ml_collections import config_dict


def prepare_dojo_data(dojo_config, workdir: str) -> str:
  """Builds (or reuses) the ``dojo_robot`` dataset described by ``dojo_config``."""
  from dojo.datasets.dojo_robot import Builder, DojoRobotConfig  # pylint: disable=import-outside-toplevel
  c = dojo_config
  data_dir = os.path.expanduser(c.data_dir) if c.data_dir else os.path.join(workdir, "tfds")
  cameras = "_".join(c.cameras)
  instructions = c.get("instructions", "all")
  name = (f"{c.task}_{c.num_episodes}ep_{cameras}_{c.image_size[0]}px_noise{c.noise}"
          f"_seed{c.seed}" + ("" if instructions == "all" else f"_{instructions}")
          ).replace(".", "p")
  builder = Builder(config=DojoRobotConfig(
      name=name, task=c.task, num_episodes=c.num_episodes, cameras=tuple(c.cameras),
      image_size=tuple(c.image_size), policy="noisy_expert", noise=c.noise, seed=c.seed,
      val_fraction=c.val_fraction, instructions=instructions,
      description="experiments.train"), data_dir=data_dir)
  if not builder.is_prepared():
    logging.info("Building the %s dataset (%d episodes) in %s.", c.task, c.num_episodes,
                 builder.data_dir)
  builder.download_and_prepare()
  return os.fspath(builder.data_dir)


def trainer_config(config: config_dict.ConfigDict, workdir: str) -> config_dict.ConfigDict:
  """The library trainer's config: datasets filled in from ``config.dojo`` if needed."""
  from wam.data.config import dataset_config  # pylint: disable=import-outside-toplevel
  config = config_dict.ConfigDict(config.to_dict())
  dojo_config = config.get("dojo")
  if "dojo" in config:
    del config["dojo"]
  if not config.data.datasets:
    if dojo_config is None:
      raise ValueError("The config names no datasets (config.data.datasets) and no "
                       "config.dojo to build one from.")
    # dojo.max_episodes (0: all) trains on the first episodes only: data-scale sweeps.
    config.data.datasets.robot = dataset_config(
        prepare_dojo_data(dojo_config, workdir),
        max_episodes=dojo_config.get("max_episodes", 0))
  return config
