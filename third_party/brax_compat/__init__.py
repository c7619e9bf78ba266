"""Compatibility shim: brax 0.14.2's trainers on jax >= 0.10 (see UPSTREAM.md)."""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np


def _device_put_replicated(x: Any, devices: Sequence[jax.Device]) -> Any:
  """One copy of ``x`` per device, stacked on a new leading axis sharded over them.

  This is what ``jax.device_put_replicated`` returned before jax 0.10 removed it.
  """
  devices = list(devices)
  mesh = jax.sharding.Mesh(np.array(devices), ("replica",))
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("replica"))

  def put(leaf):
    stacked = jnp.stack([jnp.asarray(leaf)] * len(devices))
    return jax.device_put(stacked, sharding)

  return jax.tree.map(put, x)


def needs_patch() -> bool:
  """True while jax lacks ``device_put_replicated`` (which brax 0.14.2 calls)."""
  return not hasattr(jax, "device_put_replicated") or getattr(
      jax.device_put_replicated, "_dojo_shim", False)


def apply() -> None:
  """Installs the shim once; a no-op when jax already provides the function."""
  if not hasattr(jax, "device_put_replicated"):
    _device_put_replicated._dojo_shim = True  # type: ignore[attr-defined]
    jax.device_put_replicated = _device_put_replicated
