"""Mesh, logical-axis rules and the shardings of the train state and batches.

The model annotates every parameter with logical axis names (``wam.layers``); the config
maps them to mesh axes::

  config.mesh = dict(data=-1, fsdp=1)            # -1: all remaining devices
  config.sharding_rules = (("embed", "fsdp"), ("mlp", None), ...)

With ``fsdp=1`` parameters are replicated and the batch is split over ``data``; with
``fsdp>1`` every ``embed`` dimension is split over ``fsdp`` devices too (ZeRO-3 style),
and the batch is split over both axes.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

MESH_AXES = ("data", "fsdp")
BATCH_AXES = ("data", "fsdp")

# Logical axis -> mesh axis. Anything not named here is replicated.
DEFAULT_RULES: tuple[tuple[str, Any], ...] = (
    ("embed", "fsdp"),
    ("mlp", None),
    ("heads", None),
    ("vocab", None),
    ("positions", None),
    ("embed_out", None),
    ("latent", None),
    ("patch", None),
    ("state", None),
    ("action", None),
    ("conv", None),
)


def make_mesh(shape: Mapping[str, int], devices: Sequence[jax.Device] | None = None
              ) -> jax.sharding.Mesh:
  """A ``(data, fsdp)`` mesh; one axis may be -1 (the devices left over)."""
  devices = list(jax.devices() if devices is None else devices)
  unknown = sorted(set(shape) - set(MESH_AXES))
  if unknown:
    raise ValueError(f"Unknown mesh axes {unknown}; the mesh has axes {MESH_AXES}.")
  sizes = [int(shape.get(a, 1)) for a in MESH_AXES]
  if sizes.count(-1) > 1:
    raise ValueError(f"At most one mesh axis may be -1, got {dict(shape)}.")
  known = int(np.prod([s for s in sizes if s != -1]))
  if -1 in sizes:
    if len(devices) % known:
      raise ValueError(f"{len(devices)} devices do not split into mesh {dict(shape)}.")
    sizes[sizes.index(-1)] = len(devices) // known
  if int(np.prod(sizes)) != len(devices):
    raise ValueError(f"Mesh {dict(zip(MESH_AXES, sizes))} needs {int(np.prod(sizes))} "
                     f"devices; there are {len(devices)}.")
  return jax.make_mesh(tuple(sizes), MESH_AXES,
                       axis_types=(jax.sharding.AxisType.Auto,) * len(MESH_AXES),
                       devices=devices)


def rules_from_config(rules) -> tuple[tuple[str, Any], ...]:
  """Normalises config rules (lists from JSON) to a tuple of ``(logical, mesh)`` pairs."""
  out = []
  for name, target in rules:
    out.append((name, tuple(target) if isinstance(target, (list, tuple)) else target))
  return tuple(out)


def param_shardings(abstract_params: Any, mesh: jax.sharding.Mesh,
                    rules: Sequence[tuple[str, Any]]) -> Any:
  """``NamedSharding`` of every parameter, from its logical axis names and ``rules``."""
  with nnx.logical_axis_rules(tuple(rules)):
    specs = nnx.get_partition_spec(abstract_params)
  def to_sharding(spec):
    return NamedSharding(mesh, spec if isinstance(spec, P) else P())
  shardings = jax.tree.map(to_sharding, specs, is_leaf=lambda x: isinstance(x, P))
  _check_divisible(abstract_params, shardings, mesh)
  return shardings


def _check_divisible(abstract, shardings, mesh) -> None:
  bad = []
  for (path, leaf), sharding in zip(jax.tree_util.tree_flatten_with_path(abstract)[0],
                                    jax.tree.leaves(shardings)):
    for dim, axis in zip(leaf.shape, sharding.spec):
      if axis is None:
        continue
      size = int(np.prod([mesh.shape[a] for a in (axis if isinstance(axis, tuple) else (axis,))]))
      if dim % size:
        bad.append(f"{jax.tree_util.keystr(path)} {tuple(leaf.shape)} over {axis} ({size})")
  if bad:
    raise ValueError("Parameters that do not divide over the mesh (change config.mesh or "
                     "config.sharding_rules):\n  " + "\n  ".join(bad[:20]))


def optimizer_shardings(optimizer: optax.GradientTransformation, abstract_opt_state: Any,
                        shardings: Any, mesh: jax.sharding.Mesh) -> Any:
  """Optimizer-state shardings: moments like their parameters, counters replicated."""
  replicated = NamedSharding(mesh, P())
  return optax.tree_map_params(optimizer, lambda _, s: s, abstract_opt_state, shardings,
                               transform_non_params=lambda _: replicated)


def batch_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
  """Batches split along their leading axis over every mesh axis."""
  return NamedSharding(mesh, P(BATCH_AXES))


def global_batch(local: Mapping[str, np.ndarray], sharding: NamedSharding) -> dict:
  """Assembles each host's part of a batch into global arrays sharded over the mesh."""
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in local.items()}
