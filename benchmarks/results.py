"""Writing a benchmark's results: one JSON file, its folder created, its path printed."""

from __future__ import annotations

import json
import os
from typing import Any


def write_json(path: str, results: Any) -> str:
  """Writes ``results`` as indented JSON to ``path``; returns the path."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    json.dump(results, f, indent=2)
  print(f"wrote {path}", flush=True)
  return path
