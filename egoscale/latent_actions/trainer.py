"""Trains, checkpoints (orbax, resumable) and applies a latent action VAE."""

from __future__ import annotations

import logging
import os
import time
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from egoscale.latent_actions.model import LatentActionConfig, LatentActionVAE
from egoscale.latent_actions.pairs import FramePairs
from wam import checkpoint as checkpoint_lib


class LatentActionTrainer:
  """Trains, checkpoints (orbax, resumable) and applies a :class:`LatentActionVAE`."""

  def __init__(self, config: LatentActionConfig, image_size: tuple[int, int]):
    self.config = config
    self.image_size = tuple(image_size)
    model = LatentActionVAE(config, self.image_size, rngs=nnx.Rngs(config.seed))
    self.graphdef, params = nnx.split(model)
    self.optimizer = optax.adamw(optax.cosine_decay_schedule(
        config.learning_rate, max(config.num_steps, 1), alpha=0.1), weight_decay=1e-4)
    self.state = {"params": params, "opt_state": self.optimizer.init(params),
                  "step": jnp.zeros((), jnp.int32), "rng": jax.random.key(config.seed)}
    self.history: list[dict] = []

    def train_step(state, prev, next_):
      rng, step_rng = jax.random.split(state["rng"])

      def loss_fn(params):
        return nnx.merge(self.graphdef, params).loss(prev, next_, step_rng)

      (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
      updates, opt_state = self.optimizer.update(grads, state["opt_state"], state["params"])
      params = optax.apply_updates(state["params"], updates)
      return ({"params": params, "opt_state": opt_state, "step": state["step"] + 1,
               "rng": rng}, dict(metrics, loss=loss))

    self._train_step = jax.jit(train_step, donate_argnums=(0,))
    self._encode = jax.jit(lambda params, a, b: nnx.merge(self.graphdef, params).encode(a, b)[0])
    self._decode = jax.jit(lambda params, a, z: nnx.merge(self.graphdef, params).decode(a, z))

  @property
  def step(self) -> int:
    return int(self.state["step"])

  def _check(self, pairs: FramePairs) -> None:
    shape = (len(pairs),) + self.image_size + (3,)
    for name in ("prev", "next"):
      x = getattr(pairs, name)
      if x.shape != shape or x.dtype != np.uint8:
        raise ValueError(f"FramePairs.{name}: expected uint8{list(shape)}, got "
                         f"{x.dtype}{list(x.shape)}.")

  def fit(self, pairs: FramePairs, *, num_steps: Optional[int] = None,
          workdir: Optional[str] = None, log_every: int = 100,
          callback: Optional[Callable[[int, dict], None]] = None) -> list[dict]:
    """Trains on ``pairs`` (resuming from ``workdir/checkpoints`` when it holds one).

    Returns the logged metrics (one dict per ``log_every`` steps).
    """
    self._check(pairs)
    num_steps = self.config.num_steps if num_steps is None else num_steps
    checkpointer = None
    if workdir:
      checkpointer = checkpoint_lib.Checkpointer(os.path.join(workdir, "checkpoints"),
                                                 max_to_keep=1, save_interval_steps=log_every)
      if checkpointer.latest_step() is not None:
        _, self.state, _ = checkpointer.restore(self.state)
        logging.info("Latent action model: resumed at step %d.", self.step)
    start = time.perf_counter()
    try:
      while self.step < num_steps:
        # The rng draws are a function of the step, so a resumed run sees the same batches.
        idx = np.random.default_rng((self.config.seed, self.step)).integers(
            0, len(pairs), self.config.batch_size)
        self.state, metrics = self._train_step(self.state, pairs.prev[idx], pairs.next[idx])
        step = self.step
        if step % log_every == 0 or step == num_steps:
          row = {k: float(v) for k, v in jax.device_get(metrics).items()}
          row.update(step=step, seconds=time.perf_counter() - start)
          if not np.isfinite(row["loss"]):
            raise FloatingPointError(f"Latent action model: loss {row['loss']} at step "
                                     f"{step}; the last good checkpoint is kept.")
          self.history.append(row)
          logging.info("[latent actions] step %d/%d loss %.4f recon %.4f (copy %.4f) kl %.3f",
                       step, num_steps, row["loss"], row["recon"], row["copy_mse"], row["kl"])
          if callback:
            callback(step, row)
          if checkpointer:
            checkpointer.save(step, self.state, force=True)
    finally:
      if checkpointer:
        checkpointer.close()
    return self.history

  def encode_mean(self, prev: np.ndarray, next_: np.ndarray, batch: int = 256) -> np.ndarray:
    """The latent action (posterior mean) of each pair, f32[N, latent_dim]."""
    out = [np.asarray(self._encode(self.state["params"], prev[i:i + batch],
                                   next_[i:i + batch]))
           for i in range(0, len(prev), batch)]
    return np.concatenate(out) if out else np.zeros((0, self.config.latent_dim), np.float32)

  def predict_next(self, prev: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Decoded next frames (uint8) from ``prev`` and latent actions ``z``."""
    x = np.asarray(self._decode(self.state["params"], prev, z))
    return np.clip((x + 1.0) * 127.5, 0, 255).round().astype(np.uint8)
