"""Language encoders that turn instruction tokens into conditioning tokens.

The default, ``bytes``, is a small bidirectional transformer over the byte tokens of
``wam.data.text`` (no vocabulary file, nothing to download), trained with the model.
Encoders are pluggable: ``config.model.text_encoder.name`` is a name registered here or
a ``"package.module:Class"`` path. An encoder is an ``nnx.Module`` constructed as
``Class(width=..., rngs=..., **config.model.text_encoder.kwargs)`` and called as
``encoder(tokens int32[B, L], mask bool[B, L]) -> float[B, L', width]`` with a mask
``bool[B, L']`` (a frozen pretrained encoder would wrap its model the same way).

A ``module:Class`` name imports (runs) that module. A config the user wrote may name one;
a checkpoint's ``config.json`` only with the loader's opt-in (:func:`check_importable`).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Collection, Mapping, Union

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


def check_importable(name: str, allow_code_import: Union[bool, Collection[str]],
                     where: str) -> None:
  """Refuses a ``module:Class`` encoder name unless importing it was allowed.

  Args:
    name: ``config.model.text_encoder.name`` as read from ``where``.
    allow_code_import: True: any module; a collection: only these encoder names (e.g.
      the one the caller's own config names); False: registered encoders only.
    where: The file the name comes from, named in the error.

  Raises:
    PermissionError: ``name`` would import a module that was not allowed.
  """
  if ":" not in name or allow_code_import is True:
    return
  if isinstance(allow_code_import, str):
    allow_code_import = (allow_code_import,)
  if allow_code_import and name in allow_code_import:
    return
  module = name.partition(":")[0]
  raise PermissionError(
      f"{where} names the text encoder {name!r}, which would import (run) module "
      f"{module!r}; only the registered encoders {sorted(ENCODERS)} load by default. If "
      "you trust this checkpoint, load it with allow_code_import=True (e.g. "
      "wam.loading.load(path, allow_code_import=True)).")
