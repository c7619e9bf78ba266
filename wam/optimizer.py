"""The optimizer: AdamW with linear warmup, cosine decay and global-norm clipping."""

from __future__ import annotations

import optax


def learning_rate_schedule(config, num_steps: int) -> optax.Schedule:
  """Linear warmup to ``config.learning_rate`` then cosine decay to ``end_factor`` of it."""
  warmup = min(config.warmup_steps, max(num_steps - 1, 0))
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=config.learning_rate, warmup_steps=warmup,
      decay_steps=max(num_steps, warmup + 1), end_value=config.learning_rate * config.end_factor)


def make_optimizer(config, num_steps: int) -> optax.GradientTransformation:
  """AdamW per ``config`` (the ``optimizer`` part of an experiment config)."""
  return optax.chain(
      optax.clip_by_global_norm(config.clip_norm),
      optax.adamw(learning_rate_schedule(config, num_steps), b1=config.b1, b2=config.b2,
                  weight_decay=config.weight_decay,
                  # No decay on norms, biases and embeddings' 1-D vectors.
                  mask=lambda params: _ndim_at_least(params, 2)))


def _ndim_at_least(params, ndim: int):
  import jax  # pylint: disable=import-outside-toplevel
  return jax.tree.map(lambda p: p.ndim >= ndim, params)
