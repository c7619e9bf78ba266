"""The streaming import that the HDF5 and npz importers share, and their command line.

An import makes two passes over the source files, one file open at a time:

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
import logging
import os
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import numpy as np

from wam.data import builder
from wam.data.importers.mapping import (KeyMapping, Preset, SourceError, SourceFile,
                                        as_list, check_episode, describe, natural_key,
                                        read_episode, resolve)
from wam.data.schema import Episode, EpisodeError, EpisodeSpec

ON_ERROR = ("raise", "skip")
REPORT_FILE = "import_report.json"


@dataclasses.dataclass(frozen=True)
class EpisodeRef:
  """Where one episode is: a file, a group in it, and its number of steps."""

  path: str
  group: str
  length: int


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


def split_counts(n: int, fractions: Mapping[str, float]) -> dict[str, int]:
  """Episodes per split: ``fractions`` (normalised) of ``n``, largest remainders first,
  at least one episode per split."""
  names = list(fractions)
  weights = np.asarray([float(fractions[k]) for k in names])
  if not names or (weights <= 0).any() or not np.isfinite(weights).all():
    raise ValueError(f"Split fractions must be positive, got {dict(fractions)}.")
  if n < len(names):
    raise SourceError(f"{n} episodes cannot fill the {len(names)} splits {names}.")
  exact = weights / weights.sum() * n
  counts = np.floor(exact).astype(int)
  # Stable sort: equal remainders go to the earlier split, so the result is deterministic.
  for i in np.argsort(-(exact - counts), kind="stable")[:n - counts.sum()]:
    counts[i] += 1
  for i in np.flatnonzero(counts == 0):
    counts[int(np.argmax(counts))] -= 1
    counts[i] = 1
  return dict(zip(names, (int(c) for c in counts)))


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
  if on_error not in ON_ERROR:
    raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}.")
  preset = mapping if isinstance(mapping, Preset) else Preset(mapping)
  pattern = episode_groups or preset.episode_groups
  splits = dict(splits or {"train": 1.0})
  target = builder.dataset_dir(data_dir, name, version)
  if os.path.exists(os.path.join(target, "dataset_info.json")) and not overwrite:
    logging.info("%s exists; kept (pass overwrite=True to import again).", target)
    return target
  paths = expand_files(files)
  skipped: list[dict[str, str]] = []

  def failed(path: str, group: Optional[str], stage: str, error: Exception) -> None:
    where = path if group is None else f"{path} (episode group {group!r})"
    if on_error == "raise":
      if isinstance(error, (SourceError, EpisodeError)):  # these name the file already
        raise error
      raise SourceError(f"{where}: {type(error).__name__}: {error}") from error
    logging.warning("Skipping %s: %s", where, error)
    skipped.append({"file": path, "group": group, "stage": stage, "error": str(error)})

  # ---------------------------------------------------------------- pass 1: scan
  refs: list[EpisodeRef] = []
  spec: Optional[EpisodeSpec] = None
  resolved = preset.mapping
  for path in paths:
    if max_episodes is not None and len(refs) >= max_episodes:
      break
    try:
      handle = open_file(path)
    except Exception as e:  # pylint: disable=broad-except
      failed(path, None, "open", e)
      continue
    with handle:
      try:
        groups = handle.groups(pattern)
      except Exception as e:  # pylint: disable=broad-except
        failed(path, None, "open", e)
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
          failed(path, group, "scan", e)
  if not refs:
    first = f" The first error: {skipped[0]['error']}" if skipped else ""
    raise SourceError(f"No {kind} episodes to import from {len(paths)} files "
                      f"({len(skipped)} skipped).{first}")
  assert spec is not None
  counts = split_counts(len(refs), splits)
  by_split, start = {}, 0
  for split, count in counts.items():
    by_split[split] = refs[start:start + count]
    start += count
  logging.info("Importing %d %s episodes (%s) from %d files into %s: %s.", len(refs), kind,
               counts, len(paths), target, describe(spec))

  # ---------------------------------------------------------------- pass 2: write
  written = {split: 0 for split in by_split}

  def episodes(split: str) -> Iterator[Episode]:
    for ref in by_split[split]:
      try:
        with open_file(ref.path) as handle:
          episode = read_episode(handle.episode(ref.group), resolved, spec, task=task,
                                 default_task=name)
        # Validated here as well as in the builder, so that a bad episode can be skipped.
        spec.validate(episode, where=f"{ref.path} (episode group {ref.group!r})")
      except Exception as e:  # pylint: disable=broad-except
        failed(ref.path, ref.group, "write", e)
        continue
      written[split] += 1
      yield episode

  scan_skips = len(skipped)
  description = (f"{name}: {len(refs)} episodes imported by wam.data.importers from "
                 f"{len(paths)} {kind} files ({', '.join(as_list(files))}); "
                 f"{scan_skips} files or episodes skipped while scanning "
                 f"(on_error={on_error!r}); every skip, also any while writing, is listed in "
                 f"{REPORT_FILE}.")
  out = builder.write_dataset(
      name, spec, {split: (lambda s=split: episodes(s)) for split in by_split},
      data_dir, version=version, description=description, overwrite=overwrite)
  if len(skipped) > scan_skips:
    logging.warning("%d episodes failed while writing and were skipped; the dataset "
                    "description counts only the %d skipped while scanning.",
                    len(skipped) - scan_skips, scan_skips)
  report = {"name": name, "kind": kind, "files": paths, "episode_groups": pattern,
            "episodes": written, "skipped": skipped, "mapping": resolved.to_json(),
            "spec": spec.to_json(), "on_error": on_error}
  with open(os.path.join(out, REPORT_FILE), "w") as f:
    json.dump(report, f, indent=1)
  logging.info("Imported %s into %s (%d skipped).", written, out, len(skipped))
  return out


def read_report(dataset_dir: str) -> dict[str, Any]:
  """The ``import_report.json`` of an imported dataset."""
  with open(os.path.join(dataset_dir, REPORT_FILE)) as f:
    return json.load(f)


# ---------------------------------------------------------------------------- CLI
def define_flags(presets: Mapping[str, Callable[..., Preset]], example: str) -> None:
  """Defines the importer flags (call from ``__main__`` only: library code has none)."""
  from absl import flags  # pylint: disable=import-outside-toplevel
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
  from absl import flags  # pylint: disable=import-outside-toplevel
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
