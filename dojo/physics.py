"""Physics back ends: MJX's JAX implementation and MuJoCo Warp, chosen per device.

On a CPU the JAX implementation runs a 7-DoF arm at about 120 steps/s, while MuJoCo
Warp's CPU back end runs it at 10-26k steps/s (``benchmarks.dojo``, docs/BENCHMARKS.md).
``impl="jax"`` is the one that runs on TPU and is differentiable; ``impl="warp"`` runs
on NVIDIA GPUs and CPUs.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Optional

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
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
  empty table; one unused material avoids that.
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


def state_needs(mj_model: mujoco.MjModel, qpos, qvel, mocap_pos=None, mocap_quat=None
                ) -> tuple[np.ndarray, np.ndarray]:
  """Contacts and constraint rows of each state, int arrays over the leading axes.

  Each state is run through MuJoCo's own (C) collision and constraint code, which has
  no fixed buffers, so the counts are exact for these states.
  """
  lead = np.shape(qpos)[:-1]
  qpos = np.asarray(qpos).reshape(-1, mj_model.nq)
  qvel = np.asarray(qvel).reshape(-1, mj_model.nv)
  n = qpos.shape[0]
  d = mujoco.MjData(mj_model)
  contacts, rows = np.zeros(n, np.int64), np.zeros(n, np.int64)
  for i in range(n):
    d.qpos[:], d.qvel[:] = qpos[i], qvel[i]
    if mj_model.nmocap and mocap_pos is not None:
      d.mocap_pos[:] = np.asarray(mocap_pos).reshape(n, mj_model.nmocap, 3)[i]
      d.mocap_quat[:] = np.asarray(mocap_quat).reshape(n, mj_model.nmocap, 4)[i]
    mujoco.mj_forward(mj_model, d)
    contacts[i], rows[i] = d.ncon, d.nefc
  return contacts.reshape(lead), rows.reshape(lead)


def buffer_needs(mj_model: mujoco.MjModel, data: mjx.Data) -> tuple[int, int]:
  """Contacts over all worlds and constraint rows per world that ``data`` needs.

  ``data`` is one ``mjx.Data`` or a batch of them (leading axes), from either
  implementation; the counts are ``state_needs``' (``(sum of contacts, max constraint
  rows)``), to compare with MuJoCo Warp's ``naconmax`` (all worlds) and ``njmax`` (per
  world). Warp's own contact count is taken where it is larger (its narrow phase may
  emit more).
  """
  contacts, rows = state_needs(mj_model, data.qpos, data.qvel, data.mocap_pos,
                               data.mocap_quat)
  contacts, rows = int(contacts.sum()), int(rows.max(initial=0))
  if data.impl == Impl.WARP:
    warp_data = data._impl  # pylint: disable=protected-access
    contacts = max(contacts, int(np.max(np.asarray(warp_data.nacon))))
  return contacts, rows


def buffer_problem(contacts: int, rows: int, naconmax: int, njmax: int,
                   where: str = "the task") -> Optional[str]:
  """What to set when ``contacts`` (all worlds) or ``rows`` (per world) do not fit
  MuJoCo Warp's ``naconmax`` and ``njmax``; None when they fit."""
  problems = []
  if contacts > naconmax:
    problems.append(f"{contacts} contacts over the batch's worlds but naconmax={naconmax}: "
                    f"set naconmax >= {contacts} (more with a margin, and in proportion "
                    "to the number of worlds of a batch)")
  if rows > njmax:
    problems.append(f"{rows} constraint rows in a world but njmax={njmax}: set "
                    f"njmax >= {rows}")
  if not problems:
    return None
  return (f"{where}: MuJoCo Warp's buffers are too small for these states; "
          + "; ".join(problems) + ". Set them in the task's default_config() "
          "(config.naconmax, config.njmax) or as overrides (dojo.load(name, naconmax=..., "
          "njmax=...)).")


def buffer_audit(contacts: np.ndarray, rows: np.ndarray, naconmax: int, njmax: int
                 ) -> dict[str, Any]:
  """Sums up ``state_needs``' counts of a rollout (leading axes ``[steps, worlds]``)
  against a task's ``naconmax`` and ``njmax``.

  Returns the most contacts one world had (``contacts_per_world_max``) and all the
  worlds at one step (``contacts_all_worlds_max``), the most constraint rows of a world
  (``rows_per_world_max``), the sizes, ``batch_fits``: the largest batch whose worlds
  all fit ``naconmax`` at their worst step, and ``rows_fit``. The counts are MuJoCo's;
  MuJoCo Warp's narrow phase may emit a few more contacts for the same state.
  """
  contacts, rows = np.asarray(contacts), np.asarray(rows)
  if contacts.ndim < 2 or contacts.shape != rows.shape:
    raise ValueError(f"buffer_audit takes counts with axes [steps, worlds, ...] of one shape; "
                     f"got contacts {contacts.shape} and rows {rows.shape}.")
  naconmax, njmax = int(naconmax), int(njmax)
  per_world = int(contacts.max(initial=0))
  rows_max = int(rows.max(initial=0))
  return {"contacts_per_world_max": per_world,
          "contacts_all_worlds_max": int(contacts.reshape(contacts.shape[0], -1)
                                         .sum(axis=1).max(initial=0)),
          "rows_per_world_max": rows_max, "naconmax": naconmax, "njmax": njmax,
          "batch_fits": naconmax // max(per_world, 1), "rows_fit": rows_max <= njmax}


def check_buffers(mj_model: mujoco.MjModel, data: mjx.Data, naconmax: Optional[int],
                  njmax: Optional[int], where: str = "the task") -> tuple[int, int]:
  """Raises ValueError when ``data`` needs more MuJoCo Warp buffer than it has.

  MuJoCo Warp sizes its contact (``naconmax``, all worlds of a batch) and constraint
  (``njmax``, per world) buffers once, when the data is made, and drops what does not
  fit (contacts that are silently missing: objects fall through each other). This
  counts what the states of ``data`` need (``buffer_needs``) and names the numbers to
  set. Returns the needs ``(contacts, rows)``; with the JAX implementation (no fixed
  buffers) it checks nothing and returns them all the same.
  """
  contacts, rows = buffer_needs(mj_model, data)
  if data.impl != Impl.WARP:
    return contacts, rows
  warp_data = data._impl  # pylint: disable=protected-access
  naconmax = int(warp_data.naconmax) if naconmax is None else naconmax
  njmax = int(warp_data.njmax) if njmax is None else njmax
  problem = buffer_problem(contacts, rows, naconmax, njmax, where)
  if problem:
    raise ValueError(problem)
  return contacts, rows
