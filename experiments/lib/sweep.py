"""The library of ``experiments.sweep``: resumable sweeps, the runs a config's
``sweep(add)`` lists, as separate processes (their results and the summary:
``sweep_results.py``).

A sweep config is an experiment config file with a ``sweep(add)`` function beside
``get_config(arg)``::

  def sweep(add):
    for n in (4, 8, 16):
      add(f"ep{n}", **{"dojo.max_episodes": n})     # or add("ep4", {"dojo.max_episodes": 4})

Each run is ``python -m <launcher> --config=FILE:ARG --config.a.b=v ... --workdir=DIR/<name>``;
the launcher is ``experiments.train`` unless the file sets ``LAUNCHER = "pkg.module"``.
A run is finished when its workdir holds ``result.json`` (written by the launcher at the
end): a finished run is read, never rerun, so running the sweep again resumes it. A
failed run is retried once (the launcher resumes from its checkpoints); a second failure
is recorded in ``DIR/<name>/status.json`` and the summary. Layout of ``DIR``::

  sweep.json           the definition (config file, arg, launcher, runs); a later sweep into
                       DIR must have the same file/arg/launcher and keep each run's overrides
  <name>/log.txt       the run's output (appended per attempt)
  <name>/result.json   final step + metrics (the launcher's)
  <name>/status.json   attempts, return codes, seconds, the last error lines
  summary.json, summary.md   one row per run

No absl flags here (``experiments.sweep`` is the command line).
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import dataclasses
import importlib.util
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Mapping, Optional, Sequence

from experiments.lib.sweep_results import (RunResult, format_value, read_result, short_metrics,
                                           write_json, write_summary)

DEFAULT_LAUNCHER = "experiments.train"
STATUS_FILE = "status.json"
LOG_FILE = "log.txt"
SWEEP_FILE = "sweep.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]*$")
_ERROR_LINES = 20


class SweepError(ValueError):
  """A sweep definition or sweep directory that cannot be used (the message says why)."""


@dataclasses.dataclass(frozen=True)
class Run:
  """One run of a sweep: its name (the sub-directory) and its config overrides."""
  name: str
  overrides: Mapping[str, Any]


@dataclasses.dataclass
class Sweep:
  """A sweep definition: a config file and argument, a launcher module and the runs."""
  config_file: str
  arg: str
  launcher: str
  runs: list[Run]
  module: Any = None  # the loaded config module (get_config, sweep, ...)

  def definition(self) -> dict:
    """What ``sweep.json`` holds (JSON-able)."""
    return {"config_file": os.path.realpath(self.config_file), "arg": self.arg,
            "launcher": self.launcher,
            "runs": {r.name: _jsonable(dict(r.overrides)) for r in self.runs}}


# ----------------------------------------------------------------------------- loading


def load_config_module(config_spec: str) -> tuple[Any, str, str]:
  """``(module, file, arg)`` of ``FILE[:ARG]``; the module must define ``get_config``."""
  config_file, _, arg = config_spec.partition(":")
  if not os.path.isfile(config_file):
    raise SweepError(f"Sweep config file {config_file!r} does not exist.")
  module = _load_module(config_file)
  if not callable(getattr(module, "get_config", None)):
    raise SweepError(f"{config_file} has no get_config(arg) function.")
  return module, config_file, arg


def load_sweep(config_spec: str) -> Sweep:
  """Loads ``FILE[:ARG]`` and collects the runs of its ``sweep(add)``.

  Raises:
    SweepError: no such file, no ``sweep`` function, no runs, a bad or repeated run name,
      or an override the config does not accept.
  """
  module, config_file, _ = load_config_module(config_spec)
  if not callable(getattr(module, "sweep", None)):
    raise SweepError(f"{config_file} has no sweep(add) function, so there is nothing to "
                     "sweep; define one that calls add(name, **{'a.b': value}) per run.")
  runs: list[Run] = []

  def add(name: Optional[str] = None, overrides: Optional[Mapping[str, Any]] = None,
          **kwargs) -> None:
    merged = dict(overrides or {}, **kwargs)
    if name is None:  # e.g. the wam config's add(**{"model.variant": "toy"})
      name = "-".join(f"{k.split('.')[-1]}={format_value(v)}" for k, v in merged.items()) or "base"
    if any(r.name == name for r in runs):
      raise SweepError(f"Run name {name!r} is added twice by {config_file}:sweep.")
    runs.append(Run(name, merged))

  module.sweep(add)
  if not runs:
    raise SweepError(f"{config_file}:sweep added no runs.")
  return make_sweep(config_spec, runs, module)


def make_sweep(config_spec: str, runs: Sequence[Run], module: Any = None) -> Sweep:
  """A sweep of the given runs over ``FILE[:ARG]`` (e.g. a grid chosen by a program).

  Every override is applied to ``get_config(ARG)`` here, so a misspelt key or a value of
  the wrong type fails before anything is launched.
  """
  loaded, config_file, arg = load_config_module(config_spec)
  module = module or loaded
  try:
    base = module.get_config(arg) if arg else module.get_config()
  except Exception as e:  # pylint: disable=broad-except
    raise SweepError(f"{config_file}: get_config({arg!r}) failed: {e}") from e
  names = set()
  for run in runs:
    if not isinstance(run.name, str) or not _NAME.match(run.name):
      raise SweepError(f"Run name {run.name!r} in {config_file} must be letters, digits and "
                       "_.=+- (it names the run's directory).")
    if run.name in names:
      raise SweepError(f"Run name {run.name!r} appears twice in the sweep of {config_file}.")
    names.add(run.name)
    for key, value in run.overrides.items():
      _check_override(base, key, value, run.name, config_file)
  return Sweep(config_file, arg, getattr(module, "LAUNCHER", DEFAULT_LAUNCHER), list(runs),
               module)


def _load_module(path: str):
  name = "sweep_config_" + re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _check_override(config, key: str, value: Any, run: str, config_file: str) -> None:
  node = config
  parts = key.split(".")
  for i, part in enumerate(parts):
    if not hasattr(node, "keys") or part not in node:
      where = ".".join(parts[:i]) or "the config"
      raise SweepError(f"Run {run!r} of {config_file} overrides config.{key}, but {where} "
                       f"has no key {part!r}.")
    if i < len(parts) - 1:
      node = node[part]
  try:
    node[parts[-1]] = value  # a ConfigDict checks the type (int into float is fine)
  except (TypeError, ValueError) as e:
    raise SweepError(f"Run {run!r} of {config_file}: config.{key}={value!r}: {e}") from None


def _jsonable(value: Any) -> Any:
  return json.loads(json.dumps(value, default=str))


# ------------------------------------------------------------------ directory and commands


def prepare_directory(sweep: Sweep, directory: str) -> None:
  """Creates ``directory`` with ``sweep.json``, or checks that it holds the same sweep.

  A directory may gain runs (the same config with more ``add`` calls) but never mixes
  configs or changes a run's overrides, since finished runs would silently disagree.

  Raises:
    SweepError: naming every key that differs from the stored ``sweep.json``.
  """
  path = os.path.join(directory, SWEEP_FILE)
  new = sweep.definition()
  if os.path.exists(path):
    with open(path) as f:
      old = json.load(f)
    differ = [f"{k}: {old.get(k)!r} there, {new[k]!r} here"
              for k in ("config_file", "arg", "launcher") if old.get(k) != new[k]]
    differ += [f"run {n!r}: overrides {old['runs'][n]} there, {o} here"
               for n, o in new["runs"].items() if n in old["runs"] and old["runs"][n] != o]
    if differ:
      raise SweepError(f"{directory} holds a different sweep ({path}); refusing to mix runs: "
                       + "; ".join(differ) + ". Use another directory.")
    new["runs"] = dict(old["runs"], **new["runs"])  # keep runs this definition dropped
  os.makedirs(directory, exist_ok=True)
  write_json(path, new)


def command(sweep: Sweep, run: Run, directory: str,
            python: str = sys.executable) -> list[str]:
  """The launch command of one run (argv)."""
  spec = sweep.config_file + (f":{sweep.arg}" if sweep.arg else "")
  return ([python, "-m", sweep.launcher, f"--config={spec}"]
          + [f"--config.{k}={format_value(v)}" for k, v in run.overrides.items()]
          + [f"--workdir={os.path.join(directory, run.name)}"])


def emit_commands(sweep: Sweep, directory: str, python: str = "python") -> list[str]:
  """One shell line per run still to do (finished runs are left out), for a cluster."""
  return [shlex.join(command(sweep, r, directory, python)) for r in sweep.runs
          if read_result(os.path.join(directory, r.name)) is None]


# ------------------------------------------------------------------------------ running


def _die_with_parent() -> None:
  """In the child: SIGTERM when the sweep process dies (even by SIGKILL), so no run is
  left training unattended; the trainer treats SIGTERM as preemption and checkpoints."""
  try:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
  except OSError:
    pass


class _Children:
  """Live run processes, so an interrupted sweep can stop them."""

  def __init__(self):
    self._lock = threading.Lock()
    self._procs: set[subprocess.Popen] = set()
    self.stopping = False

  def start(self, argv, log, env) -> subprocess.Popen:
    with self._lock:
      if self.stopping:
        raise KeyboardInterrupt
      proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                              preexec_fn=_die_with_parent)
      self._procs.add(proc)
      return proc

  def done(self, proc) -> None:
    with self._lock:
      self._procs.discard(proc)

  def terminate(self) -> None:
    with self._lock:
      self.stopping = True
      for p in self._procs:
        p.terminate()


def _attempt(sweep: Sweep, run: Run, directory: str, children: _Children,
             env: Mapping[str, str]) -> tuple[int, float]:
  workdir = os.path.join(directory, run.name)
  os.makedirs(workdir, exist_ok=True)
  argv = command(sweep, run, directory)
  start = time.time()
  with open(os.path.join(workdir, LOG_FILE), "a") as log:
    log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(argv)}\n")
    log.flush()
    proc = children.start(argv, log, dict(env))
    try:
      rc = proc.wait()
    finally:
      children.done(proc)
  return rc, time.time() - start


def _log_tail(workdir: str) -> str:
  try:
    with open(os.path.join(workdir, LOG_FILE), errors="replace") as f:
      return "".join(f.readlines()[-_ERROR_LINES:])
  except OSError:
    return ""


def _run_one(sweep: Sweep, run: Run, directory: str, retries: int, children: _Children,
             env: Mapping[str, str]) -> RunResult:
  workdir = os.path.join(directory, run.name)
  status_path = os.path.join(workdir, STATUS_FILE)
  status = {"attempts": [], "state": "running"}
  if os.path.exists(status_path):
    with open(status_path) as f:
      status["attempts"] = json.load(f).get("attempts", [])
  os.makedirs(workdir, exist_ok=True)
  seconds = 0.0
  for _ in range(1 + retries):
    rc, took = _attempt(sweep, run, directory, children, env)
    seconds += took
    result = read_result(workdir)
    status["attempts"].append({"returncode": rc, "seconds": round(took, 2),
                               "finished": result is not None})
    if children.stopping:
      break
    if result is not None:
      status["state"] = "finished"
      write_json(status_path, status)
      return RunResult(run.name, "finished", run.overrides, result.get("step"),
                       result["metrics"], len(status["attempts"]), seconds)
  error = (f"exit code {rc}" if rc else "exited 0 without writing result.json")
  status.update(state="interrupted" if children.stopping else "failed", error=error,
                log_tail=_log_tail(workdir))
  write_json(status_path, status)
  return RunResult(run.name, "pending" if children.stopping else "failed", run.overrides,
                   attempts=len(status["attempts"]), seconds=seconds,
                   error=f"{error}; see {os.path.join(workdir, LOG_FILE)}")


def run_sweep(sweep: Sweep, directory: str, *, workers: int = 1, retries: int = 1,
              env: Optional[Mapping[str, str]] = None,
              progress: Callable[[str], None] = print) -> list[RunResult]:
  """Runs every unfinished run of ``sweep`` under ``directory``; writes the summary.

  Args:
    sweep: from :func:`load_sweep`.
    directory: the sweep directory (created, or checked against its ``sweep.json``).
    workers: runs at a time, each its own process.
    retries: extra attempts for a failed run (the launcher resumes from checkpoints).
    env: the runs' environment (default: this process's).
    progress: called with one line per finished or failed run.

  Returns:
    One :class:`RunResult` per run, in the sweep's order.

  Raises:
    SweepError: the directory holds a different sweep.
    KeyboardInterrupt: interrupted; the runs in flight are stopped (they checkpoint) and
      the summary is written with them as pending.
  """
  if workers < 1:
    raise SweepError(f"workers must be >= 1, got {workers}.")
  prepare_directory(sweep, directory)
  env = dict(os.environ if env is None else env)
  # The runs import the launcher by module name: from this repository, wherever run.
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
  results: dict[str, RunResult] = {}
  todo = []
  for run in sweep.runs:
    done = read_result(os.path.join(directory, run.name))
    if done is not None:
      results[run.name] = RunResult(run.name, "finished", run.overrides, done.get("step"),
                                    done["metrics"], reused=True)
    else:
      todo.append(run)
  total = len(sweep.runs)
  progress(f"Sweep {sweep.config_file}:{sweep.arg} in {directory}: {total} runs, "
           f"{total - len(todo)} already finished, {len(todo)} to run on {workers} "
           "worker(s).")
  children = _Children()
  wanted = getattr(sweep.module, "SUMMARY_METRICS", None)
  start = time.time()
  pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
  try:
    futures = {pool.submit(_run_one, sweep, r, directory, retries, children, env): r
               for r in todo}
    for future in concurrent.futures.as_completed(futures):
      result = future.result()
      results[result.name] = result
      finished = sum(r.status == "finished" for r in results.values())
      failed = sum(r.status == "failed" for r in results.values())
      detail = (short_metrics(result.metrics, wanted) if result.status == "finished"
                else result.error)
      progress(f"[{finished + failed}/{total}] {result.name} {result.status} after "
               f"{result.attempts} attempt(s), {result.seconds:.0f} s: {detail} "
               f"({failed} failed, {time.time() - start:.0f} s elapsed)")
  except BaseException:
    # Stop the runs in flight first: the pool's threads wait on them.
    children.terminate()
    raise
  finally:
    pool.shutdown(wait=True, cancel_futures=True)
    ordered = [results.get(r.name) or RunResult(r.name, "pending", r.overrides)
               for r in sweep.runs]
    write_summary(directory, ordered, wanted)
  return ordered


