"""Transformer building blocks with logical axis names and an explicit key/value prefix.

Every kernel carries logical axis names (``embed``, ``mlp``, ``heads``, ``vocab``...)
that ``wam.sharding`` maps to mesh axes from the config, so one model definition runs
replicated on a laptop and FSDP-sharded on a pod.

Attention takes its mask as data and, optionally, the keys/values of earlier tokens
(``KV``): training runs the whole sequence at once; dreaming runs one block at a time
against the cached keys/values of the blocks before it. Both paths go through the same
code, so a cached rollout equals a full recomputation.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
from flax import nnx


def logical(init, axes: tuple[Optional[str], ...]):
  """``init`` annotated with logical axis names; sharding is applied by the trainer.

  Eager sharding is off so that a model builds anywhere (a notebook, a test without a
  mesh); ``wam.sharding`` places the state with ``jax.jit(..., out_shardings=...)``.
  """
  return nnx.with_partitioning(init, axes, eager_sharding=False)


def dense(rngs: nnx.Rngs, din: int, dout: int, axes: tuple[Optional[str], Optional[str]],
          *, zero: bool = False, dtype=jnp.float32, bias: bool = True) -> nnx.Linear:
  """A linear layer whose kernel is annotated with logical axis names ``axes``."""
  init = nnx.initializers.zeros_init() if zero else nnx.initializers.lecun_normal()
  return nnx.Linear(
      din, dout, use_bias=bias, dtype=dtype, rngs=rngs,
      kernel_init=logical(init, axes),
      bias_init=logical(nnx.initializers.zeros_init(), (axes[1],)))


def embedding(rngs: nnx.Rngs, num: int, features: int, axis: str = "vocab",
              dtype=jnp.float32) -> nnx.Embed:
  """A table of ``num`` learned vectors, annotated as ``(axis, embed)``."""
  return nnx.Embed(num, features, dtype=dtype, rngs=rngs, embedding_init=logical(
      nnx.initializers.normal(0.02), (axis, "embed")))


def rms_norm(rngs: nnx.Rngs, features: int, dtype=jnp.float32) -> nnx.RMSNorm:
  return nnx.RMSNorm(features, dtype=dtype, rngs=rngs,
                     scale_init=logical(nnx.initializers.ones_init(), ("embed",)))


def sinusoidal(x: jax.Array, features: int, max_period: float = 10_000.0) -> jax.Array:
  """Sinusoidal features of a real-valued ``x`` (flow time, index) -> [..., features]."""
  half = features // 2
  freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
  angles = jnp.asarray(x, jnp.float32)[..., None] * freqs
  return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


class KV(NamedTuple):
  """Keys and values of tokens another call may attend to: [B, S, heads, head_dim]."""
  keys: jax.Array
  values: jax.Array


class Attention(nnx.Module):
  """Multi-head attention with a boolean mask and an optional prefix of cached keys."""

  def __init__(self, width: int, num_heads: int, *, rngs: nnx.Rngs, dtype=jnp.float32):
    if width % num_heads:
      raise ValueError(f"width {width} is not divisible by num_heads {num_heads}.")
    self.num_heads = num_heads
    self.head_dim = width // num_heads
    self.qkv = dense(rngs, width, 3 * width, ("embed", "heads"), dtype=dtype)
    self.out = dense(rngs, width, width, ("heads", "embed"), dtype=dtype)
    # Query/key normalisation keeps attention logits bounded (stable at any width).
    self.q_norm = nnx.RMSNorm(self.head_dim, dtype=dtype, rngs=rngs)
    self.k_norm = nnx.RMSNorm(self.head_dim, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array, mask: jax.Array, prefix: Optional[KV] = None
               ) -> tuple[jax.Array, KV]:
    """Attends ``x`` [B, S, D] to ``prefix`` keys then to itself.

    Args:
      x: token features [B, S, D].
      mask: bool [B, S, P + S] (or broadcastable): may query i attend to key j, where the
        first P keys are ``prefix``'s and the last S are ``x``'s own.
      prefix: keys/values [B, P, H, Dh] of earlier tokens (a KV cache), or None.

    Returns:
      The attended features [B, S, D] and this call's own keys/values (for a cache).
    """
    b, s, d = x.shape
    q, k, v = jnp.split(self.qkv(x).reshape(b, s, 3, self.num_heads, self.head_dim), 3, axis=2)
    q, k, v = q[:, :, 0], k[:, :, 0], v[:, :, 0]
    q, k = self.q_norm(q), self.k_norm(k)
    own = KV(k, v)
    if prefix is not None:
      k = jnp.concatenate([prefix.keys.astype(k.dtype), k], axis=1)
      v = jnp.concatenate([prefix.values.astype(v.dtype), v], axis=1)
    mask = jnp.broadcast_to(mask, (b, s, k.shape[1]))
    y = jax.nn.dot_product_attention(q, k, v, mask=mask[:, None])
    return self.out(y.reshape(b, s, d)), own


class MLP(nnx.Module):
  """Gated (SwiGLU) feed-forward block."""

  def __init__(self, width: int, hidden: int, *, rngs: nnx.Rngs, dtype=jnp.float32):
    self.gate = dense(rngs, width, 2 * hidden, ("embed", "mlp"), dtype=dtype, bias=False)
    self.down = dense(rngs, hidden, width, ("mlp", "embed"), dtype=dtype, bias=False)

  def __call__(self, x: jax.Array) -> jax.Array:
    a, g = jnp.split(self.gate(x), 2, axis=-1)
    return self.down(jax.nn.silu(g) * a)


class Block(nnx.Module):
  """Pre-norm transformer block: attention then MLP, each residual."""

  def __init__(self, width: int, num_heads: int, mlp_ratio: float, *, rngs: nnx.Rngs,
               dtype=jnp.float32):
    self.norm1 = rms_norm(rngs, width, dtype)
    self.attn = Attention(width, num_heads, rngs=rngs, dtype=dtype)
    self.norm2 = rms_norm(rngs, width, dtype)
    self.mlp = MLP(width, int(width * mlp_ratio), rngs=rngs, dtype=dtype)

  def __call__(self, x: jax.Array, mask: jax.Array, prefix: Optional[KV] = None
               ) -> tuple[jax.Array, KV]:
    h, kv = self.attn(self.norm1(x), mask, prefix)
    x = x + h
    return x + self.mlp(self.norm2(x)), kv


class Transformer(nnx.Module):
  """A stack of blocks; returns the output and every layer's keys/values."""

  def __init__(self, width: int, depth: int, num_heads: int, mlp_ratio: float = 4.0, *,
               rngs: nnx.Rngs, dtype=jnp.float32, remat: bool = False):
    self.blocks = nnx.List([Block(width, num_heads, mlp_ratio, rngs=rngs, dtype=dtype)
                            for _ in range(depth)])
    self.norm = rms_norm(rngs, width, dtype)
    self.remat = remat

  def __call__(self, x: jax.Array, mask: jax.Array,
               prefix: Optional[list[KV]] = None) -> tuple[jax.Array, list[KV]]:
    """Runs all blocks; ``prefix`` holds one cached ``KV`` per layer (or None)."""
    kvs = []
    for i, block in enumerate(self.blocks):
      call = nnx.remat(lambda blk, h, m, p: blk(h, m, p)) if self.remat else (
          lambda blk, h, m, p: blk(h, m, p))
      x, kv = call(block, x, mask, None if prefix is None else prefix[i])
      kvs.append(kv)
    return self.norm(x), kvs
