"""``experiments.train`` in which one process sends itself SIGTERM mid-run (the
multi-host preemption test, tests/experiments/test_multihost_preemption.py).

  python -m tests.experiments.preempt_one_host --preempt_process=1 --preempt_step=1 \
      [experiments.train flags]

Process ``--preempt_process`` gets a real SIGTERM while it prepares the batch of step
``--preempt_step``; the other processes get none and must learn of it from the trainer.
"""

import os
import signal

import jax
from absl import app, flags

from experiments import train
from wam import sharding

_PROCESS = flags.DEFINE_integer("preempt_process", 1, "The process that gets SIGTERM.")
_STEP = flags.DEFINE_integer("preempt_step", 1, "During the batch of this step (from 1).")


def _preempt_once(global_batch):
  calls = []

  def wrapped(local, batch_sharding):
    calls.append(1)
    if len(calls) == _STEP.value and jax.process_index() == _PROCESS.value:
      os.kill(os.getpid(), signal.SIGTERM)
    return global_batch(local, batch_sharding)
  return wrapped


def main(argv):
  sharding.global_batch = _preempt_once(sharding.global_batch)
  train.main(argv)


if __name__ == "__main__":
  app.run(main)
