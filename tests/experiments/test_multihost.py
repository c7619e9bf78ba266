"""Two processes on localhost (gloo collectives, 2 CPU devices each) train exactly like one
process with 4 devices: same losses, same parameters, checkpoints from both processes;
SIGTERM on one of them stops both at the same step, and resuming continues exactly."""

import json
import os
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from flax import nnx

from wam import checkpoint, trainer
from wam.data import builder, synthetic
from wam.data.layout import Layout
from wam.data.schema import EpisodeSpec

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "tests", "experiments", "multihost_config.py")
SPEC = EpisodeSpec(
    embodiment="toy_arm", source="sim", cameras=("front",), image_size=(16, 16),
    joints=Layout.of([("arm_joints", 3)]), proprio=Layout.of([("toy_proprio", 2)]),
    action=Layout.of([("arm_joints", 3)]), fps=10.0)
# Three JAX processes compile a train step and the evaluation: ~3 CPU minutes.
pytestmark = pytest.mark.slow


def _train(workdir, dataset, stats, devices: int, process=None, extra=(),
           module="experiments.train"):
  argv = [sys.executable, "-m", module, f"--config={CONFIG}",
          f"--config.data.datasets.robot.path={dataset}",
          f"--config.data.statistics_dir={stats}", f"--workdir={workdir}", *extra]
  if process is not None:
    port, index = process
    argv += [f"--coordinator_address=localhost:{port}", "--num_processes=2",
             f"--process_id={index}"]
  env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_NUM_CPU_DEVICES=str(devices),
             JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo", PYTHONPATH=ROOT)
  return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _wait(procs, timeout: float = 600) -> list[str]:
  """The outputs of ``procs``, each of which must exit 0 within ``timeout`` seconds in
  all; all are killed on a failure (a deadlocked host would outlive the test)."""
  deadline = time.monotonic() + timeout
  outs = []
  try:
    for i, p in enumerate(procs):
      try:
        out, _ = p.communicate(timeout=max(deadline - time.monotonic(), 1))
      except subprocess.TimeoutExpired as e:
        raise AssertionError(f"Process {i} of {len(procs)} did not finish in {timeout} s "
                             "(hosts waiting for each other?).") from e
      assert p.returncode == 0, out[-4000:]
      outs.append(out)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.communicate()
  return outs


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  root = tmp_path_factory.mktemp("multihost_data")
  dataset = builder.write_dataset(
      "toy_multihost", SPEC,
      {"train": lambda: synthetic.synthetic_episodes(SPEC, 6, 16),
       "val": lambda: synthetic.synthetic_episodes(SPEC, 2, 16, seed=7)}, str(root / "data"))
  return dataset, root / "stats"


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
  root = tmp_path_factory.mktemp("multihost")
  port = _free_port()
  procs = [_train(root / "one", *data, 4)]
  procs += [_train(root / "two", *data, 2, (port, i)) for i in range(2)]
  _wait(procs)
  return root / "one", root / "two"


def _losses(workdir):
  lines = [json.loads(l) for l in open(workdir / "metrics.jsonl")]
  return {l["step"]: l["loss"] for l in lines if "loss" in l}


def test_two_processes_log_the_losses_of_one(runs):
  one, two = runs
  assert sorted(_losses(two)) == [1, 2, 3]
  for step, loss in _losses(one).items():
    assert _losses(two)[step] == pytest.approx(loss, rel=1e-5, abs=1e-6), step
  for workdir in runs:
    result = json.load(open(workdir / "result.json"))
    assert result["step"] == 3 and np.isfinite(result["metrics"]["eval/joint_mae"])


def test_two_processes_reach_the_parameters_of_one(runs):
  one, two = runs
  assert sorted(os.listdir(two / "checkpoints")) == sorted(os.listdir(one / "checkpoints"))
  (m1, _), (m2, _) = trainer.load(str(one)), trainer.load(str(two))
  a = jax.tree.leaves(nnx.state(m1, nnx.Param))
  b = jax.tree.leaves(nnx.state(m2, nnx.Param))
  diffs = [float(np.abs(np.asarray(x) - np.asarray(y)).max()) for x, y in zip(a, b)]
  assert len(a) == len(b) > 10 and max(diffs) < 1e-5, max(diffs)


def _params(workdir):
  model, _ = trainer.load(str(workdir))
  return [np.asarray(p) for p in jax.tree.leaves(nnx.state(model, nnx.Param))]


def test_sigterm_on_one_host_stops_every_host_at_one_step_and_resumes_exactly(data, tmp_path):
  """Process 1 alone gets SIGTERM during step 1; the hosts compare flags every 2 steps,
  so both stop after step 2 and save it (a host stopping alone would deadlock the
  other's next step or the collective save). Resumed to step 4, the run equals an
  uninterrupted one."""
  run = ["--config.num_steps=4", "--config.checkpoint_every=100", "--config.eval.every=4",
         "--config.preemption_sync_every=2"]
  reference, two = tmp_path / "reference", tmp_path / "two"
  port = _free_port()
  procs = [_train(reference, *data, 4, extra=run)]
  procs += [_train(two, *data, 2, (port, i), module="tests.experiments.preempt_one_host",
                   extra=run + ["--preempt_process=1", "--preempt_step=1"])
            for i in range(2)]
  outs = _wait(procs)
  assert "SIGTERM received" in outs[2] and "SIGTERM received" not in outs[1]
  for out in outs[1:]:   # both hosts, the one without a signal included
    assert "SIGTERM: saved step 2;" in out, out[-4000:]
  ckpt = checkpoint.Checkpointer(str(two / "checkpoints"), read_only=True)
  assert ckpt.all_steps() == [2]
  ckpt.close()
  assert not (two / "result.json").exists()   # not finished

  port = _free_port()
  _wait([_train(two, *data, 2, (port, i), extra=run) for i in range(2)])
  assert json.loads((two / "result.json").read_text())["step"] == 4
  expected, got = _losses(reference), _losses(two)
  assert sorted(got) == sorted(expected) == [1, 2, 3, 4]
  for step, loss in expected.items():
    assert got[step] == pytest.approx(loss, rel=1e-5, abs=1e-6), step
  diffs = [float(np.abs(a - b).max()) for a, b in zip(_params(reference), _params(two))]
  assert len(diffs) > 10 and max(diffs) < 1e-5, max(diffs)
