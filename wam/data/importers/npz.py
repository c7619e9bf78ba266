"""Imports ``.npz`` episode files (Dream Dojo collections, or any key layout).

Keys are the npz entry names (``steps/observation/joints``); an npz file has no
attributes, so a key names an array (a 0-d array holds a string or a scalar). Usually a
file is one episode (``episode_groups="/"``); a file holding several episodes under
prefixes (``demo_0/obs``, ``demo_1/obs``) imports with ``episode_groups="demo_*"``.
Entries are read one at a time, only when converted; shapes are read from the ``.npy``
headers without decompressing anything.

Library use::

  from wam.data.importers import npz
  path = npz.import_npz("workdir/episodes/episode_*.npz", npz.dojo(), name="dojo_pick",
                        data_dir="data", splits={"train": 0.9, "val": 0.1})

Command line::

  python -m wam.data.importers.npz --files='workdir/episodes/episode_*.npz' --preset=dojo \\
      --name=dojo_pick --data_dir=data
"""

from __future__ import annotations

import zipfile
from typing import Any, Sequence

import numpy as np

from wam.data.importers import importer
from wam.data.importers.mapping import KeyMapping, Preset
from wam.data.importers.sources import (EpisodeSource, LazyArray, SourceError, SourceFile,
                                        match_path, natural_key)


# ---------------------------------------------------------------------------- presets
def dojo(instruction: str = "") -> Preset:
  """Episodes written by ``dojo.collect.write_npz``: one file per episode.

  Expected entries (the episode's ``steps`` flattened with ``/``, RLDS layout: the last
  step holds the final observation and a padding action)::

    steps/observation/image_<cam>  uint8[N,H,W,3]  (all found)
    steps/observation/joints       f32[N,J]   joints slot ``joints``
    steps/observation/proprio      f32[N,P]   proprio slot ``proprio``
    steps/observation/privileged   f32[N,S]   privileged state
    steps/action                   f32[N,A]   action slot ``action``
    steps/action_mask              bool[N]    (newer files; else the last step is masked)
    steps/reward, steps/is_terminal, steps/language_instruction
    metadata                       JSON: embodiment, source, task, instruction, fps, success

  Depth and segmentation images are not imported.

  Args:
    instruction: used only where a file has no ``steps/language_instruction``.
  """
  return Preset(
      KeyMapping(images={"*": "steps/observation/image_*"},
                 joints=("steps/observation/joints",),
                 proprio=("steps/observation/proprio",),
                 privileged=("steps/observation/privileged",),
                 action=("steps/action",), action_mask="steps/action_mask",
                 mask_last_action=True,
                 reward="steps/reward", is_terminal="steps/is_terminal",
                 instruction="steps/language_instruction", default_instruction=instruction,
                 metadata_json="metadata",
                 optional=("action_mask", "instruction", "reward", "is_terminal")),
      source="sim", episode_groups="/", files="episode_*.npz")


PRESETS = {"dojo": dojo}


# ---------------------------------------------------------------------------- npz
def _entry(archive: zipfile.ZipFile, member: str) -> LazyArray:
  """One ``.npy`` entry of an npz file: shape and dtype from its header, data on use."""
  with archive.open(member) as f:
    version = np.lib.format.read_magic(f)
    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                   else np.lib.format.read_array_header_2_0)
    shape, _, dtype = read_header(f)

  def load() -> np.ndarray:
    with archive.open(member) as f:
      return np.lib.format.read_array(f, allow_pickle=False)
  return LazyArray(shape, dtype, load)


class _NpzEpisode(EpisodeSource):
  """The entries of one episode (a key prefix) of an npz file."""

  def __init__(self, path: str, group: str, archive: zipfile.ZipFile, members: dict):
    super().__init__(path, group)
    self._archive = archive
    self._members = members  # key -> member name
    self._prefix = "" if group == "/" else group.strip("/") + "/"
    self._entries: dict[str, LazyArray] = {}

  def find(self, key: str) -> Any:
    full = key.lstrip("/") if key.startswith("/") else self._prefix + key
    member = self._members.get(full)
    if member is None:
      return None
    if full not in self._entries:
      self._entries[full] = _entry(self._archive, member)
    entry = self._entries[full]
    return entry[()] if entry.shape == () else entry

  def keys(self) -> list[str]:
    return sorted((k[len(self._prefix):] for k in self._members
                   if k.startswith(self._prefix)), key=natural_key)


class NpzFile(SourceFile):
  """An ``.npz`` file opened for reading; an unreadable file raises naming itself."""

  def __init__(self, path: str):
    self.path = path
    try:
      self._archive = zipfile.ZipFile(path)
      self._members = {m[:-len(".npy")]: m for m in self._archive.namelist()
                       if m.endswith(".npy")}
    except Exception as e:  # BadZipFile, OSError, EOFError...
      raise SourceError(f"{path}: cannot open as npz ({type(e).__name__}: {e}); the file is "
                        "corrupt, truncated or not an npz archive.") from e
    if not self._members:
      raise SourceError(f"{path}: the npz archive holds no arrays.")

  def groups(self, pattern: str) -> list[str]:
    if pattern.strip("/") == "":
      return ["/"]
    depth = len(pattern.strip("/").split("/"))
    found = {"/".join(k.split("/")[:depth]) for k in self._members if k.count("/") >= depth}
    found = [g for g in found if match_path(pattern, g) is not None]
    if not found:
      raise SourceError(f"{self.path}: no episode groups match {pattern!r}; its keys are "
                        f"{sorted(self._members, key=natural_key)[:40]}.")
    return sorted(found, key=natural_key)

  def episode(self, group: str) -> EpisodeSource:
    return _NpzEpisode(self.path, group, self._archive, self._members)

  def close(self) -> None:
    self._archive.close()


def import_npz(files: str | Sequence[str], mapping: KeyMapping | Preset, *, name: str,
               data_dir: str, **kwargs: Any) -> str:
  """Imports ``.npz`` episodes into an episode dataset; returns its directory.

  Args:
    files: paths or globs of ``.npz`` files (naturally sorted).
    mapping: a :class:`KeyMapping` (keys are npz entry names) or a preset (:func:`dojo`).
    name: dataset name.
    data_dir: where datasets live.
    **kwargs: spec overrides (``embodiment``, ``source``, ``cameras``, ``image_size``,
      ``fps``), ``episode_groups``, ``splits``, ``max_episodes``, ``on_error``,
      ``task``, ``version``, ``overwrite``: see
      :func:`wam.data.importers.importer.import_episodes`.
  """
  return importer.import_episodes(NpzFile, files, mapping, name=name, data_dir=data_dir,
                                  kind="npz", **kwargs)


def main(argv: Sequence[str]) -> None:
  del argv
  importer.run_cli(import_npz, PRESETS)


if __name__ == "__main__":
  from absl import app  # pylint: disable=g-import-not-at-top
  importer.define_flags(PRESETS, example="workdir/episodes/episode_*.npz")
  app.run(main)
