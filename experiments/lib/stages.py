"""Multi-stage jobs that resume: each stage runs once and records what it produced.

A job is an ordered list of :class:`Stage`. Stage ``s`` works in ``<workdir>/<s.name>/``
and, when it finishes, writes ``<workdir>/<s.name>/stage.json`` (its result, atomically).
Running the job again reads finished stages instead of re-running them, and a stage cut
short (a killed process) runs again, resuming whatever it resumes itself (training
resumes from its checkpoints, datasets are reused when complete).

The job's config is stored in ``<workdir>/config.json``; a later run with a different
config is refused, naming the keys that differ, so results of two configs never mix in
one report (``check_workdir_config``: the one such check of the commands; the collector
uses it too).

Progress is one ``[i/n] <stage>: ...`` log line per stage; with ``experiments.lib.console``
configured, each stage's log records go to ``<workdir>/logs/<stage>.log``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Callable, Mapping, Optional, Sequence

from absl import logging
from ml_collections import config_dict

from experiments.lib import console
from wam.files import atomic_write_json

StageFn = Callable[[config_dict.ConfigDict, str, Mapping[str, dict]], dict]


class StageError(RuntimeError):
  """A stage failed, or the workdir belongs to another config."""


@dataclasses.dataclass(frozen=True)
class Stage:
  """One step of a job: ``run(config, stage_dir, earlier_results) -> result``."""
  name: str
  run: StageFn
  description: str
  needs: tuple[str, ...] = ()


def write_json(path: str, value: Any) -> None:
  """Writes ``value`` as JSON atomically (a reader never sees half a file)."""
  atomic_write_json(path, value, indent=1, sort_keys=True, default=_jsonable)


def _jsonable(value: Any) -> Any:
  if hasattr(value, "tolist"):
    return value.tolist()
  if isinstance(value, tuple):
    return list(value)
  raise TypeError(f"Not JSON-serialisable: {type(value).__name__}")


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in d.items():
    if isinstance(v, Mapping):
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


class WorkdirConfigError(StageError, ValueError):
  """The workdir holds a run of another config (also a ``ValueError``: a wrong value)."""


def check_workdir_config(config: config_dict.ConfigDict, workdir: str, *,
                         keys: Optional[Sequence[str]] = None) -> None:
  """Stores the config in ``<workdir>/config.json``, or refuses a workdir made with
  another config, naming the keys that differ.

  Args:
    config: this run's config.
    workdir: the run's directory (created if needed).
    keys: compare only these top-level keys (and what is under them); the others may
      change between runs, and the stored config is replaced by this one. None: the
      whole config must match, and the stored one is kept.

  Raises:
    WorkdirConfigError: a key differs; results of two configs would mix.
  """
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, "config.json")
  current = json.loads(config.to_json_best_effort())
  if os.path.exists(path):
    with open(path) as f:
      stored = json.load(f)
    a, b = _flat(stored), _flat(current)
    differ = sorted(k for k in set(a) | set(b) if a.get(k, "<missing>") != b.get(k, "<missing>")
                    and (keys is None or k.split(".")[0] in keys))
    if differ:
      shown = ", ".join(f"{k}: {a.get(k, '<missing>')!r} -> {b.get(k, '<missing>')!r}"
                        for k in differ[:8])
      raise WorkdirConfigError(
          f"{workdir} holds a job run with another config ({len(differ)} keys differ: "
          f"{shown}{', ...' if len(differ) > 8 else ''}). Its results would mix with this "
          f"run's (other values of {differ[:8]}): use a new --workdir, or the same config "
          "to resume.")
    if keys is None:
      return
  write_json(path, current)


def run_stages(stages: Sequence[Stage], config: config_dict.ConfigDict, workdir: str, *,
               only: Optional[Sequence[str]] = None) -> dict[str, dict]:
  """Runs ``stages`` in order (``only``: just these names); returns every result."""
  names = [s.name for s in stages]
  if only:
    unknown = [n for n in only if n not in names]
    if unknown:
      raise StageError(f"Unknown stage(s) {unknown}; this job has {names}.")
  check_workdir_config(config, workdir)
  results: dict[str, dict] = {}
  total = len(stages)
  job_start = time.time()
  for i, stage in enumerate(stages, start=1):
    stage_dir = os.path.join(workdir, stage.name)
    marker = os.path.join(stage_dir, "stage.json")
    if os.path.exists(marker):
      with open(marker) as f:
        results[stage.name] = json.load(f)
      _progress(f"[{i}/{total}] {stage.name}: done earlier "
                f"({results[stage.name].get('seconds', 0):.0f} s), skipped")
      continue
    if only and stage.name not in only:
      continue
    missing = [n for n in stage.needs if n not in results]
    if missing:
      raise StageError(f"Stage {stage.name!r} needs the results of {missing}; run them first.")
    os.makedirs(stage_dir, exist_ok=True)
    _progress(f"[{i}/{total}] {stage.name}: {stage.description} "
              f"(job time so far {time.time() - job_start:.0f} s)")
    start = time.time()
    with console.stage_log(stage.name) as log:
      try:
        result = dict(stage.run(config, stage_dir, results))
      except Exception as e:
        where = f"{stage_dir}, its log in {log}" if log else stage_dir
        raise StageError(
            f"Stage {stage.name!r} failed: {type(e).__name__}: {e}. Its partial outputs "
            f"are in {where}; re-run the same command to retry it (finished stages are "
            "kept).") from e
    result["seconds"] = round(time.time() - start, 1)
    write_json(marker, result)
    results[stage.name] = result
    _progress(f"[{i}/{total}] {stage.name}: finished in {result['seconds']:.0f} s")
  return results


def _progress(line: str) -> None:
  # A "[i/n] " progress line: experiments.lib.console shows it and keeps it in the main log.
  logging.info("%s", line)
