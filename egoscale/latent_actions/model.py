"""The latent action VAE: q(z | frame_t, frame_t+gap) and p(frame_t+gap | frame_t, z)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx


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
