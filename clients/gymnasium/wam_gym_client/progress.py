"""Success: read from ``info``, counted with a 95% Wilson interval, shown on one line."""

from __future__ import annotations

import math
import sys
import time
from typing import Any, Mapping, Optional, TextIO

import numpy as np

Z_95 = 1.96


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
  """The Wilson score interval (95% by default) of a success rate; (0, 1) without trials.

  The same formula as ``dojo.closed_loop.success_interval``.
  """
  if trials <= 0:
    return (0.0, 1.0)
  p = successes / trials
  denominator = 1 + z ** 2 / trials
  centre = (p + z ** 2 / (2 * trials)) / denominator
  half = z * math.sqrt(p * (1 - p) / trials + z ** 2 / (4 * trials ** 2)) / denominator
  return (max(0.0, centre - half), min(1.0, centre + half))


class Progress:
  """``label 7/20 episodes | 5 succeeded (71%, 95% CI 36-92%) | 41 steps/s | 12 s``.

  On a terminal the line is rewritten in place; otherwise one line per update.
  """

  def __init__(self, total: int, label: str, stream: Optional[TextIO] = None):
    self.total, self.label = total, label
    self.stream = stream or sys.stderr
    self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
    self._start = time.monotonic()
    self._width = 0

  def line(self, done: int, successes: int, steps: int) -> str:
    """The progress line after ``done`` episodes (``steps`` env steps in all)."""
    seconds = time.monotonic() - self._start
    parts = [f"{self.label} {done}/{self.total} episodes"]
    if done:
      lo, hi = wilson_interval(successes, done)
      parts.append(f"{successes} succeeded ({successes / done:.0%}, 95% CI "
                   f"{lo:.0%}-{hi:.0%})")
    parts.append(f"{steps / max(seconds, 1e-9):.1f} steps/s")
    parts.append(f"{seconds:.0f} s")
    return " | ".join(parts)

  def update(self, done: int, successes: int, steps: int) -> None:
    line = self.line(done, successes, steps)
    if self._tty:
      self.stream.write("\r" + line.ljust(self._width))
      self._width = len(line)
    else:
      self.stream.write(line + "\n")
    self.stream.flush()

  def close(self) -> None:
    if self._tty and self._width:
      self.stream.write("\n")
      self.stream.flush()


def succeeded(info: Mapping[str, Any], key: str) -> bool:
  """Whether ``info[key]`` (e.g. ``"success"``, ``"is_success"``) says success; False
  when the key is absent."""
  value = info.get(key)
  return value is not None and bool(np.asarray(value).any())
