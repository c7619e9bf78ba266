"""Latent actions: a VAE that infers a continuous action from a pair of frames.

Most video has no action labels. DreamDojo trains its world model on such video by
inferring a latent action from each pair of consecutive frames and using it as the
action label. The VAE here does the same:

* the **encoder** sees ``(frame_t, frame_t+gap)`` and outputs a Gaussian over a small
  latent ``z`` (``latent_dim`` numbers);
* the **decoder** sees ``frame_t`` and ``z`` only and must predict ``frame_t+gap``.

The decoder can only learn what changed between the frames through ``z``, and the KL
term keeps ``z`` small, so ``z`` comes to encode the *change* (the hand's and camera's
motion) rather than the scene, which the decoder already has.

Quality is measured the way the field does: a **linear probe** (ridge regression) from
``z`` to the true actions on held-out labelled pairs, reported as R^2 next to the same
probe on an untrained encoder. ``label_dataset`` then writes a copy of a dataset whose
action is the latent action, ready for world-model pre-training.

Library use::

  vae = LatentActionTrainer(LatentActionConfig(latent_dim=8), image_size=(32, 32))
  vae.fit(pairs, num_steps=1500, workdir="workdir/lam")     # resumable (orbax)
  r2 = linear_probe(vae.encode_mean(test.prev, test.next), test.action, ...)
  path = label_dataset(vae, "data/egocentric_human/1.0.0", data_dir="data", name="ego_lam")
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from wam import checkpoint as checkpoint_lib
from wam.data.builder import write_dataset
from wam.data.layout import Layout
from wam.data.reader import EpisodeDataset


@dataclasses.dataclass(frozen=True)
class LatentActionConfig:
  """Size and training of the latent action model."""
  latent_dim: int = 8          # DreamDojo uses 32 at scale
  channels: tuple[int, ...] = (32, 64)   # conv widths; each halves the resolution
  hidden: int = 128
  # KL weight per image, against the summed squared error of its pixels: small enough
  # that z carries the motion (at 1 the posterior collapses on these small frames).
  beta: float = 0.01
  gap: int = 1                 # frames between the pair
  learning_rate: float = 2e-3
  batch_size: int = 64
  num_steps: int = 1500
  seed: int = 0


class FramePairs(NamedTuple):
  """Pairs of frames (uint8 [N,H,W,3]) with the true action between them if known."""
  prev: np.ndarray
  next: np.ndarray
  action: Optional[np.ndarray]   # f32[N, A] (the action at the first frame) or None

  def __len__(self) -> int:
    return len(self.prev)

  def take(self, idx: np.ndarray) -> "FramePairs":
    return FramePairs(self.prev[idx], self.next[idx],
                      None if self.action is None else self.action[idx])


# ------------------------------------------------------------------------------ model
def _to_float(frames: jax.Array) -> jax.Array:
  return frames.astype(jnp.float32) / 127.5 - 1.0


class LatentActionVAE(nnx.Module):
  """Encoder q(z | frame_t, frame_t+gap) and decoder p(frame_t+gap | frame_t, z)."""

  def __init__(self, config: LatentActionConfig, image_size: tuple[int, int], *,
               rngs: nnx.Rngs):
    h, w = image_size
    down = 2 ** len(config.channels)
    if h % down or w % down:
      raise ValueError(f"image_size {image_size} must be divisible by {down} (one halving "
                       f"per entry of channels={config.channels}).")
    self.config = config
    self.grid = (h // down, w // down)
    conv = lambda cin, cout, stride: nnx.Conv(cin, cout, (3, 3), strides=(stride, stride),
                                              padding="SAME", rngs=rngs)
    # Encoder over [prev, next, next - prev]: the difference makes motion easy to see.
    enc, cin = [], 9
    for c in config.channels:
      enc.append(conv(cin, c, 2))
      cin = c
    self.encoder = nnx.List(enc)
    flat = cin * self.grid[0] * self.grid[1]
    self.enc_hidden = nnx.Linear(flat, config.hidden, rngs=rngs)
    self.enc_out = nnx.Linear(config.hidden, 2 * config.latent_dim, rngs=rngs)
    # Decoder: features of prev, z broadcast over space, upsampled to a residual image.
    ctx, cin = [], 3
    for c in config.channels:
      ctx.append(conv(cin, c, 2))
      cin = c
    self.context = nnx.List(ctx)
    self.z_in = nnx.Linear(config.latent_dim, cin, rngs=rngs)
    dec = []
    for c in reversed(config.channels):
      dec.append(nnx.ConvTranspose(cin, c, (3, 3), strides=(2, 2), padding="SAME",
                                   rngs=rngs))
      cin = c
    self.decoder = nnx.List(dec)
    self.out = conv(cin + 3, 3, 1)

  def encode(self, prev: jax.Array, next_: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean and log-variance of q(z | prev, next), each f32[..., latent_dim]."""
    a, b = _to_float(prev), _to_float(next_)
    x = jnp.concatenate([a, b, b - a], axis=-1)
    for layer in self.encoder:
      x = nnx.gelu(layer(x))
    x = nnx.gelu(self.enc_hidden(x.reshape(x.shape[:-3] + (-1,))))
    mean, logvar = jnp.split(self.enc_out(x), 2, axis=-1)
    return mean, jnp.clip(logvar, -10.0, 5.0)

  def decode(self, prev: jax.Array, z: jax.Array) -> jax.Array:
    """The predicted next frame in [-1, 1] from ``prev`` and the latent action ``z``."""
    a = _to_float(prev)
    x = a
    for layer in self.context:
      x = nnx.gelu(layer(x))
    x = x + self.z_in(z)[..., None, None, :]
    for layer in self.decoder:
      x = nnx.gelu(layer(x))
    return a + self.out(jnp.concatenate([x, a], axis=-1))

  def loss(self, prev: jax.Array, next_: jax.Array, rng: jax.Array
           ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The beta-weighted negative ELBO, divided by the number of pixel values."""
    mean, logvar = self.encode(prev, next_)
    z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(rng, mean.shape)
    recon = jnp.mean((self.decode(prev, z) - _to_float(next_)) ** 2)
    kl = jnp.mean(0.5 * jnp.sum(mean ** 2 + jnp.exp(logvar) - 1.0 - logvar, axis=-1))
    copy = jnp.mean((_to_float(prev) - _to_float(next_)) ** 2)
    pixels = prev.shape[-3] * prev.shape[-2] * prev.shape[-1]
    return recon + self.config.beta * kl / pixels, {"recon": recon, "kl": kl, "copy_mse": copy}


# --------------------------------------------------------------------------- training
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


# ------------------------------------------------------------------------------- data
def frame_pairs(dataset: EpisodeDataset, *, camera: Optional[str] = None, gap: int = 1,
                max_episodes: Optional[int] = None, action_slots: Optional[Sequence[str]] = None
                ) -> FramePairs:
  """All pairs ``(frame_t, frame_t+gap)`` of a stored dataset split.

  ``action``: the dataset's action at ``t`` (restricted to ``action_slots`` when given)
  where every step of the pair is labelled, else None (unlabeled video).
  """
  spec = dataset.spec
  camera = camera or (spec.cameras[0] if spec.cameras else None)
  if camera not in spec.cameras:
    raise ValueError(f"{dataset.path}: no camera {camera!r}; it has {list(spec.cameras)}.")
  key = f"observation/image_{camera}"
  columns = None
  if spec.action.dim and action_slots:
    sizes = {s.name: s.size for s in spec.action.slots}
    columns = np.concatenate([spec.action.offset(s) + np.arange(sizes[s])
                              for s in action_slots])
  prev, next_, actions = [], [], []
  count = len(dataset) if max_episodes is None else min(len(dataset), max_episodes)
  for e in range(count):
    steps = dataset.read_steps(e, range(int(dataset.episode_lengths[e])))
    frames = steps[key]
    if len(frames) <= gap:
      continue
    prev.append(frames[:-gap])
    next_.append(frames[gap:])
    if spec.action.dim:
      a = steps["action"][:-gap]
      mask = steps["action_mask"][:-gap]
      if not mask.all():
        # The pair is usable as video; drop the label of unlabeled steps entirely.
        a = np.where(mask[:, None], a, np.nan)
      actions.append(a if columns is None else a[:, columns])
  if not prev:
    raise ValueError(f"{dataset.path}: no episode is longer than gap={gap} steps.")
  action = None
  if actions:
    action = np.concatenate(actions).astype(np.float32)
  return FramePairs(np.concatenate(prev), np.concatenate(next_), action)


# ------------------------------------------------------------------------------ probe
@dataclasses.dataclass
class ProbeResult:
  """R^2 of ridge regression from features to actions on held-out pairs."""
  r2: float                  # variance-weighted over action dimensions
  r2_per_dim: np.ndarray
  num_train: int
  num_test: int


def linear_probe(features: np.ndarray, actions: np.ndarray, *, test_fraction: float = 0.3,
                 ridge: float = 1e-3, seed: int = 0) -> ProbeResult:
  """Fits ``actions ~ W features + b`` on a random split and scores the rest."""
  if len(features) != len(actions):
    raise ValueError(f"linear_probe: {len(features)} feature rows but {len(actions)} "
                     "action rows.")
  keep = np.isfinite(actions).all(axis=1)
  features, actions = features[keep], actions[keep]
  n = len(features)
  if n < 10:
    raise ValueError(f"linear_probe: {n} labelled pairs; need at least 10.")
  order = np.random.default_rng(seed).permutation(n)
  num_test = max(1, int(n * test_fraction))
  test, train = order[:num_test], order[num_test:]
  x = np.concatenate([features, np.ones((n, 1))], axis=1).astype(np.float64)
  y = actions.astype(np.float64)
  xt = x[train]
  w = np.linalg.solve(xt.T @ xt + ridge * len(train) * np.eye(x.shape[1]), xt.T @ y[train])
  residual = y[test] - x[test] @ w
  total = y[test] - y[train].mean(axis=0)
  ss_res, ss_tot = (residual ** 2).sum(axis=0), (total ** 2).sum(axis=0)
  per_dim = 1.0 - ss_res / np.maximum(ss_tot, 1e-12)
  return ProbeResult(r2=float(1.0 - ss_res.sum() / max(ss_tot.sum(), 1e-12)),
                     r2_per_dim=per_dim, num_train=len(train), num_test=num_test)


# ------------------------------------------------------------------------- relabeling
LATENT_SLOT = "latent_action"


def label_dataset(vae: LatentActionTrainer, path: str, *, data_dir: str, name: str,
                  splits: Sequence[str] = ("train", "val"), camera: Optional[str] = None,
                  overwrite: bool = False) -> str:
  """Writes a copy of dataset ``path`` whose action is the inferred latent action.

  Step ``t`` gets ``z(frame_t, frame_t+gap)``; the last ``gap`` steps of an episode have
  no next frame and are masked. Other fields are copied unchanged; an existing action
  layout is replaced by the single slot ``latent_action``.
  """
  first = EpisodeDataset(path, splits[0])
  spec = dataclasses.replace(first.spec, action=Layout.of([(LATENT_SLOT,
                                                             vae.config.latent_dim)]))
  camera = camera or spec.cameras[0]
  gap = vae.config.gap

  def episodes(split):
    ds = EpisodeDataset(path, split)
    for e in range(len(ds)):
      episode = ds.episode(e)
      steps = episode["steps"]
      frames = steps["observation"][f"image_{camera}"]
      n = len(frames)
      z = np.zeros((n, vae.config.latent_dim), np.float32)
      mask = np.zeros((n,), bool)
      if n > gap:
        z[:-gap] = vae.encode_mean(frames[:-gap], frames[gap:])
        mask[:-gap] = True
      steps["action"], steps["action_mask"] = z, mask
      yield episode

  return write_dataset(name, spec, {s: (lambda s=s: episodes(s)) for s in splits}, data_dir,
                       description=f"{first.name} with latent actions (dim "
                                   f"{vae.config.latent_dim}, gap {gap}) from a VAE.",
                       overwrite=overwrite)
