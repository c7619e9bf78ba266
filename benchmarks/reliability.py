r"""Reliability figures (issue 18): kill -9 and resume, SIGTERM on one of two hosts, the
policy server under load and fuzzing.

  python -m benchmarks.reliability --figures=kill,sigterm,serve \
      --out=benchmarks/reliability_cpu.json

- ``kill``: a toy ``python -m experiments.train`` run (tests/experiments/multihost_config.py
  on one device, ``--kill_steps`` steps, a checkpoint every ``--checkpoint_every``) is
  killed with SIGKILL ``--kills`` times at seeded random points, re-running the same
  command after each, then run to its end. A kill point is one of: a random fraction of
  the last launch's time to its first step (start-up: imports, restore, compilation),
  right after a random step is logged, or a random fraction of a save's time (measured
  on the uninterrupted run) after a random checkpoint save began (its temporary
  directory appeared). Reported against an uninterrupted run of the same command: the
  final parameters and every logged loss (bitwise), ``checkpoint_fallback`` events,
  steps moved to ``corrupt/``, unfinished temporary directories left, and whether every
  kept step restores (checksums verified).
- ``sigterm``: two processes (gloo, 2 CPU devices each, a (data=2, fsdp=2) mesh) train
  the toy config; after a random step one of them (alternating over trials) gets a real
  SIGTERM from this script. Reported: the step each process says it saved, the
  checkpoint steps on disk and whether they restore; then the same command resumes to
  the end, compared bitwise with an uninterrupted two-process run.
- ``serve``: ``python -m experiments.serve`` on the tests' random tiny model, with
  ``--clients`` concurrent clients (a session each, ``--acts`` acts) while ``--fuzzers``
  connections send malformed frames (benchmarks/serve_fuzz.py) and oversized messages,
  ``--serve_rounds`` times. Reported: valid replies identical to ``Policy.act`` in this
  process on the same run directory, error replies by type (an ``internal`` one is a
  failure), and the server's RSS (sampled every 50 ms) before, at its peak, and after
  each round.

The ``kill`` figure's launches share a JAX persistent compilation cache
(``--compilation_cache``, filled by the uninterrupted run), so that a relaunch spends
seconds, not minutes, compiling; the figure is about resuming, not about compiling. The
``sigterm`` figure's do not: only process 0 writes that cache and the other missed it,
so one host compiled for minutes while the other waited for it at the first collective,
beyond gloo's 30 s.
"""

from __future__ import annotations

import collections
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from typing import Any, Callable, Optional

import numpy as np
from absl import app, flags

from benchmarks import results as results_lib
from benchmarks import serve_fuzz, toy_runs
from experiments.lib import console

FLAGS = flags.FLAGS
FIGURES = ("kill", "sigterm", "serve")
# orbax names an unfinished step "<step>.orbax-checkpoint-tmp[-<timestamp>]"
# (wam.checkpoint.TMP_MARKER; repeated: importing wam.checkpoint starts JAX).
TMP_MARKER = ".orbax-checkpoint-tmp"
CORRUPT_DIR = "corrupt"
_STEP_LINE = re.compile(r"\[train\] step (\d+)/(\d+)")
_SAVED_LINE = re.compile(r"SIGTERM: saved step (\d+);")
# XLA's gloo waits 30 s for the other host at the first collective: on a starved CPU a
# pair can fail there, before any step. Such a launch is repeated, up to ATTEMPTS times.
GLOO_TIMEOUT = "Gloo context initialization failed"
ATTEMPTS = 3


def define_flags() -> None:
  """The command-line flags, defined only when run as a program (tests import this)."""
  flags.DEFINE_list("figures", list(FIGURES), f"Which figures to measure: {FIGURES}.")
  flags.DEFINE_string("out", "benchmarks/reliability.json", "Where to write the JSON.")
  flags.DEFINE_string("root", "", "Working directory (default: a temporary one, removed).")
  flags.DEFINE_integer("seed", 0, "Seed of the kill points, SIGTERM steps and fuzzing.")
  flags.DEFINE_integer("kills", 10, "kill: SIGKILLs before the run may finish.")
  flags.DEFINE_integer("kill_steps", 24, "kill: training steps of the run.")
  flags.DEFINE_integer("checkpoint_every", 4, "kill: steps between checkpoints.")
  flags.DEFINE_integer("sigterm_trials", 2, "sigterm: SIGTERM-then-resume trials.")
  flags.DEFINE_integer("sigterm_steps", 8, "sigterm: training steps of the run.")
  flags.DEFINE_integer("preemption_sync_every", 2, "sigterm: steps between the hosts' "
                       "agreement on SIGTERM (config.preemption_sync_every).")
  flags.DEFINE_integer("clients", 50, "serve: concurrent valid clients.")
  flags.DEFINE_integer("acts", 10, "serve: acts per valid client and round.")
  flags.DEFINE_integer("fuzzers", 4, "serve: fuzzing connections beside them.")
  flags.DEFINE_integer("serve_rounds", 10, "serve: rounds of clients and fuzzers.")
  flags.DEFINE_float("max_message_mib", 1.0, "serve: the server's --max_message_mib.")
  flags.DEFINE_list("serve_max_batch", [], "serve: one server per value, run with "
                    "--max_batch=value (empty: one, with the server's default).")
  flags.DEFINE_float("serve_trim_every_s", None, "serve: the server's --trim_every_s "
                     "(default: the server's).")
  flags.DEFINE_integer("serve_trace_memory", 0, "serve: the server's --trace_memory "
                       "(Python allocations traced; the largest source lines every round).")
  flags.DEFINE_bool("compilation_cache", True, "Share a JAX compilation cache between "
                    "the kill figure's training processes.")
  flags.DEFINE_integer("timeout_s", 1800, "Longest wait for one training launch.")


def _progress(figure: str, message: str) -> None:
  print(f"[reliability {figure}] {message}", flush=True)


# ------------------------------------------------------------------ files of a run


def committed_steps(ckpt_dir: str) -> list[int]:
  """Committed checkpoint steps: orbax renames a step's directory to its number only
  once the step is complete."""
  if not os.path.isdir(ckpt_dir):
    return []
  return sorted(int(n) for n in os.listdir(ckpt_dir)
                if n.isdigit() and os.path.isdir(os.path.join(ckpt_dir, n)))


def unfinished_saves(ckpt_dir: str) -> list[str]:
  """Temporary directories of steps whose save did not finish."""
  if not os.path.isdir(ckpt_dir):
    return []
  return sorted(n for n in os.listdir(ckpt_dir) if TMP_MARKER in n)


def corrupt_steps(ckpt_dir: str) -> list[str]:
  """Steps that a restore found corrupt and moved aside."""
  path = os.path.join(ckpt_dir, CORRUPT_DIR)
  return sorted(os.listdir(path)) if os.path.isdir(path) else []


def logged_losses(workdir: str) -> dict[int, Optional[float]]:
  """``{step: loss}`` of a run's ``metrics.jsonl``."""
  from wam.metric_writer import read_metrics  # pylint: disable=import-outside-toplevel
  return {int(r["step"]): r["loss"]
          for r in read_metrics(os.path.join(workdir, "metrics.jsonl")) if "loss" in r}


def fallback_events(workdir: str) -> list[dict]:
  from wam.metric_writer import read_metrics  # pylint: disable=import-outside-toplevel
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  return [r for r in read_metrics(path) if r.get("event") == "checkpoint_fallback"]


def _params(workdir: str, step: Optional[int] = None) -> list[np.ndarray]:
  import jax  # pylint: disable=import-outside-toplevel
  from flax import nnx  # pylint: disable=import-outside-toplevel
  from wam import loading  # pylint: disable=import-outside-toplevel
  model, _ = loading.load(workdir, step)
  return [np.asarray(p) for p in jax.tree.leaves(nnx.state(model, nnx.Param))]


def compare_runs(reference: str, workdir: str) -> dict[str, Any]:
  """Final parameters and logged losses of ``workdir`` against ``reference``, bitwise."""
  a, b = _params(reference), _params(workdir)
  equal = sum(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b))
  diffs = [float(np.max(np.abs(x - y))) if x.size and x.shape == y.shape else math.inf
           for x, y in zip(a, b)]
  la, lb = logged_losses(reference), logged_losses(workdir)
  return {"param_arrays": len(a), "param_arrays_bitwise_equal": int(equal),
          "params_bitwise_equal": len(a) == len(b) > 0 and equal == len(a),
          "max_abs_param_diff": max(diffs, default=math.inf),
          "logged_steps": sorted(lb),
          "losses_bitwise_equal": bool(la) and la == lb}


def checkpoint_health(workdir: str, logs: list[str]) -> dict[str, Any]:
  """What a run's checkpoints look like: steps kept and whether each restores (with
  its checksums), corrupt steps moved aside, unfinished saves, fallback events."""
  ckpt = os.path.join(workdir, "checkpoints")
  steps = committed_steps(ckpt)
  failures = {}
  for step in steps:
    try:
      _params(workdir, step)
    except Exception as e:  # pylint: disable=broad-except  (reported, the figure fails)
      failures[step] = f"{type(e).__name__}: {e}"[:500]
  warnings = 0
  for path in logs:
    with open(path, encoding="utf-8", errors="replace") as f:
      warnings += f.read().count("CHECKPOINT FALLBACK")
  return {"steps_kept": steps, "steps_restored": [s for s in steps if s not in failures],
          "restore_failures": failures, "corrupt_dirs": corrupt_steps(ckpt),
          "unfinished_saves_left": unfinished_saves(ckpt),
          "checkpoint_fallback_events": len(fallback_events(workdir)),
          "checkpoint_fallback_warnings": warnings}


class _Tail:
  """The ``[train] step k/N`` lines of a growing log file, read as they come."""

  def __init__(self, path: str):
    self.path, self._offset, self._partial = path, 0, ""
    self.last_step: Optional[int] = None

  def read(self) -> Optional[int]:
    """Reads what was appended; returns the last step logged so far (None: none)."""
    if not os.path.exists(self.path):
      return self.last_step
    with open(self.path, encoding="utf-8", errors="replace") as f:
      f.seek(self._offset)
      text = f.read()
      self._offset = f.tell()
    lines = (self._partial + text).split("\n")
    self._partial = lines.pop()   # a line still being written
    for line in lines:
      match = _STEP_LINE.search(line)
      if match:
        self.last_step = int(match.group(1))
    return self.last_step


# -------------------------------------------------------------------- figure: kill


def kill_plan(rng: np.random.Generator, kills: int, num_steps: int) -> list[dict[str, Any]]:
  """``kills`` kill points spread over the run in order: a kind (``startup``, ``step``
  or ``save``; 20/40/40%, shuffled), a step and a fraction ``u`` of a delay."""
  saves = round(0.4 * kills)
  startups = round(0.2 * kills)
  kinds = ["startup"] * startups + ["save"] * saves + ["step"] * (kills - saves - startups)
  rng.shuffle(kinds)
  fractions = np.sort(rng.uniform(0.0, 1.0, kills))
  return [{"kind": kind, "step": int(min(num_steps, max(1, math.ceil(f * num_steps)))),
           "u": float(rng.uniform())} for kind, f in zip(kinds, fractions)]


def _save_steps(num_steps: int, every: int) -> list[int]:
  """The steps the trainer saves: multiples of ``every`` and the last one."""
  return sorted(set(range(every, num_steps + 1, every)) | {num_steps})


def _watch(proc: subprocess.Popen, log_path: str, ckpt_dir: str, timeout_s: float,
           trigger: Optional[Callable[[float, "_Tail", dict], Optional[float]]] = None
           ) -> dict[str, Any]:
  """Polls a training process (its log and checkpoint directory) every 3 ms until it
  exits, or until the time ``trigger`` returns (seconds after the launch) has come,
  when it is killed with SIGKILL. Also times each save this process made, and returns
  the unfinished saves of an earlier process still there (``stale_left``)."""
  tail = _Tail(log_path)
  start = time.monotonic()
  saves: dict[int, dict[str, float]] = collections.defaultdict(dict)
  # A killed run's unfinished save is no save of this process (the checkpointer removes
  # it at start-up, and the same name may come back later, for a save of this one).
  stale = set(unfinished_saves(ckpt_dir))
  first_step_s, kill_at, killed_s = None, None, None
  while proc.poll() is None:
    now = time.monotonic() - start
    if now > timeout_s:
      proc.kill()
      proc.wait()
      raise RuntimeError(f"{log_path}: no exit within {timeout_s} s.")
    tail.read()
    if first_step_s is None and tail.last_step is not None:
      first_step_s = now
    names = set(os.listdir(ckpt_dir)) if os.path.isdir(ckpt_dir) else set()
    stale &= names
    for name in names - stale:
      step = name.split(".")[0]
      if step.isdigit():
        saves[int(step)].setdefault("committed" if name.isdigit() else "begun", now)
    if kill_at is None and trigger is not None:
      kill_at = trigger(now, tail, saves)
    if kill_at is not None and now >= kill_at:
      os.kill(proc.pid, signal.SIGKILL)
      killed_s = now
      break
    time.sleep(0.003)
  proc.wait()
  tail.read()
  durations = [s["committed"] - s["begun"] for s in saves.values()
               if "begun" in s and "committed" in s]
  return {"returncode": proc.returncode, "killed_s": killed_s, "first_step_s": first_step_s,
          "last_logged_step": tail.last_step, "save_s": durations,
          "stale_left": sorted(stale)}


def figure_kill(root: str, dataset: str, stats: str, *, kills: int, num_steps: int,
                every: int, seed: int, env: dict[str, str], timeout_s: float
                ) -> dict[str, Any]:
  """Kills a toy run ``kills`` times at random points, resumes it each time with the
  same command, and compares it with an uninterrupted run (module docstring)."""
  extra = [*toy_runs.SINGLE_DEVICE, f"--config.num_steps={num_steps}",
           f"--config.checkpoint_every={every}", f"--config.eval.every={num_steps}"]
  logs_dir = os.path.join(root, "logs")
  os.makedirs(logs_dir, exist_ok=True)
  reference, workdir = os.path.join(root, "reference"), os.path.join(root, "killed")
  ckpt_dir = os.path.join(workdir, "checkpoints")
  launch = lambda wd, log: toy_runs.launch_train(wd, dataset, stats, 1, extra=extra,
                                                 log_path=log, env=env)

  _progress("kill", f"uninterrupted reference run, {num_steps} steps")
  log = os.path.join(logs_dir, "reference.log")
  ref = _watch(launch(reference, log), log, os.path.join(reference, "checkpoints"),
               timeout_s)
  if ref["returncode"] != 0:
    raise RuntimeError(f"The reference run failed; see {log}.")
  startup_s = ref["first_step_s"] or 10.0
  save_s = float(np.median(ref["save_s"])) if ref["save_s"] else 0.5
  _progress("kill", f"reference done: first step after {startup_s:.1f} s, a save takes "
                    f"{save_s:.2f} s")

  rng = np.random.default_rng(seed)
  plan = kill_plan(rng, kills, num_steps)
  save_steps = _save_steps(num_steps, every)
  records, logs = [], []
  for i, point in enumerate(plan):
    before = committed_steps(ckpt_dir)
    resumed_from = before[-1] if before else 0
    if resumed_from >= num_steps:
      _progress("kill", f"the run finished before kill {i + 1}")
      break
    kind, floor = point["kind"], max(point["step"], resumed_from + 1)
    target = (next(s for s in save_steps if s >= floor) if kind == "save" else floor)

    def trigger(now, tail, saves, kind=kind, target=target, u=point["u"]):
      if kind == "startup":   # or at the first step, should start-up be quicker
        return now if tail.last_step is not None else u * startup_s
      if kind == "step" and tail.last_step is not None and tail.last_step >= target:
        return now
      if kind == "save" and "begun" in saves.get(target, {}):
        return saves[target]["begun"] + u * save_s
      return None
    log = os.path.join(logs_dir, f"kill_{i + 1:02d}.log")
    logs.append(log)
    watched = _watch(launch(workdir, log), log, ckpt_dir, timeout_s, trigger)
    if watched["first_step_s"] is not None:   # start-up with a warm compilation cache
      startup_s = watched["first_step_s"]
    left = unfinished_saves(ckpt_dir)
    killed = watched["returncode"] == -signal.SIGKILL
    if not killed:
      phase = "exited first"
    elif set(left) - set(watched["stale_left"]):   # a save of this launch, not the last's
      phase = "mid-save"
    elif watched["last_logged_step"] is None:
      phase = "start-up"
    else:
      phase = "training"
    record = {"kind": kind, "target_step": target, "resumed_from": resumed_from,
              "killed": killed, "returncode": watched["returncode"],
              "seconds_after_launch": watched["killed_s"],
              "last_logged_step": watched["last_logged_step"], "phase": phase,
              "unfinished_saves": left, "steps_after": committed_steps(ckpt_dir)}
    records.append(record)
    at = ("" if watched["killed_s"] is None else f" at {watched['killed_s']:.1f} s")
    _progress("kill", f"{i + 1}/{len(plan)} {kind} (step {target}): {phase}{at}, resumed "
                      f"from {resumed_from}, last step logged {watched['last_logged_step']}, "
                      f"steps kept {record['steps_after']}, unfinished {left}")

  log = os.path.join(logs_dir, "final.log")
  logs.append(log)
  final = _watch(launch(workdir, log), log, ckpt_dir, timeout_s)
  _progress("kill", f"final run exited {final['returncode']}; comparing with the reference")
  health = checkpoint_health(workdir, logs)
  comparison = compare_runs(reference, workdir)
  landed = sum(r["killed"] for r in records)
  finished = os.path.exists(os.path.join(workdir, "result.json"))
  passed = (landed == kills and final["returncode"] == 0 and finished
            and comparison["params_bitwise_equal"] and comparison["losses_bitwise_equal"]
            and health["checkpoint_fallback_events"] == 0 and not health["corrupt_dirs"]
            and not health["unfinished_saves_left"] and not health["restore_failures"])
  return {
      "passed": passed,
      "command": shlex.join(toy_runs.train_argv(workdir, dataset, stats, extra=extra)),
      "num_steps": num_steps, "checkpoint_every": every, "seed": seed,
      "reference": {"first_step_s": ref["first_step_s"], "median_save_s": save_s},
      "kills_planned": kills, "kills_landed": landed,
      "kills_by_phase": dict(collections.Counter(r["phase"] for r in records)),
      "kills_mid_save": sum(r["phase"] == "mid-save" for r in records),
      "kills": records, "final_returncode": final["returncode"], "finished": finished,
      "checkpoints": health, "comparison": comparison}


# ----------------------------------------------------------------- figure: sigterm


def figure_sigterm(root: str, dataset: str, stats: str, *, trials: int, num_steps: int,
                   sync_every: int, seed: int, env: dict[str, str], timeout_s: float
                   ) -> dict[str, Any]:
  """Two processes; SIGTERM to one; resume; compare with an uninterrupted pair."""
  if num_steps - sync_every < 2:
    raise ValueError("--sigterm_steps must exceed --preemption_sync_every by 2 or more.")
  extra = [f"--config.num_steps={num_steps}", "--config.checkpoint_every=1000",
           f"--config.eval.every={num_steps}",
           f"--config.preemption_sync_every={sync_every}"]
  logs_dir = os.path.join(root, "logs")
  os.makedirs(logs_dir, exist_ok=True)

  def launch_pair(workdir: str, tag: str) -> tuple[list[subprocess.Popen], list[str]]:
    port = toy_runs.free_port()
    logs = [os.path.join(logs_dir, f"{tag}.process{i}.log") for i in range(2)]
    return [toy_runs.launch_train(workdir, dataset, stats, 2, (port, i), extra=extra,
                                  log_path=logs[i], env=env) for i in range(2)], logs

  def run_pair(workdir: str, tag: str, fresh: bool) -> int:
    """Runs a pair to its end, again (from scratch if ``fresh``, else resuming) when
    the hosts' first collective timed out; returns the attempts it took."""
    for attempt in range(1, ATTEMPTS + 1):
      try:
        toy_runs.wait_all(launch_pair(workdir, f"{tag}_try{attempt}")[0], timeout_s)
        return attempt
      except RuntimeError as e:
        if GLOO_TIMEOUT not in str(e) or attempt == ATTEMPTS:
          raise
        _progress("sigterm", f"{tag}: {GLOO_TIMEOUT} (a host starved of CPU); again")
        if fresh:
          shutil.rmtree(workdir, ignore_errors=True)
    raise AssertionError("unreachable")

  reference = os.path.join(root, "reference")
  _progress("sigterm", f"uninterrupted two-process reference run, {num_steps} steps")
  reference_attempts = run_pair(reference, "reference", fresh=True)
  rng = np.random.default_rng(seed + 1)
  order = [int(p) for p in rng.permutation(2)]
  records = []
  for k in range(trials):
    target = order[k % 2]
    after = int(rng.integers(1, num_steps - sync_every))
    workdir = os.path.join(root, f"trial_{k}")
    for attempt in range(1, ATTEMPTS + 1):
      procs, logs = launch_pair(workdir, f"trial{k}_try{attempt}")
      tail, start, signalled_after = _Tail(logs[target]), time.monotonic(), None
      try:
        while procs[target].poll() is None and time.monotonic() - start < timeout_s:
          if (tail.read() or 0) >= after:
            procs[target].send_signal(signal.SIGTERM)
            signalled_after = tail.last_step
            break
          time.sleep(0.003)
      except BaseException:
        for p in procs:   # no host outlives this script
          p.kill()
        raise
      try:
        outs = toy_runs.wait_all(procs, timeout_s)   # kills both on a failure
        break
      except RuntimeError as e:
        # Before the signal, a timed-out first collective is this machine's load, not
        # preemption: start the trial again. After it, the failure is the figure's.
        if signalled_after is not None or GLOO_TIMEOUT not in str(e) or attempt == ATTEMPTS:
          raise
        _progress("sigterm", f"trial {k + 1}: {GLOO_TIMEOUT} before the signal; again")
        shutil.rmtree(workdir, ignore_errors=True)
    trial_attempts = attempt
    saved = [int(m.group(1)) if (m := _SAVED_LINE.search(out)) else None for out in outs]
    received = ["SIGTERM received" in out for out in outs]
    ckpt = os.path.join(workdir, "checkpoints")
    steps = committed_steps(ckpt)
    stopped_early = not os.path.exists(os.path.join(workdir, "result.json"))
    health = checkpoint_health(workdir, logs)
    _progress("sigterm", f"trial {k + 1}/{trials}: SIGTERM to process {target} after step "
                         f"{signalled_after}; saved steps {saved}, on disk {steps}")
    resume_attempts = run_pair(workdir, f"trial{k}_resume", fresh=False)
    comparison = compare_runs(reference, workdir)
    _progress("sigterm", f"trial {k + 1}/{trials} resumed: parameters bitwise equal "
                         f"{comparison['params_bitwise_equal']}, losses bitwise equal "
                         f"{comparison['losses_bitwise_equal']}")
    one_step = saved[0] is not None and saved[0] == saved[1]
    passed = (one_step and steps == [saved[0]] and stopped_early
              and received == [i == target for i in range(2)]
              and not health["restore_failures"]
              and comparison["params_bitwise_equal"] and comparison["losses_bitwise_equal"])
    records.append({"passed": passed, "signalled_process": target,
                    "signalled_after_step": signalled_after, "saved_step_by_process": saved,
                    "sigterm_received_by_process": received, "steps_on_disk": steps,
                    "stopped_before_the_end": stopped_early, "checkpoints": health,
                    "comparison_after_resume": comparison, "attempts": trial_attempts,
                    "resume_attempts": resume_attempts})
  return {"passed": all(r["passed"] for r in records) and len(records) == trials,
          "command": shlex.join(toy_runs.train_argv(
              os.path.join(root, "trial_0"), dataset, stats, (0, 0), extra))
          .replace("localhost:0", "localhost:PORT").replace("--process_id=0",
                                                            "--process_id=I"),
          "num_steps": num_steps, "preemption_sync_every": sync_every, "seed": seed,
          "reference_attempts": reference_attempts, "trials": records}


# ------------------------------------------------------------------- figure: serve


class RssSampler(threading.Thread):
  """Samples a process's resident set size (``/proc/<pid>/status``) every ``every_s``."""

  def __init__(self, pid: int, every_s: float = 0.05):
    super().__init__(daemon=True)
    self.pid, self.every_s = pid, every_s
    self.samples: list[float] = []   # MiB
    self._stop_event = threading.Event()

  def rss_mib(self) -> Optional[float]:
    try:
      with open(f"/proc/{self.pid}/status", encoding="ascii") as f:
        for line in f:
          if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    except OSError:
      return None
    return None

  def run(self) -> None:
    while not self._stop_event.is_set():
      rss = self.rss_mib()
      if rss is not None:
        self.samples.append(rss)
      time.sleep(self.every_s)

  def stop(self) -> None:
    self._stop_event.set()
    self.join()


def _inprocess(policy, instruction: str, seed: int, observations) -> list[np.ndarray]:
  session = policy.new_session(instruction, seed=seed)
  out = []
  for obs in observations:
    session, actions = policy.act(session, obs)
    out.append(np.asarray(actions))
  return out


def serve_load(url: str, policy, server_pid: int, *, clients: int, acts: int, fuzzers: int,
               rounds: int, seed: int, max_message_bytes: int, tolerance: float = 0.0,
               on_round: Callable[[int, dict], None] = lambda r, row: None
               ) -> dict[str, Any]:
  """``clients`` valid clients and ``fuzzers`` fuzzers at once, ``rounds`` times, against
  the server at ``url``; their replies against ``policy.act`` in this process (bitwise,
  and within ``|a - b| <= tolerance * (1 + |b|)``), and the RSS of ``server_pid``."""
  # pylint: disable=import-outside-toplevel
  from websockets.exceptions import ConnectionClosed
  from benchmarks.serve import random_observation
  from wam.serving import protocol
  from wam.serving.client import PolicyClient, PolicyServerError
  rngs = [np.random.default_rng([seed, i]) for i in range(clients)]
  episodes = [[random_observation(policy, rngs[i], 1 + i % 2) for _ in range(acts)]
              for i in range(clients)]
  instructions = [f"task {i}" for i in range(clients)]
  expected = [_inprocess(policy, instructions[i], i, episodes[i]) for i in range(clients)]

  sampler = RssSampler(server_pid)
  sampler.start()
  time.sleep(1.0)
  before = sampler.rss_mib()
  replies, exact, close, max_diff = 0, 0, 0, 0.0
  tolerance = float(tolerance)
  failures: list[str] = []
  fuzz = collections.Counter()
  fuzz_lock = threading.Lock()
  after_rounds, memory_rounds = [], []
  for r in range(rounds):
    got: list[Optional[list[np.ndarray]]] = [None] * clients
    done = threading.Event()
    barrier = threading.Barrier(clients)

    def client(i: int) -> None:
      try:
        with PolicyClient(url, timeout=300) as c:
          c.reset(instructions[i], seed=i)
          barrier.wait(timeout=300)   # every session open before anyone acts
          got[i] = [c.act(obs) for obs in episodes[i]]
      except BaseException as e:  # pylint: disable=broad-except  (reported)
        barrier.abort()
        failures.append(f"client {i}: {e!r}"[:300])

    def fuzzer(j: int) -> None:
      rng = np.random.default_rng([seed, 1000 + r, j])
      observation = random_observation(policy, rng)
      counts = collections.Counter()
      try:
        with PolicyClient(url, timeout=300) as f:
          f.reset("fuzzer", seed=j)
          while True:
            for kind, frame in serve_fuzz.frames(observation, rng):
              counts[f"sent/{kind}"] += 1
              try:
                f.request_bytes(frame)
                counts["answered_without_error"] += 1
              except PolicyServerError as e:
                counts[f"error/{e.type}"] += 1
            for frame in serve_fuzz.oversized(rng, max_message_bytes):
              counts["sent/oversized"] += 1
              try:
                with PolicyClient(url, timeout=300) as big:
                  big.request_bytes(frame)
                counts["oversized_answered"] += 1
              except ConnectionClosed:
                counts["oversized_closed"] += 1
              except PolicyServerError as e:
                counts[f"oversized_error/{e.type}"] += 1
            counts["passes"] += 1
            if done.is_set():
              break
      except BaseException as e:  # pylint: disable=broad-except  (reported)
        failures.append(f"fuzzer {j}: {e!r}"[:300])
      with fuzz_lock:
        fuzz.update(counts)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    fuzz_threads = [threading.Thread(target=fuzzer, args=(j,)) for j in range(fuzzers)]
    for t in fuzz_threads + threads:
      t.start()
    for t in threads:
      t.join()
    done.set()
    for t in fuzz_threads:
      t.join()
    for i in range(clients):
      for a, b in zip(got[i] or [], expected[i]):
        replies += 1
        same_shape = a.shape == b.shape and a.dtype == b.dtype
        exact += bool(same_shape and np.array_equal(a, b))
        close += bool(same_shape and np.allclose(a, b, rtol=tolerance, atol=tolerance))
        max_diff = max(max_diff, float(np.max(np.abs(a - b))) if same_shape else math.inf)
    with PolicyClient(url) as watcher:   # the server forgets the others' sessions
      deadline = time.monotonic() + 60
      while time.monotonic() < deadline:
        metrics = watcher.metrics()
        if metrics["connections"] == 1 and metrics["sessions"] == 0:
          break
        time.sleep(0.05)
    time.sleep(1.0)
    after_rounds.append(sampler.rss_mib())
    with PolicyClient(url) as watcher:   # where the memory is: docs/RELIABILITY.md
      memory_rounds.append(watcher.metrics().get("memory"))
    row = {"replies": replies, "identical": exact,
           "within_tolerance": close, "failures": len(failures),
           "rss_mib": after_rounds[-1], "peak_mib": max(sampler.samples, default=None)}
    heap = (memory_rounds[-1] or {}).get("malloc") or {}
    python = (memory_rounds[-1] or {}).get("python") or {}
    row.update({k: (memory_rounds[-1] or {}).get(k) for k in ("rss_anon_mib", "rss_file_mib")})
    row.update({f"malloc_{k}": v for k, v in heap.items() if k != "arena_mib"})
    if python:
      row["python_traced_mib"] = python["traced_mib"]
    on_round(r, row)
  sampler.stop()
  with PolicyClient(url) as watcher:
    server_metrics = watcher.metrics()
  internal = sum(v for k, v in fuzz.items() if k.endswith(f"/{protocol.INTERNAL}"))
  return {
      "valid_replies_expected": clients * acts * rounds, "valid_replies": replies,
      "valid_replies_identical": exact, "tolerance": tolerance,
      "valid_replies_within_tolerance": close,
      "max_abs_action_diff": max_diff, "client_failures": failures[:20],
      "client_failure_count": len(failures), "fuzz": dict(sorted(fuzz.items())),
      "internal_errors": internal,
      "rss_mib": {"before": before, "peak": max(sampler.samples, default=None),
                  "after_each_round": after_rounds,
                  "server_memory_each_round": memory_rounds,
                  "samples": len(sampler.samples), "every_s": sampler.every_s},
      "server_errors": server_metrics.get("errors"),
      "server_requests": server_metrics.get("requests")}


def figure_serve(root: str, *, clients: int, acts: int, fuzzers: int, rounds: int,
                 seed: int, max_message_mib: float, max_batch: Optional[int] = None,
                 trim_every_s: Optional[float] = None, trace_memory: int = 0
                 ) -> dict[str, Any]:
  """Serves the tests' random tiny model with ``python -m experiments.serve`` (with
  ``--max_batch`` unless None) and runs ``serve_load`` against it.

  Replies must equal ``Policy.act`` bitwise when each act runs alone (``max_batch``
  1), else within ``wam.policy.BATCH_TOLERANCE``: batching several sessions in one
  call sums in another order.
  """
  # pylint: disable=import-outside-toplevel
  from benchmarks import serve as serve_benchmark
  from wam import policy as policy_lib
  run = os.path.join(root, "run")
  if not os.path.isdir(run):
    toy_runs.write_policy_run(*serve_benchmark.random_model("tiny"), run)
  policy = policy_lib.Policy.from_workdir(run)
  policy.warmup()
  tolerance = 0.0 if max_batch == 1 else getattr(policy_lib, "BATCH_TOLERANCE", 0.0)
  argv = [sys.executable, "-m", "experiments.serve", f"--workdir={run}", "--port=0",
          f"--max_connections={clients + 2 * fuzzers + 8}",
          f"--max_sessions={2 * (clients + fuzzers)}", f"--max_message_mib={max_message_mib}"]
  if max_batch is not None:
    argv.append(f"--max_batch={max_batch}")
  if trim_every_s is not None:
    argv.append(f"--trim_every_s={trim_every_s}")
  if trace_memory:
    argv.append(f"--trace_memory={trace_memory}")
  log = os.path.join(root, f"server_max_batch_{max_batch}.log")
  _progress("serve", "starting the server")
  with open(log, "w", encoding="utf-8") as stderr:
    proc = subprocess.Popen(argv, cwd=toy_runs.ROOT, stdout=subprocess.PIPE, stderr=stderr,
                            text=True, env=dict(os.environ, PYTHONPATH=toy_runs.ROOT))
  try:
    line = proc.stdout.readline()   # "Serving <workdir> at ws://...", or "" if it died
    match = re.search(r"at (ws://\S+)", line)
    if not match:
      raise RuntimeError(f"The server did not start: {line!r}; see {log}.")
    _progress("serve", f"serving at {match.group(1)} (pid {proc.pid}); {clients} clients "
                       f"x {acts} acts and {fuzzers} fuzzers, {rounds} round(s)")
    report = lambda r, row: _progress("serve", f"round {r + 1}/{rounds}: " + ", ".join(
        f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    results = serve_load(match.group(1), policy, proc.pid, clients=clients, acts=acts,
                         fuzzers=fuzzers, rounds=rounds, seed=seed,
                         max_message_bytes=int(max_message_mib * 2**20),
                         tolerance=tolerance, on_round=report)
    proc.send_signal(signal.SIGTERM)
    results["server_returncode"] = proc.wait(timeout=120)
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()
  results["passed"] = (results["server_returncode"] == 0
                       and results["client_failure_count"] == 0
                       and results["internal_errors"] == 0
                       and results["valid_replies_within_tolerance"]
                       == results["valid_replies"] == results["valid_replies_expected"])
  results["command"] = shlex.join(argv).replace(run, "<run>")
  return results


# -------------------------------------------------------------------------- main


def main(argv):
  del argv
  unknown = set(FLAGS.figures) - set(FIGURES)
  if unknown:
    raise app.UsageError(f"Unknown figures {sorted(unknown)}; choose from {FIGURES}.")
  root = FLAGS.root or tempfile.mkdtemp(prefix="reliability_")
  os.makedirs(root, exist_ok=True)
  # The console shows the progress lines (and warnings); orbax's and TFDS's records of
  # restoring and writing go to <root>/logs/reliability.log.
  console.configure(root, "progress", "reliability")
  env = {}
  if FLAGS.compilation_cache:
    env = {"JAX_COMPILATION_CACHE_DIR": os.path.join(root, "jax_cache"),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
           "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
  results: dict[str, Any] = {"figures": {}}
  data: list[str] = []

  def toy_data() -> list[str]:
    if not data:
      data.extend(toy_runs.write_dataset(os.path.join(root, "data")))
    return data

  def serve_figures() -> dict[str, Any]:
    runs = {}
    for value in FLAGS.serve_max_batch or [None]:
      max_batch = None if value is None else int(value)
      runs["server default" if value is None else f"max_batch={value}"] = figure_serve(
          os.path.join(root, "serve"), clients=FLAGS.clients, acts=FLAGS.acts,
          fuzzers=FLAGS.fuzzers, rounds=FLAGS.serve_rounds, seed=FLAGS.seed,
          max_message_mib=FLAGS.max_message_mib, max_batch=max_batch,
          trim_every_s=FLAGS.serve_trim_every_s, trace_memory=FLAGS.serve_trace_memory)
    return {"passed": all(r["passed"] for r in runs.values()), "runs": runs}
  measure = {
      "kill": lambda: figure_kill(
          os.path.join(root, "kill"), *toy_data(), kills=FLAGS.kills,
          num_steps=FLAGS.kill_steps, every=FLAGS.checkpoint_every, seed=FLAGS.seed,
          env=env, timeout_s=FLAGS.timeout_s),
      "sigterm": lambda: figure_sigterm(
          os.path.join(root, "sigterm"), *toy_data(), trials=FLAGS.sigterm_trials,
          num_steps=FLAGS.sigterm_steps, sync_every=FLAGS.preemption_sync_every,
          seed=FLAGS.seed, env={}, timeout_s=FLAGS.timeout_s),   # no cache: docstring
      "serve": serve_figures}
  try:
    for name in FIGURES:
      if name not in FLAGS.figures:
        continue
      start = time.time()
      try:
        results["figures"][name] = measure[name]()
      except Exception:  # pylint: disable=broad-except  (the other figures still run)
        results["figures"][name] = {"passed": False, "error": traceback.format_exc()}
        _progress(name, "FAILED:\n" + results["figures"][name]["error"])
      results["figures"][name]["seconds"] = time.time() - start
  finally:
    if not FLAGS.root:
      shutil.rmtree(root, ignore_errors=True)
  results["passed"] = all(f["passed"] for f in results["figures"].values())
  results["compilation_cache"] = FLAGS.compilation_cache
  print(json.dumps(results, indent=1), flush=True)
  results_lib.write_json(FLAGS.out, results)
  if not results["passed"]:
    sys.exit(1)


if __name__ == "__main__":
  define_flags()
  app.run(main)
