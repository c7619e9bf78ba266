"""The data iterator's state as a checkpoint item (JSON): a dict, bytes or a string.

Saved with each step so that a resumed run reads the batches an uninterrupted one would.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Mapping, Union

DataState = Union[dict, bytes, str]


def encode(data_state: DataState) -> dict:
  """The JSON item stored for ``data_state`` (its type kept: bytes as base64).

  Raises:
    TypeError: not a dict, bytes or str, or a dict that is not JSON-serialisable.
  """
  if isinstance(data_state, (bytes, bytearray)):
    return {"type": "bytes", "value": base64.b64encode(bytes(data_state)).decode("ascii")}
  if isinstance(data_state, str):
    return {"type": "str", "value": data_state}
  if isinstance(data_state, Mapping):
    value = dict(data_state)
    try:
      json.dumps(value)
    except (TypeError, ValueError) as e:
      raise TypeError(f"data_state must be JSON-serialisable: {e}") from e
    return {"type": "dict", "value": value}
  raise TypeError(f"data_state must be a dict, bytes or str, not {type(data_state).__name__}")


def decode(stored: Any) -> DataState:
  """The data state that ``encode`` stored as ``stored``.

  Raises:
    ValueError: ``stored`` is not such an item.
  """
  if not isinstance(stored, Mapping) or stored.get("type") not in ("bytes", "str", "dict"):
    raise ValueError(f"unreadable data state: {str(stored)[:200]}")
  if stored["type"] == "bytes":
    return base64.b64decode(stored["value"])
  return stored["value"]
