"""A byte-level tokenizer for language instructions: no vocabulary file to download.

Token ``0`` is padding and byte ``b`` is token ``b + 1`` (vocabulary 257). ``encode``
cuts instructions longer than ``max_length`` bytes; the mask marks real tokens. Callers
that must not lose words (the data pipeline, the policy server) refuse long instructions
first: ``check_lengths``.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

VOCAB_SIZE = 257
PAD = 0


def encode(text: str, max_length: int) -> tuple[np.ndarray, np.ndarray]:
  """``(tokens int32[max_length], mask bool[max_length])`` for one instruction."""
  data = text.encode("utf-8")[:max_length]
  tokens = np.zeros(max_length, np.int32)
  tokens[:len(data)] = np.frombuffer(data, np.uint8).astype(np.int32) + 1
  return tokens, tokens != PAD


def check_lengths(instructions: Iterable[str], max_length: int, where: str) -> None:
  """Raises if any instruction is longer than ``max_length`` utf-8 bytes.

  Args:
    instructions: the texts to check (repeats are cheap).
    max_length: the token length that ``encode`` is given.
    where: what holds them, for the message (e.g. the dataset's name and path).

  Raises:
    ValueError: naming ``where``, the longest instruction, its length and the limit.
  """
  longest = max(set(instructions), key=lambda t: len(t.encode("utf-8")), default="")
  length = len(longest.encode("utf-8"))
  if length > max_length:
    raise ValueError(
        f"{where}: the instruction {longest!r} is {length} utf-8 bytes, longer than "
        f"max_instruction_length={max_length}; the model would never read its end. "
        f"Raise max_instruction_length (data.max_instruction_length) to at least {length}.")


def decode(tokens: np.ndarray) -> str:
  """The text of ``tokens`` (padding dropped)."""
  tokens = np.asarray(tokens)
  data = bytes((tokens[tokens != PAD] - 1).astype(np.uint8).tolist())
  return data.decode("utf-8", errors="replace")
