"""Writing a file atomically, with the permissions of any new file.

The one home of atomic writes in the project (run metadata beside checkpoints, the
rewritten ``metrics.jsonl``, run configs, results and stage markers): a reader (or a
process killed mid-write) sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import IO, Any, Callable, Optional


def atomic_write(path: str, write: Callable[[IO[Any]], None], mode: str = "w",
                 encoding: Optional[str] = None) -> None:
  """Writes ``path`` through a temporary file in the same directory, then renames it.

  The file gets the permissions of any new file (0666 less the umask, and a directory's
  default ACL), so that teammates on a shared filesystem can read the run.

  Args:
    path: the file to write (replaced when it exists).
    write: called with the open temporary file; writes the whole content.
    mode: ``"w"`` (text) or ``"wb"`` (binary).
    encoding: the text encoding (text mode only; None: the locale's).
  """
  directory, name = os.path.split(path)
  # Not mkstemp: its files are 0600 whatever the umask. Created with 0666, the kernel
  # applies the umask as for any other file. The same directory: os.replace is atomic
  # only within one filesystem.
  tmp = os.path.join(directory, f".{name}.{uuid.uuid4().hex}.tmp")
  fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
  try:
    with os.fdopen(fd, mode, encoding=encoding) as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())   # the content is on disk before the rename makes it visible
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def atomic_write_json(path: str, value: Any, **json_kwargs: Any) -> None:
  """Writes ``value`` as JSON to ``path`` atomically (see ``atomic_write``).

  Args:
    path: the file to write (replaced when it exists).
    value: what to write.
    **json_kwargs: passed to ``json.dump`` (``indent``, ``sort_keys``, ``default``...):
      each caller keeps its own format.
  """
  atomic_write(path, lambda f: json.dump(value, f, **json_kwargs), "w")
