"""Training metrics to ``<workdir>/metrics.jsonl`` and TensorBoard.

``metrics.jsonl`` holds one JSON object per line, ``{"step": 100, "loss": 0.5, ...}``;
each line is flushed as it is written, so a killed run keeps every line it wrote.
Values are python floats; non-finite values (NaN, inf) are written as ``null``, since
``NaN`` is not valid JSON. TensorBoard event files go to ``<workdir>/tensorboard``
(tensorboardX), where non-finite values are kept as they are.
Events (e.g. a fallback to an older checkpoint) are lines with an ``"event"`` name and a
``"step"`` but no metrics, ``{"event": "checkpoint_fallback", "step": 500, ...}``:
readers that look up metric names skip them.

A run resumed from a checkpoint at step ``S`` calls :meth:`MetricWriter.truncate_after`
``(S)`` so that the log drops what the killed run wrote after its last checkpoint and
TensorBoard hides those events (``purge_step``).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping, Optional, Union

import numpy as np

from wam.files import atomic_write

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"

Scalar = Union[float, int, np.ndarray, Any]  # Any: a jax.Array holding one value.


def read_metrics(path: str) -> list[dict]:
  """Reads a ``metrics.jsonl`` file, skipping lines that are not JSON objects.

  Args:
    path: the file (FileNotFoundError if missing).

  Returns:
    One dict per valid line, in file order (``null`` values are None).
  """
  rows = []
  with open(path, encoding="utf-8") as f:
    for line in f:
      row = _parse(line)
      if row is not None:
        rows.append(row)
  return rows


def _parse(line: str) -> Optional[dict]:
  """The JSON object on ``line``, or None for a blank, truncated or non-object line."""
  line = line.strip()
  if not line:
    return None
  try:
    row = json.loads(line)
  except ValueError:
    return None
  return row if isinstance(row, dict) else None


def _to_float(name: str, value: Scalar) -> float:
  """A python float from a number or a one-element numpy / JAX array."""
  array = np.asarray(value)
  if array.size != 1 or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
    raise ValueError(f"write_scalars: {name!r} is not a scalar number "
                     f"({array.dtype}{list(array.shape)}).")
  return float(array.reshape(()))


class MetricWriter:
  """Appends scalars to ``metrics.jsonl`` and writes scalars, images, text to TensorBoard.

  Only one process should write: ``enabled`` defaults to ``jax.process_index() == 0``,
  and a disabled writer creates no file and ignores every call. The writer is a context
  manager that closes itself.

  Args:
    workdir: the run's folder (created when enabled).
    enabled: whether to write at all; None: only on the first JAX process.
    tensorboard: whether to also write TensorBoard event files.
  """

  def __init__(self, workdir: str, enabled: Optional[bool] = None, tensorboard: bool = True):
    if enabled is None:
      import jax  # pylint: disable=import-outside-toplevel
      enabled = jax.process_index() == 0
    self.workdir = workdir
    self.enabled = bool(enabled)
    self.tensorboard = tensorboard
    self.metrics_path = os.path.join(workdir, METRICS_FILE)
    self.tensorboard_dir = os.path.join(workdir, TENSORBOARD_DIR)
    self._file = None
    self._tb = None
    self._purge_step: Optional[int] = None
    if self.enabled:
      os.makedirs(workdir, exist_ok=True)

  def _jsonl(self):
    """The metrics file, opened for appending on first use."""
    if self._file is None:
      needs_newline = False
      if os.path.exists(self.metrics_path) and os.path.getsize(self.metrics_path):
        with open(self.metrics_path, "rb") as f:
          f.seek(-1, os.SEEK_END)
          needs_newline = f.read(1) != b"\n"  # a killed run's partial last line
      self._file = open(self.metrics_path, "a", encoding="utf-8")  # pylint: disable=consider-using-with
      if needs_newline:
        self._file.write("\n")
    return self._file

  def _summary_writer(self):
    """The tensorboardX SummaryWriter, created on first use (None when disabled)."""
    if not (self.enabled and self.tensorboard):
      return None
    if self._tb is None:
      from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel
      self._tb = SummaryWriter(self.tensorboard_dir, purge_step=self._purge_step)
      self._purge_step = None  # purge once: a reopened writer must keep this run's events
    return self._tb

  def write_scalars(self, step: int, scalars: Mapping[str, Scalar]) -> None:
    """Writes one line ``{"step": step, **scalars}`` and the TensorBoard scalars.

    Args:
      step: the training step.
      scalars: name to a number or a one-element numpy / JAX array; non-finite values
        are written as ``null`` in ``metrics.jsonl``.
    """
    if not self.enabled:
      return
    if "step" in scalars:
      raise ValueError("write_scalars: 'step' is reserved for the step argument.")
    step = int(step)
    values = {str(k): _to_float(k, v) for k, v in scalars.items()}
    row = {"step": step, **{k: (v if math.isfinite(v) else None) for k, v in values.items()}}
    f = self._jsonl()
    f.write(json.dumps(row, allow_nan=False) + "\n")
    f.flush()
    tb = self._summary_writer()
    if tb is not None:
      for name, value in values.items():
        tb.add_scalar(name, value, step)

  def write_event(self, step: int, event: str, **fields: Any) -> None:
    """Writes one line ``{"event": event, "step": step, **fields}`` (no TensorBoard).

    Args:
      step: the training step the event belongs to (a resume's truncation uses it).
      event: the event's name, e.g. ``"checkpoint_fallback"``.
      **fields: JSON-serialisable details.
    """
    if not self.enabled:
      return
    f = self._jsonl()
    f.write(json.dumps({"event": event, "step": int(step), **fields}) + "\n")
    f.flush()

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    """Writes ``uint8[H, W, C]`` images (C = 1, 3 or 4) to TensorBoard."""
    tb = self._summary_writer()
    if tb is None:
      return
    for name, image in images.items():
      image = np.asarray(image)
      if image.ndim != 3:
        raise ValueError(f"write_images: {name!r} is not an [H, W, C] image "
                         f"({list(image.shape)}).")
      tb.add_image(name, image, int(step), dataformats="HWC")

  def write_text(self, step: int, name: str, text: str) -> None:
    """Writes a (markdown) text summary to TensorBoard."""
    tb = self._summary_writer()
    if tb is not None:
      tb.add_text(name, text, int(step))

  def truncate_after(self, step: int) -> int:
    """Forgets what was logged after ``step``, for a run resuming from step ``step``.

    Lines of ``metrics.jsonl`` with a step above ``step`` are dropped, and so are
    malformed lines (e.g. a partial last line); the file is rewritten atomically (a
    temporary file, then ``os.replace``). TensorBoard event files cannot be edited, so
    the next event file is opened with ``purge_step = step + 1``, which makes
    TensorBoard discard older events from that step on.

    Args:
      step: the step of the checkpoint the run resumes from.

    Returns:
      The number of lines dropped.
    """
    if not self.enabled:
      return 0
    step = int(step)
    self.close()
    self._purge_step = step + 1
    if not os.path.exists(self.metrics_path):
      return 0
    kept, dropped = [], 0
    with open(self.metrics_path, encoding="utf-8") as f:
      for line in f:
        row = _parse(line)
        row_step = None if row is None else row.get("step")
        if row is None or (isinstance(row_step, (int, float)) and row_step > step):
          dropped += line.strip() != ""
          continue
        kept.append(line.rstrip("\n") + "\n")
    if dropped:
      # The umask decides the mode, as for the file it replaces, so that teammates can
      # still read the metrics of a resumed run.
      atomic_write(self.metrics_path, lambda f: f.writelines(kept), "w", encoding="utf-8")
    return dropped

  def flush(self) -> None:
    """Flushes the metrics file and TensorBoard."""
    if self._file is not None:
      self._file.flush()
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    """Closes the files; a later write opens them again."""
    if self._file is not None:
      self._file.close()
      self._file = None
    if self._tb is not None:
      self._tb.close()
      self._tb = None

  def __enter__(self) -> "MetricWriter":
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()
