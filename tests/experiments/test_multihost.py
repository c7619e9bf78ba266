"""Two processes on localhost (gloo collectives, 2 CPU devices each) train exactly like one
process with 4 devices: same losses, same parameters, checkpoints from both processes;
SIGTERM on one of them stops both at the same step, and resuming continues exactly."""

import json
import os

import jax
import numpy as np
import pytest
from flax import nnx

from benchmarks import toy_runs
from wam import checkpoint, loading

# Three JAX processes compile a train step and the evaluation: ~3 CPU minutes.
pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def data(tmp_path_factory):
  return toy_runs.write_dataset(str(tmp_path_factory.mktemp("multihost_data")))


# Four steps, evaluated at the last; the SIGTERM test changes only when to save.
RUN = ("--config.num_steps=4", "--config.eval.every=4")
# Without the session's compilation cache (tests/conftest.py): only process 0 writes
# entries, so on a relaunch process 0 reads its program in a second while process 1
# compiles for a minute, and the first collective's 30 s gloo rendezvous times out.
NO_CACHE = {"JAX_ENABLE_COMPILATION_CACHE": "false"}


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
  """An uninterrupted run as one process with 4 devices, and as two with 2 each."""
  root = tmp_path_factory.mktemp("multihost")
  port = toy_runs.free_port()
  procs = [toy_runs.launch_train(root / "one", *data, 4, extra=RUN, env=NO_CACHE)]
  procs += [toy_runs.launch_train(root / "two", *data, 2, (port, i), extra=RUN, env=NO_CACHE)
            for i in range(2)]
  toy_runs.wait_all(procs)
  return root / "one", root / "two"


def _losses(workdir):
  lines = [json.loads(l) for l in open(workdir / "metrics.jsonl")]
  return {l["step"]: l["loss"] for l in lines if "loss" in l}


def test_two_processes_log_the_losses_of_one(runs):
  one, two = runs
  assert sorted(_losses(two)) == [1, 2, 3, 4]
  for step, loss in _losses(one).items():
    assert _losses(two)[step] == pytest.approx(loss, rel=1e-5, abs=1e-6), step
  for workdir in runs:
    result = json.load(open(workdir / "result.json"))
    assert result["step"] == 4 and np.isfinite(result["metrics"]["eval/joint_mae"])


def test_two_processes_reach_the_parameters_of_one(runs):
  one, two = runs
  assert sorted(os.listdir(two / "checkpoints")) == sorted(os.listdir(one / "checkpoints"))
  (m1, _), (m2, _) = loading.load(str(one)), loading.load(str(two))
  a = jax.tree.leaves(nnx.state(m1, nnx.Param))
  b = jax.tree.leaves(nnx.state(m2, nnx.Param))
  diffs = [float(np.abs(np.asarray(x) - np.asarray(y)).max()) for x, y in zip(a, b)]
  assert len(a) == len(b) > 10 and max(diffs) < 1e-5, max(diffs)


def _params(workdir):
  model, _ = loading.load(str(workdir))
  return [np.asarray(p) for p in jax.tree.leaves(nnx.state(model, nnx.Param))]


def test_sigterm_on_one_host_stops_every_host_at_one_step_and_resumes_exactly(
    data, runs, tmp_path):
  """Process 1 alone gets SIGTERM during step 1; the hosts compare flags every 2 steps,
  so both stop after step 2 and save it (a host stopping alone would deadlock the
  other's next step or the collective save). Resumed to step 4, the run equals the
  uninterrupted one of the other tests."""
  run = [*RUN, "--config.checkpoint_every=100", "--config.preemption_sync_every=2"]
  reference, two = runs[0], tmp_path / "two"
  port = toy_runs.free_port()
  outs = toy_runs.wait_all([
      toy_runs.launch_train(two, *data, 2, (port, i), module="tests.experiments.preempt_one_host",
                            extra=run + ["--preempt_process=1", "--preempt_step=1"],
                            env=NO_CACHE)
      for i in range(2)])
  assert "SIGTERM received" in outs[1] and "SIGTERM received" not in outs[0]
  for out in outs:   # both hosts, the one without a signal included
    assert "SIGTERM: saved step 2;" in out, out[-4000:]
  ckpt = checkpoint.Checkpointer(str(two / "checkpoints"), read_only=True)
  assert ckpt.all_steps() == [2]
  ckpt.close()
  assert not (two / "result.json").exists()   # not finished

  port = toy_runs.free_port()
  toy_runs.wait_all([toy_runs.launch_train(two, *data, 2, (port, i), extra=run, env=NO_CACHE)
                     for i in range(2)])
  assert json.loads((two / "result.json").read_text())["step"] == 4
  expected, got = _losses(reference), _losses(two)
  assert sorted(got) == sorted(expected) == [1, 2, 3, 4]
  for step, loss in expected.items():
    assert got[step] == pytest.approx(loss, rel=1e-5, abs=1e-6), step
  diffs = [float(np.abs(a - b).max()) for a, b in zip(_params(reference), _params(two))]
  assert len(diffs) > 10 and max(diffs) < 1e-5, max(diffs)
