"""SIGTERM (preemption) during training: every host stops at the same step.

The trainer saves a checkpoint at the agreed step and exits cleanly; running the same
command again resumes from it.
"""

from __future__ import annotations

import logging
import signal

import jax
import numpy as np
from jax.experimental import multihost_utils


class PreemptionFlag:
  """SIGTERM (preemption): the loop saves a checkpoint and exits cleanly.

  The signal reaches each process on its own, possibly at different steps, while the
  checkpoint save (and every train step) is collective: a host stopping alone would
  leave the others waiting forever. With several processes, ``agreed`` therefore gathers
  every host's flag each ``sync_every`` steps and all of them stop at the same step.
  """

  def __init__(self, sync_every: int = 1):
    if sync_every < 1:
      raise ValueError(f"config.preemption_sync_every must be >= 1, got {sync_every}.")
    self.received = False   # this process got SIGTERM
    self.stopped = False    # the hosts agreed to stop (some host got SIGTERM)
    self._sync_every = sync_every
    self._previous = None
    try:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # not the main thread (e.g. some notebook kernels)
      self._previous = None

  def _handle(self, signum, frame):  # pylint: disable=unused-argument
    logging.warning("SIGTERM received: saving a checkpoint at the next agreed step.")
    self.received = True

  def agreed(self, step: int) -> bool:
    """Whether to stop after ``step``; every process must call it at every step."""
    if jax.process_count() == 1:   # nothing to agree on: no collective
      self.stopped = self.received
    elif step % self._sync_every == 0:
      flags = multihost_utils.process_allgather(np.int32(self.received))
      self.stopped = bool(np.any(flags))
    return self.stopped

  def restore(self) -> None:
    """Puts back the SIGTERM handler from before."""
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
