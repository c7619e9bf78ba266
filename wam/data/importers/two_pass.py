"""The two-pass import that every importer shares: check everything, then write.

An import makes two passes over its source episodes:

1. **scan**: the format's ``scan`` lists the episodes and checks each one cheaply
   (metadata and shapes; no array is read), and builds the dataset spec. A missing key
   or a corrupt file fails here, before anything is written.
2. **write**: the format's ``read`` reads and converts one episode at a time into
   :func:`wam.data.builder.write_dataset`; each episode is validated against the spec on
   the way, so that a bad one can be skipped.

Splits take consecutive runs of the scan's order (``{"train": 0.9, "val": 0.1}``: the
first 90% of the episodes are ``train``). With ``on_error="skip"`` an episode (or file)
that fails is logged, counted and left out; ``import_report.json`` next to the dataset
lists each one with its error, beside what the format records to redo the import.

Users: :func:`wam.data.importers.importer.import_episodes` (HDF5, npz, RLDS, LeRobot)
and :func:`egoscale.importers.egodex.import_egodex`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Any, Callable, Generic, Iterator, Mapping, Sequence, TypeVar

import numpy as np

from wam.data import builder
from wam.data.importers.convert import describe
from wam.data.importers.sources import SourceError
from wam.data.schema import Episode, EpisodeError, EpisodeSpec

ON_ERROR = ("raise", "skip")
REPORT_FILE = "import_report.json"

Ref = TypeVar("Ref")  # what the scan learned about one episode: enough to read it


class Skips:
  """The ``on_error`` policy of one import, and the list of what it skipped.

  Args:
    on_error: ``"raise"`` or ``"skip"``.
    error_type: raising, an error of another type is wrapped in this one (its message
      then names where it happened).
    passthrough: errors raised as they are (they name their file already).
  """

  def __init__(self, on_error: str, error_type: type[Exception] = SourceError,
               passthrough: tuple[type[Exception], ...] = (SourceError, EpisodeError)):
    if on_error not in ON_ERROR:
      raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}.")
    self.on_error = on_error
    self.error_type = error_type
    self.passthrough = passthrough
    self.skipped: list[dict[str, Any]] = []

  def failed(self, where: str, stage: str, error: Exception, **source: Any) -> None:
    """Raises ``error`` or, skipping, logs it and lists it with ``source`` and ``stage``."""
    if self.on_error == "raise":
      if isinstance(error, self.passthrough):
        raise error
      raise self.error_type(f"{where}: {type(error).__name__}: {error}") from error
    logging.warning("Skipping %s: %s", where, error)
    self.skipped.append({**source, "stage": stage, "error": str(error)})

  def first_error(self) -> str:
    """`` The first error: ...`` for a message, or "" when nothing was skipped."""
    return f" The first error: {self.skipped[0]['error']}" if self.skipped else ""

  def __len__(self) -> int:
    return len(self.skipped)


@dataclasses.dataclass(frozen=True)
class Scan(Generic[Ref]):
  """What the first pass found.

  Attributes:
    refs: the episodes to write, in order (splits take consecutive runs of it).
    spec: the dataset spec every episode is validated against.
    where: names an episode in messages (a file, or a file and a group in it).
    source: an episode's fields in the report's list of skips (``{"file": ...}``).
    description: the dataset description.
    num_files: source files scanned (for the log).
    sources, settings: report entries, before and after the episode counts and skips:
      where the episodes came from, and how they were converted.
  """

  refs: Sequence[Ref]
  spec: EpisodeSpec
  where: Callable[[Ref], str]
  source: Callable[[Ref], dict[str, Any]]
  description: str
  num_files: int
  sources: Mapping[str, Any]
  settings: Mapping[str, Any]


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


def import_two_pass(scan: Callable[[Skips], Scan[Ref]], read: Callable[[Ref], Episode], *,
                    name: str, data_dir: str, kind: str,
                    splits: Mapping[str, float] | None = None, on_error: str = "raise",
                    error_type: type[Exception] = SourceError,
                    passthrough: tuple[type[Exception], ...] = (SourceError, EpisodeError),
                    version: str = "1.0.0", overwrite: bool = False) -> str:
  """Scans, then writes, the episodes of one import; returns the dataset directory.

  Args:
    scan: the first pass: lists and checks the episodes, reporting failures to the
      :class:`Skips` it is given (which raises, or lists and goes on); raises when no
      episode is left. Not called when the dataset exists and ``overwrite`` is False.
    read: reads and converts one episode of ``scan``'s ``refs``.
    name: dataset name (lower_snake_case).
    data_dir: the dataset goes to ``<data_dir>/<name>/<version>``.
    kind: the format's name, for messages and the report ("HDF5", "EgoDex").
    splits: ``{split: fraction}`` taken in episode order; default all ``train``.
    on_error, error_type, passthrough: the :class:`Skips` policy.
    version: dataset version.
    overwrite: replace an existing dataset of that name and version.

  Returns:
    The dataset directory, readable with :class:`wam.data.reader.EpisodeDataset`.
  """
  skips = Skips(on_error, error_type, passthrough)  # checks on_error before anything else
  target = builder.dataset_dir(data_dir, name, version)
  if os.path.exists(os.path.join(target, "dataset_info.json")) and not overwrite:
    logging.info("%s exists; kept (pass overwrite=True to import again).", target)
    return target

  # ---------------------------------------------------------------- pass 1: scan
  found = scan(skips)
  spec = found.spec
  counts = split_counts(len(found.refs), dict(splits or {"train": 1.0}))
  by_split, start = {}, 0
  for split, count in counts.items():
    by_split[split] = found.refs[start:start + count]
    start += count
  logging.info("Importing %d %s episodes (%s) from %d files into %s: %s.", len(found.refs),
               kind, counts, found.num_files, target, describe(spec))

  # ---------------------------------------------------------------- pass 2: write
  written = {split: 0 for split in by_split}

  def episodes(split: str) -> Iterator[Episode]:
    for ref in by_split[split]:
      where = found.where(ref)
      try:
        episode = read(ref)
        # Validated here as well as in the builder, so that a bad episode can be skipped.
        spec.validate(episode, where=where)
      except Exception as e:  # pylint: disable=broad-except
        skips.failed(where, "write", e, **found.source(ref))
        continue
      written[split] += 1
      yield episode

  scan_skips = len(skips)
  out = builder.write_dataset(
      name, spec, {split: (lambda s=split: episodes(s)) for split in by_split},
      data_dir, version=version, description=found.description, overwrite=overwrite)
  if len(skips) > scan_skips:
    logging.warning("%d episodes failed while writing and were skipped (%d while "
                    "scanning); %s lists them all.", len(skips) - scan_skips, scan_skips,
                    REPORT_FILE)
  report = {"name": name, "kind": kind, **found.sources, "episodes": written,
            "skipped": skips.skipped, **found.settings, "spec": spec.to_json(),
            "on_error": skips.on_error}
  with open(os.path.join(out, REPORT_FILE), "w") as f:
    json.dump(report, f, indent=1)
  logging.info("Imported %s into %s (%d skipped).", written, out, len(skips))
  return out


def read_report(dataset_dir: str) -> dict[str, Any]:
  """The ``import_report.json`` of an imported dataset."""
  with open(os.path.join(dataset_dir, REPORT_FILE)) as f:
    return json.load(f)
