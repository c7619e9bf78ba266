"""The launchers' console: progress lines and warnings on it, every record in the file."""

import io
import logging
import re

import pytest
from absl import logging as absl_logging
from ml_collections import config_dict

from experiments.lib import console, stages


@pytest.fixture
def restore_logging():
  """Puts the root logger back as it was (configure replaces absl's handler)."""
  root = logging.getLogger()
  handlers, level = root.handlers[:], root.level
  yield
  console.reset()
  root.handlers[:] = handlers
  root.setLevel(level)


def _lines(stream: io.StringIO) -> list[str]:
  return stream.getvalue().splitlines()


def test_console_shows_progress_and_warnings_and_the_file_holds_everything(
    tmp_path, restore_logging):
  stream = io.StringIO()
  path = console.configure(str(tmp_path), "progress", "main", stream=stream)
  absl_logging.info("[train] step 50/4000 loss 1.2345 2.00 steps/s")
  logging.getLogger("orbax").info("Saving checkpoint to /tmp/x.")
  absl_logging.warning("No held-out split.")
  lines = _lines(stream)
  assert len(lines) == 2, lines
  # (4000 - 50) steps at 2 steps/s.
  assert re.fullmatch(r"\d\d:\d\d:\d\d \[train\] step 50/4000 loss 1\.2345 2\.00 steps/s, "
                      r"ETA 32m55s", lines[0]), lines[0]
  assert re.fullmatch(r"\d\d:\d\d:\d\d \[test_console\] warning: No held-out split\.",
                      lines[1]), lines[1]
  assert path == str(tmp_path / "logs" / "main.log")
  with open(path) as f:
    text = f.read()
  for message in ("[train] step 50/4000", "Saving checkpoint to /tmp/x.",
                  "No held-out split."):
    assert message in text
  assert len(text.splitlines()) == 3


def test_all_shows_library_records_and_stages_log_to_their_own_file(
    tmp_path, restore_logging):
  stream = io.StringIO()
  console.configure(str(tmp_path), "all", stream=stream)

  def stage(config, stage_dir, results):
    logging.getLogger("orbax").info("orbax inside the stage")
    return {}
  stages.run_stages([stages.Stage("a", stage, "the only stage")],
                    config_dict.ConfigDict({"x": 1}), str(tmp_path))
  shown = stream.getvalue()
  assert "[1/1] a: the only stage" in shown and "[orbax] orbax inside the stage" in shown
  assert "orbax inside the stage" in (tmp_path / "logs" / "a.log").read_text()
  main = (tmp_path / "logs" / "main.log").read_text()
  assert "[1/1] a: finished" in main and "orbax inside" not in main

  def fails(config, stage_dir, results):
    raise RuntimeError("simulated crash")
  with pytest.raises(stages.StageError, match=r"its log in .*logs/b\.log"):
    stages.run_stages([stages.Stage("b", fails, "fails")], config_dict.ConfigDict({"x": 1}),
                      str(tmp_path / "other"))


def test_library_records_are_told_apart_from_the_project_by_their_file():
  record = lambda name, path: logging.LogRecord(name, logging.WARNING, path, 1, "m", (), None)
  orbax = record("absl", "/x/lib/python3.11/site-packages/orbax/checkpoint/ckpt.py")
  assert console._package(orbax) == "orbax" and console._quiet(orbax)
  for name in ("absl", "root", "wam.checkpoint"):
    ours = record(name, "/work/main/wam/checkpoint.py")
    assert console._package(ours) == "" and not console._quiet(ours)
  assert console._quiet(record("jax._src.xla_bridge", "/x.py"))
