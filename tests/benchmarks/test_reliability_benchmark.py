"""benchmarks/reliability.py's machinery, without training or serving: the kill plan,
reading a checkpoint directory, and killing a (fake) training process at its Nth step."""

import collections
import signal
import subprocess
import sys

import numpy as np

from benchmarks import reliability
from wam import checkpoint


def test_kill_plan_mixes_kinds_over_the_whole_run_and_is_seeded():
  plan = reliability.kill_plan(np.random.default_rng(0), 10, 24)
  assert collections.Counter(p["kind"] for p in plan) == {"startup": 2, "save": 4, "step": 4}
  steps = [p["step"] for p in plan]
  assert steps == sorted(steps) and 1 <= steps[0] and steps[-1] <= 24
  assert len(set(steps)) > 5   # spread, not bunched
  assert all(0 <= p["u"] < 1 for p in plan)
  assert plan == reliability.kill_plan(np.random.default_rng(0), 10, 24)
  assert plan != reliability.kill_plan(np.random.default_rng(1), 10, 24)
  assert reliability._save_steps(10, 4) == [4, 8, 10]  # pylint: disable=protected-access


def test_checkpoint_directory_is_read_as_the_trainer_writes_it(tmp_path):
  assert reliability.TMP_MARKER == checkpoint.TMP_MARKER
  assert reliability.CORRUPT_DIR == checkpoint.CORRUPT_DIR
  for name in ("4", "8", "12" + checkpoint.TMP_MARKER, "corrupt/8.1a2b3c4d"):
    (tmp_path / name).mkdir(parents=True)
  (tmp_path / "16").write_text("a file, not a step")
  assert reliability.committed_steps(str(tmp_path)) == [4, 8]
  assert reliability.unfinished_saves(str(tmp_path)) == ["12" + checkpoint.TMP_MARKER]
  assert reliability.corrupt_steps(str(tmp_path)) == ["8.1a2b3c4d"]
  assert reliability.committed_steps(str(tmp_path / "missing")) == []


FAKE_TRAINER = r"""
import os, sys, time
ckpt = sys.argv[1]
time.sleep(0.2)   # start-up, then the checkpointer removes unfinished saves
for name in os.listdir(ckpt):
  if ".orbax-checkpoint-tmp" in name:
    os.rmdir(os.path.join(ckpt, name))
for step in range(1, 6):
  print(f"12:00:00 [train] step {step}/5 loss 1.0", flush=True)
  if step == 2:   # a save that takes a while
    os.makedirs(os.path.join(ckpt, "2.orbax-checkpoint-tmp"))
    time.sleep(0.3)
    os.rename(os.path.join(ckpt, "2.orbax-checkpoint-tmp"), os.path.join(ckpt, "2"))
  time.sleep(0.2)
"""


def _fake(tmp_path, log_name="train.log"):
  log = tmp_path / log_name   # one per launch, as the benchmark keeps them
  ckpt = tmp_path / "checkpoints"
  ckpt.mkdir(exist_ok=True)
  with open(log, "a", encoding="utf-8") as out:
    proc = subprocess.Popen([sys.executable, "-c", FAKE_TRAINER, str(ckpt)], stdout=out)
  return proc, str(log), str(ckpt)


def test_watch_kills_at_a_logged_step_and_times_saves(tmp_path):
  proc, log, ckpt = _fake(tmp_path)
  at_step_3 = lambda now, tail, saves: now if (tail.last_step or 0) >= 3 else None
  watched = reliability._watch(proc, log, ckpt, 60, at_step_3)  # pylint: disable=protected-access
  assert watched["returncode"] == -signal.SIGKILL
  assert watched["last_logged_step"] == 3
  assert len(watched["save_s"]) == 1 and 0.2 < watched["save_s"][0] < 5
  assert reliability.committed_steps(ckpt) == [2]

  # Killed mid-save: the temporary directory is left behind, the step not committed.
  (tmp_path / "again").mkdir()
  proc, log, ckpt = _fake(tmp_path / "again")
  mid_save = lambda now, tail, saves: saves.get(2, {}).get("begun")
  watched = reliability._watch(proc, log, ckpt, 60, mid_save)  # pylint: disable=protected-access
  assert watched["returncode"] == -signal.SIGKILL
  assert reliability.unfinished_saves(ckpt) == ["2" + checkpoint.TMP_MARKER]
  assert reliability.committed_steps(ckpt) == []

  # Killed at once: the unfinished save is the killed process's, not this one's.
  proc, log, ckpt = _fake(tmp_path / "again", "at_once.log")
  at_once = lambda now, tail, saves: now
  watched = reliability._watch(proc, log, ckpt, 60, at_once)  # pylint: disable=protected-access
  assert watched["stale_left"] == ["2" + checkpoint.TMP_MARKER]

  # Relaunched: the save left by the killed process is not this one's save of step 2.
  proc, log, ckpt = _fake(tmp_path / "again", "relaunch.log")
  watched = reliability._watch(proc, log, ckpt, 60, mid_save)  # pylint: disable=protected-access
  assert watched["returncode"] == -signal.SIGKILL and watched["last_logged_step"] == 2


def test_tail_reads_only_complete_lines(tmp_path):
  path = tmp_path / "log"
  tail = reliability._Tail(str(path))  # pylint: disable=protected-access
  assert tail.read() is None   # no file yet
  path.write_text("x [train] step 1/9 loss\nx [train] step 2/")
  assert tail.read() == 1
  with open(path, "a", encoding="utf-8") as f:
    f.write("9 loss\n")
  assert tail.read() == 2
