"""Evaluating dreams against reality, during and after training.

On a fixed batch of held-out windows the model sees the first ``num_context`` frames and
imagines the rest (world-model mode, given the real action chunks). Per horizon step:
PSNR and SSIM of dreamed frames (rendered anchored on the last context frame, see
``wam.dream.dream``) against the real ones, next to the "copy the last context frame"
baseline a model must beat (an anchored dream that predicts no change scores exactly
that); PSNR of plainly decoded dreams and the tokenizer's reconstruction PSNR (the
ceiling for plain decoding); joint-angle error; and in policy mode the error of the generated
first action chunk against the demonstrated one (vectors in normalised units). Also the
training loss itself on the held-out windows (``eval/loss``, ``eval/loss/video``...).
A run without a held-out split is evaluated on training windows and its metrics are
named ``eval_train/*`` instead (``train_key`` maps a name to its training-window twin).

Controllability (``eval/control/*``, ``wam.controllability``): the first dreamed block
again with each window's actions replaced by another window's (the batch rolled by one).
A model that follows actions loses PSNR (``delta_psnr_h1``, Genie's measure) and its
joint motion tracks the real one with the true actions (``motion_gain`` near 1) but not
with the shuffled ones (``motion_gain_shuffled`` near 0); a model that ignores actions
scores the same with both.
"""

from __future__ import annotations

import os
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from wam import controllability
from wam import dream as dream_lib
from wam import image_metrics, visualize
from wam.metric_writer import MetricWriter

def evaluate_dreams(model, batch: Mapping[str, jax.Array], rng: jax.Array, *,
                    num_context: int, flow_steps: int) -> dict[str, jax.Array]:
  """Dreams the rest of each window from its context; returns metrics and frames."""
  t = batch["frames"].shape[1]
  c = max(1, min(num_context, t - 1))
  horizon = t - c
  ctx = dream_lib.context_of(batch, c)
  if model.config.goal_image:  # the window's last frame, as in training
    ctx["goal_latents"] = model.latents(batch["frames"][:, -1:])[:, 0]
  world = dream_lib.dream(model, ctx, rng, horizon=horizon,
                          actions=batch["actions"][:, c - 1:c - 1 + horizon].astype(jnp.float32),
                          flow_steps=flow_steps)
  decoded = dream_lib.decode_latents(model, world.latents)
  shuffled_actions = jnp.roll(batch["actions"][:, c - 1:c].astype(jnp.float32), 1, axis=0)
  shuffled = dream_lib.dream(model, ctx, rng, horizon=1, actions=shuffled_actions,
                             flow_steps=flow_steps)
  policy = dream_lib.dream(model, ctx, rng, horizon=1, flow_steps=flow_steps, decode=False)
  real = batch["frames"][:, c:].astype(jnp.float32) / 255.0          # [B, H, V, h, w, 3]
  last = jnp.broadcast_to(batch["frames"][:, c - 1:c].astype(jnp.float32) / 255.0, real.shape)
  recon = model.tokenizer.decode(model.tokenizer.encode(batch["frames"][:, c:]))
  cam = batch["camera_mask"].astype(jnp.float32)[:, None, :]          # [B, 1, V]

  def over_cameras(x):  # [B, H, V] -> [B, H]
    return (x * cam).sum(-1) / jnp.maximum(cam.sum(-1), 1.0)

  def horizon_metric(fn, pred):
    return image_metrics.per_horizon(over_cameras(fn(pred, real)))
  j = model.dims.joints
  jmask = batch["joints_mask"][:, c:].astype(jnp.float32)
  def joint_mae(pred):
    return (jnp.abs(pred - batch["joints"][:, c:]) * jmask).sum() / jnp.maximum(jmask.sum(), 1.0)
  joint_err = joint_mae(world.state[..., :j])
  joint_err_copy = joint_mae(batch["joints"][:, c - 1:c])   # "nothing moves"
  # Joint motion over the first dreamed block, true vs shuffled actions.
  start = batch["joints"][:, c - 1]
  real_change = batch["joints"][:, c] - start
  jmask1 = jmask[:, 0]
  gain = controllability.motion_gain(real_change, world.state[:, 0, :j] - start, jmask1)
  gain_shuffled = controllability.motion_gain(real_change, shuffled.state[:, 0, :j] - start,
                                              jmask1)
  psnr_shuffled = image_metrics.per_horizon(over_cameras(image_metrics.psnr(
      shuffled.frames, real[:, :1])))
  amask = batch["action_mask"][:, c - 1].astype(jnp.float32)
  if "imitate" in batch:   # play windows' actions are not a policy target
    amask = amask * batch["imitate"].astype(jnp.float32)[:, None, None]
  action_err = (((policy.actions[:, 0] - batch["actions"][:, c - 1]) ** 2) * amask).sum() / (
      jnp.maximum(amask.sum(), 1.0))
  return {
      "psnr": horizon_metric(image_metrics.psnr, world.frames),
      "ssim": horizon_metric(image_metrics.ssim, world.frames),
      "psnr_decoded": horizon_metric(image_metrics.psnr, decoded),
      "psnr_copy_last": horizon_metric(image_metrics.psnr, last),
      "ssim_copy_last": horizon_metric(image_metrics.ssim, last),
      "psnr_reconstruction": horizon_metric(image_metrics.psnr, recon),
      "joint_mae": joint_err,
      "joint_mae_copy_last": joint_err_copy,
      "action_mse": action_err,
      "motion_gain": gain, "motion_gain_shuffled": gain_shuffled,
      "psnr_shuffled_h1": psnr_shuffled[0],
      "dreamed": world.frames, "real": real, "num_context": jnp.asarray(c),
  }


VAL_LOSS_DRAWS = 4


HELD_OUT_PREFIX = "eval"
TRAIN_PREFIX = "eval_train"  # the same metrics on training windows (no held-out split)


def train_key(key: str) -> str:
  """``eval/x`` -> ``eval_train/x``: where a metric is when no held-out split existed."""
  head, sep, rest = key.partition("/")
  return f"{TRAIN_PREFIX}/{rest}" if head == HELD_OUT_PREFIX and sep else key


class Evaluator:
  """Runs ``evaluate_dreams`` on a fixed batch (compiled once) and writes the results.

  Metrics are named ``<prefix>/...``: ``eval`` on held-out windows, ``eval_train`` when
  the batch holds training windows.
  """

  def __init__(self, graphdef, config, batch: Mapping[str, np.ndarray],
               prefix: str = HELD_OUT_PREFIX):
    self.batch = {k: jnp.asarray(v) for k, v in batch.items()}
    self.prefix = prefix
    self.config = config
    self.rng = jax.random.key(config.seed + 1)

    @jax.jit
    def run(params, batch, rng):
      model = nnx.merge(graphdef, params)
      return evaluate_dreams(model, batch, rng, num_context=config.data.num_context,
                             flow_steps=config.eval.flow_steps)
    self._run = run

    @jax.jit
    def val_loss(params, batch, rng):
      # The training objective on held-out windows, averaged over a few fixed draws of
      # flow time and noise: the number scaling-law fits use (lower variance than one).
      model = nnx.merge(graphdef, params)
      keys = jax.random.split(rng, VAL_LOSS_DRAWS)
      return jax.tree.map(jnp.mean, jax.lax.map(lambda k: model.loss(batch, k)[1], keys))
    self._val_loss = val_loss

  def run(self, params, step: int, workdir: str, writer: MetricWriter) -> dict[str, float]:
    """Evaluates ``params``; logs scalars, writes a GIF, a PNG grid and horizon plots."""
    out = jax.device_get(self._run(params, self.batch, self.rng))
    losses = jax.device_get(self._val_loss(params, self.batch, self.rng))
    scalars = {f"eval/{k}": float(v) for k, v in losses.items() if k.startswith("loss")}
    scalars.update({"eval/joint_mae": float(out["joint_mae"]),
               "eval/joint_mae_copy_last": float(out["joint_mae_copy_last"]),
               "eval/action_mse": float(out["action_mse"])})
    for name in ("psnr", "ssim", "psnr_decoded", "psnr_copy_last", "ssim_copy_last",
                 "psnr_reconstruction"):
      for h, value in enumerate(out[name], start=1):
        scalars[f"eval/{name}_h{h}"] = float(value)
    scalars["eval/psnr_gain_over_copy_h1"] = (scalars["eval/psnr_h1"]
                                              - scalars["eval/psnr_copy_last_h1"])
    scalars["eval/control/motion_gain"] = float(out["motion_gain"])
    scalars["eval/control/motion_gain_shuffled"] = float(out["motion_gain_shuffled"])
    scalars["eval/control/psnr_shuffled_h1"] = float(out["psnr_shuffled_h1"])
    scalars["eval/control/delta_psnr_h1"] = (scalars["eval/psnr_h1"]
                                             - scalars["eval/control/psnr_shuffled_h1"])
    if self.prefix != HELD_OUT_PREFIX:
      scalars = {f"{self.prefix}/{k.partition('/')[2]}": v for k, v in scalars.items()}
    writer.write_scalars(step, scalars)
    if writer.enabled:
      self._write_media(out, step, workdir, writer)
    return scalars

  def _write_media(self, out, step: int, workdir: str, writer: MetricWriter) -> None:
    c = int(out["num_context"])
    n = min(self.config.eval.videos, out["real"].shape[0])
    context = np.asarray(self.batch["frames"][:n, :c])
    # Cameras side by side: [B, T, V, h, w, 3] -> [B, T, h, V*w, 3].
    def flat(x):
      return np.concatenate(list(np.moveaxis(np.asarray(x), 2, 0)), axis=-2)
    real = np.concatenate([flat(context), flat(visualize.to_uint8(out["real"][:n]))], 1)
    dreamed = np.concatenate([flat(context), flat(visualize.to_uint8(out["dreamed"][:n]))], 1)
    videos = os.path.join(workdir, "videos")
    os.makedirs(videos, exist_ok=True)
    visualize.dream_video(os.path.join(videos, f"dream_{step:07d}.gif"), real, dreamed,
                          fps=2.0, num_context=c)
    grid = visualize.dream_grid(real, dreamed, num_context=c)
    import imageio.v2 as imageio  # pylint: disable=import-outside-toplevel
    imageio.imwrite(os.path.join(videos, f"dream_{step:07d}.png"), grid)
    writer.write_images(step, {f"{self.prefix}/dreams": grid})
    plots = os.path.join(workdir, "plots")
    visualize.plot_horizon({"model (anchored)": out["psnr"].tolist(),
                            "model (decoded)": out["psnr_decoded"].tolist(),
                            "copy last frame": out["psnr_copy_last"].tolist(),
                            "tokenizer reconstruction": out["psnr_reconstruction"].tolist()},
                           os.path.join(plots, "psnr_by_horizon.png"), "PSNR (dB)")
    visualize.plot_horizon({"model": out["ssim"].tolist(),
                            "copy last frame": out["ssim_copy_last"].tolist()},
                           os.path.join(plots, "ssim_by_horizon.png"), "SSIM")


def plot_training(workdir: str) -> None:
  """Loss curves and evaluation curves from ``metrics.jsonl`` as PNGs in ``plots/``."""
  metrics = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(metrics):
    return
  plots = os.path.join(workdir, "plots")
  visualize.plot_curves(metrics, os.path.join(plots, "losses.png"),
                        ["loss", "loss/video", "loss/state", "loss/action",
                         "loss/reconstruction"])
  # Absent keys are skipped: a run without a held-out split has only eval_train/*.
  evals = ["eval/psnr_h1", "eval/psnr_gain_over_copy_h1", "eval/joint_mae", "eval/action_mse"]
  control = ["eval/control/motion_gain", "eval/control/motion_gain_shuffled",
             "eval/control/delta_psnr_h1"]
  visualize.plot_curves(metrics, os.path.join(plots, "eval.png"),
                        evals + [train_key(k) for k in evals], log_y=False)
  visualize.plot_curves(metrics, os.path.join(plots, "controllability.png"),
                        control + [train_key(k) for k in control], log_y=False)
  visualize.plot_curves(metrics, os.path.join(plots, "throughput.png"),
                        ["steps_per_second", "mfu"], log_y=False)
