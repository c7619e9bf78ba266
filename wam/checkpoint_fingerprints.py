"""Checksums of a state's arrays, saved with each checkpoint step and checked on restore.

One order-sensitive checksum per array, computed on the device where the array lives
(no copy to the host, sharded arrays stay in place): a restored array whose bits differ
from the saved ones (a garbled file that still decodes) shows up as a mismatch.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

PyTree = Any

VERSION = 1   # of the stored ``{"version": ..., "leaves": {path: checksum}}``


def _is_key(dtype: Any) -> bool:
  return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


_UINT_OF_SIZE = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint32}


def _fingerprintable(x: Any) -> bool:
  if not isinstance(x, jax.Array):
    return False
  if _is_key(x.dtype):
    return True
  if x.dtype == jnp.bool_:
    return True
  if jnp.issubdtype(x.dtype, jnp.integer):
    bits = jnp.iinfo(x.dtype).bits
  elif jnp.issubdtype(x.dtype, jnp.floating):
    bits = jnp.finfo(x.dtype).bits
  else:
    return False  # complex, strings...: not checked
  # Sub-byte types (int4, float4) cannot be bitcast to a whole unsigned type.
  return x.dtype.itemsize in _UINT_OF_SIZE and bits == 8 * x.dtype.itemsize


def _leaf_fingerprint(x: jax.Array) -> jax.Array:
  """Wrapping uint32 sum of the bits of ``x``, each weighted by its position."""
  if _is_key(x.dtype):
    x = jax.random.key_data(x)
  if x.dtype == jnp.bool_:
    bits = x.astype(jnp.uint32)
  else:
    bits = jax.lax.bitcast_convert_type(x, _UINT_OF_SIZE[x.dtype.itemsize])
    bits = bits.astype(jnp.uint32)  # 8-byte types gained a trailing axis of 2
  # Linear index from broadcast iotas: no reshape, so sharded arrays stay in place.
  index = jnp.zeros((), jnp.uint32)
  stride = 1
  for axis in reversed(range(bits.ndim)):
    iota = jax.lax.broadcasted_iota(jnp.uint32, bits.shape, axis)
    index = index + iota * jnp.uint32(stride % 2**32)
    stride *= bits.shape[axis]
  mixed = (bits ^ (index * jnp.uint32(0x9E3779B9))) * (index * jnp.uint32(2) + jnp.uint32(1))
  return jnp.sum(mixed, dtype=jnp.uint32)


@jax.jit
def _fingerprint_arrays(arrays: list) -> list:
  return [_leaf_fingerprint(x) for x in arrays]


_fingerprint_one: Callable[[jax.Array], jax.Array] = jax.jit(_leaf_fingerprint)


def fingerprints(state: PyTree) -> dict[str, int]:
  """``{path: checksum}`` of the JAX arrays of ``state`` (other leaves are skipped)."""
  flat = ocp.tree.to_flat_dict(state, sep="/")
  paths = [p for p, x in flat.items() if _fingerprintable(x) and math.prod(x.shape) > 0]
  arrays = [flat[p] for p in paths]
  if not arrays:
    return {}
  try:
    values = _fingerprint_arrays(arrays)
  except ValueError:  # arrays committed to different devices: one computation each
    values = [_fingerprint_one(x) for x in arrays]
  return {p: int(v) for p, v in zip(paths, jax.device_get(values))}
