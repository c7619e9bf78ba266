"""The launchers' console: one line per step of progress; every log record in a file.

``configure(workdir)`` at the top of a launcher's ``main`` sends every Python and absl
log record at INFO and above to ``<workdir>/logs/<name>.log`` and shows on the console
only

- progress lines: records whose message starts with a ``[tag] `` (``[train] step
  50/4000 ...``, ``[evaluate reach] ...``, ``[3/11] posttrain: ...``), with an ETA
  added where the line counts ``N/M`` (from the rate between lines of the same tag, or
  the line's own ``steps/s`` for the first);
- warnings and errors, except warnings of the chatty libraries in ``QUIET`` (orbax,
  jax, tensorflow, ...), whose records stay in the file;

as ``HH:MM:SS [tag] message``, and turns off TFDS's progress bars (dozens of redrawn
lines per dataset split). ``mode="all"`` shows every record in that format and keeps
the bars (the launchers' ``--console=all``). ``stage_log(name)`` moves the file to
``logs/<name>.log`` for the length of a stage, and ``worker_settings`` /
``configure_worker`` give worker processes (``multiprocessing`` spawn) the same console
and file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import sys
import time
import traceback
from collections.abc import Iterator
from typing import TextIO

from absl import logging as absl_logging

MODES = ("progress", "all")
FLAG_HELP = ("progress: the console shows progress lines and warnings, every log record "
             "goes to <workdir>/logs/; all: the console shows every log record too.")
LOG_DIR = "logs"

# Top-level packages whose INFO and WARNING records only go to the file: checkpointing,
# compilation, backend and dataset-builder chatter (their errors still show).
QUIET = frozenset(("absl", "orbax", "jax", "jaxlib", "tensorflow", "tensorflow_datasets",
                   "etils", "flax", "chex", "optax", "tensorboardX", "matplotlib", "PIL",
                   "h5py", "urllib3"))

_TAG = re.compile(r"\[([\w./:-][\w ./:-]*)\] ")
_COUNT = re.compile(r"(?<![\w.])(\d+)/(\d+)(?![\w.])")
_RATE = re.compile(r"([\d.]+) steps/s")
_PACKAGE = re.compile(r"/(?:site|dist)-packages/([^/]+)")
# Loggers that carry records of any module: absl.logging's and module-level logging.info.
_CARRIERS = ("absl", "root")


def _package(record: logging.LogRecord) -> str:
  """The installed package whose code made ``record``; ``""`` for this project's code
  (and the standard library's).

  The caller's file decides, not the logger: absl's logger carries every module that
  logs through ``absl.logging``, orbax and TFDS included.
  """
  match = _PACKAGE.search(record.pathname.replace(os.sep, "/"))
  return match.group(1).removesuffix(".py") if match else ""


def _quiet(record: logging.LogRecord) -> bool:
  return _package(record) in QUIET or (record.name not in _CARRIERS
                                       and record.name.split(".")[0] in QUIET)


def _label(record: logging.LogRecord) -> str:
  """Who made ``record``: an installed package, a named logger, or a module of ours."""
  return _package(record) or (record.module if record.name in _CARRIERS else record.name)


def _duration(seconds: float) -> str:
  seconds = round(seconds)
  if seconds < 60:
    return f"{seconds}s"
  if seconds < 3600:
    return f"{seconds // 60}m{seconds % 60:02d}s"
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class _Eta:
  """Remaining time of the ``N/M`` in a tag's progress lines."""

  def __init__(self):
    # tag -> (total, first count, its time, last count)
    self._seen: dict[str, tuple[int, int, float, int]] = {}

  def __call__(self, tag: str, body: str, now: float) -> str:
    count = _COUNT.search(body)
    if count is None:
      return ""
    done, total = int(count.group(1)), int(count.group(2))
    seen = self._seen.get(tag)
    if done >= total or total == 0:
      self._seen.pop(tag, None)
      return ""
    # A new total or a count that went down is another run under the same tag.
    if seen is None or seen[0] != total or done < seen[3]:
      seen = (total, done, now, done)
    self._seen[tag] = seen = seen[:3] + (done,)
    _, first, start, _ = seen
    rate = (done - first) / (now - start) if done > first and now > start else 0.0
    if not rate:
      # The first line: its own rate (the trainer's excludes compiling), if it has one.
      own = _RATE.search(body)
      rate = float(own.group(1)) if own else 0.0
    return f", ETA {_duration((total - done) / rate)}" if rate > 0 else ""


class _ConsoleFormatter(logging.Formatter):
  """``HH:MM:SS [tag] message``: the message's own tag, or the package that logged it."""

  def __init__(self, log_path: str | None = None):
    super().__init__()
    self._eta = _Eta()
    self.log_path = log_path

  def format(self, record: logging.LogRecord) -> str:
    message = record.getMessage()
    tag = _TAG.match(message)
    if tag:
      label, body = tag.group(1), message[tag.end():]
    else:
      label, body = _label(record), message
    if record.levelno >= logging.WARNING:
      body = f"{record.levelname.lower()}: {body}"
    elif tag:
      body += self._eta(label, body, record.created)
    if record.exc_info:
      # One line of the exception; its traceback is in the file.
      last = traceback.format_exception_only(*record.exc_info[:2])[-1].strip()
      where = f"; traceback in {self.log_path}" if self.log_path else ""
      body += f" ({last}{where})"
    clock = time.strftime("%H:%M:%S", time.localtime(record.created))
    return f"{clock} [{label}] {body}"


def _shown(mode: str):
  """The console's filter for ``mode``."""
  def show(record: logging.LogRecord) -> bool:
    if mode == "all" or record.levelno >= logging.ERROR:
      return True
    if _quiet(record):
      return False
    return record.levelno >= logging.WARNING or bool(_TAG.match(record.getMessage()))
  return show


class _ConsoleHandler(logging.StreamHandler):
  """A stream handler that looks ``sys.stderr`` up at each record (tests swap it)."""

  def __init__(self, stream: TextIO | None):
    super().__init__(stream or sys.stderr)
    self._fixed = stream is not None

  def emit(self, record: logging.LogRecord) -> None:
    if not self._fixed:
      self.stream = sys.stderr
    super().emit(record)


def _file_handler(path: str) -> logging.FileHandler:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  handler = logging.FileHandler(path, mode="a", encoding="utf-8")
  # absl's layout, with the process id: acting's worker processes share the stage's file.
  handler.setFormatter(logging.Formatter(
      "%(levelname).1s%(asctime)s.%(msecs)03d %(process)d %(module)s:%(lineno)d] "
      "%(message)s", datefmt="%m%d %H:%M:%S"))
  handler.setLevel(logging.INFO)
  return handler


def _tfds_progress_bars(on: bool) -> None:
  try:
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  except ImportError:
    return
  if on:
    tfds.enable_progress_bar()
  else:
    tfds.disable_progress_bar()


@dataclasses.dataclass
class _State:
  mode: str
  log_dir: str
  console: logging.Handler
  file: logging.FileHandler


_state: _State | None = None


def _install(mode: str, path: str, stream: TextIO | None) -> str:
  global _state
  if mode not in MODES:
    raise ValueError(f"Console mode {mode!r} is not one of {MODES}.")
  root = logging.getLogger()
  reset()
  # absl's handler prints every INFO record with its prefix: this one replaces it.
  root.removeHandler(absl_logging.get_absl_handler())
  if root.level > logging.INFO or root.level == logging.NOTSET:
    root.setLevel(logging.INFO)
  console = _ConsoleHandler(stream)
  console.addFilter(_shown(mode))
  console.setFormatter(_ConsoleFormatter(path))
  file = _file_handler(path)
  root.addHandler(console)
  root.addHandler(file)
  if mode == "progress":
    _tfds_progress_bars(False)
  _state = _State(mode, os.path.dirname(path), console, file)
  return path


def configure(workdir: str, mode: str = "progress", name: str = "main",
              stream: TextIO | None = None) -> str:
  """Sets up the console and ``<workdir>/logs/<name>.log`` for this process.

  Args:
    workdir: the launcher's work directory.
    mode: ``"progress"`` (progress lines and warnings on the console) or ``"all"``.
    name: the log file's name, without ``.log``.
    stream: the console (default: ``sys.stderr``, looked up at each line).

  Returns:
    The log file's path.
  """
  return _install(mode, os.path.join(workdir, LOG_DIR, f"{name}.log"), stream)


def reset() -> None:
  """Removes what :func:`configure` installed (absl's handler is not put back)."""
  global _state
  if _state is not None:
    if _state.mode == "progress":
      _tfds_progress_bars(True)
    root = logging.getLogger()
    for handler in (_state.console, _state.file):
      root.removeHandler(handler)
      handler.close()
  _state = None


@contextlib.contextmanager
def stage_log(name: str) -> Iterator[str | None]:
  """Sends log records to ``logs/<name>.log`` inside the block; yields that path.

  Without :func:`configure` it changes nothing and yields None.
  """
  if _state is None:
    yield None
    return
  previous = _state.file.baseFilename
  _use_file(os.path.join(_state.log_dir, f"{name}.log"))
  try:
    yield _state.file.baseFilename
  finally:
    if _state is not None:
      _use_file(previous)


def _use_file(path: str) -> None:
  root = logging.getLogger()
  old, _state.file = _state.file, _file_handler(path)
  root.addHandler(_state.file)
  root.removeHandler(old)
  old.close()
  formatter = _state.console.formatter
  if isinstance(formatter, _ConsoleFormatter):
    formatter.log_path = path


def worker_settings() -> tuple[str, str] | None:
  """What a worker process needs to log like this one: pass to :func:`configure_worker`."""
  return (_state.mode, _state.file.baseFilename) if _state else None


def configure_worker(settings: tuple[str, str] | None) -> None:
  """A process pool's ``initializer``: this process's console and file as the parent's
  (nothing when the parent did not :func:`configure`)."""
  if settings is not None:
    mode, path = settings
    _install(mode, path, None)
