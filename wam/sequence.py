"""The token sequence of the world action model and its block-causal attention rule.

A window of ``T`` time blocks becomes one sequence::

  [prefix | obs_0 | obs_1 | ... | obs_{T-1} | pred_0 | pred_1 | ... | pred_{T-1}]

- ``prefix``: the instruction's tokens (and a goal frame's, if configured).
- ``obs_t`` (clean): the frame latents of every camera at step ``t`` and one token of
  joint angles + proprioception.
- ``pred_t`` (noisy, denoised by flow matching): the action chunk taken from step ``t``
  (``K`` tokens), the frame latents of step ``t + 1`` and its joints/proprio token.

Who attends to whom (``allowed``): the prefix sees the prefix; ``obs_t`` sees the prefix
and ``obs_0..t``; ``pred_t`` sees the prefix, ``obs_0..t`` and itself. So a block sees
itself and earlier blocks only, and nothing ever attends to a noisy ``pred`` token of
another block: the keys/values of the prefix and the clean blocks are all a rollout
needs to cache, and a real observation can replace a dreamed one in that cache.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

PREFIX, OBS, PRED = 0, 1, 2


class TokenMeta(NamedTuple):
  """Per-token attention metadata: kind (PREFIX/OBS/PRED), time block and validity."""
  kind: jax.Array   # int32[S] or [B, S]
  block: jax.Array  # int32[S] or [B, S]
  valid: jax.Array  # bool[B, S]: False for padding (absent camera, text padding)


def allowed(query: TokenMeta, key: TokenMeta) -> jax.Array:
  """bool[B, Sq, Sk]: may each query token attend to each key token."""
  def q(x):
    return jnp.asarray(x)[..., :, None]

  def k(x):
    return jnp.asarray(x)[..., None, :]
  see = ((k(key.kind) == PREFIX)
         | ((k(key.kind) == OBS) & (q(query.kind) != PREFIX) & (k(key.block) <= q(query.block)))
         | ((k(key.kind) == PRED) & (q(query.kind) == PRED) & (k(key.block) == q(query.block))))
  see = see & k(key.valid)
  if see.ndim == 2:
    see = see[None]
  return see


def concat(*metas: TokenMeta) -> TokenMeta:
  """Joins token metadata along the sequence axis (kind/block broadcast to the batch)."""
  batch = max(m.valid.shape[0] for m in metas)

  def expand(x):
    x = jnp.asarray(x, jnp.int32)
    return jnp.broadcast_to(x, (batch,) + x.shape[-1:]) if x.ndim == 1 else x
  return TokenMeta(jnp.concatenate([expand(m.kind) for m in metas], -1),
                   jnp.concatenate([expand(m.block) for m in metas], -1),
                   jnp.concatenate([jnp.broadcast_to(m.valid, (batch,) + m.valid.shape[1:])
                                    for m in metas], -1))


def block_meta(kind: int, blocks: int, tokens_per_block: int, valid: jax.Array,
               first_block: jax.Array | int = 0) -> TokenMeta:
  """Metadata of ``blocks`` consecutive blocks of one kind; ``valid`` is [B, tokens]."""
  block = first_block + np.repeat(np.arange(blocks), tokens_per_block)
  kind_ids = np.full(blocks * tokens_per_block, kind, np.int32)
  valid = jnp.tile(valid, (1, blocks)) if valid.shape[-1] == tokens_per_block else valid
  return TokenMeta(jnp.asarray(kind_ids), jnp.asarray(block, jnp.int32), valid)
