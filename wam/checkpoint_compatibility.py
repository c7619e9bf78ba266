"""Whether a stored checkpoint tree fits a model's abstract state, and how it differs.

``Checkpointer.restore`` compares orbax's metadata of the stored state with the model's
abstract state before reading any array, so a changed model raises
:class:`IncompatibleCheckpointError` listing every mismatched parameter (shape, dtype,
missing, unexpected) instead of orbax's traceback.
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp

PyTree = Any

_MAX_LISTED = 200  # mismatches listed in an IncompatibleCheckpointError


class IncompatibleCheckpointError(ValueError):
  """The stored tree (structure, shapes or dtypes) differs from the model's."""


def _is_key(dtype: Any) -> bool:
  return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _model_leaf(x: Any) -> tuple[Optional[tuple], Optional[np.dtype], bool]:
  """(shape, dtype as stored, is a Python scalar) of a leaf of the abstract state."""
  if isinstance(x, (bool, int, float)):
    return (), np.dtype(type(x)), True
  shape, dtype = getattr(x, "shape", None), getattr(x, "dtype", None)
  if shape is None or dtype is None:
    return None, None, False
  if _is_key(dtype):  # orbax stores typed keys as their key data
    data = jax.eval_shape(jax.random.key_data, jax.ShapeDtypeStruct(shape, dtype))
    return tuple(data.shape), np.dtype(data.dtype), False
  return tuple(shape), np.dtype(dtype), False


def _describe(shape: Any, dtype: Any) -> str:
  shape = "?" if shape is None else tuple(shape)
  return f"{shape} {'?' if dtype is None else np.dtype(dtype).name}"


def _same_kind(a: np.dtype, b: np.dtype) -> bool:
  kinds = lambda d: "b" if d.kind == "b" else ("i" if d.kind in "iu" else d.kind)
  return kinds(a) == kinds(b)


def check_compatible(stored_tree: PyTree, abstract_state: PyTree, *, where: str) -> None:
  """Raises IncompatibleCheckpointError listing how a stored tree differs from a model's.

  Args:
    stored_tree: Orbax's metadata tree of the stored state (leaves with shape, dtype).
    abstract_state: The model's state (ShapeDtypeStructs, arrays or scalars).
    where: The checkpoint (step) directory, named in the error.
  """
  stored = ocp.tree.to_flat_dict(stored_tree, sep="/")
  model = ocp.tree.to_flat_dict(abstract_state, sep="/")
  mismatched, missing, unexpected = [], [], []
  for path, leaf in model.items():
    if path not in stored:
      missing.append(f"{path}: model {_describe(*_model_leaf(leaf)[:2])}")
      continue
    meta = stored[path]
    s_shape = getattr(meta, "shape", None)
    s_shape = None if s_shape is None else tuple(s_shape)
    s_dtype = getattr(meta, "dtype", None)
    s_dtype = None if s_dtype is None else np.dtype(s_dtype)
    m_shape, m_dtype, m_scalar = _model_leaf(leaf)
    if m_shape is None or s_shape is None or s_dtype is None:
      continue  # not an array on one side (e.g. a string): nothing to compare
    stored_scalar = type(meta).__name__ == "ScalarMetadata"
    if m_scalar or stored_scalar:  # Python scalars: int/float/bool, width not kept
      ok = m_shape == s_shape == () and _same_kind(m_dtype, s_dtype)
    else:
      ok = m_shape == s_shape and m_dtype == s_dtype
    if not ok:
      mismatched.append(f"{path}: checkpoint {_describe(s_shape, s_dtype)} "
                        f"vs model {_describe(m_shape, m_dtype)}")
  for path, meta in stored.items():
    if path not in model:
      unexpected.append(f"{path}: checkpoint "
                        f"{_describe(getattr(meta, 'shape', None), getattr(meta, 'dtype', None))}")
  if not (mismatched or missing or unexpected):
    return
  lines = [f"Checkpoint {where} does not match the model's state: {len(mismatched)} "
           f"mismatched, {len(missing)} missing from the checkpoint, {len(unexpected)} "
           "not in the model."]
  for title, entries in (("Mismatched (shape/dtype)", mismatched),
                         ("Missing from the checkpoint (model only)", missing),
                         ("Unexpected in the checkpoint (not in the model)", unexpected)):
    if entries:
      lines.append(f"{title}:")
      lines.extend(f"  {e}" for e in entries[:_MAX_LISTED])
      if len(entries) > _MAX_LISTED:
        lines.append(f"  ... and {len(entries) - _MAX_LISTED} more")
  raise IncompatibleCheckpointError("\n".join(lines))
