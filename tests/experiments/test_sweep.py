"""The sweep runner: runs, reads back, retries, records failures, refuses to mix sweeps,
and resumes after being killed (with a fake launcher that takes about a second)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from experiments.lib import sweep as sweep_lib
from experiments.lib import sweep_results

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAKE = os.path.join(ROOT, "tests", "experiments", "fake_config.py")


def _config(tmp_path, body: str, name: str = "cfg.py") -> str:
  """A sweep config file: the fake config's get_config/LAUNCHER with its own sweep()."""
  path = tmp_path / name
  path.write_text("from tests.experiments.fake_config import LAUNCHER, get_config\n\n"
                  "def sweep(add):\n" + "".join(f"  {line}\n" for line in body.splitlines()))
  return str(path)


def _launches(directory, name) -> int:
  path = os.path.join(directory, name, "launches.txt")
  return len(open(path).readlines()) if os.path.exists(path) else 0


def test_runs_reads_back_and_summarises(tmp_path):
  sweep = sweep_lib.load_sweep(f"{FAKE}:v")
  out = str(tmp_path / "sw")
  lines = []
  results = sweep_lib.run_sweep(sweep, out, workers=2, progress=lines.append)
  assert [r.status for r in results] == ["finished"] * 3
  assert [r.metrics["loss"] for r in results] == pytest.approx(
      [1 + 4 * s ** -0.5 for s in (2, 8, 32)])
  assert sum(line.startswith("[") for line in lines) == 3  # one progress line per run
  assert json.load(open(os.path.join(out, "sweep.json")))["runs"]["s8"] == {"scale": 8}
  table = open(os.path.join(out, "summary.md")).read()
  assert "| s32 | finished | scale=32, sleep=0.0 | 10 | 1.707 |" in table
  assert len(json.load(open(os.path.join(out, "summary.json")))["runs"]) == 3
  assert "=== " in open(os.path.join(out, "s2", "log.txt")).read()

  # Again: finished runs are read, not rerun.
  again = sweep_lib.run_sweep(sweep, out, workers=2, progress=lines.append)
  assert all(r.reused for r in again) and _launches(out, "s2") == 1
  assert [r.metrics for r in again] == [r.metrics for r in results]
  # Nothing left to launch on a cluster either.
  assert sweep_lib.emit_commands(sweep, out) == []


def test_emit_commands_from_the_command_line(tmp_path):
  out = subprocess.run(
      [sys.executable, "-m", "experiments.sweep", f"--config={FAKE}:v",
       f"--workdir={tmp_path / 'sw'}", "--emit_commands"],
      cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  lines = out.stdout.strip().splitlines()
  assert len(lines) == 3
  assert lines[1] == (f"python -m tests.experiments.fake_launcher --config={FAKE}:v "
                      f"--config.scale=8 --workdir={tmp_path / 'sw' / 's8'}")
  assert not os.path.exists(tmp_path / "sw" / "s8")  # nothing ran


def test_a_crash_is_retried_once_then_recorded(tmp_path):
  config = _config(tmp_path, 'add("flaky", scale=4, fail_times=1)\n'
                             'add("broken", scale=8, fail_times=5)\n'
                             'add("fine", scale=16)')
  out = str(tmp_path / "sw")
  results = {r.name: r for r in sweep_lib.run_sweep(sweep_lib.load_sweep(config), out,
                                                  workers=1, progress=lambda _: None)}
  assert results["flaky"].status == "finished" and results["flaky"].attempts == 2
  assert results["broken"].status == "failed" and results["broken"].attempts == 2
  assert "exit code 3" in results["broken"].error
  status = json.load(open(os.path.join(out, "broken", "status.json")))
  assert status["state"] == "failed" and "fake crash 2 of 5" in status["log_tail"]
  table = open(os.path.join(out, "summary.md")).read()
  assert "1 failed" in table and "- broken: exit code 3" in table
  # A second sweep retries only the failed run; the finished ones are untouched.
  mtime = os.path.getmtime(os.path.join(out, "fine", "result.json"))
  sweep_lib.run_sweep(sweep_lib.load_sweep(config), out, progress=lambda _: None)
  assert _launches(out, "fine") == 1 and _launches(out, "broken") == 4
  assert os.path.getmtime(os.path.join(out, "fine", "result.json")) == mtime


def test_bad_definitions_are_clear_errors(tmp_path):
  no_sweep = tmp_path / "nosweep.py"
  no_sweep.write_text("from tests.experiments.fake_config import get_config\n")
  with pytest.raises(sweep_lib.SweepError, match="no sweep\\(add\\) function"):
    sweep_lib.load_sweep(str(no_sweep))
  with pytest.raises(sweep_lib.SweepError, match="does not exist"):
    sweep_lib.load_sweep(str(tmp_path / "missing.py"))
  with pytest.raises(sweep_lib.SweepError, match="overrides config.scael, but the config has no "
                                              "key 'scael'"):
    sweep_lib.load_sweep(_config(tmp_path, 'add("a", scael=2)', "typo.py"))
  with pytest.raises(sweep_lib.SweepError, match="config.scale='big'"):
    sweep_lib.load_sweep(_config(tmp_path, 'add("a", scale="big")', "type.py"))
  with pytest.raises(sweep_lib.SweepError, match="added twice"):
    sweep_lib.load_sweep(_config(tmp_path, 'add("a", scale=2)\nadd("a", scale=3)', "dup.py"))
  with pytest.raises(sweep_lib.SweepError, match="must be letters"):
    sweep_lib.load_sweep(_config(tmp_path, 'add("../a", scale=2)', "name.py"))


def test_refuses_a_directory_of_another_sweep(tmp_path):
  out = str(tmp_path / "sw")
  first = _config(tmp_path, 'add("a", scale=2)', "one.py")
  sweep_lib.run_sweep(sweep_lib.load_sweep(first + ":x"), out, progress=lambda _: None)
  result = open(os.path.join(out, "a", "result.json")).read()
  with pytest.raises(sweep_lib.SweepError, match="arg: 'x' there, 'y' here"):
    sweep_lib.run_sweep(sweep_lib.load_sweep(first + ":y"), out)
  changed = _config(tmp_path, 'add("a", scale=3)', "one.py")  # same file, new overrides
  with pytest.raises(sweep_lib.SweepError, match="run 'a': overrides {'scale': 2} there"):
    sweep_lib.run_sweep(sweep_lib.load_sweep(changed + ":x"), out)
  assert open(os.path.join(out, "a", "result.json")).read() == result  # not lost
  # The same sweep may grow.
  grown = _config(tmp_path, 'add("a", scale=2)\nadd("b", scale=4)', "one.py")
  results = sweep_lib.run_sweep(sweep_lib.load_sweep(grown + ":x"), out, progress=lambda _: None)
  assert [r.reused for r in results] == [True, False]


def test_resumes_after_the_sweep_is_killed(tmp_path):
  config = _config(tmp_path, 'add("quick", scale=2)\nadd("slow", scale=8, sleep=60.0)\n'
                             'add("last", scale=32)')
  out = tmp_path / "sw"
  argv = [sys.executable, "-m", "experiments.sweep", f"--config={config}",
          f"--workdir={out}", "--workers=1"]
  sweep = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
  deadline = time.time() + 120
  while _launches(out, "slow") == 0 and time.time() < deadline:
    time.sleep(0.2)
  assert _launches(out, "slow") == 1, sweep.communicate()[0] if sweep.poll() else "timeout"
  os.kill(sweep.pid, signal.SIGKILL)
  sweep.wait()
  # The run in flight dies with the sweep (no orphan keeps training).
  pid = int(open(out / "slow" / "launches.txt").read().split()[0])
  deadline = time.time() + 30
  while _alive(pid) and time.time() < deadline:
    time.sleep(0.2)
  assert not _alive(pid)
  assert (out / "quick" / "result.json").exists() and not (out / "slow" / "result.json").exists()

  # Rerun the same command (the fake launcher skips its sleep now, to keep this quick).
  done = subprocess.run(argv + ["--retries=0"], cwd=ROOT, capture_output=True, text=True,
                        timeout=120, env=dict(os.environ, FAKE_LAUNCHER_NO_SLEEP="1"))
  assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
  assert "1 already finished, 2 to run" in done.stdout
  assert _launches(out, "quick") == 1 and _launches(out, "slow") == 2
  assert "3 finished, 0 failed" in (out / "summary.md").read_text()


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  # A zombie (exited, not yet reaped by init) counts as dead.
  try:
    return open(f"/proc/{pid}/stat").read().split()[2] != "Z"
  except OSError:
    return False


def test_runs_without_a_held_out_split_are_shown_and_named(tmp_path):
  """The trainer logs eval_train/* (not eval/*) when a run has no held-out split."""
  train_only = {"loss": 0.5, "eval_train/loss": 0.6}
  result = sweep_results.RunResult("a", "finished", {}, 10, train_only)
  _, md = sweep_results.write_summary(str(tmp_path), [result])
  assert "| eval_train/loss |" in open(md).read()
  assert sweep_results.only_on_training_windows(train_only, "eval/loss")
  assert not sweep_results.only_on_training_windows({"eval/loss": 0.6}, "eval/loss")
  assert not sweep_results.only_on_training_windows(train_only, "loss")
