r"""Training-step MFU and dreaming throughput of the world action model, in one run.

  python -m benchmarks.train --out=benchmarks/train_cpu.json
  python -m benchmarks.train --out=/tmp/x.json --batch_size=32 --num_heads=1
  python -m benchmarks.train --out=/tmp/x.json --quick          # smoke test (seconds)

The setup is the CPU training run of ``experiments/configs/wam.py:runlocal`` (its model,
data shapes and batch size; without that file, ``wam.trainer.default_config()`` with
runlocal's values: toy model, one 32x32 ``front`` camera, ``num_frames`` 4,
``action_chunk`` 4, 32 instruction bytes, batch 8); flags override single values.
The batch is ``wam.data.synthetic.synthetic_batch`` (9 joints, no proprio, 8 actions)
placed on the device once, so only the step is timed (``details.host_to_device_seconds``
is what putting a host batch on the mesh adds per step in the trainer's loop). The mesh,
state shardings and jitted step are the trainer's own (``sharding.make_mesh`` of
``config.mesh``, ``train_state.state_shardings``, ``trainer.make_train_step``).

Measurements (all in this process, one after another; the machine is shared and noisy,
so every time is a median of several windows and the peak is the best of several):

- ``tokens_per_step``: ``batch`` x the backbone's sequence length (prefix, observation
  and prediction blocks, as recorded from ``model.loss``);
- ``flops_per_step``: FLOPs of the compiled step as XLA's cost analysis counts them
  (``wam.flops.compiled_flops``), per device;
- ``peak_flops``: best of ``wam.flops.measure_matmul_peak`` (1024^2 f32 matmuls) measured
  before, between and after the timed runs;
- ``mfu = flops_per_step / step_seconds / peak_flops``; ``mfu_6nd`` is the usual
  ESTIMATE ``6 * params * tokens_per_step / step_seconds / peak_flops`` for comparison
  (it ignores attention and counts each conv weight once, not per pixel);
- ``dream_fps``: imagined frames/s (``batch * horizon * cameras / seconds``) of a jitted
  ``wam.dream.dream`` in world-model mode (action chunks given), 1 context frame, decoded
  to pixels, 1 Euler step per block; ``dream_fps_4_steps`` with 4 steps;
  ``dream_fps_no_cache`` with ``use_cache=False`` (the whole sequence recomputed at every
  block, 1 step) and ``cache_speedup = dream_fps / dream_fps_no_cache``;
  ``dream_fps_latents_only`` is 1 step without decoding to pixels (all null with
  ``--nodreams``);
- ``breakdown`` (unless ``--nobreakdown``): counted FLOPs and time of the parts of the
  step compiled alone, each forward + backward: the tokenizer's reconstruction (encode +
  decode), the text encoder, the backbone on the real token sequence and mask, and
  within it the attention core (``jax.nn.dot_product_attention``, all layers) and the
  MLPs; ``share_of_step`` is each part's time over the step's.
"""

from __future__ import annotations

import importlib.util
import math
import os
import platform
import time
from typing import Any, Callable

from absl import app, flags

from benchmarks import results as results_lib

_OUT = flags.DEFINE_string("out", "benchmarks/train.json", "Where to write the JSON results.")
_VARIANT = flags.DEFINE_string("variant", "toy", "Model size variant (wam.config.VARIANTS).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 0, "Global batch; 0: the config's.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 0, "Square frame size; 0: the config's.")
_WIDTH = flags.DEFINE_integer("width", 0, "Override model.width (0: the variant's).")
_DEPTH = flags.DEFINE_integer("depth", 0, "Override model.depth (0: the variant's).")
_NUM_HEADS = flags.DEFINE_integer("num_heads", 0, "Override model.num_heads (0: the variant's).")
_DTYPE = flags.DEFINE_string("dtype", "", "Override model.dtype (float32 | bfloat16).")
_INSTRUCTION = flags.DEFINE_integer("max_instruction_length", 0,
                                    "Override data.max_instruction_length (0: the config's).")
_STEPS = flags.DEFINE_integer("steps", 5, "Training steps per timed window.")
_WINDOWS = flags.DEFINE_integer("windows", 5, "Timed windows (the median counts).")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps after compiling.")
_HORIZON = flags.DEFINE_integer("horizon", 8, "Dreamed blocks after 1 context frame.")
_DREAM_REPEATS = flags.DEFINE_integer("dream_repeats", 5, "Timed dreams per setting (median).")
_DREAMS = flags.DEFINE_bool("dreams", True, "Time dreaming (else the dream keys are null).")
_BREAKDOWN = flags.DEFINE_bool("breakdown", True, "Also time the parts of the step alone.")
_QUICK = flags.DEFINE_bool("quick", False, "A tiny model, batch and few steps (smoke test).")

JOINTS, PROPRIO, ACTION = 9, 0, 8


def _log(message: str) -> None:
  print(f"[benchmarks.train] {message}", flush=True)


# ----------------------------------------------------------------------------- setup


def _base_config():
  """``experiments.configs.wam:runlocal`` if present, else the trainer defaults with the
  same CPU values. Returns ``(config, source)``."""
  from wam import trainer  # pylint: disable=import-outside-toplevel
  if importlib.util.find_spec("experiments.configs.wam") is not None:
    from experiments.configs import wam as wam_configs  # pylint: disable=import-outside-toplevel
    config = wam_configs.get_config("runlocal")
    if "dojo" in config:  # where experiments.train gets its data; not a trainer option
      del config["dojo"]
    return config, "experiments.configs.wam:runlocal"
  config = trainer.default_config()
  config.data.image_size = (32, 32)
  config.data.cameras = ("front",)
  config.data.num_frames = 4
  config.data.action_chunk = 4
  config.data.max_instruction_length = 32
  config.data.batch_size = 8
  return config, "wam.trainer.default_config() with runlocal values (32x32 front, batch 8)"


def _config(quick: bool):
  """The benchmarked config after flags; returns ``(config, source)``."""
  from wam import config as model_configs  # pylint: disable=import-outside-toplevel
  config, source = _base_config()
  if config.model.variant != _VARIANT.value:
    config.model = model_configs.model_config(_VARIANT.value)
  if quick:
    config.model.width, config.model.depth, config.model.num_heads = 32, 1, 2
    config.model.tokenizer.channels = (8, 16)
    config.model.tokenizer.latent_channels = 4
    config.model.text_encoder.kwargs = dict(hidden=16, depth=1, num_heads=2, max_length=32)
    config.data.image_size = (16, 16)
    config.data.num_frames = 2
    config.data.action_chunk = 2
    config.data.max_instruction_length = 16
    config.data.batch_size = 2
  for flag, key in ((_WIDTH, "width"), (_DEPTH, "depth"), (_NUM_HEADS, "num_heads")):
    if flag.value:
      config.model[key] = flag.value
  if _DTYPE.value:
    config.model.dtype = _DTYPE.value
  if _BATCH_SIZE.value:
    config.data.batch_size = _BATCH_SIZE.value
  if _IMAGE_SIZE.value:
    config.data.image_size = (_IMAGE_SIZE.value, _IMAGE_SIZE.value)
  if _INSTRUCTION.value:
    config.data.max_instruction_length = _INSTRUCTION.value
  return config, source


def _batch(config) -> dict:
  from wam.data.synthetic import synthetic_batch  # pylint: disable=import-outside-toplevel
  d = config.data
  return synthetic_batch(d.batch_size, num_frames=d.num_frames, action_chunk=d.action_chunk,
                         image_size=tuple(d.image_size), cameras=tuple(d.cameras),
                         joints=JOINTS, proprio=PROPRIO, action=ACTION,
                         max_instruction_length=d.max_instruction_length, seed=config.seed)


def _backbone_inputs(graphdef, params, batch, *, abstract: bool):
  """The token features [B, S, D] and mask [B, S, S] that ``model.loss`` feeds the backbone.

  Recorded while tracing the loss (``Transformer.__call__`` of ``model.backbone`` is
  wrapped for the duration), so they follow whatever sequence layout the model has.
  ``abstract``: shapes only (``jax.eval_shape``), else the values (one jitted call).
  """
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from flax import nnx  # pylint: disable=import-outside-toplevel
  from wam import layers  # pylint: disable=import-outside-toplevel

  original = layers.Transformer.__call__
  seen = []

  def traced(params, batch):
    model = nnx.merge(graphdef, params)

    def recording(self, x, mask, prefix=None):
      if self is model.backbone:
        seen.append((x, mask))
      return original(self, x, mask, prefix)
    layers.Transformer.__call__ = recording
    try:
      model.loss(batch, jax.random.key(0))
    finally:
      layers.Transformer.__call__ = original
    if len(seen) != 1:
      raise RuntimeError(f"model.loss called the backbone {len(seen)} times; expected once.")
    x, mask = seen.pop()
    return x, jnp.broadcast_to(mask, x.shape[:2] + mask.shape[-1:])
  return jax.eval_shape(traced, params, batch) if abstract else jax.jit(traced)(params, batch)


# ----------------------------------------------------------------------------- timing


def _median(xs: list[float]) -> float:
  xs = sorted(xs)
  n = len(xs)
  return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def _time_calls(fn: Callable[[], Any], repeats: int) -> list[float]:
  """Seconds of each of ``repeats`` calls of ``fn`` (its result blocked on)."""
  import jax  # pylint: disable=import-outside-toplevel
  out = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    out.append(time.perf_counter() - start)
  return out


def _compile(fn, *args):
  """``(compiled, seconds)`` of ``jax.jit(fn)`` (or an already jitted ``fn``) on ``args``."""
  import jax  # pylint: disable=import-outside-toplevel
  start = time.perf_counter()
  jitted = fn if hasattr(fn, "lower") else jax.jit(fn)
  compiled = jitted.lower(*args).compile()
  return compiled, time.perf_counter() - start


# ----------------------------------------------------------------------------- dreams


def _dream_rate(graphdef, params, context, actions, *, horizon: int, flow_steps: int,
                use_cache: bool, decode: bool, repeats: int, frames_per_dream: int
                ) -> dict[str, float]:
  """Imagined frames/s of a jitted world-model-mode ``dream``."""
  import jax  # pylint: disable=import-outside-toplevel
  from flax import nnx  # pylint: disable=import-outside-toplevel
  from wam import dream as dream_lib  # pylint: disable=import-outside-toplevel

  def run(params, context, actions, rng):
    model = nnx.merge(graphdef, params)
    out = dream_lib.dream(model, context, rng, horizon=horizon, actions=actions,
                          flow_steps=flow_steps, decode=decode, use_cache=use_cache)
    return out.frames if decode else out.latents
  rng = jax.random.key(1)
  compiled, compile_s = _compile(run, params, context, actions, rng)
  jax.block_until_ready(compiled(params, context, actions, rng))
  seconds = _median(_time_calls(lambda: compiled(params, context, actions, rng), repeats))
  return {"frames_per_second": frames_per_dream / seconds, "seconds": seconds,
          "compile_seconds": compile_s}


# ----------------------------------------------------------------------------- breakdown


def _breakdown(graphdef, params, batch, step_seconds: float, peak: float,
               repeats: int) -> dict[str, dict[str, float]]:
  """Counted FLOPs and median time of the parts of the step, each compiled alone."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from flax import nnx  # pylint: disable=import-outside-toplevel

  model = nnx.merge(graphdef, params)
  frames = batch["frames"]
  p = model.tokenizer.patch
  latent_shape = frames.shape[:3] + (frames.shape[3] // p, frames.shape[4] // p, -1)

  def tokenizer_loss(params, frames):
    m = nnx.merge(graphdef, params)
    recon = m.tokenizer.decode(m.latents(frames).reshape(latent_shape), clip=False)
    return ((recon - frames.astype(jnp.float32) / 255.0) ** 2).mean()

  def text_loss(params, instruction, mask):
    x, _ = nnx.merge(graphdef, params).text(instruction, mask.astype(bool))
    return (x ** 2).mean()

  # The backbone's input in the loss: the token sequence and its block-causal mask.
  tokens, mask = _backbone_inputs(graphdef, params, batch, abstract=False)

  def backbone_loss(params, tokens, mask):
    h, _ = nnx.merge(graphdef, params).backbone(tokens, mask)
    return (h ** 2).mean()

  cfg = model.config
  b, s = tokens.shape[:2]
  head_dim = cfg.width // cfg.num_heads
  qkv = jax.random.normal(jax.random.key(0), (3, b, s, cfg.num_heads, head_dim))

  def attention_loss(qkv, mask):
    total = 0.0
    for layer in range(cfg.depth):  # one attention core per layer, as in the backbone
      q, k, v = qkv * (1.0 + 0.01 * layer)
      total += (jax.nn.dot_product_attention(q, k, v, mask=mask[:, None]) ** 2).mean()
    return total

  def mlp_loss(params, tokens):
    m = nnx.merge(graphdef, params)
    return sum((blk.mlp(tokens) ** 2).mean() for blk in m.backbone.blocks)

  parts = {
      "tokenizer_reconstruction": (jax.grad(tokenizer_loss), (params, frames)),
      "text_encoder": (jax.grad(text_loss), (params, batch["instruction"],
                                             batch["instruction_mask"])),
      "backbone": (jax.grad(backbone_loss), (params, tokens, mask)),
      "backbone_attention_core": (jax.grad(attention_loss), (qkv, mask)),
      "backbone_mlp": (jax.grad(mlp_loss), (params, tokens)),
  }
  from wam import flops  # pylint: disable=import-outside-toplevel
  out = {}
  for name, (fn, args) in parts.items():
    compiled, _ = _compile(fn, *args)
    jax.block_until_ready(compiled(*args))
    seconds = _median(_time_calls(lambda c=compiled, a=args: c(*a), repeats))
    f = flops.compiled_flops(compiled)
    out[name] = {"flops": f, "seconds": seconds, "gflops_per_second": f / seconds / 1e9,
                 "mfu": f / seconds / peak, "share_of_step": seconds / step_seconds}
    _log(f"  {name:26s} {f / 1e9:8.2f} GFLOP {seconds * 1e3:8.1f} ms  mfu {f / seconds / peak:.2f}"
         f"  {100 * seconds / step_seconds:5.1f}% of the step")
  return out


# ----------------------------------------------------------------------------- main


def _table(rows: list[tuple[str, str]]) -> str:
  width = max(len(k) for k, _ in rows)
  return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def main(argv):
  del argv
  import jax  # pylint: disable=import-outside-toplevel
  from flax import nnx  # pylint: disable=import-outside-toplevel
  from wam import flops, sharding, train_state, trainer  # pylint: disable=import-outside-toplevel
  from wam.model import count_parameters  # pylint: disable=import-outside-toplevel
  from wam.optimizer import make_optimizer  # pylint: disable=import-outside-toplevel

  t_start = time.perf_counter()
  quick = _QUICK.value
  steps, windows, warmup = (2, 2, 1) if quick else (_STEPS.value, _WINDOWS.value,
                                                    _WARMUP.value)
  dream_repeats = 2 if quick else _DREAM_REPEATS.value
  peak_repeats = 2 if quick else 5
  config, source = _config(quick)
  horizon = min(_HORIZON.value, 2) if quick else _HORIZON.value
  if 1 + horizon > config.model.max_blocks:
    raise app.UsageError(f"--horizon={horizon}: 1 context block + horizon exceeds "
                         f"model.max_blocks {config.model.max_blocks}.")
  trainer.check_config(config)
  batch_size = config.data.batch_size
  local = _batch(config)

  # -- The trainer's mesh, state shardings and step. ------------------------------------
  mesh = sharding.make_mesh(config.mesh.to_dict())
  rules = sharding.rules_from_config(config.sharding_rules)
  batch_sharding = sharding.batch_sharding(mesh)
  optimizer = make_optimizer(config.optimizer, config.num_steps)
  abstract_model = nnx.eval_shape(lambda: train_state.build_model(config, local, config.seed))
  graphdef, _ = nnx.split(abstract_model)


  def init_state():
    return train_state.initial_state(train_state.build_model(config, local, config.seed),
                                     optimizer, jax.random.key(config.seed))
  abstract_state = jax.eval_shape(init_state)
  state_shardings = train_state.state_shardings(abstract_state, optimizer, mesh, rules)
  state = jax.jit(init_state, out_shardings=state_shardings)()
  num_params = count_parameters(abstract_model)
  batch = sharding.global_batch(local, batch_sharding)
  tokens_per_example = _backbone_inputs(graphdef, state["params"], batch,
                                        abstract=True)[0].shape[1]
  tokens_per_step = tokens_per_example * batch_size
  _log(f"config: {source}; model {config.model.variant} (width {config.model.width}, depth "
       f"{config.model.depth}, heads {config.model.num_heads}, {config.model.dtype}), "
       f"{num_params:,} parameters; batch {batch_size} x {config.data.num_frames} frames of "
       f"{tuple(config.data.image_size)} x {len(config.data.cameras)} camera(s), "
       f"{tokens_per_example} tokens per window; mesh {dict(mesh.shape)}")

  train_step = jax.jit(trainer.make_train_step(graphdef, optimizer), donate_argnums=(0,),
                       in_shardings=(state_shardings, batch_sharding),
                       out_shardings=(state_shardings, None))
  compiled, compile_s = _compile(train_step, state, batch)
  step_flops = flops.compiled_flops(compiled)
  _log(f"train step compiled in {compile_s:.1f}s: {step_flops / 1e9:.2f} GFLOP per device")

  # -- Peak, steps, peak (the load of a shared machine drifts). --------------------------
  peaks = [flops.measure_matmul_peak(repeats=peak_repeats)]
  _log(f"matmul peak {peaks[-1] / 1e9:.1f} GFLOP/s")
  metrics = None
  for _ in range(warmup):
    state, metrics = compiled(state, batch)
  jax.block_until_ready(metrics)
  _log(f"{warmup} warm-up + {windows} windows of {steps} steps")
  window_seconds = []
  for _ in range(windows):
    start = time.perf_counter()
    for _ in range(steps):
      state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    window_seconds.append((time.perf_counter() - start) / steps)
  step_seconds = _median(window_seconds)
  loss = float(metrics["loss"])
  # What the trainer's loop adds per step to put a host batch on the mesh.
  transfer_seconds = _median(_time_calls(
      lambda: sharding.global_batch(local, batch_sharding), 2 if quick else 5))
  peaks.append(flops.measure_matmul_peak(repeats=peak_repeats))
  _log(f"step {step_seconds * 1e3:.1f} ms (windows: "
       f"{', '.join(f'{s * 1e3:.0f}' for s in window_seconds)} ms); matmul peak "
       f"{peaks[-1] / 1e9:.1f} GFLOP/s; loss {loss:.4f}")

  # -- Dreams: 1 context frame, ``horizon`` blocks, world-model mode. -------------------
  params = state["params"]
  context = {k: v[:, :1] for k, v in batch.items()
             if k in ("frames", "joints", "joints_mask", "proprio", "proprio_mask")}
  context.update({k: batch[k] for k in ("instruction", "instruction_mask", "camera_mask",
                                        "embodiment")})
  reps = math.ceil(horizon / config.data.num_frames)
  actions = jax.numpy.tile(batch["actions"], (1, reps, 1, 1))[:, :horizon]
  frames_per_dream = batch_size * horizon * len(config.data.cameras)
  dream_args = dict(horizon=horizon, repeats=dream_repeats, frames_per_dream=frames_per_dream)
  dreams = {}
  # (name, Euler steps per block, KV cache, decode to pixels)
  settings = (("1_step", 1, True, True), ("4_steps", 4, True, True),
              ("no_cache", 1, False, True), ("1_step_latents_only", 1, True, False))
  if not _DREAMS.value:
    settings = ()
  for name, flow_steps, use_cache, decode in settings:
    dreams[name] = _dream_rate(graphdef, params, context, actions, flow_steps=flow_steps,
                               use_cache=use_cache, decode=decode, **dream_args)
    _log(f"dream {name}: {dreams[name]['frames_per_second']:.1f} frames/s "
         f"({dreams[name]['seconds'] * 1e3:.0f} ms per dream of {frames_per_dream} frames)")
  peaks.append(flops.measure_matmul_peak(repeats=peak_repeats))
  peak = max(peaks)

  # -- Where the time goes. --------------------------------------------------------------
  breakdown = None
  if _BREAKDOWN.value:
    _log("breakdown (each part alone, forward + backward):")
    breakdown = _breakdown(graphdef, params, batch, step_seconds, peak,
                           2 if quick else 3)

  steps_per_second = 1.0 / step_seconds

  def fps(name):
    return dreams[name]["frames_per_second"] if name in dreams else None
  flops_6nd = 6.0 * num_params * tokens_per_step
  results = {
      "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                  "processor": platform.processor(), "backend": jax.default_backend(),
                  "devices": str(jax.devices()), "device_count": jax.device_count(),
                  "load_average_at_end": list(os.getloadavg())},
      "config_source": source,
      "variant": config.model.variant,
      "model": {"width": config.model.width, "depth": config.model.depth,
                "num_heads": config.model.num_heads,
                "head_dim": config.model.width // config.model.num_heads,
                "dtype": config.model.dtype,
                "tokenizer_channels": list(config.model.tokenizer.channels)},
      "data": {"num_frames": config.data.num_frames, "action_chunk": config.data.action_chunk,
               "image_size": list(config.data.image_size),
               "cameras": list(config.data.cameras),
               "max_instruction_length": config.data.max_instruction_length,
               "joints": JOINTS, "proprio": PROPRIO, "action": ACTION},
      "mesh": dict(mesh.shape),
      "params": num_params,
      "batch": batch_size,
      "tokens_per_example": tokens_per_example,
      "tokens_per_step": tokens_per_step,
      "flops_per_step": step_flops,
      "step_seconds": step_seconds,
      "steps_per_second": steps_per_second,
      "examples_per_second": batch_size * steps_per_second,
      "peak_flops": peak,
      "mfu": step_flops / step_seconds / peak,
      "flops_6nd_per_step_estimate": flops_6nd,
      "mfu_6nd": flops_6nd / step_seconds / peak,
      "dream_horizon": horizon,
      "dream_fps": fps("1_step"),
      "dream_fps_4_steps": fps("4_steps"),
      "dream_fps_no_cache": fps("no_cache"),
      "dream_fps_latents_only": fps("1_step_latents_only"),
      "cache_speedup": fps("1_step") / fps("no_cache") if dreams else None,
      "breakdown": breakdown,
      "details": {
          "step_window_seconds": window_seconds, "peak_flops_runs": peaks,
          "compile_seconds": compile_s, "final_loss": loss, "dreams": dreams,
          "host_to_device_seconds": transfer_seconds,
          "host_to_device_share_of_step": transfer_seconds / step_seconds,
          "quick": quick, "steps_per_window": steps, "windows": windows, "warmup": warmup,
          "notes": ("flops_per_step: XLA cost analysis of the compiled step (per device); "
                    "mfu_6nd: ESTIMATE 6*params*tokens, not counted; dream fps: world-model "
                    "mode, 1 context frame, decoded frames."),
      },
  }
  results["seconds"] = time.perf_counter() - t_start
  rows = [
      ("config", source),
      ("variant", f"{config.model.variant} (width {config.model.width}, depth "
                  f"{config.model.depth}, heads {config.model.num_heads}, "
                  f"{config.model.dtype})"),
      ("params", f"{num_params:,}"),
      ("batch", f"{batch_size} windows x {config.data.num_frames} frames "
                f"{tuple(config.data.image_size)}"),
      ("tokens per step", f"{tokens_per_step:,} ({tokens_per_example} per window)"),
      ("flops per step (XLA)", f"{step_flops / 1e9:.2f} GFLOP"),
      ("flops per step (6ND est.)", f"{flops_6nd / 1e9:.2f} GFLOP"),
      ("step", f"{step_seconds * 1e3:.1f} ms"),
      ("steps/s", f"{steps_per_second:.3f}"),
      ("examples/s", f"{batch_size * steps_per_second:.1f}"),
      ("batch host->device", f"{transfer_seconds * 1e3:.2f} ms per step (not in the step "
                             "time)"),
      ("matmul peak", f"{peak / 1e9:.1f} GFLOP/s (runs: "
                      f"{', '.join(f'{p / 1e9:.0f}' for p in peaks)})"),
      ("mfu (counted)", f"{results['mfu']:.3f}"),
      ("mfu_6nd (estimate)", f"{results['mfu_6nd']:.3f}"),
  ]
  if dreams:
    rows += [
        ("dream fps, 1 step", f"{results['dream_fps']:.1f} frames/s (horizon {horizon}, "
                              f"batch {batch_size}, decoded)"),
        ("dream fps, 4 steps", f"{results['dream_fps_4_steps']:.1f} frames/s"),
        ("dream fps, no cache", f"{results['dream_fps_no_cache']:.1f} frames/s"),
        ("cache speed-up", f"{results['cache_speedup']:.2f}x"),
        ("dream fps, latents only", f"{results['dream_fps_latents_only']:.1f} frames/s "
                                    "(1 step, not decoded)"),
    ]
  if breakdown:
    for name, part in breakdown.items():
      rows.append((f"  {name}", f"{part['flops'] / 1e9:.2f} GFLOP, "
                               f"{part['seconds'] * 1e3:.1f} ms, mfu {part['mfu']:.2f}, "
                               f"{100 * part['share_of_step']:.0f}% of the step"))
  rows.append(("wall time", f"{results['seconds']:.0f} s (load average now "
                            f"{os.getloadavg()[0]:.1f})"))
  print(_table(rows), flush=True)
  results_lib.write_json(_OUT.value, results)


if __name__ == "__main__":
  app.run(main)
