"""Training the world action model: ``train_and_evaluate(config, workdir)``.

One straight-line function in sections (config, mesh, input, model, sharding, update
step, checkpoint, evaluation, loop), in the style of big_vision and the Flax examples.
Running it again on the same ``workdir`` resumes from the latest checkpoint, parameters,
optimizer, rng and the data iterator's position included, so an interrupted run and an
uninterrupted one see the same batches and reach the same parameters. The model and its
training state are built by ``wam.train_state``; ``wam.loading.load`` rebuilds a trained
model from the directory (inference never imports this module).

Workdir layout::

  config.json            the config of the run
  checkpoints/           orbax steps + config.json, statistics.json, example_batch.npz
  metrics.jsonl          one JSON line per log/eval step (host 0)
  tensorboard/           event files
  plots/                 loss curves and per-horizon metrics (PNG)
  videos/                dreamed frames beside real ones (GIF and PNG grid)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from ml_collections import config_dict

from wam import config as config_lib
from wam import evaluation, flops, run_metadata, sharding, transfer
from wam.checkpoint import Checkpointer
from wam.data import config as data_config
from wam.data import pipeline as data_pipeline
from wam.data.reader import EpisodeDataset
from wam.data.window import WindowSource
from wam.files import atomic_write_json
from wam.metric_writer import MetricWriter
from wam.model import WorldActionModel, count_parameters
from wam.optimizer import learning_rate_schedule, make_optimizer
from wam.preemption import PreemptionFlag
from wam.train_state import build_model, initial_state, state_shardings


class NonFiniteLossError(FloatingPointError):
  """Training produced a NaN or infinite loss or gradient."""


def default_config() -> config_dict.ConfigDict:
  """Every option of a training run with its default (experiment files override)."""
  c = config_dict.ConfigDict()
  c.seed = 0
  c.num_steps = 2000
  c.model = config_lib.model_config("toy")
  c.data = data_config.default_config()
  c.optimizer = config_dict.ConfigDict(dict(
      learning_rate=1e-3, warmup_steps=100, end_factor=0.1, weight_decay=0.01,
      b1=0.9, b2=0.95, clip_norm=1.0))
  c.mesh = config_dict.ConfigDict(dict(data=-1, fsdp=1))
  c.sharding_rules = sharding.DEFAULT_RULES
  c.distributed = False        # call jax.distributed.initialize() (multi-host)
  # Start from another run's parameters where path and shape match (wam/transfer.py):
  # pre-train -> post-train, or a new action space. Ignored when resuming this run.
  c.init_from = ""             # a workdir or checkpoint directory; "" = fresh
  c.init_from_step = -1        # -1: its latest checkpoint
  c.log_every = 50
  c.checkpoint_every = 500
  c.max_checkpoints = 3
  c.async_checkpoints = False
  # Multi-host: steps between the hosts' agreement on SIGTERM (a tiny collective that
  # waits for the step to finish on the devices); 1 stops at the next step.
  c.preemption_sync_every = 1
  c.peak_flops = 0.0           # per device, for MFU; 0: measure a matmul at start-up
  c.eval = config_dict.ConfigDict(dict(
      every=500, split="val", batch_size=8, flow_steps=4, videos=4))
  return c


def check_config(config: config_dict.ConfigDict) -> None:
  """Rejects unknown keys (with a suggestion) anywhere in a training config."""
  reference = default_config()
  config_lib.check_keys(config, reference)
  config_lib.check_variant(config.model)
  for name, ds in config.data.datasets.items():
    config_lib.check_keys(ds, data_config.dataset_config(""), f"config.data.datasets.{name}")
  if config.data.batch_size % jax.device_count():
    raise ValueError(f"config.data.batch_size {config.data.batch_size} does not split over "
                     f"{jax.device_count()} devices.")


@dataclasses.dataclass
class Trained:
  """What ``train_and_evaluate`` returns: final step, parameters and last metrics."""
  step: int
  model: WorldActionModel
  metrics: dict


# ----------------------------------------------------------------------------- step


def make_train_step(graphdef, optimizer):
  """``(state, batch) -> (state, metrics)``: one AdamW step; non-finite steps are skipped.

  A step whose loss or gradient is not finite leaves the parameters and optimizer state
  unchanged and records its index in ``state["nonfinite_step"]`` (the first one only):
  the host stops the run at its next check, with the last good parameters intact.
  """
  def train_step(state, batch):
    rng = jax.random.fold_in(state["rng"], state["step"])

    def loss_fn(params):
      model = nnx.merge(graphdef, params)
      return model.loss(batch, rng)
    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    grad_norm = optax.global_norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    ok = finite & (state["nonfinite_step"] < 0)
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)
    new_state = {
        "params": keep(params, state["params"]),
        "opt_state": keep(opt_state, state["opt_state"]),
        "step": state["step"] + 1, "rng": state["rng"],
        "nonfinite_step": jnp.where((state["nonfinite_step"] < 0) & ~finite, state["step"],
                                    state["nonfinite_step"])}
    metrics = dict(metrics, grad_norm=grad_norm,
                   param_norm=optax.global_norm(state["params"]))
    return new_state, metrics
  return train_step


# ----------------------------------------------------------------------------- train


def train_and_evaluate(config: config_dict.ConfigDict, workdir: str, *,
                       stop_at: Optional[int] = None) -> Trained:
  """Trains per ``config`` in ``workdir`` (resuming if it holds a checkpoint).

  Args:
    config: a training config (``default_config()`` with overrides).
    workdir: the run's directory.
    stop_at: return after this step as if preempted (tests, notebooks); the final
      checkpoint is written as on SIGTERM.

  Returns:
    The final step, the model and the last logged metrics.

  Raises:
    NonFiniteLossError: the loss or gradient became NaN/inf; the latest checkpoint (from
      before it) is kept intact.
  """
  # -- Config and hosts ---------------------------------------------------------------
  check_config(config)
  if config.distributed:
    jax.distributed.initialize()
  is_host0 = jax.process_index() == 0
  os.makedirs(workdir, exist_ok=True)
  _write_config(config, workdir, is_host0)

  # -- Mesh -----------------------------------------------------------------------------
  mesh = sharding.make_mesh(config.mesh.to_dict())
  rules = sharding.rules_from_config(config.sharding_rules)
  batch_sharding = sharding.batch_sharding(mesh)
  logging.info("Mesh %s over %d devices (%d hosts).", dict(mesh.shape), mesh.size,
               jax.process_count())

  # -- Input ----------------------------------------------------------------------------
  data = data_pipeline.from_config(config.data)
  example_batch = data.example_batch()
  eval_windows, found = eval_batch(config, data)
  held_out = found and config.eval.split != "train"

  # -- Model and sharding ---------------------------------------------------------------
  optimizer = make_optimizer(config.optimizer, config.num_steps)
  schedule = learning_rate_schedule(config.optimizer, config.num_steps)
  layouts = {"joints": data.layouts.joints, "proprio": data.layouts.proprio}
  abstract_model = nnx.eval_shape(lambda: build_model(config, example_batch, config.seed,
                                                      layouts))
  graphdef, _ = nnx.split(abstract_model)
  abstract_state = jax.eval_shape(lambda: initial_state(
      build_model(config, example_batch, config.seed, layouts), optimizer,
      jax.random.key(config.seed)))
  shardings = state_shardings(abstract_state, optimizer, mesh, rules)
  num_params = count_parameters(abstract_model)
  logging.info("Model %s: %s parameters, dims %s.", config.model.variant,
               f"{num_params:,}", abstract_model.dims)
  abstract_model.dims.check_batch(example_batch)

  # -- Checkpoints ----------------------------------------------------------------------
  ckpt_dir = os.path.join(workdir, "checkpoints")
  checkpointer = Checkpointer(
      ckpt_dir, max_to_keep=config.max_checkpoints,
      save_interval_steps=config.checkpoint_every, async_save=config.async_checkpoints)
  if is_host0:
    run_metadata.write_run_metadata(
        ckpt_dir, config_json=config.to_json_best_effort(),
        statistics=_statistics_json(data), example_batch=example_batch,
        extra={"num_params": num_params, "dims": dataclasses.asdict(abstract_model.dims),
               "datasets": data.names, "layouts": {
                   "joints": data.layouts.joints.to_json(),
                   "proprio": data.layouts.proprio.to_json(),
                   "action": data.layouts.action.to_json()},
               "embodiments": data.embodiments,
               "dataset_embodiments": {name: ds.spec.embodiment for name, ds in
                                       zip(data.names, data.datasets)}})
  data_iter = iter(data)
  if checkpointer.latest_step() is not None:
    abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                            abstract_state, shardings)
    # A corrupt latest step is moved aside (kept, and saved again as training gets there);
    # a transient read error raises instead of rolling the run back.
    step, state, data_state = checkpointer.restore(abstract, fallback=True,
                                                   move_corrupt_aside=True)
    if data_state is not None:
      data_iter.set_state(data_state)
    logging.info("Resumed from step %d in %s.", step, ckpt_dir)
  else:
    init = jax.jit(lambda: initial_state(
        build_model(config, example_batch, config.seed, layouts), optimizer,
        jax.random.key(config.seed)), out_shardings=shardings)
    state = init()
    if config.init_from:
      # The source may name the text encoder this config names (the user wrote it).
      params, report = transfer.transfer_params(
          state["params"], config.init_from,
          None if config.init_from_step < 0 else config.init_from_step,
          allow_code_import=(config.model.text_encoder.name,))
      logging.info("%s", report.summary())
      state = dict(state, params=params, opt_state=jax.jit(
          optimizer.init, out_shardings=shardings["opt_state"])(params))
  start_step = int(state["step"])

  # -- Update step ----------------------------------------------------------------------
  train_step = jax.jit(make_train_step(graphdef, optimizer), donate_argnums=(0,),
                       in_shardings=(shardings, batch_sharding),
                       out_shardings=(shardings, None))
  batch_spec = {k: jax.ShapeDtypeStruct((config.data.batch_size,) + v.shape[1:], v.dtype,
                                        sharding=batch_sharding)
                for k, v in example_batch.items()}
  compiled = train_step.lower(state, batch_spec).compile()
  step_flops = flops.compiled_flops(compiled)
  peak = config.peak_flops or flops.measure_matmul_peak()
  logging.info("Train step: %.3g FLOPs per device; matmul peak %.3g FLOP/s per device.",
               step_flops, peak)
  evaluator = evaluation.Evaluator(graphdef, config, eval_windows,
                                   prefix="eval" if held_out else "eval_train")

  # -- Metrics --------------------------------------------------------------------------
  writer = MetricWriter(workdir, enabled=is_host0)
  writer.truncate_after(start_step)
  fallback = checkpointer.last_fallback
  if fallback is not None:
    writer.write_event(start_step, "checkpoint_fallback", from_step=fallback.from_step,
                       to_step=fallback.to_step, reason=fallback.reasons[fallback.from_step],
                       skipped_steps=sorted(fallback.reasons), moved_to=fallback.moved_to)
  if start_step == 0:
    writer.write_text(0, "config", f"```\n{config}\n```")
    writer.write_scalars(0, {"num_params": num_params})

  # -- Loop -----------------------------------------------------------------------------
  preempted = PreemptionFlag(config.preemption_sync_every)
  last = {}
  step = start_step
  window_start, window_steps = time.perf_counter(), 0
  try:
    while step < config.num_steps:
      local = next(data_iter)
      if step == start_step:  # a clear error rather than a shape failure inside jit
        abstract_model.dims.check_batch(local)
      state, metrics = compiled(state, sharding.global_batch(local, batch_sharding))
      step += 1
      window_steps += 1
      # Every host calls this at every step: with several, it is a collective.
      stopping = preempted.agreed(step) or step == config.num_steps or step == stop_at
      if step % config.log_every == 0 or stopping:
        _check_finite(state, checkpointer)
        metrics = jax.device_get(metrics)
        seconds = time.perf_counter() - window_start
        steps_per_s = window_steps / max(seconds, 1e-9)
        last = {k: float(v) for k, v in metrics.items()}
        last.update(steps_per_second=steps_per_s,
                    examples_per_second=steps_per_s * config.data.batch_size,
                    mfu=step_flops * steps_per_s / peak,
                    learning_rate=float(schedule(step)))
        writer.write_scalars(step, last)
        logging.info("[train] step %d/%d loss %.4f (video %.4f state %.4f action %.4f recon "
                     "%.4f) %.2f steps/s mfu %.2f", step, config.num_steps, last["loss"],
                     last["loss/video"], last["loss/state"], last["loss/action"],
                     last["loss/reconstruction"], steps_per_s, last["mfu"])
        window_start, window_steps = time.perf_counter(), 0
      if step % config.eval.every == 0 or step == config.num_steps:
        _check_finite(state, checkpointer)
        results = evaluator.run(state["params"], step, workdir, writer)
        last.update(results)
        window_start, window_steps = time.perf_counter(), 0
      if checkpointer.should_save(step) or stopping:
        _check_finite(state, checkpointer)
        checkpointer.save(step, state, data_state=data_iter.get_state(), force=stopping)
      if stopping:
        break
  finally:
    checkpointer.wait()
    checkpointer.close()
    preempted.restore()
    writer.close()
  if preempted.stopped:
    logging.warning("SIGTERM: saved step %d; re-run the same command to resume.", step)
  if is_host0:
    evaluation.plot_training(workdir)
  model = nnx.merge(graphdef, state["params"])
  return Trained(step, model, last)


# -------------------------------------------------------------------------- helpers


def _write_config(config, workdir: str, is_host0: bool) -> None:
  """Writes ``config.json``; a resumed run must not change the model or the data."""
  path = os.path.join(workdir, "config.json")
  new = json.loads(config.to_json_best_effort())
  if os.path.exists(path):
    with open(path) as f:
      old = json.load(f)
    # Keys added since the run started read as their defaults (old workdirs resume).
    for ds in (old.get("data", {}).get("datasets") or {}).values():
      ds.setdefault("max_episodes", 0)
    changed = [k for k in ("model", "data", "seed") if old.get(k) != new.get(k)]
    if changed:
      raise ValueError(f"{workdir} holds a run with a different config.{changed[0]} "
                       f"(see {path}); use a new --workdir or restore the config.")
  if is_host0:
    atomic_write_json(path, new, indent=2)


def _check_finite(state, checkpointer) -> None:
  bad = int(state["nonfinite_step"])
  if bad >= 0:
    latest = checkpointer.latest_step()
    raise NonFiniteLossError(
        f"The loss or gradient became NaN/inf at step {bad}; the update was not applied "
        f"and training stopped. Latest checkpoint: "
        f"{'none' if latest is None else f'step {latest}'} (intact). Lower "
        "config.optimizer.learning_rate, check the data, or resume from the checkpoint.")


def _statistics_json(data) -> dict:
  return {name: {vec: s.to_json() for vec, s in stats.items()}
          for name, stats in data.statistics.items()}


def eval_batch(config, data) -> tuple[dict, bool]:
  """A fixed batch for evaluation from the ``config.eval.split`` split of the first dataset.

  Windows are normalised with the *training* statistics and layouts (what the model saw),
  spread over the split's episodes. Without such a split: the first training windows.

  Returns:
    The batch and whether it is from ``config.eval.split`` (False: training windows; the
    trainer logs their metrics as ``eval_train/*``, never as held-out ``eval/*``).
  """
  train_source = data.sources[0]
  try:
    source = WindowSource(
        EpisodeDataset(train_source.dataset.path, config.eval.split), train_source.window,
        layouts=train_source.layouts, statistics=train_source.statistics,
        normalization=train_source.normalization, embodiment_id=train_source.embodiment_id,
        dataset_id=train_source.dataset_id)
  except (KeyError, ValueError, FileNotFoundError) as e:
    logging.warning("No %r split for evaluation (%s): evaluating on TRAINING windows, "
                    "logged as eval_train/*; this run has no held-out eval/* metrics.",
                    config.eval.split, e)
    return {k: v[:config.eval.batch_size] for k, v in data.example_batch().items()}, False
  picks = np.linspace(0, len(source) - 1, config.eval.batch_size).astype(int)
  windows = [source[int(i)] for i in picks]
  return {k: np.stack([w[k] for w in windows]) for k in windows[0]}, True
