"""wam.preemption: SIGTERM stops every host at the same step."""

import os
import signal

import jax
import numpy as np
import pytest

from wam import preemption


def test_flag_is_local_alone_and_agreed_every_n_steps_with_hosts(monkeypatch):
  """One process: its own SIGTERM flag, no collective. Several: the flags of all hosts,
  gathered only every ``preemption_sync_every`` steps, so that every host stops at the
  same step (tests/experiments/test_multihost.py runs it on two real processes)."""
  gathered = []

  def fake_allgather(flag):
    gathered.append(int(flag))
    return np.array([int(flag), 0])   # the other host got no signal
  monkeypatch.setattr(preemption.multihost_utils, "process_allgather", fake_allgather)
  flag = preemption.PreemptionFlag(sync_every=3)
  try:
    assert not flag.agreed(1)
    os.kill(os.getpid(), signal.SIGTERM)
    assert flag.received and flag.agreed(2) and gathered == []
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    flag.stopped = False
    assert [flag.agreed(step) for step in (4, 5, 6)] == [False, False, True]
    assert gathered == [1]   # step 6 only
  finally:
    flag.restore()
  assert signal.getsignal(signal.SIGTERM) != flag._handle  # pylint: disable=protected-access
  with pytest.raises(ValueError, match="preemption_sync_every"):
    preemption.PreemptionFlag(sync_every=0)
