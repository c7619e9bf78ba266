"""Counted FLOPs and a measured matmul peak, for model FLOPs utilisation (MFU).

FLOPs are what XLA's cost analysis counts for the compiled step (not a formula), and the
peak is measured on the machine at hand (a large f32 matmul), so ``mfu`` compares the
model with the hardware it actually ran on.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp


def compiled_flops(compiled) -> float:
  """FLOPs of one call of a compiled function (``jax.jit(f).lower(...).compile()``)."""
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0] if analysis else {}
  return float((analysis or {}).get("flops", 0.0))


def measure_matmul_peak(size: int = 1024, dtype=jnp.float32, repeats: int = 5,
                        device: jax.Device | None = None) -> float:
  """Measured FLOP/s of a ``size`` x ``size`` matmul chain on one device (best of runs)."""
  device = device or jax.devices()[0]
  steps = 8
  a = jax.device_put(jnp.ones((size, size), dtype) / size, device)

  @jax.jit
  def chain(x):
    def body(y, _):
      return y @ x, None
    return jax.lax.scan(body, x, None, length=steps)[0]
  chain(a).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    chain(a).block_until_ready()
    best = min(best, time.perf_counter() - start)
  return 2.0 * size ** 3 * steps / best
