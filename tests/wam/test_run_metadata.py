"""wam.run_metadata: what a checkpoint is of, written atomically and read back."""

import os

import numpy as np
import pytest

from wam.run_metadata import read_run_metadata, write_run_metadata


def test_run_metadata_round_trip(tmp_path):
  batch = {"observation": {"image": np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
                           "joints": np.ones((2, 5), np.float32)},
           "instruction": np.array(["pick", "place"])}
  stats = {"action": {"mean": np.zeros(3, np.float32), "count": np.int64(5)}}
  write_run_metadata(str(tmp_path), config_json='{"model": {"width": 64}}',
                     statistics=stats, example_batch=batch, extra={"git": "abc"})
  assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
  meta = read_run_metadata(str(tmp_path))
  assert meta.config == {"model": {"width": 64}}
  assert meta.statistics == {"action": {"mean": [0.0, 0.0, 0.0], "count": 5}}
  assert meta.extra == {"git": "abc"}
  np.testing.assert_array_equal(meta.example_batch["observation"]["image"],
                                batch["observation"]["image"])
  assert meta.example_batch["observation"]["joints"].dtype == np.float32
  np.testing.assert_array_equal(meta.example_batch["instruction"], ["pick", "place"])

  os.remove(tmp_path / "example_batch.npz")
  with pytest.raises(FileNotFoundError, match="missing example_batch.npz"):
    read_run_metadata(str(tmp_path))
  with pytest.raises(FileNotFoundError, match="does not exist"):
    read_run_metadata(str(tmp_path / "nope"))
  with pytest.raises(ValueError, match="not valid JSON"):
    write_run_metadata(str(tmp_path), config_json="{", statistics=None, example_batch={})


@pytest.mark.parametrize("umask,expected", [(0o022, 0o644), (0o077, 0o600)])
def test_run_metadata_files_honour_the_umask(tmp_path, umask, expected):
  """Teammates on a shared filesystem can load a run (a temporary file's default is 0600)."""
  old_umask = os.umask(umask)
  try:
    write_run_metadata(str(tmp_path), config_json="{}", statistics={"a": 1},
                       example_batch={"x": np.zeros(2)}, extra={"b": 2})
  finally:
    os.umask(old_umask)
  for name in ("config.json", "statistics.json", "extra.json", "example_batch.npz"):
    assert os.stat(tmp_path / name).st_mode & 0o777 == expected, name
  assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
