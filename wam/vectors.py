"""Normalisation and placement of one robot vector (joints, proprio or action).

A model sees each vector normalised with its dataset's statistics and scattered into a
layout shared by every embodiment of the run (``wam.data.layout``); a robot reads and
writes only its own slots, in its own units. ``VectorCodec`` holds that conversion for
one (robot layout, model layout, statistics) triple as constants (numpy), so jitted
functions can close over it. ``wam.model_io`` builds one per vector for ``wam.policy``
and the Dojo's neural simulator.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from wam.data.layout import Layout
from wam.data.statistics import VectorStatistics


class LayoutMismatchError(ValueError):
  """A robot's vector slots do not fit a model's layout."""


@dataclasses.dataclass(frozen=True)
class VectorCodec:
  """Normalisation and placement of one vector: ``normalised = (x - shift) * scale``."""

  index: np.ndarray      # where each robot dimension goes in the model's layout
  model_dim: int
  shift: np.ndarray      # per robot dimension
  scale: np.ndarray

  @property
  def dim(self) -> int:
    """Dimensions of the robot's vector."""
    return int(self.index.shape[0])

  def to_model(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Robot vector [..., D_robot] -> (normalised padded [..., D_model], mask)."""
    y = (x.astype(jnp.float32) - self.shift) * self.scale
    lead = x.shape[:-1]
    out = jnp.zeros(lead + (self.model_dim,), jnp.float32).at[..., self.index].set(y)
    mask = jnp.zeros((self.model_dim,), bool).at[self.index].set(True)
    return out, jnp.broadcast_to(mask, out.shape)

  def to_env(self, y: jax.Array) -> jax.Array:
    """Normalised padded [..., D_model] -> robot vector [..., D_robot]."""
    # A constant dimension (scale 0) carries no information: it is its mean.
    safe = np.where(self.scale != 0, self.scale, 1.0)
    return jnp.where(self.scale != 0, y[..., self.index] / safe + self.shift, self.shift)


def vector_codec(robot_layout: Layout, model_layout: Layout,
                 stats: Optional[VectorStatistics], normalization: str) -> VectorCodec:
  """The codec of a ``robot_layout`` vector for a model trained with ``normalization``.

  Args:
    robot_layout: the robot's own slots (a subset of the model's).
    model_layout: the run's shared layout of this vector.
    stats: the dataset's statistics of the vector (robot dims), or None (identity).
    normalization: ``"mean_std"``, ``"bounds"`` or ``"none"`` (``wam.data.statistics``).

  Raises:
    LayoutMismatchError: a robot slot is missing from the model's layout or has another
      size.
    ValueError: unknown ``normalization``.
  """
  try:
    index = model_layout.scatter_index(robot_layout)
  except (KeyError, ValueError) as e:
    raise LayoutMismatchError(str(e).strip("'\"")) from None
  d = robot_layout.dim
  shift, scale = np.zeros(d, np.float32), np.ones(d, np.float32)
  if stats is not None and normalization == "mean_std":
    shift = np.asarray(stats.mean, np.float32)
    scale = np.where(stats.std > 1e-6, 1.0 / np.maximum(stats.std, 1e-6), 0.0)
  elif stats is not None and normalization == "bounds":
    span = stats.q99 - stats.q01
    # bounds: 2 (x - q01) / span - 1  ==  (x - (q01 + span / 2)) * (2 / span).
    shift = np.asarray(stats.q01 + span / 2, np.float32)
    scale = np.where(span > 1e-6, 2.0 / np.maximum(span, 1e-6), 0.0)
  elif normalization not in ("none", "mean_std", "bounds"):
    raise ValueError(f"Unknown normalisation {normalization!r}.")
  if shift.shape != (d,):
    raise ValueError(f"Statistics have {shift.shape[0]} dims; the layout {robot_layout.names} "
                     f"has {d}.")
  return VectorCodec(index, model_layout.dim, shift.astype(np.float32),
                     np.asarray(scale, np.float32))
