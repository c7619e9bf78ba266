"""Two processes on localhost (gloo collectives, 2 CPU devices each) train exactly like one
process with 4 devices: same losses, same parameters, checkpoints from both processes."""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx

from wam import trainer
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


def _train(workdir, dataset, stats, devices: int, process=None):
  argv = [sys.executable, "-m", "experiments.train", f"--config={CONFIG}",
          f"--config.data.datasets.robot.path={dataset}",
          f"--config.data.statistics_dir={stats}", f"--workdir={workdir}"]
  if process is not None:
    port, index = process
    argv += [f"--coordinator_address=localhost:{port}", "--num_processes=2",
             f"--process_id={index}"]
  env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_NUM_CPU_DEVICES=str(devices),
             JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo", PYTHONPATH=ROOT)
  return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp("multihost")
  dataset = builder.write_dataset(
      "toy_multihost", SPEC,
      {"train": lambda: synthetic.synthetic_episodes(SPEC, 6, 16),
       "val": lambda: synthetic.synthetic_episodes(SPEC, 2, 16, seed=7)}, str(root / "data"))
  with socket.socket() as s:
    s.bind(("localhost", 0))
    port = s.getsockname()[1]
  stats = root / "stats"
  procs = [_train(root / "one", dataset, stats, 4)]
  procs += [_train(root / "two", dataset, stats, 2, (port, i)) for i in range(2)]
  for p in procs:
    out, _ = p.communicate(timeout=540)
    assert p.returncode == 0, out[-4000:]
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
