"""Toy training runs as real processes on this machine, and toy run directories.

Shared by the multi-host tests (tests/experiments/test_multihost.py), the serving tests
and the reliability benchmark (benchmarks/reliability.py):

- ``write_dataset``: a tiny synthetic episode dataset (6 train, 2 val episodes);
- ``launch_train``: ``python -m experiments.train`` on it with the toy config
  ``tests/experiments/multihost_config.py``, as one process or as process ``i`` of
  two (gloo collectives on CPU); ``wait_all`` waits for such processes;
- ``write_policy_run``: a model written as a training run would (for the policy server).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import Mapping, Optional, Sequence

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A tiny model on a (data=2, fsdp=2) mesh, 3 steps; flags override the rest.
CONFIG = os.path.join(ROOT, "tests", "experiments", "multihost_config.py")
# One process on one device: the mesh of the toy config, collapsed.
SINGLE_DEVICE = ("--config.mesh.data=-1", "--config.mesh.fsdp=1")


def episode_spec():
  """The toy robot: one 16x16 camera, 3 joints, 2 proprio values, 3 actions."""
  from wam.data.layout import Layout  # pylint: disable=import-outside-toplevel
  from wam.data.schema import EpisodeSpec  # pylint: disable=import-outside-toplevel
  return EpisodeSpec(
      embodiment="toy_arm", source="sim", cameras=("front",), image_size=(16, 16),
      joints=Layout.of([("arm_joints", 3)]), proprio=Layout.of([("toy_proprio", 2)]),
      action=Layout.of([("arm_joints", 3)]), fps=10.0)


def write_dataset(root: str, name: str = "toy_multihost") -> tuple[str, str]:
  """Writes the toy dataset under ``root``; returns its path and a statistics folder."""
  from wam.data import builder, synthetic  # pylint: disable=import-outside-toplevel
  spec = episode_spec()
  dataset = builder.write_dataset(
      name, spec,
      {"train": lambda: synthetic.synthetic_episodes(spec, 6, 16),
       "val": lambda: synthetic.synthetic_episodes(spec, 2, 16, seed=7)},
      os.path.join(root, "data"))
  return dataset, os.path.join(root, "stats")


def free_port() -> int:
  """A TCP port free on localhost now (for the coordinator of a multi-process run)."""
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def train_argv(workdir: str, dataset: str, stats: str, process: Optional[tuple[int, int]] = None,
               extra: Sequence[str] = (), module: str = "experiments.train") -> list[str]:
  """The command line of one training process (``process``: (coordinator port, index))."""
  argv = [sys.executable, "-m", module, f"--config={CONFIG}",
          f"--config.data.datasets.robot.path={dataset}",
          f"--config.data.statistics_dir={stats}", f"--workdir={workdir}", *extra]
  if process is not None:
    port, index = process
    argv += [f"--coordinator_address=localhost:{port}", "--num_processes=2",
             f"--process_id={index}"]
  return argv


def train_env(devices: int) -> dict[str, str]:
  """The environment of a training process: ``devices`` CPU devices, gloo collectives."""
  return dict(os.environ, JAX_PLATFORMS="cpu", JAX_NUM_CPU_DEVICES=str(devices),
              JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo", PYTHONPATH=ROOT)


def launch_train(workdir, dataset, stats, devices: int, process=None, extra=(),
                 module: str = "experiments.train", log_path: Optional[str] = None,
                 env: Optional[Mapping[str, str]] = None) -> subprocess.Popen:
  """Starts one training process; its output (stdout and stderr) goes to a pipe, or
  appended to ``log_path`` (a pipe that nobody reads while waiting on progress fills
  up and stalls the process). ``env``: more environment variables."""
  argv = train_argv(str(workdir), str(dataset), str(stats), process, extra, module)
  environment = {**train_env(devices), **(env or {})}
  if log_path is None:
    return subprocess.Popen(argv, cwd=ROOT, env=environment, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
  with open(log_path, "a", encoding="utf-8") as log:   # the child keeps its own copy
    proc = subprocess.Popen(argv, cwd=ROOT, env=environment, stdout=log,
                            stderr=subprocess.STDOUT, text=True)
  proc.log_path = log_path  # type: ignore[attr-defined]  (read back by wait_all)
  return proc


def _output(proc: subprocess.Popen, piped: Optional[str]) -> str:
  path = getattr(proc, "log_path", None)
  if path is None:
    return piped or ""
  with open(path, encoding="utf-8", errors="replace") as f:
    return f.read()


def wait_all(procs: Sequence[subprocess.Popen], timeout: float = 600) -> list[str]:
  """The outputs of ``procs``, each of which must exit 0 within ``timeout`` seconds in
  all; all are killed on a failure (a deadlocked host would outlive the caller).

  Raises:
    RuntimeError: a process failed or did not finish in time.
  """
  deadline = time.monotonic() + timeout
  outs = []
  try:
    for i, p in enumerate(procs):
      try:
        out, _ = p.communicate(timeout=max(deadline - time.monotonic(), 1))
      except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"Process {i} of {len(procs)} did not finish in {timeout} s "
                           "(hosts waiting for each other?).") from e
      out = _output(p, out)
      if p.returncode != 0:
        raise RuntimeError(f"Process {i} of {len(procs)} exited with {p.returncode}:\n"
                           + out[-4000:])
      outs.append(out)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.communicate()
  return outs


def write_policy_run(model, metadata, workdir: str) -> None:
  """Writes ``model`` as a training run would (orbax checkpoint + run metadata), for
  ``Policy.from_workdir`` and ``python -m experiments.serve``."""
  import jax  # pylint: disable=import-outside-toplevel
  from wam import checkpoint, optimizer, run_metadata, train_state, trainer  # pylint: disable=import-outside-toplevel
  config = trainer.default_config()
  config.model = model.config
  config.data.update(cameras=tuple(metadata.config["data"]["cameras"]),
                     image_size=tuple(metadata.config["data"]["image_size"]))
  d = model.dims
  example = {"frames": np.zeros((1, d.num_frames, d.num_cameras) + tuple(d.image_size) + (3,),
                                np.uint8),
             "joints": np.zeros((1, d.num_frames, d.joints), np.float32),
             "proprio": np.zeros((1, d.num_frames, d.proprio), np.float32),
             "actions": np.zeros((1, d.num_frames, d.action_chunk, d.action), np.float32),
             "instruction": np.zeros((1, d.instruction_length), np.int32)}
  ckpt = os.path.join(workdir, "checkpoints")
  state = train_state.initial_state(
      model, optimizer.make_optimizer(config.optimizer, config.num_steps), jax.random.key(0))
  with checkpoint.Checkpointer(ckpt, async_save=False) as saver:
    if not saver.save(7, state, force=True):
      raise RuntimeError(f"{ckpt} already holds step 7.")
  run_metadata.write_run_metadata(ckpt, config_json=config.to_json_best_effort(),
                                  statistics=metadata.statistics, example_batch=example,
                                  extra=metadata.extra)
