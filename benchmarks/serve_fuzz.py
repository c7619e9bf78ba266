"""Malformed messages for the policy server (tests/wam/test_serving.py's fuzz test and
benchmarks/reliability.py).

``frames``: messages under the size limit that the server must answer with one error
reply each, keeping the connection (random bytes, truncated messages, msgpack bombs,
huge or absurd declared array shapes, NaN fields). ``oversized``: messages over
``max_message_bytes``, which close that connection only.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from wam.serving import protocol


def array_map(dtype: str, shape: Any, data: bytes = b"") -> dict[str, Any]:
  """An array as the protocol sends it, with whatever header fields are given."""
  return {"__ndarray__": True, "dtype": dtype, "shape": shape, "data": data}


def frames(observation: Mapping[str, np.ndarray], rng: np.random.Generator
           ) -> list[tuple[str, bytes]]:
  """``(kind, frame)`` pairs built around a valid ``observation`` (kinds: ``random``,
  ``truncated``, ``bomb``, ``shape``, ``nan``)."""
  act = lambda obs: protocol.encode({"type": "act", "observation": obs})
  good = act(dict(observation))
  out = [("random", rng.bytes(n)) for n in (0, 1, 2, 9, 100, 5000)]
  out += [("truncated", good[:n]) for n in sorted(rng.integers(1, len(good), 12))]
  out += [("bomb", b"\x91" * 20_000 + b"\xc0"),    # nesting deeper than msgpack's stack
          ("bomb", b"\xdd\xff\xff\xff\xff"),       # a declared 4G-element array
          ("bomb", b"\xdf\xff\xff\xff\xff")]       # and map
  out += [("shape", act({**observation, "joints": a})) for a in (
      array_map("<f4", [2**40] * 4), array_map("<f4", [2**62, 4]),
      array_map("<f4", [0, 2**62]), array_map("<f4", [1] * 40, b"\0" * 4),
      array_map("<f4", [-1]), array_map("|u1", [2**31, 2**31, 3], b"\0" * 12),
      array_map("|O", [1], b"\0" * 8), array_map("<f4", "abc"))]
  image = observation["image_front"]
  out += [("nan", act({**observation, "joints": np.full(3, np.nan, np.float32)})),
          ("nan", act({**observation, "proprio": np.array([np.nan, np.inf], np.float32)})),
          ("nan", act({**observation, "image_front": image.astype(np.float32) * np.nan})),
          ("nan", protocol.encode({"type": "reset", "instruction": float("nan")})),
          ("nan", protocol.encode({"type": "reset", "instruction": "x",
                                   "seed": float("nan")})),
          ("nan", protocol.encode({"type": "act", "observation": dict(observation),
                                   "session_id": float("nan")}))]
  return out


def oversized(rng: np.random.Generator, max_message_bytes: int) -> list[bytes]:
  """Random messages just over and 4x over the limit."""
  return [rng.bytes(n) for n in (max_message_bytes + 1, 4 * max_message_bytes)]
