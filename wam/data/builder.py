"""TFDS builders that store episodes step-major as ArrayRecord.

Training reads random *windows* of a few steps, so one stored record is one step (not
one episode): a window costs a handful of small reads instead of decoding a whole
episode. Records keep the order in which episodes were generated
(``disable_shuffling``), and the dataset's ``metadata.json`` holds the spec and an
episode index (per split: each episode's length, task, instruction and success), so a
reader finds episode ``e``'s steps without scanning anything. Each step also carries its
``episode_index`` and ``step_index``, which the reader checks.

Subclass :class:`EpisodeBuilder` for a dataset with a name (``tfds build`` works on it;
see ``dojo/datasets/dojo_robot``), or call :func:`write_dataset` to store any iterable
of episodes (the importers do).
"""

from __future__ import annotations

import abc
import keyword
import os
import re
import types
from typing import Callable, Iterable, Iterator, Mapping, Optional

import tensorflow_datasets as tfds

from wam.data.schema import Episode, EpisodeError, EpisodeSpec, nest

EPISODE_INDEX_FIELDS = ("length", "task", "instruction", "success")


class EpisodeBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base class of episode datasets: subclasses give a spec and the episodes per split."""

  def __init__(self, **kwargs):
    # ArrayRecord gives random access and needs no TensorFlow (TFRecord writing does).
    if kwargs.get("file_format") is None:
      kwargs["file_format"] = "array_record"
    super().__init__(**kwargs)

  @abc.abstractmethod
  def episode_spec(self) -> EpisodeSpec:
    """The spec every episode of this dataset (and config) follows."""

  @abc.abstractmethod
  def split_episodes(self, dl_manager: tfds.download.DownloadManager
                     ) -> Mapping[str, Iterable[Episode]]:
    """Episodes of each split, generated lazily (one episode in memory at a time)."""

  def _description(self) -> str:
    return (type(self).__doc__ or "").strip()

  def _info(self) -> tfds.core.DatasetInfo:
    spec = self.episode_spec()
    return tfds.core.DatasetInfo(
        builder=self, description=self._description(), features=spec.features(),
        metadata=tfds.core.MetadataDict(spec=spec.to_json(), episodes={}),
        disable_shuffling=True)

  def _split_generators(self, dl_manager):
    return {split: self._generate_examples(split, episodes)
            for split, episodes in self.split_episodes(dl_manager).items()}

  def _generate_examples(self, split: str, episodes: Iterable[Episode]
                         ) -> Iterator[tuple[str, dict]]:
    spec = self.episode_spec()
    index = {k: [] for k in EPISODE_INDEX_FIELDS}
    # Mutated while generating; TFDS writes info.metadata after the last split.
    self.info.metadata["episodes"][split] = index
    for e, episode in enumerate(episodes):
      steps, metadata = spec.validate(episode, where=f"{self.name} {split} episode {e}")
      n = len(steps["is_first"])
      for t in range(n):
        example = nest({k: v[t] for k, v in steps.items()})
        example["episode_index"] = e
        example["step_index"] = t
        yield f"{e:09d}_{t:06d}", example  # zero-padded: key order = generation order
      index["length"].append(n)
      index["task"].append(str(metadata["task"]))
      index["instruction"].append(str(metadata["instruction"]))
      index["success"].append(bool(metadata["success"]))
    if not index["length"]:
      raise EpisodeError(f"{self.name}: split {split!r} has no episodes.")


def _check_name(name: str) -> None:
  if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or keyword.iskeyword(name):
    raise ValueError(f"Dataset name {name!r} must be lower_snake_case (e.g. 'aloha_pen').")


class _AdhocEpisodeBuilder(EpisodeBuilder, skip_registration=True):
  """An episode dataset built from episodes handed over in Python."""

  _spec: EpisodeSpec
  _splits: Mapping[str, Callable[[], Iterable[Episode]]]
  _text: str = ""

  def episode_spec(self) -> EpisodeSpec:
    return self._spec

  def split_episodes(self, dl_manager):
    del dl_manager
    return {split: make() for split, make in self._splits.items()}

  def _description(self) -> str:
    return self._text


def write_dataset(name: str, spec: EpisodeSpec,
                  splits: Mapping[str, Callable[[], Iterable[Episode]]], data_dir: str, *,
                  version: str = "1.0.0", description: str = "",
                  overwrite: bool = False) -> str:
  """Stores episodes as a TFDS ArrayRecord dataset; returns its directory.

  ``splits`` maps a split name to a function returning that split's episodes (called
  once, iterated lazily). The directory is ``<data_dir>/<name>/<version>`` and reads back
  with :class:`wam.data.reader.EpisodeDataset`. An existing dataset is kept unless
  ``overwrite``; a failed build leaves no dataset behind (TFDS writes to a temporary
  directory first).
  """
  _check_name(name)
  if not splits:
    raise ValueError("write_dataset needs at least one split.")
  cls = types.new_class(
      "".join(p.title() for p in name.split("_")) + "Episodes", (_AdhocEpisodeBuilder,),
      {"skip_registration": True},
      lambda ns: ns.update(name=name, VERSION=tfds.core.Version(version),
                           RELEASE_NOTES={version: description or "Imported episodes."},
                           _spec=spec, _splits=dict(splits),
                           _text=description or f"{name}: imported episodes."))
  builder = cls(data_dir=data_dir)
  if overwrite and builder.is_prepared():
    import shutil  # pylint: disable=import-outside-toplevel
    shutil.rmtree(builder.data_dir)
    builder = cls(data_dir=data_dir)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      try_download_gcs=False))
  return os.fspath(builder.data_dir)


def dataset_dir(data_dir: str, name: str, version: Optional[str] = None,
                config: Optional[str] = None) -> str:
  """``<data_dir>/<name>[/<config>]/<version>``; the newest version when not given."""
  root = os.path.join(data_dir, name, config) if config else os.path.join(data_dir, name)
  if version is None:
    versions = sorted((d for d in (os.listdir(root) if os.path.isdir(root) else [])
                       if re.fullmatch(r"\d+\.\d+\.\d+", d)),
                      key=lambda v: tuple(int(x) for x in v.split(".")))
    if not versions:
      raise FileNotFoundError(f"No dataset versions under {root}.")
    version = versions[-1]
  return os.path.join(root, version)
