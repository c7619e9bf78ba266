r"""Trains the world action model.

  python -m experiments.train --config=experiments/configs/wam.py:runlocal \
      --workdir=workdir/wam

Re-running the same command resumes from the latest checkpoint in ``workdir``. When the
config names no datasets, the ``dojo_robot`` dataset of ``config.dojo`` is built first
(collected with the task's scripted expert; also resumable). A finished run writes
``workdir/result.json`` (final step and last metrics; the sweep runner reads it). The
console shows progress lines (with an ETA) and warnings; every log record goes to
``workdir/logs/train.log`` (``train.<process_id>.log`` on other hosts; ``--console=all``
shows everything).

Multi-host: run the same command once per process with ``--coordinator_address=HOST:PORT
--num_processes=N --process_id=I`` (GPU clusters, CPU tests), or on a TPU VM with no
flags (``jax.distributed.initialize()`` finds the pod itself; also ``config.distributed``).
"""

from __future__ import annotations

import glob
import os

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from experiments.lib import console
from wam.files import atomic_write_json

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Work directory (resumed if it exists).")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "HOST:PORT of process 0 for jax.distributed (multi-host).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in a multi-host run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index in [0, N).")
_CONSOLE = flags.DEFINE_enum("console", "progress", console.MODES, console.FLAG_HELP)
flags.mark_flags_as_required(["config", "workdir"])

RESULT_FILE = "result.json"


def _on_tpu_vm() -> bool:
  """Whether this host has TPU chips: PCI devices of Google's vendor id (what libtpu looks
  for), checked without starting a JAX backend (``jax.distributed.initialize`` must come
  before any)."""
  for path in glob.glob("/sys/bus/pci/devices/*/vendor"):
    try:
      with open(path) as f:
        if f.read().strip() == "0x1ae0":
          return True
    except OSError:
      continue
  return False


def initialize_distributed(config) -> None:
  """``jax.distributed.initialize`` from the flags, or automatically on TPU / when
  ``config.distributed``; a single process otherwise."""
  given = [_COORDINATOR.value is not None, _NUM_PROCESSES.value is not None,
           _PROCESS_ID.value is not None]
  if any(given) and not all(given):
    raise app.UsageError("Multi-host needs all of --coordinator_address, --num_processes "
                         "and --process_id.")
  if all(given):
    jax.distributed.initialize(_COORDINATOR.value, num_processes=_NUM_PROCESSES.value,
                               process_id=_PROCESS_ID.value)
  elif config.get("distributed", False) or _on_tpu_vm():
    jax.distributed.initialize()
  else:
    return
  logging.info("Process %d of %d (%d local, %d global devices).", jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())


def write_result(workdir: str, step: int, metrics: dict, num_steps: int) -> str:
  """Writes ``result.json`` atomically (a reader never sees half a file)."""
  path = os.path.join(workdir, RESULT_FILE)
  atomic_write_json(path, {"step": int(step), "num_steps": int(num_steps),
                           "metrics": {k: float(v) for k, v in metrics.items()}}, indent=1)
  return path


def main(argv):
  del argv
  # Hosts other than 0 get their own file: a shared workdir must not interleave them.
  console.configure(_WORKDIR.value, _CONSOLE.value,
                    f"train.{_PROCESS_ID.value}" if _PROCESS_ID.value else "train")
  from experiments.lib import train as train_lib  # pylint: disable=import-outside-toplevel
  from wam import trainer  # pylint: disable=import-outside-toplevel
  initialize_distributed(_CONFIG.value)
  config = train_lib.trainer_config(_CONFIG.value, _WORKDIR.value)
  config.distributed = False  # initialised above, once
  result = trainer.train_and_evaluate(config, _WORKDIR.value)
  logging.info("Finished at step %d: %s", result.step, result.metrics)
  shown = ", ".join(f"{k} {result.metrics[k]:.4g}" for k in ("loss", "eval/loss")
                    if k in result.metrics)
  logging.info("[train] finished at step %d: %s (every metric in metrics.jsonl)",
               result.step, shown)
  # Only a run that reached its last step is finished (SIGTERM returns early).
  if result.step >= config.num_steps and jax.process_index() == 0:
    write_result(_WORKDIR.value, result.step, result.metrics, config.num_steps)
  if jax.process_count() > 1:
    jax.distributed.shutdown()


if __name__ == "__main__":
  app.run(main)
