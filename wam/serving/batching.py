"""Acts of different sessions that wait for the model thread together run as one batch.

The server's event loop hands each checked ``act`` to ``ActBatcher.submit`` and then
queues one ``run_pending`` call on the model thread. That call takes up to
``max_batch`` waiting acts, of distinct sessions, oldest first, and runs them in one
jitted call (``Policy.act_batch``); a lone act runs through ``Policy.act`` as before.
Acts that arrived while the previous call ran are what the next one finds, so a batch
forms only when requests are already waiting: a lone client never waits for company.

Batches are padded to a power of two (at most ``max_batch``), so the model compiles
once per size, not once per count. Two acts of one session never share a batch: the
second must see the session the first one returns (a connection answers its requests
one at a time, so the server never queues two anyway). Observations are checked before
``submit``, so a bad one is refused on its own and never reaches a batch.

A batched chunk equals what ``Policy.act`` gives up to float rounding
(``wam.policy.BATCH_TOLERANCE``); with ``max_batch`` 1 every act runs alone, bit for
bit as before batching.
"""

from __future__ import annotations

import collections
import concurrent.futures
import threading
import time
from collections.abc import Hashable
from typing import Any, NamedTuple

import numpy as np


def padded_size(n: int, max_batch: int) -> int:
  """The batch ``n`` acts are padded to: the next power of two, at most ``max_batch``."""
  return min(1 << (n - 1).bit_length(), max_batch)


def batch_sizes(max_batch: int) -> list[int]:
  """Every padded size a server with ``max_batch`` compiles (warm-up), 1 excluded."""
  return sorted({padded_size(n, max_batch) for n in range(2, max_batch + 1)})


class ActResult(NamedTuple):
  """What the model thread returns for one act."""
  session: Any          # the next session
  actions: np.ndarray   # f32 [chunk, A]
  model_s: float        # the model call that served it (the whole batch's)
  batch_size: int       # acts in that call (padding excluded)


class BatchStats:
  """How many acts each model call served: count, mean and a histogram."""

  def __init__(self, max_batch: int):
    self.max_batch = max_batch
    self.sizes: collections.Counter = collections.Counter()
    self._lock = threading.Lock()   # the model thread adds, the event loop reads

  def add(self, size: int) -> None:
    with self._lock:
      self.sizes[size] += 1

  def summary(self) -> dict[str, Any]:
    """``{max_batch, batches, acts, mean, histogram: {"size": batches}}``; string keys:
    the protocol's maps have string keys only."""
    with self._lock:
      sizes = dict(self.sizes)
    batches = sum(sizes.values())
    acts = sum(size * count for size, count in sizes.items())
    return {"max_batch": self.max_batch, "batches": batches, "acts": acts,
            "mean": acts / batches if batches else float("nan"),
            "histogram": {str(size): sizes[size] for size in sorted(sizes)}}


class _Pending(NamedTuple):
  key: Hashable
  session: Any
  observation: Any
  future: concurrent.futures.Future


class ActBatcher:
  """Queues checked acts and runs the waiting ones in batches (module docstring)."""

  def __init__(self, policy, max_batch: int):
    if not isinstance(max_batch, int) or max_batch < 1:
      raise ValueError(f"max_batch must be a positive integer, got {max_batch!r}.")
    self.policy = policy
    self.max_batch = max_batch
    self.stats = BatchStats(max_batch)
    self._pending: collections.deque[_Pending] = collections.deque()
    self._lock = threading.Lock()   # the event loop submits, the model thread takes

  @property
  def waiting(self) -> int:
    """Acts submitted and not yet taken by a model call."""
    with self._lock:
      return len(self._pending)

  def submit(self, key: Hashable, session: Any, observation: Any
             ) -> concurrent.futures.Future:
    """Queues one act of session ``key``; its future resolves to an ``ActResult``. The
    caller then runs ``run_pending`` on the model thread, once per ``submit``."""
    future: concurrent.futures.Future = concurrent.futures.Future()
    with self._lock:
      self._pending.append(_Pending(key, session, observation, future))
    return future

  def _take(self) -> list[_Pending]:
    """Up to ``max_batch`` waiting acts of distinct sessions, oldest first; the rest
    keep their order. Acts whose waiter gave up (cancelled) are dropped."""
    batch, keys, kept = [], set(), collections.deque()
    with self._lock:
      while self._pending and len(batch) < self.max_batch:
        item = self._pending.popleft()
        if item.key in keys:
          kept.append(item)
        elif item.future.set_running_or_notify_cancel():
          batch.append(item)
          keys.add(item.key)
      kept.extend(self._pending)
      self._pending = kept
    return batch

  def run_pending(self) -> None:
    """Runs one batch of the waiting acts (none left: returns). Model thread only;
    never raises: an error is set on the futures of its batch."""
    batch = self._take()
    if not batch:   # an earlier call took them
      return
    try:
      start = time.perf_counter()
      if len(batch) == 1:   # bit for bit what Policy.act gives
        results = [self.policy.act(batch[0].session, batch[0].observation)]
      else:
        results = self.policy.act_batch([b.session for b in batch],
                                        [b.observation for b in batch],
                                        size=padded_size(len(batch), self.max_batch))
      model_s = time.perf_counter() - start
    except BaseException as e:  # pylint: disable=broad-except  (answered per request)
      for item in batch:   # each waiter gets the error, none waits forever
        item.future.set_exception(e)
      if not isinstance(e, Exception):
        raise
      return
    self.stats.add(len(batch))
    for item, (session, actions) in zip(batch, results):
      item.future.set_result(ActResult(session, actions, model_s, len(batch)))
