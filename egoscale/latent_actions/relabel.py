"""Relabelling: a copy of a dataset whose action is the inferred latent action."""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np

from egoscale.latent_actions.trainer import LatentActionTrainer
from wam.data.builder import write_dataset
from wam.data.layout import Layout
from wam.data.reader import EpisodeDataset

LATENT_SLOT = "latent_action"


def label_dataset(vae: LatentActionTrainer, path: str, *, data_dir: str, name: str,
                  splits: Sequence[str] = ("train", "val"), camera: Optional[str] = None,
                  overwrite: bool = False) -> str:
  """Writes a copy of dataset ``path`` whose action is the inferred latent action.

  Step ``t`` gets ``z(frame_t, frame_t+gap)``; the last ``gap`` steps of an episode have
  no next frame and are masked. Other fields are copied unchanged; an existing action
  layout is replaced by the single slot ``latent_action``.
  """
  first = EpisodeDataset(path, splits[0])
  spec = dataclasses.replace(first.spec, action=Layout.of([(LATENT_SLOT,
                                                             vae.config.latent_dim)]))
  camera = camera or spec.cameras[0]
  gap = vae.config.gap

  def episodes(split):
    ds = EpisodeDataset(path, split)
    for e in range(len(ds)):
      episode = ds.episode(e)
      steps = episode["steps"]
      frames = steps["observation"][f"image_{camera}"]
      n = len(frames)
      z = np.zeros((n, vae.config.latent_dim), np.float32)
      mask = np.zeros((n,), bool)
      if n > gap:
        z[:-gap] = vae.encode_mean(frames[:-gap], frames[gap:])
        mask[:-gap] = True
      steps["action"], steps["action_mask"] = z, mask
      yield episode

  return write_dataset(name, spec, {s: (lambda s=s: episodes(s)) for s in splits}, data_dir,
                       description=f"{first.name} with latent actions (dim "
                                   f"{vae.config.latent_dim}, gap {gap}) from a VAE.",
                       overwrite=overwrite)
