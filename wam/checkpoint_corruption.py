"""Telling a corrupt checkpoint step from a transient error while restoring it.

A step whose files are verifiably corrupt (checksum mismatch, missing files, a file that
does not parse) raises :class:`CorruptCheckpointError`, from which ``Checkpointer`` may
fall back to an older step. Any other error (permission denied, an I/O error, a timeout)
must propagate as it is: a transient failure must not roll a run back to an older step.
"""

from __future__ import annotations

import json


class CorruptCheckpointError(RuntimeError):
  """A checkpoint step cannot be read back (missing, truncated or garbled files)."""


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


def deepest(e: BaseException) -> str:
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


def raise_if_not_corrupt(e: Exception, where: str) -> None:
  """Re-raises ``e`` (noting the step) unless it shows the step to be corrupt."""
  if not is_corruption(e):
    e.add_note(f"While restoring checkpoint step {where}: not a sign of corruption, so "
               "no fallback to an older step; retry once the error is fixed.")
    raise e


def _first_line(e: BaseException, limit: int = 500) -> str:
  text = str(e).strip().splitlines()
  text = text[0] if text else ""
  return text if len(text) <= limit else text[:limit] + "..."
