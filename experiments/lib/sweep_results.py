"""The results of a sweep (``experiments.lib.sweep``): each run's ``result.json``, and the
sweep's ``summary.json`` and ``summary.md`` (one row per run)."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping, Optional, Sequence

from wam.files import atomic_write, atomic_write_json

RESULT_FILE = "result.json"


@dataclasses.dataclass
class RunResult:
  """The outcome of one run: ``status`` is finished, failed or pending."""
  name: str
  status: str
  overrides: Mapping[str, Any]
  step: Optional[int] = None
  metrics: dict = dataclasses.field(default_factory=dict)
  attempts: int = 0
  seconds: float = 0.0
  error: str = ""
  reused: bool = False  # finished before this invocation (read, not rerun)


def read_result(workdir: str) -> Optional[dict]:
  """The run's ``result.json``, or None when it has not finished (or is unreadable)."""
  path = os.path.join(workdir, RESULT_FILE)
  try:
    with open(path) as f:
      result = json.load(f)
  except (OSError, ValueError):
    return None
  return result if isinstance(result, dict) and "metrics" in result else None


def format_value(value: Any) -> str:
  """A value as ``--config.a.b=`` parses it (ml_collections reads tuples as literals)."""
  if isinstance(value, (list, tuple)):
    return repr(tuple(value))
  return str(value)


def write_json(path: str, value: Any) -> None:
  """Writes ``value`` as JSON atomically (a reader never sees half a file)."""
  atomic_write_json(path, value, indent=1, default=str)


def short_metrics(metrics: Mapping[str, float], wanted: Optional[Sequence[str]],
                  limit: int = 4) -> str:
  """The first ``limit`` summary columns of one run, for a progress line."""
  keys = [k for k in _metric_columns([metrics], wanted) if k in metrics][:limit]
  return ", ".join(f"{k} {metrics[k]:.4g}" for k in keys)


# ------------------------------------------------------------------------------ summary


def _metric_columns(metrics: Sequence[Mapping[str, float]],
                    wanted: Optional[Sequence[str]]) -> list[str]:
  if wanted:
    return list(wanted)
  keys = set().union(*(m.keys() for m in metrics)) if metrics else set()
  # eval_train/*: runs without a held-out split (the trainer's names for training windows).
  evals = sorted(k for k in keys if k.startswith(("eval/", "eval_train/")))[:6]
  return [k for k in ("loss",) if k in keys] + evals


def only_on_training_windows(metrics: Mapping[str, float], key: str) -> bool:
  """Whether held-out ``key`` (``eval/...``) is missing because the run had no held-out
  split: the trainer then logs the same metric on training windows as ``eval_train/...``."""
  head, _, rest = key.partition("/")
  return head == "eval" and key not in metrics and f"eval_train/{rest}" in metrics


def write_summary(directory: str, results: Sequence[RunResult],
                  metric_keys: Optional[Sequence[str]] = None) -> tuple[str, str]:
  """Writes ``summary.json`` (everything) and ``summary.md`` (a table); returns paths."""
  json_path = os.path.join(directory, "summary.json")
  write_json(json_path, {"runs": [dataclasses.asdict(r) for r in results]})
  columns = _metric_columns([r.metrics for r in results if r.metrics], metric_keys)
  counts = {s: sum(r.status == s for r in results) for s in ("finished", "failed", "pending")}
  lines = [f"# Sweep {directory}", "",
           f"{counts['finished']} finished, {counts['failed']} failed, "
           f"{counts['pending']} pending.", "",
           "| run | status | overrides | step | " + " | ".join(columns) + " |",
           "|---|---|---|---|" + "---|" * len(columns)]
  for r in results:
    overrides = ", ".join(f"{k}={format_value(v)}" for k, v in r.overrides.items())
    values = [f"{r.metrics[c]:.4g}" if c in r.metrics else "" for c in columns]
    lines.append(f"| {r.name} | {r.status} | {overrides} | "
                 f"{'' if r.step is None else r.step} | " + " | ".join(values) + " |")
  failed = [r for r in results if r.status == "failed"]
  if failed:
    lines += ["", "Failures:"] + [f"- {r.name}: {r.error}" for r in failed]
  md_path = os.path.join(directory, "summary.md")
  text = "\n".join(lines) + "\n"
  atomic_write(md_path, lambda f: f.write(text))
  return json_path, md_path
