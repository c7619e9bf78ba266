"""Language encoders that turn instruction tokens into conditioning tokens.

The default, ``bytes``, is a small bidirectional transformer over the byte tokens of
``wam.data.text`` (no vocabulary file, nothing to download), trained with the model.
Encoders are pluggable: ``config.model.text_encoder.name`` is a name registered here or
a ``"package.module:Class"`` path. An encoder is an ``nnx.Module`` constructed as
``Class(width=..., rngs=..., **config.model.text_encoder.kwargs)`` and called as
``encoder(tokens int32[B, L], mask bool[B, L]) -> float[B, L', width]`` with a mask
``bool[B, L']`` (a frozen pretrained encoder would wrap its model the same way).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from wam import layers
from wam.data import text


class ByteTextEncoder(nnx.Module):
  """Byte embeddings + positions + a few bidirectional transformer blocks."""

  def __init__(self, *, width: int, rngs: nnx.Rngs, hidden: int = 128, depth: int = 2,
               num_heads: int = 4, max_length: int = 256):
    self.max_length = max_length
    self.embed = layers.embedding(rngs, text.VOCAB_SIZE, hidden)
    self.position = layers.embedding(rngs, max_length, hidden, axis="positions")
    self.transformer = layers.Transformer(hidden, depth, num_heads, rngs=rngs)
    self.project = layers.dense(rngs, hidden, width, ("embed", "embed_out"))

  def __call__(self, tokens: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    if tokens.shape[-1] > self.max_length:
      raise ValueError(f"Instruction length {tokens.shape[-1]} exceeds the text encoder's "
                       f"max_length {self.max_length}.")
    x = self.embed(tokens) + self.position(jnp.arange(tokens.shape[-1]))
    # Every token attends to every real token; padding is never a key.
    attend = mask[:, None, :] | ~mask.any(-1)[:, None, None]
    x, _ = self.transformer(x, attend)
    return self.project(x), mask


ENCODERS: dict[str, Callable[..., nnx.Module]] = {"bytes": ByteTextEncoder}


def build(name: str, kwargs: Mapping[str, Any], *, width: int, rngs: nnx.Rngs) -> nnx.Module:
  """Constructs the text encoder ``name`` (registered name or ``module:Class``)."""
  if ":" in name:
    module, _, attr = name.partition(":")
    cls = getattr(importlib.import_module(module), attr)
  elif name in ENCODERS:
    cls = ENCODERS[name]
  else:
    raise ValueError(f"Unknown text encoder {name!r}; registered: {sorted(ENCODERS)} "
                     "(or give 'package.module:Class').")
  return cls(width=width, rngs=rngs, **dict(kwargs))
