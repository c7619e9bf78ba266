"""Training the world action model: ``train_and_evaluate(config, workdir)``.

One straight-line function in sections (config, mesh, input, model, sharding, update
step, checkpoint, evaluation, loop), in the style of big_vision and the Flax examples.
Running it again on the same ``workdir`` resumes from the latest checkpoint, parameters,
optimizer, rng and the data iterator's position included, so an interrupted run and an
uninterrupted one see the same batches and reach the same parameters.

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
import signal
import time
from typing import Any, Collection, Mapping, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.experimental import multihost_utils
from ml_collections import config_dict

from wam import checkpoint as checkpoint_lib
from wam import config as config_lib
from wam import evaluation, flops, sharding, text_encoder, transfer
from wam.data import config as data_config
from wam.data import pipeline as data_pipeline
from wam.data.layout import Layout
from wam.data.reader import EpisodeDataset
from wam.data.window import WindowSource
from wam.metric_writer import MetricWriter
from wam.model import Dims, WorldActionModel, count_parameters
from wam.optimizer import learning_rate_schedule, make_optimizer


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


# ----------------------------------------------------------------------------- model


def build_model(config: config_dict.ConfigDict, example_batch: Mapping[str, Any],
                seed: int = 0, layouts: Optional[Mapping[str, Layout]] = None
                ) -> WorldActionModel:
  """A model sized by ``example_batch`` (host arrays; the batch axis is ignored).

  ``layouts`` (``{"joints": Layout, "proprio": Layout}``) resolve ``model.predict_only``
  slot names; a model without predict-only slots needs none.
  """
  dims = dataclasses.replace(Dims.from_batch(example_batch),
                             hidden_state=hidden_state(config.model, layouts))
  return WorldActionModel(config.model, dims, rngs=nnx.Rngs(seed))


def hidden_state(model_config, layouts: Optional[Mapping[str, Layout]]) -> tuple[int, ...]:
  """Indices into joints + proprio of the ``model.predict_only`` slots.

  Raises:
    ValueError: a slot that neither layout has, or predict-only slots without layouts.
  """
  names = tuple(model_config.get("predict_only", ()))
  if not names:
    return ()
  if layouts is None:
    raise ValueError(f"model.predict_only {names} needs the data layouts to find them.")
  joints, proprio = layouts["joints"], layouts["proprio"]
  indices = []
  for name in names:
    if name in joints.names:
      start, size = joints.offset(name), joints.slots[joints.names.index(name)].size
    elif name in proprio.names:
      start = joints.dim + proprio.offset(name)
      size = proprio.slots[proprio.names.index(name)].size
    else:
      raise ValueError(f"model.predict_only names slot {name!r}, which the data does not "
                       f"have; joints slots: {joints.names}, proprio slots: {proprio.names}.")
    indices.extend(range(start, start + size))
  return tuple(indices)


def _layouts_of(meta: checkpoint_lib.RunMetadata) -> Optional[dict[str, Layout]]:
  """The joints/proprio layouts a run recorded (None for runs from before layouts)."""
  recorded = (meta.extra or {}).get("layouts")
  return {k: Layout.of(recorded[k]) for k in ("joints", "proprio")} if recorded else None


def _train_state(model: WorldActionModel, optimizer, rng) -> dict:
  params = nnx.state(model, nnx.Param)
  return {"params": params, "opt_state": optimizer.init(params),
          "step": jnp.zeros((), jnp.int32), "rng": rng,
          "nonfinite_step": jnp.full((), -1, jnp.int32)}


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
  abstract_state = jax.eval_shape(lambda: _train_state(
      build_model(config, example_batch, config.seed, layouts), optimizer,
      jax.random.key(config.seed)))
  state_shardings = _state_shardings(abstract_state, optimizer, mesh, rules)
  num_params = count_parameters(abstract_model)
  logging.info("Model %s: %s parameters, dims %s.", config.model.variant,
               f"{num_params:,}", abstract_model.dims)
  abstract_model.dims.check_batch(example_batch)

  # -- Checkpoints ----------------------------------------------------------------------
  ckpt_dir = os.path.join(workdir, "checkpoints")
  checkpointer = checkpoint_lib.Checkpointer(
      ckpt_dir, max_to_keep=config.max_checkpoints,
      save_interval_steps=config.checkpoint_every, async_save=config.async_checkpoints)
  if is_host0:
    checkpoint_lib.write_run_metadata(
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
                            abstract_state, state_shardings)
    # A corrupt latest step is moved aside (kept, and saved again as training gets there);
    # a transient read error raises instead of rolling the run back.
    step, state, data_state = checkpointer.restore(abstract, fallback=True,
                                                   move_corrupt_aside=True)
    if data_state is not None:
      data_iter.set_state(data_state)
    logging.info("Resumed from step %d in %s.", step, ckpt_dir)
  else:
    init = jax.jit(lambda: _train_state(
        build_model(config, example_batch, config.seed, layouts), optimizer,
        jax.random.key(config.seed)), out_shardings=state_shardings)
    state = init()
    if config.init_from:
      # The source may name the text encoder this config names (the user wrote it).
      params, report = transfer.transfer_params(
          state["params"], config.init_from,
          None if config.init_from_step < 0 else config.init_from_step,
          allow_code_import=(config.model.text_encoder.name,))
      logging.info("%s", report.summary())
      state = dict(state, params=params, opt_state=jax.jit(
          optimizer.init, out_shardings=state_shardings["opt_state"])(params))
  start_step = int(state["step"])

  # -- Update step ----------------------------------------------------------------------
  train_step = jax.jit(make_train_step(graphdef, optimizer), donate_argnums=(0,),
                       in_shardings=(state_shardings, batch_sharding),
                       out_shardings=(state_shardings, None))
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
  preempted = _PreemptionFlag(config.preemption_sync_every)
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
    with open(path + ".tmp", "w") as f:
      json.dump(new, f, indent=2)
    os.replace(path + ".tmp", path)


def _state_shardings(abstract_state, optimizer, mesh, rules) -> dict:
  params = sharding.param_shardings(abstract_state["params"], mesh, rules)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  return {"params": params,
          "opt_state": sharding.optimizer_shardings(optimizer, abstract_state["opt_state"],
                                                    params, mesh),
          "step": replicated, "rng": replicated, "nonfinite_step": replicated}


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


class _PreemptionFlag:
  """SIGTERM (preemption): the loop saves a checkpoint and exits cleanly.

  The signal reaches each process on its own, possibly at different steps, while the
  checkpoint save (and every train step) is collective: a host stopping alone would
  leave the others waiting forever. With several processes, ``agreed`` therefore gathers
  every host's flag each ``sync_every`` steps and all of them stop at the same step.
  """

  def __init__(self, sync_every: int = 1):
    if sync_every < 1:
      raise ValueError(f"config.preemption_sync_every must be >= 1, got {sync_every}.")
    self.received = False   # this process got SIGTERM
    self.stopped = False    # the hosts agreed to stop (some host got SIGTERM)
    self._sync_every = sync_every
    self._previous = None
    try:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # not the main thread (e.g. some notebook kernels)
      self._previous = None

  def _handle(self, signum, frame):  # pylint: disable=unused-argument
    logging.warning("SIGTERM received: saving a checkpoint at the next agreed step.")
    self.received = True

  def agreed(self, step: int) -> bool:
    """Whether to stop after ``step``; every process must call it at every step."""
    if jax.process_count() == 1:   # nothing to agree on: no collective
      self.stopped = self.received
    elif step % self._sync_every == 0:
      flags = multihost_utils.process_allgather(np.int32(self.received))
      self.stopped = bool(np.any(flags))
    return self.stopped

  def restore(self) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


# ----------------------------------------------------------------------------- load


def load(path: str, step: Optional[int] = None, *,
         allow_code_import: Union[bool, Collection[str]] = False
         ) -> tuple[WorldActionModel, checkpoint_lib.RunMetadata]:
  """Rebuilds a trained model from a work or checkpoint directory alone.

  Args:
    path: a workdir (holding ``checkpoints/``) or the checkpoint directory itself.
    step: the step to load; None: the latest.
    allow_code_import: whether the checkpoint's ``config.json`` may name a
      ``module:Class`` text encoder, which imports (runs) that module: True for any, a
      collection of encoder names for those only; False (default): registered ones only.

  Returns:
    The model (parameters restored) and the run metadata (config, statistics, example
    batch, layouts).

  Raises:
    PermissionError: the config names a module to import and ``allow_code_import`` does
      not allow it.
  """
  ckpt_dir = os.path.join(path, "checkpoints") if os.path.isdir(
      os.path.join(path, "checkpoints")) else path
  meta = checkpoint_lib.read_run_metadata(ckpt_dir)
  # Before anything is built: building the model imports the encoder's module.
  text_encoder.check_importable(
      str(meta.config.get("model", {}).get("text_encoder", {}).get("name", "")),
      allow_code_import, os.path.join(ckpt_dir, checkpoint_lib.CONFIG_FILE))
  config = config_dict.ConfigDict(meta.config)
  config.model.text_encoder.kwargs = dict(config.model.text_encoder.kwargs)
  optimizer = make_optimizer(config.optimizer, config.num_steps)
  layouts = _layouts_of(meta)
  abstract_state = jax.eval_shape(lambda: _train_state(
      build_model(config, meta.example_batch, config.seed, layouts), optimizer,
      jax.random.key(config.seed)))
  # Onto this process's first device, whatever mesh (or hosts) the run was trained on.
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  abstract_state = jax.tree.map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device), abstract_state)
  checkpointer = checkpoint_lib.Checkpointer(ckpt_dir, read_only=True)
  _, state, _ = checkpointer.restore(abstract_state, step)
  checkpointer.close()
  graphdef, _ = nnx.split(nnx.eval_shape(lambda: build_model(config, meta.example_batch,
                                                               layouts=layouts)))
  return nnx.merge(graphdef, state["params"]), meta
