"""JSON files written whole or not at all (a crash never leaves half a file)."""

from __future__ import annotations

import json
import os
from typing import Any


def write_json(path: str, value: Any) -> str:
  """Writes ``value`` as indented JSON to ``path`` (via a temporary file); returns it."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".partial"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(value, f, indent=2)
    f.write("\n")
  os.replace(tmp, path)
  return path
