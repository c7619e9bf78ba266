"""Writing a benchmark's results: one JSON file, its folder created, its path printed.

Every file carries ``meta``: what was measured and where (``provenance``): the git
commit and whether the tree was dirty, the command line, the absl flag values of the
benchmark module, the machine and the date. A dict result gets it as its first key; a
list result is written as ``{"meta": ..., "rows": [...]}``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any, Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _git(*args: str) -> str | None:
  """``git args`` in the repository root; None when git or the repository is missing."""
  try:
    proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=30, check=False)
  except (OSError, subprocess.SubprocessError):
    return None
  return proc.stdout.rstrip() if proc.returncode == 0 else None


def _flag_values() -> dict[str, Any]:
  """Values of the flags defined by the program's main module and by ``benchmarks.*``."""
  from absl import flags  # pylint: disable=import-outside-toplevel
  values: dict[str, Any] = {}
  main = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
  for module, module_flags in flags.FLAGS.flags_by_module_dict().items():
    ours = (module.startswith("benchmarks") or os.path.abspath(module) == main
            or f"{os.sep}benchmarks{os.sep}" in module)
    if not ours:
      continue
    for flag in module_flags:
      try:
        values[flag.name] = flag.value
      except flags.UnparsedFlagAccessError:  # a caller that never parsed the flags
        values[flag.name] = None
  return values


def _machine() -> dict[str, Any]:
  machine: dict[str, Any] = {"platform": platform.platform(),
                             "processor": platform.processor(),
                             "cpu_count": os.cpu_count(),
                             "python": platform.python_version()}
  if hasattr(os, "getloadavg"):
    machine["load_average"] = list(os.getloadavg())
  try:
    import jax  # pylint: disable=import-outside-toplevel
    machine.update(jax_version=jax.__version__, jax_backend=jax.default_backend(),
                   jax_devices=[str(d) for d in jax.devices()])
  except Exception as e:  # pylint: disable=broad-except
    machine["jax_error"] = repr(e)
  return machine


def source_sha256(module: str | None) -> str | None:
  """SHA-256 of ``module``'s source file in this checkout (None if there is none)."""
  if not module:
    return None
  path = os.path.join(ROOT, *module.split(".")) + ".py"
  if not os.path.exists(path):
    return None
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


def provenance() -> dict[str, Any]:
  """The ``meta`` of a result: commit (and dirty), argv, flags, machine, date."""
  status = _git("status", "--porcelain", "--untracked-files=no")
  dirty_paths = [line[3:] for line in status.splitlines()] if status else []
  main = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
  module = (os.path.relpath(main, ROOT)[:-3].replace(os.sep, ".")
            if main.startswith(ROOT + os.sep) and main.endswith(".py") else None)
  return {
      "commit": _git("rev-parse", "HEAD"),
      "dirty": None if status is None else bool(dirty_paths),
      "dirty_paths": dirty_paths[:50],
      "module": module,
      "source_sha256": source_sha256(module),  # the benchmark's file, dirty or not
      "argv": list(sys.argv),
      "flags": _flag_values(),
      "machine": _machine(),
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
  }


def with_meta(results: Any, meta: dict[str, Any]) -> dict[str, Any]:
  """``results`` with ``meta`` as its first key (a list becomes ``rows``)."""
  if isinstance(results, dict):
    if "meta" in results:
      raise ValueError("A benchmark result may not have its own 'meta' key.")
    return {"meta": meta, **results}
  return {"meta": meta, "rows": results}


def rows_of(results: Any) -> Any:
  """The measured part of a written result: ``rows`` of a wrapped list, else itself."""
  if isinstance(results, dict) and set(results) == {"meta", "rows"}:
    return results["rows"]
  return results


def write_json(path: str, results: Any) -> str:
  """Writes ``results`` with its ``meta`` as indented JSON to ``path``; returns the path."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    json.dump(with_meta(results, provenance()), f, indent=2, default=str)
    f.write("\n")
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
