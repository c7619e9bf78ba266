"""Frame tokenizer: a convolutional autoencoder between pixels and latent tokens.

``encode`` maps uint8 frames [..., H, W, 3] to latents [..., H/p, W/p, C] (``p`` is
``2 ** len(channels)``); ``decode`` maps them back to pixels in [0, 1].

The latents end in a parameter-free layer norm over channels, so every token has zero
mean and unit variance: the scale the flow-matching noise assumes, and no way for the
tokenizer to shrink latents to make prediction trivially easy.

Training: jointly with the world model, from a pixel reconstruction loss only. The world
model sees ``stop_gradient`` latents (as context and as flow targets), so its loss never
shapes the tokenizer. This keeps one training phase (one command, one checkpoint) while
avoiding the collapse that a shared gradient invites; see docs/model.md.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from wam import layers


def _conv(rngs, cin, cout, stride=1):
  init = layers.logical(nnx.initializers.lecun_normal(), (None, None, None, "conv"))
  return nnx.Conv(cin, cout, kernel_size=(3, 3), strides=(stride, stride), padding="SAME",
                  kernel_init=init, rngs=rngs)


class _Upsample(nnx.Module):
  """2x upsampling: a 3x3 conv to 4x the channels, then depth-to-space.

  Used instead of a strided transposed convolution, whose kernel gradient runs about
  10x slower than a plain convolution's on XLA:CPU (benchmarks/train.py breakdown).
  """

  def __init__(self, cin: int, cout: int, rngs: nnx.Rngs):
    self.conv = _conv(rngs, cin, 4 * cout)

  def __call__(self, x):
    y = self.conv(jax.nn.silu(x))
    n, h, w, c = y.shape
    y = y.reshape(n, h, w, 2, 2, c // 4).transpose(0, 1, 3, 2, 4, 5)
    return y.reshape(n, 2 * h, 2 * w, c // 4)


class _Residual(nnx.Module):
  def __init__(self, channels: int, rngs: nnx.Rngs):
    self.norm = nnx.GroupNorm(channels, num_groups=min(8, channels), rngs=rngs)
    self.conv = _conv(rngs, channels, channels)

  def __call__(self, x):
    return x + self.conv(jax.nn.silu(self.norm(x)))


class FrameTokenizer(nnx.Module):
  """Convolutional encoder/decoder between frames and ``latent_channels`` latents."""

  def __init__(self, *, channels: Sequence[int] = (32, 64), latent_channels: int = 16,
               rngs: nnx.Rngs):
    if not channels:
      raise ValueError("tokenizer.channels must name at least one stage.")
    self.patch = 2 ** len(channels)
    self.latent_channels = latent_channels
    self.stem = _conv(rngs, 3, channels[0])
    down, cin = [], channels[0]
    for c in channels:
      down += [_conv(rngs, cin, c, stride=2), _Residual(c, rngs)]
      cin = c
    self.down = nnx.List(down)
    self.to_latent = _conv(rngs, cin, latent_channels)
    self.from_latent = _conv(rngs, latent_channels, cin)
    up = []
    for c in reversed(channels):
      up += [_Residual(cin, rngs), _Upsample(cin, c, rngs)]
      cin = c
    self.up = nnx.List(up)
    self.head = _conv(rngs, cin, 3)

  def encode(self, frames: jax.Array) -> jax.Array:
    """uint8 (or [0, 1] float) frames [..., H, W, 3] -> latents [..., H/p, W/p, C]."""
    lead, hw = frames.shape[:-3], frames.shape[-3:]
    if hw[0] % self.patch or hw[1] % self.patch:
      raise ValueError(f"Frame size {hw[:2]} is not divisible by the tokenizer's "
                       f"downsampling factor {self.patch}.")
    x = frames.astype(jnp.float32)
    if frames.dtype == jnp.uint8:
      x = x / 255.0
    x = self.stem(x.reshape((-1,) + hw) * 2.0 - 1.0)
    for layer in self.down:
      x = layer(x)
    z = self.to_latent(jax.nn.silu(x))
    mean = z.mean(-1, keepdims=True)
    z = (z - mean) * jax.lax.rsqrt(((z - mean) ** 2).mean(-1, keepdims=True) + 1e-6)
    return z.reshape(lead + z.shape[1:])

  def decode(self, latents: jax.Array, clip: bool = True) -> jax.Array:
    """Latents [..., h, w, C] -> frames float32 [..., h*p, w*p, 3] in [0, 1].

    ``clip=False`` skips the final clip to [0, 1] (the reconstruction loss uses it so
    that saturated pixels still get a gradient).
    """
    lead = latents.shape[:-3]
    x = self.from_latent(latents.reshape((-1,) + latents.shape[-3:]))
    for layer in self.up:
      x = layer(x)
    x = self.head(jax.nn.silu(x))
    x = x * 0.5 + 0.5
    if clip:
      x = jnp.clip(x, 0.0, 1.0)
    return x.reshape(lead + x.shape[1:])

  def tokens_per_frame(self, image_size: tuple[int, int]) -> int:
    return (image_size[0] // self.patch) * (image_size[1] // self.patch)
