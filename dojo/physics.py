"""Physics back ends: MJX's JAX implementation and MuJoCo Warp, chosen per device.

FIELD_NOTES.md: on a CPU the JAX implementation runs a 7-DoF arm at ~120 steps/s while
MuJoCo Warp's CPU back end runs it at 10-26k steps/s. ``impl="jax"`` is the one that
runs on TPU and is differentiable; ``impl="warp"`` runs on NVIDIA GPUs and CPUs.
"""

from __future__ import annotations

import importlib.util
from typing import Optional

import jax
import jax.numpy as jnp
import mujoco
from mujoco import mjx
from mujoco.mjx._src.types import Impl, tree_path_to_attr_str

IMPLS = ("jax", "warp")


def warp_available() -> bool:
  """True when MuJoCo Warp's dependency ``warp-lang`` can be imported."""
  return importlib.util.find_spec("warp") is not None


def default_impl(backend: Optional[str] = None) -> str:
  """The fast implementation for a JAX backend: warp on cpu/gpu, jax on tpu."""
  backend = backend or jax.default_backend()
  if backend in ("cpu", "gpu", "cuda") and warp_available():
    return "warp"
  return "jax"


def resolve_impl(impl: Optional[str]) -> str:
  """Validates ``impl`` (None means the default for this backend)."""
  if impl is None or impl == "auto":
    return default_impl()
  if impl not in IMPLS:
    raise ValueError(f"Unknown physics impl {impl!r}; choose one of {IMPLS} or 'auto'.")
  if impl == "warp" and not warp_available():
    raise ValueError("impl='warp' needs the 'warp-lang' package; install it or use impl='jax'.")
  if impl == "warp" and jax.default_backend() == "tpu":
    raise ValueError("impl='warp' does not run on TPU; use impl='jax'.")
  return impl


def ensure_material(spec: mujoco.MjSpec) -> None:
  """Adds a default material to a model that has none.

  ``mjx.ray`` indexes ``mat_rgba`` even for geoms without a material and crashes on an
  empty table (FIELD_NOTES.md); one unused material avoids that.
  """
  if not spec.materials:
    spec.add_material(name="dojo_default_material")


def put_model(mj_model: mujoco.MjModel, impl: str) -> mjx.Model:
  """Copies a MuJoCo model to the device for the chosen implementation."""
  if impl == "warp":
    import warp  # pylint: disable=import-outside-toplevel
    # Warp prints a line per compiled kernel module otherwise; errors still show.
    warp.config.quiet = True
    warp.config.log_level = warp.LOG_WARNING
  return mjx.put_model(mj_model, impl=impl)


def make_data(mj_model: mujoco.MjModel, impl: str, naconmax: Optional[int] = None,
              njmax: Optional[int] = None) -> mjx.Data:
  """Makes one zeroed ``mjx.Data``. For warp, ``naconmax`` counts all worlds."""
  return mjx.make_data(mj_model, impl=impl, naconmax=naconmax, njmax=njmax)


def step(model: mjx.Model, data: mjx.Data, ctrl: jax.Array, n_substeps: int) -> mjx.Data:
  """Holds ``ctrl`` for ``n_substeps`` physics steps."""

  def body(d, _):
    return mjx.step(model, d.replace(ctrl=ctrl)), None

  return jax.lax.scan(body, data, None, length=n_substeps)[0]


def _shared_warp_fields() -> frozenset[str]:
  """Warp ``Data`` fields that are one buffer for all worlds (contacts), not per env."""
  try:
    from mujoco.mjx._src import types as mjx_types  # pylint: disable=import-outside-toplevel
    batch_dims = mjx_types.mjxw_types._BATCH_DIM["Data"]  # pylint: disable=protected-access
  except (ImportError, AttributeError, KeyError):
    return frozenset()
  return frozenset(name for name, batched in batch_dims.items() if not batched)


_SHARED_WARP_FIELDS = _shared_warp_fields()


def where(cond: jax.Array, x, y):
  """``jnp.where(cond, x, y)`` over pytrees, ``cond`` broadcast from the leading axes.

  Safe on MuJoCo Warp ``Data``: its contact buffers are shared by all worlds of a batch
  (and recomputed every step), so for those fields ``y`` is kept as it is.
  """
  def select(a, b):
    c = jnp.reshape(cond, jnp.shape(cond) + (1,) * (jnp.ndim(a) - jnp.ndim(cond)))
    return jnp.where(c, a, b)

  def visit(a, b):
    if isinstance(a, mjx.Data) and a.impl == Impl.WARP:
      return jax.tree_util.tree_map_with_path(
          lambda p, u, v: v if tree_path_to_attr_str(p) in _SHARED_WARP_FIELDS
          else select(u, v), a, b)
    return jax.tree.map(select, a, b)

  return jax.tree.map(visit, x, y, is_leaf=lambda n: isinstance(n, mjx.Data))
