"""The import of files that hold episode groups, through a key mapping, and its command line.

The HDF5, npz, RLDS and LeRobot importers share it: each opens its files as
:class:`~wam.data.importers.sources.SourceFile` and passes a key mapping
(:mod:`wam.data.importers.mapping`). The two passes are :mod:`wam.data.importers.two_pass`'s,
one file open at a time:

1. **scan**: open each file, list its episode groups, build the dataset spec from the
   first episode and check every episode's keys and shapes (metadata only, no array is
   read). A missing key or a corrupt file fails here, before anything is written.
2. **write**: read and convert one episode at a time into
   :func:`wam.data.builder.write_dataset`.

Files and episode groups are in natural order (``demo_2`` before ``demo_10``); splits
take consecutive runs of that order (``{"train": 0.9, "val": 0.1}``: the first 90% of
the episodes are ``train``). With ``on_error="skip"`` a file or episode that fails is
logged, counted and left out; the dataset description gives the count and
``import_report.json`` next to the dataset lists each one with its error (and the
mapping, spec and source files, to redo the import).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
from typing import Callable, Mapping, Optional, Sequence

from absl import flags

from wam.data.importers.convert import check_episode, read_episode, resolve
from wam.data.importers.mapping import KeyMapping, Preset
from wam.data.importers.sources import SourceError, SourceFile, as_list, natural_key
from wam.data.importers.two_pass import (ON_ERROR, REPORT_FILE, Scan, Skips,
                                         import_two_pass)
from wam.data.schema import Episode, EpisodeSpec


@dataclasses.dataclass(frozen=True)
class EpisodeRef:
  """Where one episode is: a file, a group in it, and its number of steps."""

  path: str
  group: str
  length: int

  @property
  def where(self) -> str:
    return episode_where(self.path, self.group)


def episode_where(path: str, group: str) -> str:
  """How messages name an episode group of a file."""
  return f"{path} (episode group {group!r})"


def expand_files(files: str | Sequence[str]) -> list[str]:
  """Paths matching ``files`` (paths or globs, ``**`` recursive), deduplicated, naturally
  sorted; a pattern that matches nothing is an error."""
  paths = set()
  for pattern in as_list(files):
    pattern = os.path.expanduser(os.fspath(pattern))
    found = glob.glob(pattern, recursive=True)
    files_found = [p for p in found if os.path.isfile(p)]
    if not files_found:
      hint = " (only directories: give a glob of files, e.g. dir/*.hdf5)" if found else ""
      raise FileNotFoundError(f"No files match {pattern!r}{hint}.")
    paths.update(files_found)
  return sorted(paths, key=natural_key)


def import_episodes(open_file: Callable[[str], SourceFile], files: str | Sequence[str],
                    mapping: KeyMapping | Preset, *, name: str, data_dir: str, kind: str,
                    embodiment: Optional[str] = None, source: Optional[str] = None,
                    cameras: Optional[Sequence[str]] = None,
                    image_size: Optional[tuple[int, int]] = None, fps: Optional[float] = None,
                    episode_groups: Optional[str] = None,
                    splits: Optional[Mapping[str, float]] = None,
                    max_episodes: Optional[int] = None, on_error: str = "raise",
                    task: Optional[str] = None, version: str = "1.0.0",
                    overwrite: bool = False) -> str:
  """Imports episodes from source files into an episode dataset; returns its directory.

  Args:
    open_file: opens one source file (raising for an unreadable one).
    files: paths or globs of the source files.
    mapping: a :class:`KeyMapping`, or a :class:`Preset` with dataset defaults.
    name: dataset name (lower_snake_case).
    data_dir: the dataset goes to ``<data_dir>/<name>/<version>``.
    kind: the format's name, for messages ("HDF5", "npz").
    embodiment, source, cameras, image_size, fps: spec overrides (``cameras`` selects
      and orders the mapping's cameras); the rest comes from the first episode.
    episode_groups: glob of episode groups in a file; "/" is the whole file.
    splits: ``{split: fraction}`` taken in episode order; default all ``train``.
    max_episodes: import only the first ``max_episodes`` episodes (in order).
    on_error: "raise" (default) or "skip" unreadable files and bad episodes.
    task: metadata task of every episode (default: the one the source records, else the
      dataset name).
    version: dataset version.
    overwrite: replace an existing dataset of that name and version.

  Returns:
    The dataset directory, readable with :class:`wam.data.reader.EpisodeDataset`.
  """
  preset = mapping if isinstance(mapping, Preset) else Preset(mapping)
  pattern = episode_groups or preset.episode_groups
  resolved = preset.mapping
  spec: Optional[EpisodeSpec] = None

  def scan(skips: Skips) -> Scan[EpisodeRef]:
    nonlocal resolved, spec
    paths = expand_files(files)
    refs: list[EpisodeRef] = []
    for path in paths:
      if max_episodes is not None and len(refs) >= max_episodes:
        break
      try:
        handle = open_file(path)
      except Exception as e:  # pylint: disable=broad-except
        skips.failed(path, "open", e, file=path, group=None)
        continue
      with handle:
        try:
          groups = handle.groups(pattern)
        except Exception as e:  # pylint: disable=broad-except
          skips.failed(path, "open", e, file=path, group=None)
          continue
        for group in groups:
          if max_episodes is not None and len(refs) >= max_episodes:
            break
          try:
            episode = handle.episode(group)
            if spec is None:
              resolved, spec = resolve(episode, preset, name=name,
                                       embodiment=embodiment, source_kind=source,
                                       cameras=cameras, image_size=image_size, fps=fps)
            refs.append(EpisodeRef(path, group, check_episode(episode, resolved, spec)))
          except Exception as e:  # pylint: disable=broad-except
            skips.failed(episode_where(path, group), "scan", e, file=path, group=group)
    if not refs:
      raise SourceError(f"No {kind} episodes to import from {len(paths)} files "
                        f"({len(skips)} skipped).{skips.first_error()}")
    assert spec is not None
    description = (f"{name}: {len(refs)} episodes imported by wam.data.importers from "
                   f"{len(paths)} {kind} files ({', '.join(as_list(files))}); "
                   f"{len(skips)} files or episodes skipped while scanning "
                   f"(on_error={on_error!r}); every skip, also any while writing, is "
                   f"listed in {REPORT_FILE}.")
    return Scan(refs, spec, where=lambda ref: ref.where,
                source=lambda ref: {"file": ref.path, "group": ref.group},
                description=description, num_files=len(paths),
                sources={"files": paths, "episode_groups": pattern},
                settings={"mapping": resolved.to_json()})

  def read(ref: EpisodeRef) -> Episode:
    assert spec is not None
    with open_file(ref.path) as handle:
      return read_episode(handle.episode(ref.group), resolved, spec, task=task,
                          default_task=name)

  return import_two_pass(scan, read, name=name, data_dir=data_dir, kind=kind, splits=splits,
                         on_error=on_error, version=version, overwrite=overwrite)


# ---------------------------------------------------------------------------- CLI
def define_flags(presets: Mapping[str, Callable[..., Preset]], example: str) -> None:
  """Defines the importer flags (call from ``__main__`` only: library code has none)."""
  flags.DEFINE_list("files", None, f"Source files: paths or globs, e.g. '{example}'.")
  flags.DEFINE_enum("preset", None, sorted(presets), "A preset key mapping.")
  flags.DEFINE_string("mapping", None, "A KeyMapping as JSON, or a .json file holding it "
                      "(instead of --preset).")
  flags.DEFINE_string("name", None, "Dataset name (lower_snake_case).")
  flags.DEFINE_string("data_dir", None, "Where the dataset goes: <data_dir>/<name>/<version>.")
  flags.DEFINE_string("embodiment", None, "Overrides the embodiment.")
  flags.DEFINE_enum("source", None, ["robot", "human", "sim"], "Overrides the source.")
  flags.DEFINE_list("cameras", None, "Cameras to import, in order (default: all mapped).")
  flags.DEFINE_list("image_size", None, "Stored image size 'height,width' (default: the "
                    "first camera's).")
  flags.DEFINE_float("fps", None, "Overrides the frame rate.")
  flags.DEFINE_string("episode_groups", None, "Glob of episode groups inside a file; '/' "
                      "is the whole file (default: the preset's).")
  flags.DEFINE_list("splits", ["train=1"], "Split fractions in episode order, e.g. "
                    "'train=0.9,val=0.1'.")
  flags.DEFINE_integer("max_episodes", None, "Import only the first N episodes.")
  flags.DEFINE_enum("on_error", "raise", list(ON_ERROR), "Unreadable files / bad episodes.")
  flags.DEFINE_string("instruction", None, "Instruction of every episode (presets).")
  flags.DEFINE_string("task", None, "Task of every episode (default: the dataset name).")
  flags.DEFINE_string("version", "1.0.0", "Dataset version.")
  flags.DEFINE_bool("overwrite", False, "Replace an existing dataset.")
  flags.mark_flags_as_required(["files", "name", "data_dir"])


def run_cli(import_fn: Callable[..., str], presets: Mapping[str, Callable[..., Preset]]
            ) -> str:
  """Runs ``import_fn`` with the flags of :func:`define_flags`."""
  f = flags.FLAGS
  if (f.preset is None) == (f.mapping is None):
    raise flags.UsageError("Give one of --preset or --mapping.")
  if f.preset is not None:
    kwargs = {} if f.instruction is None else {"instruction": f.instruction}
    mapping: KeyMapping | Preset = presets[f.preset](**kwargs)
  else:
    text = f.mapping
    if os.path.exists(text):
      with open(text) as fh:
        text = fh.read()
    mapping = KeyMapping.from_json(json.loads(text))
    if f.instruction is not None:
      mapping = dataclasses.replace(mapping, default_instruction=f.instruction)
  splits = {}
  for item in f.splits:
    split, _, fraction = item.partition("=")
    splits[split] = float(fraction or 1)
  image_size = tuple(int(s) for s in f.image_size) if f.image_size else None
  path = import_fn(f.files, mapping, name=f.name, data_dir=f.data_dir,
                   embodiment=f.embodiment, source=f.source, cameras=f.cameras,
                   image_size=image_size, fps=f.fps, episode_groups=f.episode_groups,
                   splits=splits, max_episodes=f.max_episodes, on_error=f.on_error,
                   task=f.task, version=f.version, overwrite=f.overwrite)
  print(path)  # the dataset directory, for scripts
  return path
