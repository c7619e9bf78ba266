"""Running a ``PolicyServer`` from synchronous code: until a signal, or in a thread.

``serve_until_signalled`` is what ``python -m experiments.serve`` runs;
``BackgroundServer`` serves on its own event loop in a daemon thread (tests, benchmarks).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from typing import Callable, Optional

from wam.policy import Policy
from wam.serving.server import PolicyServer

log = logging.getLogger(__name__)


def serve_until_signalled(policy: Policy, *, host: str = "127.0.0.1", port: int = 8765,
                          on_ready: Optional[Callable[[str], None]] = None, **kwargs) -> None:
  """Serves ``policy`` in this thread until SIGINT or SIGTERM, then stops cleanly.

  Args:
    on_ready: called with the URL once the server accepts connections.
    kwargs: more ``PolicyServer`` options.
  """
  async def main():
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
      loop.add_signal_handler(sig, stop.set)
    async with PolicyServer(policy, host=host, port=port, **kwargs) as server:
      if on_ready is not None:
        on_ready(server.url)
      await stop.wait()
      log.info("Signal received: shutting down.")
  asyncio.run(main())


class BackgroundServer:
  """A ``PolicyServer`` on its own event loop in a daemon thread (tests, benchmarks).

  ``with BackgroundServer(policy) as server: PolicyClient(server.url)...``; leaving the
  block stops the server cleanly.
  """

  def __init__(self, policy: Policy, **kwargs):
    self.server = PolicyServer(policy, **kwargs)
    self._loop = asyncio.new_event_loop()
    self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                    name="policy-server")
    self.url: Optional[str] = None

  def start(self) -> str:
    self._thread.start()
    self.url = asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result()
    return self.url

  def stop(self) -> None:
    if self._thread.is_alive():
      asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result()
      self._loop.call_soon_threadsafe(self._loop.stop)
      self._thread.join()
    self._loop.close()

  def __enter__(self) -> "BackgroundServer":
    self.start()
    return self

  def __exit__(self, *exc) -> None:
    self.stop()
