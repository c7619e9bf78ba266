"""``egocentric_human``: synthetic egocentric human video as a TFDS dataset.

Build from the command line (``wam-tfds`` is ``tfds`` without TensorFlow):

    wam-tfds build egoscale/datasets/egocentric_human --config=1h --data_dir=~/tensorflow_datasets

or from Python with any size (the recipe's entry point; an existing complete dataset is
reused)::

    from egoscale.datasets.egocentric_human import build
    path = build("data", hours=10, image_size=(64, 64))

Episodes come from :mod:`egoscale.synthetic` (a kinematic hand doing reach, grasp, move,
push, pour and fold on randomised tabletops, filmed by a moving head camera) and are
written step-major as ArrayRecord in the episode schema (``source="human"``, embodiment
``human_hand``, no joints), with a ``train`` and a ``val`` split (the last
``val_fraction`` of the episodes). The size is set in hours of video:
``hours * 3600 * fps / episode_length`` episodes. ``actions="none"`` stores unlabeled
video (no action layout), for latent-action training.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from typing import Optional, Sequence

import tensorflow_datasets as tfds

from egoscale import synthetic
from egoscale.scenes import TASKS
from wam.data.builder import EpisodeBuilder
from wam.data.schema import EpisodeSpec

NAME = "egocentric_human"


@dataclasses.dataclass
class EgocentricHumanConfig(tfds.core.BuilderConfig):
  """Size knobs of an ``egocentric_human`` dataset."""

  hours: float = 1.0                 # hours of video (frames / fps), train + val
  image_size: tuple[int, int] = (32, 32)
  fps: float = 10.0
  episode_length: int = 64           # steps per episode
  tasks: tuple[str, ...] = TASKS     # episode e does tasks[e % len(tasks)]
  actions: str = "human"             # human: wrist_motion + hand_keypoints; none: unlabeled
  seed: int = 0
  val_fraction: float = 0.05
  batch_size: int = 32               # episodes rendered at once
  camera: str = synthetic.scenes.CAMERA   # the camera's name in the dataset

  def generator(self) -> synthetic.GeneratorConfig:
    return synthetic.GeneratorConfig(
        image_size=tuple(self.image_size), fps=float(self.fps),
        episode_length=int(self.episode_length), tasks=tuple(self.tasks),
        actions=self.actions, seed=int(self.seed), batch_size=int(self.batch_size),
        camera=self.camera)

  @property
  def num_episodes(self) -> int:
    return synthetic.num_episodes(self.hours, self.fps, self.episode_length)


def config_name(hours: float, image_size: Sequence[int], fps: float, episode_length: int,
                tasks: Sequence[str], actions: str, seed: int,
                camera: str = synthetic.scenes.CAMERA) -> str:
  """A config name that spells out every knob that changes the data."""
  name = (f"{hours:g}h_{image_size[0]}x{image_size[1]}_{fps:g}fps_{episode_length}steps_"
          f"{actions}_seed{seed}")
  if tuple(tasks) != TASKS:
    name += "_" + "-".join(tasks)
  if camera != synthetic.scenes.CAMERA:
    name += f"_{camera}"
  return name.replace(".", "p")


def _configs() -> list[EgocentricHumanConfig]:
  return [
      EgocentricHumanConfig(name="tiny", hours=0.02, image_size=(32, 32), batch_size=8,
                            description="0.02 h (11 episodes) at 32x32, 10 fps: seconds."),
      EgocentricHumanConfig(name="1h", hours=1.0, description="1 h at 32x32, 10 fps."),
      EgocentricHumanConfig(name="1h_unlabeled", hours=1.0, actions="none",
                            description="1 h at 32x32, 10 fps, no actions."),
      EgocentricHumanConfig(name="10h_64px", hours=10.0, image_size=(64, 64),
                            description="10 h at 64x64, 10 fps."),
  ]


class Builder(EpisodeBuilder):
  """Synthetic egocentric human-hand video (kinematic hand, head camera, 6 tasks)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Reach, grasp, move, push, pour and fold; wrist motion + "
                            "21 keypoints as actions; train and val splits."}
  BUILDER_CONFIGS = _configs()
  DEFAULT_CONFIG_NAME = "tiny"

  def episode_spec(self) -> EpisodeSpec:
    return synthetic.episode_spec(self.builder_config.generator())

  def split_episodes(self, dl_manager):
    del dl_manager
    c = self.builder_config
    if not 0.0 <= c.val_fraction < 1.0:
      raise ValueError(f"{c.name}: val_fraction must be in [0, 1), got {c.val_fraction}.")
    n = c.num_episodes
    num_val = min(n - 1, math.ceil(c.val_fraction * n)) if c.val_fraction > 0 else 0
    generator = c.generator()
    logging.info("[%s %s] generating %d episodes (%.3g h)", NAME, c.name, n, c.hours)
    splits = {"train": synthetic.episodes(generator, 0, n - num_val)}
    if num_val > 0:
      splits["val"] = synthetic.episodes(generator, n - num_val, n)
    return splits


def build(data_dir: str, hours: float = 1.0, *, image_size: Sequence[int] = (32, 32),
          fps: float = 10.0, episode_length: int = 64, tasks: Sequence[str] = TASKS,
          actions: str = "human", seed: int = 0, val_fraction: float = 0.05,
          batch_size: int = 32, name: Optional[str] = None,
          camera: str = synthetic.scenes.CAMERA) -> str:
  """Builds (or reuses) a synthetic egocentric dataset; returns its versioned directory.

  Args:
    data_dir: the TFDS data directory.
    hours: hours of video in all splits (``hours * 3600 * fps / episode_length``
      episodes).
    image_size, fps, episode_length, tasks, actions, seed, val_fraction, batch_size,
      camera: see :class:`EgocentricHumanConfig`.
    name: the config name (default: one spelling out every knob, so that different
      sizes never share a directory).
  Returns:
    ``<data_dir>/egocentric_human/<config>/1.0.0``, readable with
    ``wam.data.reader.EpisodeDataset``. A complete dataset already there is reused; an
    interrupted build leaves nothing behind and starts over.
  """
  name = name or config_name(hours, image_size, fps, episode_length, tasks, actions, seed,
                             camera)
  config = EgocentricHumanConfig(
      name=name, hours=float(hours), image_size=tuple(int(s) for s in image_size),
      fps=float(fps), episode_length=int(episode_length), tasks=tuple(tasks),
      actions=actions, seed=int(seed), val_fraction=float(val_fraction),
      batch_size=int(batch_size), camera=camera, description=f"egocentric_human {name}")
  config.generator()  # bad knobs fail here, before TFDS creates anything
  builder = Builder(config=config, data_dir=data_dir)
  if not builder.is_prepared():
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        try_download_gcs=False))
  return os.fspath(builder.data_dir)
