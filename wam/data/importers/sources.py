"""The plug-in points of the importers: one open source file and one episode in it.

The formats (HDF5, npz, RLDS, LeRobot) plug in through :class:`SourceFile` (one open
file: its episode groups) and :class:`EpisodeSource` (one episode group: ``find(key)``
returns a lazily read array, an attribute value or ``None``). Arrays are read only when
converted (:mod:`wam.data.importers.convert`), so one episode at a time is in memory.
Also here: :class:`SourceError`, which every importer raises, and the natural sort order
of files and episode groups.
"""

from __future__ import annotations

import abc
import difflib
import re
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np


class SourceError(ValueError):
  """A source file or episode cannot be read, or does not match the key mapping."""


class LazyArray:
  """An array known by shape and dtype, loaded on first use (then kept): what an
  ``EpisodeSource`` returns for a large field, so that checking an episode reads
  headers only."""

  def __init__(self, shape: Sequence[int], dtype: Any, load: Callable[[], np.ndarray]):
    self.shape, self.dtype = tuple(shape), np.dtype(dtype)
    self._load, self._data = load, None

  def _get(self) -> np.ndarray:
    if self._data is None:
      self._data = self._load()
    return self._data

  def __getitem__(self, index: Any) -> np.ndarray:
    return self._get()[index]

  def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
    data = self._get()
    return data if dtype is None else data.astype(dtype)

  def __len__(self) -> int:
    return self.shape[0]


class EpisodeSource(abc.ABC):
  """One episode group of an open source file."""

  def __init__(self, path: str, group: str):
    self.path = path
    self.group = group

  @property
  def where(self) -> str:
    return f"{self.path} (episode group {self.group!r})"

  @abc.abstractmethod
  def find(self, key: str) -> Any:
    """The array (lazy: ``.shape``, ``.dtype``, slicing) or attribute at ``key``, or None."""

  @abc.abstractmethod
  def keys(self) -> list[str]:
    """Every array and attribute key of the group (for error messages)."""

  def get(self, key: str, field: str) -> Any:
    """``find(key)``, or a :class:`SourceError` naming the key, file, group and near keys."""
    value = self.find(key)
    if value is None:
      raise SourceError(missing_key_message(key, field, self.where, self.keys()))
    return value


class SourceFile(abc.ABC):
  """One open source file (a context manager)."""

  @abc.abstractmethod
  def groups(self, pattern: str) -> list[str]:
    """The episode groups matching ``pattern`` ("/" = the whole file), naturally sorted."""

  @abc.abstractmethod
  def episode(self, group: str) -> EpisodeSource:
    """The episode in ``group``."""

  def close(self) -> None:
    """Releases the file."""

  def __enter__(self) -> "SourceFile":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def missing_key_message(key: str, field: str, where: str, keys: Sequence[str]) -> str:
  close = difflib.get_close_matches(key, keys, n=3, cutoff=0.5)
  listed = list(keys)[:40]
  more = f" (and {len(keys) - 40} more)" if len(keys) > 40 else ""
  return (f"{where}: no key {key!r} (mapping field {field}). "
          f"{'Did you mean ' + repr(close) + '? ' if close else ''}"
          f"Keys in the group: {listed}{more}.")


def natural_key(text: str) -> tuple:
  """Sort key that orders embedded numbers by value: ``demo_2`` before ``demo_10``."""
  parts = re.split(r"(\d+)", text)
  return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts) + (text,)


def match_path(pattern: str, path: str) -> Optional[list[str]]:
  """Matches ``/``-separated ``path`` against a glob whose ``*`` stays within a component;
  returns what each ``*`` matched, or None."""
  regex = "/".join("[^/]*".join(re.escape(p) for p in c.split("*"))
                   for c in pattern.strip("/").split("/"))
  regex = regex.replace("[^/]*", "([^/]+)")
  m = re.fullmatch(regex, path.strip("/"))
  return list(m.groups()) if m else None


def as_list(value: str | Iterable[str]) -> list[str]:
  return [value] if isinstance(value, str) else list(value)
