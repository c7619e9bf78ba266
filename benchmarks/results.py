"""Writing a benchmark's results: one JSON file, its folder created, its path printed."""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable


def write_json(path: str, results: Any) -> str:
  """Writes ``results`` as indented JSON to ``path``; returns the path."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    json.dump(results, f, indent=2)
  print(f"wrote {path}", flush=True)
  return path


def best_time(fn: Callable[..., Any], *args, repeats: int = 3) -> float:
  """Best wall time of ``fn(*args)`` over ``repeats`` runs (after one warm-up call)."""
  import jax  # pylint: disable=import-outside-toplevel
  jax.block_until_ready(fn(*args))
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    best = min(best, time.perf_counter() - start)
  return best
