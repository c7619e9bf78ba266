"""metrics.jsonl lines, resume truncation, disabled writers, TensorBoard files."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from wam import metric_writer
from wam.metric_writer import MetricWriter


def test_lines_appended(tmp_path):
  with MetricWriter(str(tmp_path), enabled=True, tensorboard=False) as writer:
    writer.write_scalars(1, {"loss": jnp.float32(0.5), "lr": np.array([1e-3]), "n": 3})
    # Flushed at once: readable before close, as after a kill.
    assert metric_writer.read_metrics(writer.metrics_path) == [
        {"step": 1, "loss": 0.5, "lr": pytest.approx(1e-3), "n": 3.0}]
    writer.write_scalars(2, {"loss": float("nan"), "grad": np.inf})
    with pytest.raises(ValueError):
      writer.write_scalars(3, {"loss": np.zeros(2)})
  text = (tmp_path / "metrics.jsonl").read_text()
  assert "NaN" not in text and "Infinity" not in text
  rows = [json.loads(line) for line in text.splitlines()]  # strict JSON throughout
  assert rows[1] == {"step": 2, "loss": None, "grad": None}
  assert not (tmp_path / "tensorboard").exists()


def test_resume_truncation(tmp_path):
  writer = MetricWriter(str(tmp_path), enabled=True, tensorboard=False)
  for step in range(0, 50, 10):
    writer.write_scalars(step, {"loss": 1.0 / (step + 1)})
  writer.close()
  with open(tmp_path / "metrics.jsonl", "a", encoding="utf-8") as f:
    f.write('{"step": 50, "lo')  # killed mid-line

  resumed = MetricWriter(str(tmp_path), enabled=True, tensorboard=False)
  assert resumed.truncate_after(20) == 3  # steps 30, 40 and the partial line
  resumed.write_scalars(30, {"loss": 0.25})
  resumed.close()
  rows = metric_writer.read_metrics(str(tmp_path / "metrics.jsonl"))
  assert [r["step"] for r in rows] == [0, 10, 20, 30] and rows[-1]["loss"] == 0.25
  assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []
  assert MetricWriter(str(tmp_path), enabled=True).truncate_after(100) == 0


def test_event_lines_are_read_truncated_and_plotted_with_the_metrics(tmp_path):
  from wam import visualize  # pylint: disable=import-outside-toplevel
  with MetricWriter(str(tmp_path), enabled=True, tensorboard=False) as writer:
    for step in (1, 2, 3):
      writer.write_scalars(step, {"loss": 1.0 / step})
    writer.write_event(2, "checkpoint_fallback", from_step=3, to_step=2, reason="checksum")
  path = str(tmp_path / "metrics.jsonl")
  assert metric_writer.read_metrics(path)[-1] == {
      "event": "checkpoint_fallback", "step": 2, "from_step": 3, "to_step": 2,
      "reason": "checksum"}
  # A line without metrics is no point of a curve.
  assert visualize.plot_curves(path, str(tmp_path / "loss.png"), ["loss"])
  # Steps 2 and 3 and the event at step 2.
  assert MetricWriter(str(tmp_path), enabled=True).truncate_after(1) == 3
  assert [r.get("event") for r in metric_writer.read_metrics(path)] == [None]


def test_truncation_keeps_the_file_readable_by_others(tmp_path):
  """The rewritten file honours the umask (a temporary file's default is 0600)."""
  old_umask = os.umask(0o022)
  try:
    with MetricWriter(str(tmp_path), enabled=True, tensorboard=False) as writer:
      writer.write_scalars(1, {"loss": 1.0})
      writer.write_scalars(2, {"loss": 0.5})
    assert MetricWriter(str(tmp_path), enabled=True).truncate_after(1) == 1
  finally:
    os.umask(old_umask)
  assert os.stat(tmp_path / "metrics.jsonl").st_mode & 0o777 == 0o644


def test_partial_last_line_does_not_swallow_next(tmp_path):
  (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "lo')
  with MetricWriter(str(tmp_path), enabled=True, tensorboard=False) as writer:
    writer.write_scalars(3, {"loss": 0.5})
  rows = metric_writer.read_metrics(str(tmp_path / "metrics.jsonl"))
  assert [r["step"] for r in rows] == [1, 3]


def test_disabled_writer_writes_nothing(tmp_path):
  workdir = tmp_path / "run"
  with MetricWriter(str(workdir), enabled=False) as writer:
    writer.write_scalars(1, {"loss": 1.0})
    writer.write_images(1, {"x": np.zeros((4, 4, 3), np.uint8)})
    writer.write_text(1, "note", "hi")
    assert writer.truncate_after(0) == 0
  assert not workdir.exists()


def test_tensorboard_event_file(tmp_path):
  with MetricWriter(str(tmp_path), enabled=True) as writer:
    writer.write_scalars(1, {"loss": 1.0})
    writer.write_images(1, {"dream": np.zeros((4, 6, 3), np.uint8)})
    writer.write_text(1, "config", "lr: 1e-3")
    writer.flush()
  events = [p for p in os.listdir(tmp_path / "tensorboard") if "tfevents" in p]
  assert events and os.path.getsize(tmp_path / "tensorboard" / events[0]) > 0
  assert metric_writer.read_metrics(str(tmp_path / "metrics.jsonl"))[0]["loss"] == 1.0
