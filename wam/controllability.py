"""How much a world model's predictions depend on the actions it is given.

A model trained on expert data alone can predict the next state from the state and the
instruction and ignore the action (docs/controllability.md). These measures say whether
it follows actions, and are logged during training (``wam.evaluation``) and in closed-loop
evaluation (``dojo.neural.controllability``):

- ``motion_gain``: least-squares slope (through the origin) of the dreamed change of a
  state on its real change under the same actions: 1 follows the actions, 0 predicts
  "nothing moves" or motion unrelated to them.
- ``motion_correlation``: Pearson correlation of the same two changes.
- ``tracking_ratio``: error of the dreamed state after the actions over the error of
  "nothing moves"; below 1 the dream is better than standing still.
- Genie's controllability (``delta_psnr``): PSNR of frames dreamed with the true
  actions minus PSNR with actions shuffled across the batch.
"""

from __future__ import annotations

from typing import Optional

import jax.numpy as jnp


def _flat(x, mask: Optional[jnp.ndarray]):
  x = jnp.asarray(x, jnp.float32)
  m = jnp.ones_like(x) if mask is None else jnp.broadcast_to(
      jnp.asarray(mask, jnp.float32), x.shape)
  return x.reshape(-1), m.reshape(-1)


def motion_gain(real_change, dreamed_change, mask=None) -> jnp.ndarray:
  """Slope of ``dreamed_change`` on ``real_change`` (any equal shapes; ``mask`` weights)."""
  r, m = _flat(real_change, mask)
  d, _ = _flat(dreamed_change, mask)
  return jnp.sum(m * r * d) / jnp.maximum(jnp.sum(m * r * r), 1e-12)


def motion_correlation(real_change, dreamed_change, mask=None) -> jnp.ndarray:
  """Pearson correlation of the two changes (0 where either is constant)."""
  r, m = _flat(real_change, mask)
  d, _ = _flat(dreamed_change, mask)
  n = jnp.maximum(m.sum(), 1.0)
  r = r - jnp.sum(m * r) / n
  d = d - jnp.sum(m * d) / n
  denominator = jnp.sqrt(jnp.sum(m * r * r) * jnp.sum(m * d * d))
  return jnp.where(denominator > 1e-12, jnp.sum(m * r * d) / jnp.maximum(denominator, 1e-12),
                   0.0)


def tracking_ratio(start, real, dreamed, mask=None) -> jnp.ndarray:
  """Mean |dreamed - real| over mean |start - real| ("nothing moves")."""
  e, m = _flat(jnp.abs(jnp.asarray(dreamed) - jnp.asarray(real)), mask)
  s, _ = _flat(jnp.abs(jnp.asarray(start) - jnp.asarray(real)), mask)
  return jnp.sum(m * e) / jnp.maximum(jnp.sum(m * s), 1e-12)
