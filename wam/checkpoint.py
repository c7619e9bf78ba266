"""Self-describing, preemption-safe checkpoints of a training run (on orbax).

A checkpoint directory holds one sub-directory per saved step, written by
``orbax.checkpoint.CheckpointManager``, plus the run's description beside them::

  <directory>/
    config.json  statistics.json  example_batch.npz  extra.json   (write_run_metadata)
    1000/  2000/  3000/                                          (Checkpointer.save)
      state/         the training state (a pytree of arrays, nnx.State, typed PRNG keys)
      data_state/    the data iterator's state (JSON), when one was given
      fingerprints/  one checksum per array, checked on restore

Each step is written into ``<step>.orbax-checkpoint-tmp`` and renamed when complete, so a
process killed mid-save (``kill -9``, preemption) leaves the previous steps untouched and
only a temporary directory, which step discovery ignores and the next writer removes.
Old steps are garbage-collected (``max_to_keep``) only after a newer one is committed, and
no save ever overwrites an existing step.

On restore the stored tree is compared with the model's abstract state first: a changed
model raises :class:`IncompatibleCheckpointError` listing every mismatched parameter
instead of orbax's traceback. A step whose files are verifiably corrupt (checksum
mismatch, missing files, a file that does not parse) raises :class:`CorruptCheckpointError`
naming the step directory, or with ``fallback=True`` the next older step is restored (with
a warning, recorded in :attr:`Checkpointer.last_fallback`; ``move_corrupt_aside=True`` also
moves the corrupt steps into ``<directory>/corrupt/`` so that the step can be saved again).
Any other error (permission denied, an I/O error, a timeout) propagates as it is: a
transient failure must not roll a run back to an older step.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import math
import os
import uuid
from typing import Any, Callable, Mapping, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from wam.data import schema
from wam.files import atomic_write

PyTree = Any
DataState = Union[dict, bytes, str]

STATE_ITEM = "state"
DATA_STATE_ITEM = "data_state"
FINGERPRINTS_ITEM = "fingerprints"
FINGERPRINT_VERSION = 1
# orbax (0.12) names an unfinished step "<step>.orbax-checkpoint-tmp[-<timestamp>]".
TMP_MARKER = ".orbax-checkpoint-tmp"
# Corrupt steps moved aside (not a number, so orbax's step discovery ignores it).
CORRUPT_DIR = "corrupt"

CONFIG_FILE = "config.json"
STATISTICS_FILE = "statistics.json"
EXAMPLE_BATCH_FILE = "example_batch.npz"
EXTRA_FILE = "extra.json"
RUN_METADATA_FILES = (CONFIG_FILE, STATISTICS_FILE, EXAMPLE_BATCH_FILE, EXTRA_FILE)

_MAX_LISTED = 200  # mismatches listed in an IncompatibleCheckpointError


class IncompatibleCheckpointError(ValueError):
  """The stored tree (structure, shapes or dtypes) differs from the model's."""


class CorruptCheckpointError(RuntimeError):
  """A checkpoint step cannot be read back (missing, truncated or garbled files)."""


@dataclasses.dataclass
class Fallback:
  """A restore that skipped corrupt steps for an older one.

  Attributes:
    from_step: The step asked for (the latest when none was named).
    to_step: The step restored.
    reasons: Each skipped step and why it is corrupt, newest first.
    moved_to: Where the skipped steps were moved (``move_corrupt_aside``), else empty.
  """

  from_step: int
  to_step: int
  reasons: dict[int, str]
  moved_to: dict[int, str] = dataclasses.field(default_factory=dict)


# ----------------------------------------------------------------------------------------
# Checkpointer


class Checkpointer:
  """Saves and restores the training state (and the data iterator's state) per step.

  Args:
    directory: Root directory of the run's checkpoints (local path or a URL orbax
      understands, e.g. ``gs://``); created when missing unless ``read_only``.
    max_to_keep: Number of most recent steps kept; older ones are deleted after a newer
      one is committed. ``None`` keeps all.
    save_interval_steps: :meth:`should_save` is true at multiples of this.
    async_save: Write in a background thread (arrays are copied to host first); call
      :meth:`wait` or :meth:`close` before exiting.
    read_only: Never write nor delete anything (e.g. an evaluator reading a live run's
      directory). A writer also removes unfinished steps left by a killed process when
      it starts, which a reader must not do while another process saves.
  """

  def __init__(self, directory: str, *, max_to_keep: Optional[int] = 3,
               save_interval_steps: int = 1000, async_save: bool = False,
               read_only: bool = False):
    if max_to_keep is not None and max_to_keep < 1:
      raise ValueError(f"max_to_keep must be >= 1 or None, got {max_to_keep}")
    if save_interval_steps < 1:
      raise ValueError(f"save_interval_steps must be >= 1, got {save_interval_steps}")
    self._directory = _absolute(directory)
    self._read_only = read_only
    self._pending_step: Optional[int] = None
    self.last_fallback: Optional[Fallback] = None  # set by restore(fallback=True)
    preservation = (ocp.checkpoint_managers.PreserveAll() if max_to_keep is None
                    else ocp.checkpoint_managers.LatestN(max_to_keep))
    options = ocp.CheckpointManagerOptions(
        save_interval_steps=0 if read_only else save_interval_steps,
        save_decision_policy=ocp.checkpoint_managers.FixedIntervalPolicy(save_interval_steps),
        preservation_policy=preservation,
        enable_async_checkpointing=async_save,
        cleanup_tmp_directories=not read_only,
        read_only=read_only,
        create=not read_only)
    self._manager = ocp.CheckpointManager(
        self._directory, options=options,
        item_handlers={STATE_ITEM: ocp.StandardCheckpointHandler(),
                       DATA_STATE_ITEM: ocp.JsonCheckpointHandler(),
                       FINGERPRINTS_ITEM: ocp.JsonCheckpointHandler()})

  def __enter__(self) -> "Checkpointer":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def __repr__(self) -> str:
    return f"Checkpointer({str(self._directory)!r})"

  @property
  def directory(self) -> str:
    """The checkpoint root directory."""
    return str(self._directory)

  def step_directory(self, step: int) -> str:
    """The directory of one (committed) step."""
    return str(self._directory / str(step))

  def all_steps(self) -> list[int]:
    """Committed steps, ascending (an asynchronous save still in flight is excluded)."""
    if self._manager.is_saving_in_progress():
      pending = self._pending_step
      return sorted(s for s in self._manager.all_steps() if s != pending)
    self._manager.reload()  # also sees steps written by another process
    return sorted(self._manager.all_steps())

  def latest_step(self) -> Optional[int]:
    """The most recent committed step, or None when there is none."""
    steps = self.all_steps()
    return steps[-1] if steps else None

  def should_save(self, step: int) -> bool:
    """Whether ``step`` is a save step (a multiple of the interval, after the latest)."""
    if self._read_only:
      return False
    return self._manager.should_save(step)

  def save(self, step: int, state: PyTree, *, data_state: Optional[DataState] = None,
           force: bool = False) -> bool:
    """Saves ``state`` (and ``data_state``) as ``step`` if it is a save step.

    The state and the data state are committed together: both or neither. An existing
    step is never overwritten (nothing is saved and False returned).

    Args:
      step: Training step.
      state: Pytree of arrays (any sharding), nnx.State, typed PRNG keys, scalars.
      data_state: The data iterator's state: a JSON-serialisable dict, bytes or str.
      force: Save even when :meth:`should_save` is false.

    Returns:
      Whether a save was started (finished unless ``async_save``).
    """
    if self._read_only:
      raise PermissionError(f"{self} is read-only")
    step = int(step)
    if step in self._manager.all_steps():
      logging.warning("Checkpoint step %d already exists in %s: not overwritten.", step,
                      self._directory)
      return False
    if not force and not self._manager.should_save(step):
      return False
    items = {STATE_ITEM: ocp.args.StandardSave(state),
             FINGERPRINTS_ITEM: ocp.args.JsonSave(
                 {"version": FINGERPRINT_VERSION, "leaves": _fingerprints(state)})}
    if data_state is not None:
      items[DATA_STATE_ITEM] = ocp.args.JsonSave(_encode_data_state(data_state))
    self._manager.wait_until_finished()
    self._pending_step = step
    saved = self._manager.save(step, args=ocp.args.Composite(**items), force=True)
    if saved:
      logging.info("Saving checkpoint step %d to %s.", step, self._directory)
    return saved

  def restore(self, abstract_state: PyTree, step: Optional[int] = None, *,
              fallback: bool = False, move_corrupt_aside: bool = False
              ) -> tuple[int, PyTree, Optional[DataState]]:
    """Restores a step onto the structure, shapes, dtypes and shardings of a model.

    Args:
      abstract_state: Pytree like the saved state, of ``jax.ShapeDtypeStruct`` with
        ``.sharding`` set (``jax.eval_shape`` / ``nnx.eval_shape``) or of arrays; Python
        scalars restore as Python scalars.
      step: Step to restore; None: the latest.
      fallback: If the step is corrupt, log a warning and restore the next older one;
        :attr:`last_fallback` then says which steps were skipped and why.
      move_corrupt_aside: With ``fallback``, move each skipped step into
        ``<directory>/corrupt/`` (not deleted) so that a rerun can save it again (a
        writer only; every process calls it, the first one moves).

    Returns:
      ``(step, state, data_state)``: the step restored, the state (arrays with the
      shardings of ``abstract_state``) and the data state as it was given to
      :meth:`save` (None when none was saved).

    Raises:
      FileNotFoundError: No committed step (or not ``step``) in the directory.
      IncompatibleCheckpointError: The stored tree differs from ``abstract_state``.
      CorruptCheckpointError: The step (and with ``fallback`` every older one) is
        corrupt.
      OSError, TimeoutError and anything else not shown to be corruption: as raised
        (no fallback), with a note naming the step.
    """
    self.wait()
    self.last_fallback = None
    steps = self.all_steps()
    if not steps:
      raise FileNotFoundError(f"No checkpoint in {self._directory}.")
    if step is None:
      step = steps[-1]
    elif step not in steps:
      raise FileNotFoundError(f"No checkpoint step {step} in {self._directory} "
                              f"(steps: {steps}).")
    candidates = [step] + ([s for s in reversed(steps) if s < step] if fallback else [])
    errors: dict[int, CorruptCheckpointError] = {}
    for s in candidates:
      try:
        restored, data_state = self._restore_step(s, abstract_state)
      except CorruptCheckpointError as e:
        if not fallback:
          raise
        errors[s] = e
        logging.warning("%s; trying an older step.", e)
        continue
      if errors:
        self.last_fallback = Fallback(step, s, {k: str(e) for k, e in errors.items()})
        logging.warning(
            "CHECKPOINT FALLBACK: restored checkpoint step %d of %s instead of the corrupt "
            "step %d (%s).", s, self._directory, step, errors[step])
        if move_corrupt_aside:
          self.last_fallback.moved_to = {k: self._move_aside(k) for k in errors}
      return s, restored, data_state
    raise CorruptCheckpointError(
        f"No restorable checkpoint in {self._directory}:\n"
        + "\n".join(f"  {e}" for e in errors.values()))

  def _move_aside(self, step: int) -> str:
    """Moves a (verified corrupt) step into ``corrupt/``; returns where it went."""
    if self._read_only:
      raise PermissionError(f"{self} is read-only")
    source = self._directory / str(step)
    target = self._directory / CORRUPT_DIR / str(step)
    if target.exists():  # the same step corrupt twice: keep both
      target = self._directory / CORRUPT_DIR / f"{step}.{uuid.uuid4().hex[:8]}"
    if jax.process_index() == 0:
      (self._directory / CORRUPT_DIR).mkdir(parents=True, exist_ok=True)
      source.rename(target)
      logging.warning("Moved the corrupt checkpoint step %s to %s.", source, target)
    # Every process forgets the step only once it is gone, so that all of them save it
    # again (orbax's save is collective).
    ocp.multihost.sync_global_processes(f"wam_move_aside_{step}")
    self._manager.reload()
    return str(target)

  def wait(self) -> None:
    """Blocks until an asynchronous save is committed (re-raises its error)."""
    try:
      self._manager.wait_until_finished()
    finally:
      self._pending_step = None

  def close(self) -> None:
    """Waits for saves to finish and releases orbax's resources."""
    self._manager.close()
    self._pending_step = None

  def _restore_step(self, step: int, abstract_state: PyTree) -> tuple[PyTree, Any]:
    where = self.step_directory(step)
    try:
      item_metadata = self._manager.item_metadata(step)
      tree_metadata = item_metadata[STATE_ITEM] if STATE_ITEM in item_metadata else None
    except Exception as e:  # pylint: disable=broad-except
      _raise_if_not_corrupt(e, where)
      raise CorruptCheckpointError(
          f"Corrupt checkpoint step {where}: cannot read its metadata "
          f"({_deepest(e)})") from e
    if tree_metadata is None:
      raise CorruptCheckpointError(f"Corrupt checkpoint step {where}: no '{STATE_ITEM}' item.")
    check_compatible(getattr(tree_metadata, "tree", tree_metadata), abstract_state,
                     where=where)

    step_dir = self._directory / str(step)
    items = {STATE_ITEM: ocp.args.StandardRestore(abstract_state)}
    for name in (DATA_STATE_ITEM, FINGERPRINTS_ITEM):
      if (step_dir / name).exists():
        items[name] = ocp.args.JsonRestore()
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(**items))
      state = restored[STATE_ITEM]
      data_state = (_decode_data_state(restored[DATA_STATE_ITEM])
                    if DATA_STATE_ITEM in items else None)
      stored = restored[FINGERPRINTS_ITEM] if FINGERPRINTS_ITEM in items else None
    except IncompatibleCheckpointError:
      raise
    except Exception as e:  # pylint: disable=broad-except
      _raise_if_not_corrupt(e, where)
      raise CorruptCheckpointError(
          f"Corrupt checkpoint step {where}: restore failed ({_deepest(e)})") from e
    if stored is not None:
      if not isinstance(stored, Mapping) or not isinstance(stored.get("leaves"), Mapping):
        raise CorruptCheckpointError(
            f"Corrupt checkpoint step {where}: unreadable '{FINGERPRINTS_ITEM}'.")
      bad = [path for path, value in _fingerprints(state).items()
             if path in stored["leaves"] and stored["leaves"][path] != value]
      if bad:
        raise CorruptCheckpointError(
            f"Corrupt checkpoint step {where}: restored values differ from those saved "
            f"(checksum mismatch) in {', '.join(bad[:20])}"
            + (f" and {len(bad) - 20} more" if len(bad) > 20 else ""))
    return state, data_state


# tensorstore raises ValueError("<STATUS>: ..."). These statuses say the bytes on disk are
# missing or do not decode; others (PERMISSION_DENIED, UNAVAILABLE, DEADLINE_EXCEEDED,
# UNKNOWN for an EIO, ...) may pass on a retry, so they must not roll a run back.
_CORRUPT_STATUSES = ("DATA_LOSS:", "NOT_FOUND:", "OUT_OF_RANGE:", "FAILED_PRECONDITION:")
_CORRUPT_TYPES = (CorruptCheckpointError, FileNotFoundError, NotADirectoryError,
                  json.JSONDecodeError, UnicodeDecodeError, EOFError)
_MISSING_FILE_TYPES = (FileNotFoundError, NotADirectoryError, IsADirectoryError)


def _chain(e: BaseException) -> list[BaseException]:
  """``e`` and its causes (orbax wraps tensorstore's errors in a bare ``Exception``)."""
  out = []
  while e is not None and e not in out:
    out.append(e)
    e = e.__cause__ or e.__context__
  return out


def _deepest(e: BaseException) -> str:
  """The innermost error of the chain (the informative one), one line."""
  root = _chain(e)[-1]
  return f"{type(root).__name__}: {_first_line(root)}"


def is_corruption(e: BaseException) -> bool:
  """Whether a restore error shows the step's files to be corrupt (not a transient error).

  Corrupt: a checksum mismatch, a missing file, a file that does not parse (JSON, or
  tensorstore's DATA_LOSS / NOT_FOUND / OUT_OF_RANGE / FAILED_PRECONDITION). Not: any
  other OSError (permission denied, EIO, ...), a timeout, or an error not recognised.
  """
  chain = _chain(e)
  for x in chain:
    if isinstance(x, OSError) and not isinstance(x, _MISSING_FILE_TYPES):
      return False  # PermissionError, TimeoutError, EIO, ...
  return any(isinstance(x, _CORRUPT_TYPES)
             or (isinstance(x, ValueError) and str(x).startswith(_CORRUPT_STATUSES))
             for x in chain)


def _raise_if_not_corrupt(e: Exception, where: str) -> None:
  """Re-raises ``e`` (noting the step) unless it shows the step to be corrupt."""
  if not is_corruption(e):
    e.add_note(f"While restoring checkpoint step {where}: not a sign of corruption, so "
               "no fallback to an older step; retry once the error is fixed.")
    raise e


def _absolute(directory: Union[str, os.PathLike]) -> epath.Path:
  directory = os.fspath(directory)
  if "://" not in directory:
    directory = os.path.abspath(directory)
  return epath.Path(directory)


def _first_line(e: BaseException, limit: int = 500) -> str:
  text = str(e).strip().splitlines()
  text = text[0] if text else ""
  return text if len(text) <= limit else text[:limit] + "..."


# ----------------------------------------------------------------------------------------
# Compatibility of a stored tree with the model's abstract state


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


# ----------------------------------------------------------------------------------------
# Fingerprints: one order-sensitive checksum per array, computed where the array lives


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


def _fingerprints(state: PyTree) -> dict[str, int]:
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


# ----------------------------------------------------------------------------------------
# Data iterator state


def _encode_data_state(data_state: DataState) -> dict:
  if isinstance(data_state, (bytes, bytearray)):
    return {"type": "bytes", "value": base64.b64encode(bytes(data_state)).decode("ascii")}
  if isinstance(data_state, str):
    return {"type": "str", "value": data_state}
  if isinstance(data_state, Mapping):
    value = dict(data_state)
    try:
      json.dumps(value)
    except (TypeError, ValueError) as e:
      raise TypeError(f"data_state must be JSON-serialisable: {e}") from e
    return {"type": "dict", "value": value}
  raise TypeError(f"data_state must be a dict, bytes or str, not {type(data_state).__name__}")


def _decode_data_state(stored: Any) -> DataState:
  if not isinstance(stored, Mapping) or stored.get("type") not in ("bytes", "str", "dict"):
    raise ValueError(f"unreadable data state: {str(stored)[:200]}")
  if stored["type"] == "bytes":
    return base64.b64decode(stored["value"])
  return stored["value"]


# ----------------------------------------------------------------------------------------
# Run metadata: what a checkpoint is of (config, normalisation statistics, a batch)


@dataclasses.dataclass
class RunMetadata:
  """The description of a run stored beside its checkpoints.

  Attributes:
    config: The run's configuration (parsed ``config.json``).
    statistics: Normalisation statistics (JSON), or None.
    example_batch: A batch as the model saw it: name -> array (nested mappings are
      stored with ``/``-joined names and read back nested).
    extra: Anything else given to :func:`write_run_metadata`, or None.
  """

  config: dict
  statistics: Optional[dict]
  example_batch: dict
  extra: Optional[dict] = None


def _json_default(x: Any) -> Any:
  if isinstance(x, (np.ndarray, jax.Array)):
    return np.asarray(x).tolist()
  if isinstance(x, np.generic):
    return x.item()
  raise TypeError(f"{type(x).__name__} is not JSON-serialisable")


def _flatten_batch(batch: Mapping) -> dict[str, np.ndarray]:
  flat = {name: np.asarray(value) for name, value in schema.flatten(batch).items()}
  for name, array in flat.items():
    if array.dtype == object:
      raise TypeError(f"example_batch[{name!r}] has dtype object (not storable without "
                      "pickle); convert it to a numeric or fixed-width string array.")
  return flat


def write_run_metadata(directory: str, *, config_json: str, statistics: Optional[dict],
                       example_batch: Mapping[str, np.ndarray],
                       extra: Optional[dict] = None) -> None:
  """Writes the run's description into its checkpoint directory.

  Writes ``config.json``, ``statistics.json``, ``example_batch.npz`` (no pickle) and
  ``extra.json``, each atomically (temporary file, then rename); rewriting replaces them.

  Args:
    directory: The checkpoint root directory (created when missing).
    config_json: The run's configuration as JSON text (must parse).
    statistics: Normalisation statistics (JSON-serialisable; numpy values converted).
    example_batch: name -> array, possibly nested mappings.
    extra: Anything else JSON-serialisable.
  """
  try:
    json.loads(config_json)
  except (TypeError, ValueError) as e:
    raise ValueError(f"config_json is not valid JSON: {e}") from e
  os.makedirs(directory, exist_ok=True)
  flat_batch = _flatten_batch(example_batch)
  statistics_text = json.dumps(statistics, default=_json_default, indent=1)
  extra_text = json.dumps(extra, default=_json_default, indent=1)
  # config.json last: a directory with a config has the rest.
  atomic_write(os.path.join(directory, STATISTICS_FILE),
               lambda f: f.write(statistics_text), "w")
  atomic_write(os.path.join(directory, EXAMPLE_BATCH_FILE),
               lambda f: np.savez(f, **flat_batch), "wb")
  atomic_write(os.path.join(directory, EXTRA_FILE), lambda f: f.write(extra_text), "w")
  atomic_write(os.path.join(directory, CONFIG_FILE), lambda f: f.write(config_json), "w")


def read_run_metadata(directory: str) -> RunMetadata:
  """Reads what :func:`write_run_metadata` wrote.

  Raises:
    FileNotFoundError: ``directory`` is missing or lacks some of the files (named).
  """
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"Checkpoint directory {directory} does not exist.")
  missing = [f for f in RUN_METADATA_FILES if not os.path.isfile(os.path.join(directory, f))]
  if missing:
    raise FileNotFoundError(
        f"{directory} is not a checkpoint directory with run metadata: missing "
        f"{', '.join(missing)} (written by wam.checkpoint.write_run_metadata).")
  with open(os.path.join(directory, CONFIG_FILE)) as f:
    config = json.load(f)
  with open(os.path.join(directory, STATISTICS_FILE)) as f:
    statistics = json.load(f)
  with open(os.path.join(directory, EXTRA_FILE)) as f:
    extra = json.load(f)
  with np.load(os.path.join(directory, EXAMPLE_BATCH_FILE), allow_pickle=False) as npz:
    example_batch = schema.nest({name: npz[name] for name in npz.files})
  return RunMetadata(config=config, statistics=statistics, example_batch=example_batch,
                     extra=extra)
