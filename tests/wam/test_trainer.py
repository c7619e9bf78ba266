"""The trainer and the loader: resume, preemption, NaN handling, self-describing
checkpoints, ``wam.loading.load``, ``init_from``, bad input."""

import json
import logging
import os
import shutil
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from wam import checkpoint, dream, loading, run_metadata, sharding, text_encoder, trainer
from wam import train_state
from wam.checkpoint_compatibility import IncompatibleCheckpointError
from wam.data import builder, synthetic
from wam.data.config import dataset_config
from wam.data.layout import Layout
from wam.data.schema import EpisodeSpec
from wam.metric_writer import read_metrics
from tests.wam.checkpoint_fixtures import CORRUPTION_REASONS, garble_largest_data_file

SPEC = EpisodeSpec(
    embodiment="toy_arm", source="sim", cameras=("front",), image_size=(16, 16),
    joints=Layout.of([("arm_joints", 3)]), proprio=Layout.of([("toy_proprio", 2)]),
    action=Layout.of([("arm_joints", 3)]), fps=10.0)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  root = tmp_path_factory.mktemp("trainer_data")
  return builder.write_dataset(
      "toy_trainer", SPEC,
      {"train": lambda: synthetic.synthetic_episodes(SPEC, 6, 16),
       "val": lambda: synthetic.synthetic_episodes(SPEC, 2, 16, seed=7)}, str(root))


def tiny_config(dataset_path, stats_dir, num_steps=6):
  c = trainer.default_config()
  c.num_steps = num_steps
  c.log_every = c.checkpoint_every = 3
  c.eval.every, c.eval.batch_size, c.eval.videos, c.eval.flow_steps = 6, 2, 1, 1
  c.model.width, c.model.depth, c.model.num_heads = 32, 1, 2
  c.model.tokenizer.channels, c.model.tokenizer.latent_channels = (8,), 4
  c.model.text_encoder.kwargs.update(hidden=16, depth=1, num_heads=2)
  c.data.datasets.robot = dataset_config(dataset_path)
  # 24: the synthetic instructions ("move the square 3") are 17 bytes.
  c.data.update(batch_size=4, num_frames=3, action_chunk=2, image_size=(16, 16),
                max_instruction_length=24, statistics_dir=str(stats_dir), read_threads=1)
  c.optimizer.warmup_steps = 2
  c.peak_flops = 1e11  # skip measuring the machine in tests
  return c


def _params(state_or_model):
  return jax.tree.leaves(nnx.state(state_or_model, nnx.Param))


@pytest.fixture(scope="module")
def uninterrupted(dataset, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("run_a")
  config = tiny_config(dataset, workdir / "stats")
  return trainer.train_and_evaluate(config, str(workdir)), str(workdir), config


def test_run_writes_metrics_checkpoints_plots_and_videos(uninterrupted):
  result, workdir, _ = uninterrupted
  assert result.step == 6
  lines = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl"))]
  logged = {k for line in lines for k in line}
  for key in ("loss", "loss/video", "loss/action", "steps_per_second", "examples_per_second",
              "mfu", "eval/loss", "eval/loss/video", "eval/psnr_h1", "eval/ssim_h1", "eval/psnr_copy_last_h1",
              "eval/joint_mae", "eval/action_mse", "num_params"):
    assert key in logged, key
  assert sorted(checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"),
                                        read_only=True).all_steps()) == [3, 6]
  for path in ("config.json", "plots/losses.png", "plots/psnr_by_horizon.png",
               "videos/dream_0000006.gif", "videos/dream_0000006.png"):
    assert os.path.exists(os.path.join(workdir, path)), path
  assert os.listdir(os.path.join(workdir, "tensorboard"))


def test_preempted_and_resumed_run_equals_uninterrupted(uninterrupted, dataset, tmp_path,
                                                        monkeypatch):
  """N steps, SIGTERM (checkpoint), re-run: same parameters as 2N steps in one go."""
  result, _, _ = uninterrupted
  workdir = str(tmp_path / "run_b")
  config = tiny_config(dataset, tmp_path / "stats")
  calls = []
  original = sharding.global_batch

  def preempt_at_third_batch(local, batch_sharding):
    calls.append(1)
    if len(calls) == 3:
      os.kill(os.getpid(), signal.SIGTERM)
    return original(local, batch_sharding)
  monkeypatch.setattr(sharding, "global_batch", preempt_at_third_batch)
  first = trainer.train_and_evaluate(config, workdir)
  assert first.step == 3
  monkeypatch.setattr(sharding, "global_batch", original)
  second = trainer.train_and_evaluate(config, workdir)
  assert second.step == 6
  for a, b in zip(_params(result.model), _params(second.model)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(dataset, tmp_path,
                                                                   monkeypatch):
  original = trainer.make_train_step

  def poisoned(graphdef, optimizer):
    step = original(graphdef, optimizer)

    def train_step(state, batch):
      bad = jnp.where(state["step"] >= 4, jnp.nan, 0.0)
      return step(state, dict(batch, joints=batch["joints"] + bad))
    return train_step
  monkeypatch.setattr(trainer, "make_train_step", poisoned)
  config = tiny_config(dataset, tmp_path / "stats", num_steps=9)
  config.checkpoint_every = 2
  with pytest.raises(trainer.NonFiniteLossError, match=r"NaN/inf at step 4.*step 4 \(intact\)"):
    trainer.train_and_evaluate(config, str(tmp_path / "run"))
  monkeypatch.setattr(trainer, "make_train_step", original)
  model, _ = loading.load(str(tmp_path / "run"))
  assert all(np.isfinite(np.asarray(p)).all() for p in _params(model))


def test_load_rebuilds_the_model_from_the_directory_alone(uninterrupted):
  result, workdir, _ = uninterrupted
  model, meta = loading.load(workdir)
  for a, b in zip(_params(result.model), _params(model)):
    np.testing.assert_array_equal(a, b)
  assert meta.statistics and "robot" in meta.statistics
  batch = {k: jnp.asarray(v) for k, v in meta.example_batch.items()}
  context = dream.context_of(batch, 1)
  out = dream.dream(model, context, jax.random.key(0), horizon=2, flow_steps=1)
  assert out.frames.shape[:2] == (4, 2)


PROBE = "tests.wam.encoder_import_probe"


def test_load_refuses_a_checkpoint_config_that_imports_code(uninterrupted, tmp_path):
  """A checkpoint's config.json naming ``module:Class`` imports only with the opt-in."""
  _, workdir, config = uninterrupted
  ckpt_dir = str(tmp_path / "checkpoints")
  shutil.copytree(os.path.join(workdir, "checkpoints"), ckpt_dir)
  path = os.path.join(ckpt_dir, "config.json")
  with open(path) as f:
    stored = json.load(f)
  stored["model"]["text_encoder"]["name"] = f"{PROBE}:Encoder"
  with open(path, "w") as f:
    json.dump(stored, f)
  sys.modules.pop(PROBE, None)
  with pytest.raises(PermissionError, match=rf"would import \(run\) module '{PROBE}'.*"
                                            "allow_code_import=True"):
    loading.load(ckpt_dir)
  assert PROBE not in sys.modules
  with pytest.raises(PermissionError, match="module 'os'"):
    text_encoder.check_importable("os:system", ("other:Encoder",), "config.json")
  # The user's own training config may still name a module (building does not check).
  meta = run_metadata.read_run_metadata(ckpt_dir)
  config = tiny_config(config.data.datasets.robot.path, "unused")
  config.model.text_encoder.name = f"{PROBE}:Encoder"
  nnx.eval_shape(lambda: train_state.build_model(config, meta.example_batch))
  assert PROBE in sys.modules
  sys.modules.pop(PROBE)
  loading.load(ckpt_dir, allow_code_import=True)
  assert PROBE in sys.modules


def test_rerun_replaces_a_corrupt_final_step(uninterrupted, tmp_path, caplog):
  """The rerun falls back (loudly, and in metrics.jsonl), trains on and saves the step
  again; the corrupt step is kept in checkpoints/corrupt/."""
  _, source, config = uninterrupted
  workdir = str(tmp_path / "run")
  shutil.copytree(source, workdir)
  ckpt_dir = os.path.join(workdir, "checkpoints")
  garble_largest_data_file(os.path.join(ckpt_dir, "6"))
  with caplog.at_level(logging.WARNING):
    result = trainer.train_and_evaluate(config, workdir)
  assert result.step == 6
  assert checkpoint.Checkpointer(ckpt_dir, read_only=True).all_steps() == [3, 6]
  assert os.path.isdir(os.path.join(ckpt_dir, checkpoint.CORRUPT_DIR, "6"))
  # The reason depends on where the garbled bytes land (CORRUPTION_REASONS).
  assert any("CHECKPOINT FALLBACK" in r.getMessage() and "corrupt step 6" in r.getMessage()
             and any(reason in r.getMessage() for reason in CORRUPTION_REASONS)
             for r in caplog.records)
  rows = read_metrics(os.path.join(workdir, "metrics.jsonl"))
  events = [r for r in rows if r.get("event") == "checkpoint_fallback"]
  assert len(events) == 1, events
  assert (events[0]["from_step"], events[0]["to_step"], events[0]["step"]) == (6, 3, 3)
  assert any(reason in events[0]["reason"] for reason in CORRUPTION_REASONS)
  assert [r["step"] for r in rows if "loss" in r] == [3, 6]  # the old step 6 line dropped


def test_without_a_val_split_eval_metrics_are_marked_as_training(tmp_path, caplog):
  data = builder.write_dataset(
      "toy_no_val", SPEC, {"train": lambda: synthetic.synthetic_episodes(SPEC, 6, 16)},
      str(tmp_path / "data"))
  config = tiny_config(data, tmp_path / "stats", num_steps=2)
  workdir = str(tmp_path / "run")
  with caplog.at_level(logging.WARNING):
    result = trainer.train_and_evaluate(config, workdir)
  keys = {k for row in read_metrics(os.path.join(workdir, "metrics.jsonl")) for k in row}
  assert {"eval_train/loss", "eval_train/psnr_h1"} <= keys
  assert not [k for k in keys if k.startswith("eval/")], keys
  assert "eval_train/loss" in result.metrics
  assert sum("TRAINING windows" in r.getMessage() for r in caplog.records) == 1
  assert os.path.exists(os.path.join(workdir, "plots", "eval.png"))  # plots eval_train/*


def test_incompatible_checkpoint_lists_the_mismatched_parameters(uninterrupted):
  _, workdir, config = uninterrupted
  config = tiny_config(config.data.datasets.robot.path, "unused")
  config.model.width = 48
  meta = run_metadata.read_run_metadata(os.path.join(workdir, "checkpoints"))
  from wam.optimizer import make_optimizer
  optimizer = make_optimizer(config.optimizer, config.num_steps)
  abstract = jax.eval_shape(lambda: train_state.initial_state(
      train_state.build_model(config, meta.example_batch), optimizer, jax.random.key(0)))
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), read_only=True)
  with pytest.raises(IncompatibleCheckpointError,
                     match=r"params.*backbone.*checkpoint \(32,?.*vs model \(48"):
    ckpt.restore(abstract)


def test_config_errors(uninterrupted, dataset, tmp_path):
  config = tiny_config(dataset, tmp_path)
  config.model.widht = 64
  with pytest.raises(KeyError, match="config.model.widht.*did you mean 'width'"):
    trainer.check_config(config)
  config = tiny_config(dataset, tmp_path)
  config.data.datasets.robot.wieght = 2.0
  with pytest.raises(KeyError, match="did you mean 'weight'"):
    trainer.check_config(config)
  _, workdir, _ = uninterrupted
  config = tiny_config(dataset, tmp_path)
  config.model.depth = 2
  with pytest.raises(ValueError, match="different config.model"):
    trainer.train_and_evaluate(config, workdir)


def test_sharded_step_on_8_devices_equals_single_device():
  """Runs in a fresh process: the device count is fixed when JAX starts."""
  script = os.path.join(os.path.dirname(__file__), "multidevice_step.py")
  out = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert out.returncode == 0, out.stderr[-3000:]
  assert "max difference" in out.stdout


# ------------------------------------------------------------------ init_from (transfer)
NEW_ACTIONS = EpisodeSpec(
    embodiment="toy_hand", source="sim", cameras=("front",), image_size=(16, 16),
    joints=Layout.of([("arm_joints", 3)]), proprio=Layout.of([("toy_proprio", 2)]),
    action=Layout.of([("hand_targets", 5)]), fps=10.0)


def test_init_from_copies_matching_params_into_a_new_action_space(uninterrupted,
                                                                  tmp_path):
  """Post-training on a different action layout keeps everything whose shape fits."""
  _, source_dir, _ = uninterrupted
  new_data = builder.write_dataset(
      "toy_new_actions", NEW_ACTIONS,
      {"train": lambda: synthetic.synthetic_episodes(NEW_ACTIONS, 4, 16),
       "val": lambda: synthetic.synthetic_episodes(NEW_ACTIONS, 2, 16, seed=3)},
      str(tmp_path / "data"))
  config = tiny_config(new_data, tmp_path / "stats", num_steps=2)
  config.init_from = source_dir
  source, _ = loading.load(source_dir)
  stored = {jax.tree_util.keystr(p): v for p, v in
            jax.tree_util.tree_flatten_with_path(nnx.state(source, nnx.Param))[0]}

  from wam import transfer  # pylint: disable=import-outside-toplevel
  from wam.data import pipeline  # pylint: disable=import-outside-toplevel
  example = pipeline.from_config(config.data).example_batch()
  fresh = nnx.state(train_state.build_model(config, example), nnx.Param)
  params, report = transfer.transfer_params(fresh, source_dir)
  assert report.source_step == 6
  assert report.shape_mismatch, "the action projections change size"
  # Only layers that read or write actions change: the action head and input, and the
  # state prediction token's input (it reads the action chunk).
  changed = {path.split("]")[0] for path, _, _ in report.shape_mismatch}
  assert changed == {"['action_head'", "['action_in'", "['pred_state_in'"}, report.summary()
  assert 0.5 < report.copied_fraction < 1.0
  flat = {jax.tree_util.keystr(p): v
          for p, v in jax.tree_util.tree_flatten_with_path(params)[0]}
  for name in report.copied:
    np.testing.assert_array_equal(np.asarray(flat[name]), np.asarray(stored[name]))

  result = trainer.train_and_evaluate(config, str(tmp_path / "run"))
  assert result.step == 2 and np.isfinite(result.metrics["loss"])


def test_init_from_a_run_without_checkpoints_is_a_clear_error(tmp_path):
  from wam import transfer  # pylint: disable=import-outside-toplevel
  (tmp_path / "empty" / "checkpoints").mkdir(parents=True)
  with pytest.raises(FileNotFoundError, match="no checkpoint"):
    transfer.transfer_params({}, str(tmp_path / "empty"))
  with pytest.raises(FileNotFoundError, match="no such directory"):
    transfer.transfer_params({}, str(tmp_path / "missing"))
