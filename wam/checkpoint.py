"""Self-describing, preemption-safe checkpoints of a training run (on orbax).

A checkpoint directory holds one sub-directory per saved step, written by
``orbax.checkpoint.CheckpointManager``, plus the run's description beside them::

  <directory>/
    config.json  statistics.json  example_batch.npz  extra.json   (wam.run_metadata)
    1000/  2000/  3000/                                          (Checkpointer.save)
      state/         the training state (a pytree of arrays, nnx.State, typed PRNG keys)
      data_state/    the data iterator's state (JSON, wam.checkpoint_data_state), if given
      fingerprints/  one checksum per array, checked on restore (wam.checkpoint_fingerprints)

Each step is written into ``<step>.orbax-checkpoint-tmp`` and renamed when complete, so a
process killed mid-save (``kill -9``, preemption) leaves the previous steps untouched and
only a temporary directory, which step discovery ignores and the next writer removes.
Old steps are garbage-collected (``max_to_keep``) only after a newer one is committed, and
no save ever overwrites an existing step.

On restore the stored tree is compared with the model's abstract state first: a changed
model raises ``IncompatibleCheckpointError`` listing every mismatched parameter instead
of orbax's traceback (``wam.checkpoint_compatibility``). A step whose files are
verifiably corrupt (checksum mismatch, missing files, a file that does not parse) raises
``CorruptCheckpointError`` naming the step directory, or with ``fallback=True`` the next
older step is restored (with a warning, recorded in :attr:`Checkpointer.last_fallback`;
``move_corrupt_aside=True`` also moves the corrupt steps into ``<directory>/corrupt/`` so
that the step can be saved again).
Any other error (permission denied, an I/O error, a timeout) propagates as it is: a
transient failure must not roll a run back to an older step (``wam.checkpoint_corruption``
tells the two apart).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import uuid
from typing import Any, Mapping, Optional, Union

import jax
import orbax.checkpoint as ocp
from etils import epath

from wam import checkpoint_data_state, checkpoint_fingerprints
from wam.checkpoint_data_state import DataState
from wam.checkpoint_compatibility import IncompatibleCheckpointError, check_compatible
from wam.checkpoint_corruption import (CorruptCheckpointError, deepest,
                                       raise_if_not_corrupt)

PyTree = Any

STATE_ITEM = "state"
DATA_STATE_ITEM = "data_state"
FINGERPRINTS_ITEM = "fingerprints"
# orbax (0.12) names an unfinished step "<step>.orbax-checkpoint-tmp[-<timestamp>]".
TMP_MARKER = ".orbax-checkpoint-tmp"
# Corrupt steps moved aside (not a number, so orbax's step discovery ignores it).
CORRUPT_DIR = "corrupt"


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
                 {"version": checkpoint_fingerprints.VERSION,
                  "leaves": checkpoint_fingerprints.fingerprints(state)})}
    if data_state is not None:
      items[DATA_STATE_ITEM] = ocp.args.JsonSave(checkpoint_data_state.encode(data_state))
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
      raise_if_not_corrupt(e, where)
      raise CorruptCheckpointError(
          f"Corrupt checkpoint step {where}: cannot read its metadata "
          f"({deepest(e)})") from e
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
      data_state = (checkpoint_data_state.decode(restored[DATA_STATE_ITEM])
                    if DATA_STATE_ITEM in items else None)
      stored = restored[FINGERPRINTS_ITEM] if FINGERPRINTS_ITEM in items else None
    except IncompatibleCheckpointError:
      raise
    except Exception as e:  # pylint: disable=broad-except
      raise_if_not_corrupt(e, where)
      raise CorruptCheckpointError(
          f"Corrupt checkpoint step {where}: restore failed ({deepest(e)})") from e
    if stored is not None:
      if not isinstance(stored, Mapping) or not isinstance(stored.get("leaves"), Mapping):
        raise CorruptCheckpointError(
            f"Corrupt checkpoint step {where}: unreadable '{FINGERPRINTS_ITEM}'.")
      bad = [path for path, value in checkpoint_fingerprints.fingerprints(state).items()
             if path in stored["leaves"] and stored["leaves"][path] != value]
      if bad:
        raise CorruptCheckpointError(
            f"Corrupt checkpoint step {where}: restored values differ from those saved "
            f"(checksum mismatch) in {', '.join(bad[:20])}"
            + (f" and {len(bad) - 20} more" if len(bad) > 20 else ""))
    return state, data_state


def _absolute(directory: Union[str, os.PathLike]) -> epath.Path:
  directory = os.fspath(directory)
  if "://" not in directory:
    directory = os.path.abspath(directory)
  return epath.Path(directory)
