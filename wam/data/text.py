"""A byte-level tokenizer for language instructions: no vocabulary file to download.

Token ``0`` is padding and byte ``b`` is token ``b + 1`` (vocabulary 257). Instructions
longer than ``max_length`` bytes are cut; the mask marks real tokens.
"""

from __future__ import annotations

import numpy as np

VOCAB_SIZE = 257
PAD = 0


def encode(text: str, max_length: int) -> tuple[np.ndarray, np.ndarray]:
  """``(tokens int32[max_length], mask bool[max_length])`` for one instruction."""
  data = text.encode("utf-8")[:max_length]
  tokens = np.zeros(max_length, np.int32)
  tokens[:len(data)] = np.frombuffer(data, np.uint8).astype(np.int32) + 1
  return tokens, tokens != PAD


def decode(tokens: np.ndarray) -> str:
  """The text of ``tokens`` (padding dropped)."""
  tokens = np.asarray(tokens)
  data = bytes((tokens[tokens != PAD] - 1).astype(np.uint8).tolist())
  return data.decode("utf-8", errors="replace")
