"""What a checkpoint is of: the run's config, normalisation statistics and a batch.

Written beside the checkpoint steps (``<checkpoints>/config.json``, ``statistics.json``,
``example_batch.npz``, ``extra.json``) so that ``wam.loading.load`` rebuilds the model
from the directory alone.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping, Optional

import jax
import numpy as np

from wam.data import schema
from wam.files import atomic_write

CONFIG_FILE = "config.json"
STATISTICS_FILE = "statistics.json"
EXAMPLE_BATCH_FILE = "example_batch.npz"
EXTRA_FILE = "extra.json"
FILES = (CONFIG_FILE, STATISTICS_FILE, EXAMPLE_BATCH_FILE, EXTRA_FILE)


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
  missing = [f for f in FILES if not os.path.isfile(os.path.join(directory, f))]
  if missing:
    raise FileNotFoundError(
        f"{directory} is not a checkpoint directory with run metadata: missing "
        f"{', '.join(missing)} (written by wam.run_metadata.write_run_metadata).")
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
