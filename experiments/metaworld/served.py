"""A trained run served by ``experiments.serve`` for as long as a ``with`` block lasts."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
from typing import Iterator, Sequence

READY = re.compile(r"Serving .* at (ws://\S+)")


def wait_for_url(process: subprocess.Popen, log_path: str, timeout: float,
                 poll: float = 0.5) -> str:
  """The URL the server prints when it is ready (its output goes to ``log_path``).

  Raises:
    RuntimeError: the server exited first (the message holds its log's tail).
    TimeoutError: not ready within ``timeout`` seconds.
  """
  deadline = time.time() + timeout
  while True:
    with open(log_path, errors="replace") as f:
      text = f.read()
    found = READY.search(text)
    if found:
      return found.group(1)
    if process.poll() is not None:
      tail = "\n".join(text.splitlines()[-15:])
      raise RuntimeError(f"The policy server exited ({process.returncode}) before serving; "
                         f"{log_path} ends with:\n{tail}")
    if time.time() > deadline:
      raise TimeoutError(f"The policy server was not ready in {timeout:.0f} s; see {log_path}.")
    time.sleep(poll)


@contextlib.contextmanager
def served(command: Sequence[str], log_path: str, *, cwd: str, timeout: float = 3600.0
           ) -> Iterator[str]:
  """Runs the server ``command``, yields its URL once ready, stops it (SIGTERM) after.

  The timeout is long because loading and compiling on a busy 2-core CPU is slow.
  """
  os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
  with open(log_path, "w") as log:
    process = subprocess.Popen(list(command), stdout=log, stderr=subprocess.STDOUT, cwd=cwd)
  try:
    yield wait_for_url(process, log_path, timeout)
  finally:
    if process.poll() is None:
      process.terminate()
      try:
        process.wait(timeout=60)
      except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
