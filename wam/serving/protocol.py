"""The policy server's wire protocol: msgpack maps with numpy arrays, over WebSocket.

Every frame is one binary WebSocket message holding one msgpack map. Arrays travel as
``{"__ndarray__": True, "dtype": "<f4", "shape": [...], "data": <bytes>}`` (C order,
the dtype with its byte order); object and structured dtypes are refused, so nothing is
ever unpickled. Requests carry ``"type"`` and optionally ``"id"``, echoed in the reply
(errors included, unless the frame could not be read) so that a client can tell a late
reply to a timed-out request from the one it waits for; ``PolicyClient`` always sends one:

=========  ===========================================  =====================================
type       request fields                               reply fields
=========  ===========================================  =====================================
reset      instruction: str, seed?: int,                session_id: str, policy: {...}
           encoding?: str ("bytes")
act        observation: {image_<camera>: u8[H,W,3],     actions: f32[chunk, A], latency_ms,
           joints: f32[J], proprio?: f32[P]},           step (chunks of the session so far),
           session_id?: str (default: the               session_id
           connection's latest)
metrics    -                                            metrics: {act: {count, median_ms,
                                                        p99_ms}, ...}
close      session_id?: str (default: all of the        closed: [session_id, ...]
           connection's sessions)
=========  ===========================================  =====================================

A request that cannot be served is answered ``{"error": {"type": T, "message": M}}``
with ``T`` one of ``ERROR_TYPES``; the connection stays open, except after
``too_many_connections`` (sent unasked to a connection over the server's limit, which
then closes it with code 1013). A message over the server's size limit closes the
connection with code 1009 (no reply).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import msgpack
import numpy as np

RESET, ACT, METRICS, CLOSE = "reset", "act", "metrics", "close"
MESSAGE_TYPES = (RESET, ACT, METRICS, CLOSE)
REQUIRED_FIELDS = {RESET: ("instruction",), ACT: ("observation",), METRICS: (), CLOSE: ()}

# Error types of ``{"error": {"type": ..., "message": ...}}`` replies.
MALFORMED = "malformed"            # not a msgpack map, a bad array, a text frame
UNKNOWN_TYPE = "unknown_type"      # "type" missing or not one of MESSAGE_TYPES
MISSING_FIELD = "missing_field"    # a required field is absent
INVALID_FIELD = "invalid_field"    # a field of the wrong kind (e.g. seed not an int)
OBSERVATION = "observation"        # wrong camera, image size/dtype/shape, vector shape
INSTRUCTION = "instruction"        # too long, unknown encoding, not text
UNKNOWN_SESSION = "unknown_session"
TOO_MANY_SESSIONS = "too_many_sessions"        # a limit on sessions (named in the message)
TOO_MANY_CONNECTIONS = "too_many_connections"  # then the server closes the connection
INTERNAL = "internal"              # a bug on the server side (logged there)
ERROR_TYPES = (MALFORMED, UNKNOWN_TYPE, MISSING_FIELD, INVALID_FIELD, OBSERVATION,
               INSTRUCTION, UNKNOWN_SESSION, TOO_MANY_SESSIONS, TOO_MANY_CONNECTIONS,
               INTERNAL)

_ARRAY = "__ndarray__"
_REFUSED_KINDS = "OV"   # object (would need pickle) and structured/void
_MAX_NDIM = 32          # numpy's own limit is 64; no observation comes near either


class ProtocolError(ValueError):
  """A message that breaks the protocol; ``kind`` is its error type."""

  def __init__(self, kind: str, message: str):
    super().__init__(message)
    self.kind = kind


def _pack_default(x: Any) -> Any:
  if isinstance(x, np.ndarray):
    if x.dtype.kind in _REFUSED_KINDS:
      raise TypeError(f"Arrays of dtype {x.dtype} cannot be sent (object and structured "
                      "dtypes are refused).")
    return {_ARRAY: True, "dtype": x.dtype.str, "shape": list(x.shape),
            "data": np.ascontiguousarray(x).tobytes()}
  if isinstance(x, np.generic):
    return x.item()
  if hasattr(x, "__array__"):   # jax arrays and the like
    return _pack_default(np.asarray(x))
  raise TypeError(f"Cannot encode a {type(x).__name__}.")


def encode(message: Mapping[str, Any]) -> bytes:
  """One message as msgpack bytes (numpy/JAX arrays included).

  Raises:
    TypeError: a value that has no msgpack form (e.g. an object-dtype array).
  """
  return msgpack.packb(dict(message), default=_pack_default, use_bin_type=True)


def _array(d: Mapping[str, Any]) -> np.ndarray:
  """The array of an encoded ``{"__ndarray__": ...}`` map, checked before use."""
  try:
    dtype = np.dtype(d["dtype"])
    shape = tuple(d["shape"])
    data = d["data"]
  except (KeyError, TypeError, ValueError) as e:
    raise ProtocolError(MALFORMED, f"Bad array header: {e!r}.") from None
  if dtype.kind in _REFUSED_KINDS:
    raise ProtocolError(MALFORMED, f"Arrays of dtype {dtype} are refused.")
  if (not isinstance(data, bytes) or len(shape) > _MAX_NDIM
      or not all(isinstance(s, int) and s >= 0 for s in shape)):
    raise ProtocolError(MALFORMED, f"Bad array: shape {list(shape)[:_MAX_NDIM + 1]}, data "
                                   f"of type {type(data).__name__}.")
  # Python integers: a huge declared shape must not wrap around to the data's length.
  expected = math.prod(shape) * dtype.itemsize
  if len(data) != expected:
    raise ProtocolError(MALFORMED, f"Array data is {len(data)} bytes; {dtype} "
                                   f"{list(shape)} needs {expected}.")
  # A copy: frombuffer views are read-only and would pin the message buffer.
  return np.frombuffer(data, dtype).reshape(shape).copy()


def _object_hook(d: dict) -> Any:
  return _array(d) if d.get(_ARRAY) is True else d


def decode(data: Any) -> dict[str, Any]:
  """A message from bytes.

  Raises:
    ProtocolError: (``MALFORMED``) a text frame, bytes that are not msgpack, a top
      level that is not a map, or a bad array.
  """
  if not isinstance(data, (bytes, bytearray, memoryview)):
    raise ProtocolError(MALFORMED, "Send binary frames holding msgpack, not text.")
  try:
    message = msgpack.unpackb(data, object_hook=_object_hook, raw=False,
                              strict_map_key=True)
  except ProtocolError:
    raise
  except Exception as e:  # msgpack raises several unrelated types on garbage
    raise ProtocolError(MALFORMED, f"Not a msgpack message: {type(e).__name__}: {e}.") \
        from None
  if not isinstance(message, dict):
    raise ProtocolError(MALFORMED, f"A message is a msgpack map, got "
                                   f"{type(message).__name__}.")
  return message


def check_request(message: Mapping[str, Any]) -> str:
  """The type of a request, after checking it names a known type and its fields.

  Raises:
    ProtocolError: ``UNKNOWN_TYPE`` or ``MISSING_FIELD``.
  """
  kind = message.get("type")
  if kind not in MESSAGE_TYPES:
    raise ProtocolError(UNKNOWN_TYPE, f"Unknown message type {kind!r}; use one of "
                                      f"{list(MESSAGE_TYPES)}.")
  missing = [f for f in REQUIRED_FIELDS[kind] if f not in message]
  if missing:
    raise ProtocolError(MISSING_FIELD, f"A {kind!r} message needs field(s) {missing}.")
  return kind


def error(kind: str, message: str) -> dict[str, Any]:
  """An error reply."""
  return {"error": {"type": kind, "message": message}}
