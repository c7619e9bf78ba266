"""wam.checkpoint (and its compatibility check, fingerprints and data state): round trips,
incompatible models, kill -9 mid-save, corruption."""

import glob
import logging
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from wam import checkpoint
from wam.checkpoint import Checkpointer
from wam.checkpoint_compatibility import IncompatibleCheckpointError
from wam.checkpoint_corruption import CorruptCheckpointError
from tests.wam.checkpoint_fixtures import garble_largest_data_file, largest_data_file

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "checkpoint_kill_helper.py")


def _mesh() -> Mesh:
  return Mesh(np.array(jax.devices()), ("data",))


def _train_state(seed: int = 0, in_features: int = 2) -> dict:
  model = nnx.Linear(in_features, 3, rngs=nnx.Rngs(seed))
  params = nnx.state(model, nnx.Param)
  return {"params": params, "opt": optax.adamw(1e-3).init(params),
          "key": jax.random.key(seed), "step": 7,
          "nested": {"ema": jnp.full((4,), float(seed), jnp.float32)}}


def _abstract(state_fn, mesh: Mesh):
  """eval_shape of ``state_fn`` with every array sharded over ``mesh`` where it divides."""
  n = mesh.devices.size

  def shard(x):
    if not isinstance(x, jax.ShapeDtypeStruct):
      return x
    spec = P("data") if x.ndim and x.shape[0] % n == 0 and n > 1 else P()
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=NamedSharding(mesh, spec))
  return jax.tree.map(shard, jax.eval_shape(state_fn))


def _assert_trees_equal(a, b):
  la, ta = jax.tree.flatten(a)
  lb, tb = jax.tree.flatten(b)
  assert ta == tb
  for x, y in zip(la, lb):
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      x, y = jax.random.key_data(x), jax.random.key_data(y)
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_round_trip_nnx_optax_key_and_data_state(tmp_path):
  mesh = _mesh()
  state = _train_state(seed=1)
  with Checkpointer(str(tmp_path), save_interval_steps=10) as ckpt:
    assert ckpt.latest_step() is None and ckpt.all_steps() == []
    assert not ckpt.should_save(5) and ckpt.should_save(10)
    assert not ckpt.save(5, state)  # not a save step
    assert ckpt.save(10, state, data_state={"epoch": 1, "position": [3, 4]})
    assert ckpt.save(20, state, data_state=b"\x00grain\xff")
    assert ckpt.save(21, state, force=True)
    assert ckpt.all_steps() == [10, 20, 21]

  abstract = _abstract(lambda: _train_state(seed=0), mesh)
  ckpt = Checkpointer(str(tmp_path), save_interval_steps=10)
  step, restored, data_state = ckpt.restore(abstract, step=10)
  assert step == 10 and data_state == {"epoch": 1, "position": [3, 4]}
  assert isinstance(restored["params"], nnx.State)
  assert jax.dtypes.issubdtype(restored["key"].dtype, jax.dtypes.prng_key)
  assert restored["step"] == 7
  _assert_trees_equal(restored, state)
  for got, want in zip(jax.tree.leaves(restored), jax.tree.leaves(abstract)):
    if isinstance(want, jax.ShapeDtypeStruct):
      assert got.sharding == want.sharding
  # The restored key draws the same numbers as the saved one.
  np.testing.assert_array_equal(jax.random.normal(restored["key"], (3,)),
                                jax.random.normal(state["key"], (3,)))
  assert ckpt.restore(abstract, step=20)[2] == b"\x00grain\xff"
  # Sharded arrays save (and verify) as well.
  assert ckpt.save(30, restored)
  _, again, _ = ckpt.restore(abstract, step=30)
  _assert_trees_equal(again, state)
  step, _, data_state = ckpt.restore(abstract)  # latest
  assert (step, data_state) == (30, None)
  with pytest.raises(FileNotFoundError, match="No checkpoint step 15"):
    ckpt.restore(abstract, step=15)
  ckpt.close()


def test_async_save(tmp_path):
  state = {"w": jnp.arange(6.0).reshape(2, 3), "step": 3}
  with Checkpointer(str(tmp_path), save_interval_steps=1, async_save=True) as ckpt:
    assert ckpt.save(3, state, data_state="iterator-state")
    ckpt.wait()
    assert ckpt.all_steps() == [3]
    step, restored, data_state = ckpt.restore(jax.eval_shape(lambda: state))
  assert (step, data_state) == (3, "iterator-state")
  _assert_trees_equal(restored, state)


def test_incompatible_model_lists_mismatched_paths(tmp_path):
  with Checkpointer(str(tmp_path), save_interval_steps=1) as ckpt:
    ckpt.save(1, _train_state())

  def other_model():
    state = _train_state(in_features=4)  # kernel (4, 3) instead of (2, 3)
    del state["nested"]
    state["new_head"] = jnp.zeros((5,), jnp.bfloat16)
    return state
  ckpt = Checkpointer(str(tmp_path), save_interval_steps=1)
  with pytest.raises(IncompatibleCheckpointError) as info:
    ckpt.restore(_abstract(other_model, _mesh()))
  message = str(info.value)
  assert os.path.join(str(tmp_path), "1") in message
  assert "params/kernel/value: checkpoint (2, 3) float32 vs model (4, 3) float32" in message
  assert "opt/0/mu/kernel/value: checkpoint (2, 3) float32 vs model (4, 3) float32" in message
  assert "new_head: model (5,) bfloat16" in message  # missing from the checkpoint
  assert "nested/ema: checkpoint (4,) float32" in message  # not in the model
  assert "params/bias" not in message
  assert isinstance(info.value, ValueError)
  ckpt.close()


def test_max_to_keep_and_never_overwrite(tmp_path):
  with Checkpointer(str(tmp_path), max_to_keep=2, save_interval_steps=1) as ckpt:
    for step in (1, 2, 3):
      assert ckpt.save(step, {"w": jnp.full((2,), float(step))})
    assert ckpt.all_steps() == [2, 3]
    assert sorted(os.listdir(tmp_path)) == ["2", "3"]
    assert not ckpt.save(3, {"w": jnp.full((2,), 99.0)}, force=True)  # exists: kept
    _, restored, _ = ckpt.restore({"w": jax.ShapeDtypeStruct((2,), jnp.float32)})
  np.testing.assert_array_equal(restored["w"], [3.0, 3.0])


def _two_steps(directory: str):
  """Saves steps 1 and 2 of a small state; returns the state function."""
  def state(step):
    return {"w": jax.random.normal(jax.random.key(step), (64, 64)), "step": step}
  with Checkpointer(directory, save_interval_steps=1) as ckpt:
    ckpt.save(1, state(1), data_state={"next": 1})
    ckpt.save(2, state(2), data_state={"next": 2})
  return state


@pytest.mark.parametrize("corruption",
                         ["garbled_data", "truncated_metadata", "missing_data_file"])
def test_corrupt_latest_step_falls_back(tmp_path, corruption, caplog):
  state = _two_steps(str(tmp_path))
  step_dir = os.path.join(str(tmp_path), "2")
  if corruption == "garbled_data":  # orbax itself restores garbage silently
    garble_largest_data_file(step_dir)
  elif corruption == "truncated_metadata":
    path = os.path.join(step_dir, "state", "_METADATA")
    os.truncate(path, os.path.getsize(path) // 2)
  else:
    os.remove(largest_data_file(step_dir))

  abstract = jax.eval_shape(lambda: state(0))
  ckpt = Checkpointer(str(tmp_path), save_interval_steps=1)
  with pytest.raises(CorruptCheckpointError, match=f"step {step_dir}") as info:
    ckpt.restore(abstract)
  if corruption == "garbled_data":
    assert "checksum mismatch" in str(info.value)
  with caplog.at_level(logging.WARNING):
    step, restored, data_state = ckpt.restore(abstract, fallback=True)
  assert (step, data_state) == (1, {"next": 1})
  _assert_trees_equal(restored, state(1))
  assert any("instead of the corrupt step 2" in r.getMessage() for r in caplog.records)
  fallback = ckpt.last_fallback
  assert (fallback.from_step, fallback.to_step, list(fallback.reasons)) == (2, 1, [2])
  assert step_dir in fallback.reasons[2] and not fallback.moved_to
  assert ckpt.all_steps() == [1, 2]  # nothing deleted nor moved
  ckpt.close()


def test_corrupt_step_moved_aside_is_saved_again(tmp_path):
  state = _two_steps(str(tmp_path))
  garble_largest_data_file(os.path.join(str(tmp_path), "2"))
  abstract = jax.eval_shape(lambda: state(0))
  with Checkpointer(str(tmp_path), save_interval_steps=1) as ckpt:
    step, _, _ = ckpt.restore(abstract, fallback=True, move_corrupt_aside=True)
    assert step == 1 and ckpt.all_steps() == [1]
    moved = os.path.join(str(tmp_path), checkpoint.CORRUPT_DIR, "2")
    assert ckpt.last_fallback.moved_to == {2: moved} and os.path.isdir(moved)
    assert ckpt.save(2, state(2))  # the step number is free again
    step, restored, _ = ckpt.restore(abstract)
  assert step == 2
  _assert_trees_equal(restored, state(2))
  # A reader lists the steps as before: the corrupt/ folder is not a step.
  assert Checkpointer(str(tmp_path), read_only=True).all_steps() == [1, 2]


def _tensorstore_style_error():
  # What orbax raises around tensorstore's ValueError("<STATUS>: ...").
  try:
    raise ValueError("PERMISSION_DENIED: Error reading local file: [OS error: 13]")
  except ValueError as e:
    raise Exception("Encountered error while reading array index") from e  # pylint: disable=broad-exception-raised


@pytest.mark.parametrize("error", [
    PermissionError(13, "Permission denied"), OSError(5, "Input/output error"),
    TimeoutError("read timed out"), "tensorstore"])
def test_transient_restore_errors_propagate_without_fallback(tmp_path, error):
  """A read that may pass on a retry must not roll the run back to an older step."""
  state = _two_steps(str(tmp_path))
  ckpt = Checkpointer(str(tmp_path), save_interval_steps=1)

  def failing_restore(*args, **kwargs):
    if error == "tensorstore":
      _tensorstore_style_error()
    raise error
  ckpt._manager.restore = failing_restore  # pylint: disable=protected-access
  expected = Exception if error == "tensorstore" else type(error)
  with pytest.raises(expected) as info:
    ckpt.restore(jax.eval_shape(lambda: state(0)), fallback=True, move_corrupt_aside=True)
  assert not isinstance(info.value, CorruptCheckpointError)
  assert any("not a sign of corruption" in n for n in getattr(info.value, "__notes__", []))
  assert ckpt.last_fallback is None and ckpt.all_steps() == [1, 2]
  assert not os.path.exists(os.path.join(str(tmp_path), checkpoint.CORRUPT_DIR))
  ckpt.close()


def _run_helper_and_kill_mid_save(directory: str, wait_s: float) -> tuple[bool, str]:
  """Runs the helper, kills it ``wait_s`` after step 2's save starts; (mid-save?, output).

  Mid-save: at the kill step 2 had a temporary directory and no committed one.
  """
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
  proc = subprocess.Popen([sys.executable, HELPER, directory], env=env, cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  killed_mid_save = False
  deadline = time.monotonic() + 120
  try:
    while time.monotonic() < deadline and proc.poll() is None:
      if glob.glob(os.path.join(directory, "2" + checkpoint.TMP_MARKER + "*")):
        time.sleep(wait_s)  # let it write some of step 2
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        killed_mid_save = (proc.returncode == -signal.SIGKILL
                           and not os.path.exists(os.path.join(directory, "2")))
        break
      time.sleep(0.002)
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()
  return killed_mid_save, proc.stdout.read().decode(errors="replace")


def test_kill_9_mid_save_leaves_last_complete_step(tmp_path):
  # The kill must land while step 2 is being written, or the test proves nothing: retry
  # (sooner after the save starts) a few times, then fail.
  outputs = []
  for attempt, wait_s in enumerate((0.05, 0.01, 0.0)):
    directory = str(tmp_path / f"run{attempt}")
    killed_mid_save, output = _run_helper_and_kill_mid_save(directory, wait_s)
    outputs.append(output)
    if killed_mid_save:
      break
  assert killed_mid_save, ("The kill never landed during the save of step 2:\n"
                           + "\n---\n".join(outputs))
  assert os.path.isdir(os.path.join(directory, "1")), output

  # Checked before a writer starts: it removes unfinished steps (async).
  assert glob.glob(os.path.join(directory, "2" + checkpoint.TMP_MARKER + "*"))
  ckpt = Checkpointer(directory, save_interval_steps=1)
  w = jax.ShapeDtypeStruct((8,), jnp.float32)
  assert ckpt.all_steps() == [1] and ckpt.latest_step() == 1
  step, restored, data_state = ckpt.restore({"w": w, "step": 0})
  assert (step, data_state, restored["step"]) == (1, {"next": 1}, 1)
  np.testing.assert_array_equal(restored["w"], np.arange(8, dtype=np.float32))
  # The writer can go on: the unfinished step is replaced by a complete one.
  assert ckpt.save(2, {"w": jnp.zeros((8,)), "step": 2})
  assert ckpt.all_steps() == [1, 2]
  assert not glob.glob(os.path.join(directory, "*" + checkpoint.TMP_MARKER + "*"))
  ckpt.close()
