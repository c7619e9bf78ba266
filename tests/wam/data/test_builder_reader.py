"""Step-major TFDS episode datasets: round trip, and damaged or empty data."""

import glob
import os
import shutil

import numpy as np
import pytest

from wam.data import builder, synthetic
from wam.data.reader import CorruptDataError, EpisodeDataset
from wam.data.schema import EpisodeError

from tests.wam.data.conftest import ROBOT_LENGTHS, ROBOT_SPEC


def _assert_same_episode(read, original):
  steps, _ = ROBOT_SPEC.validate(original)  # the stored form (defaults filled)
  flat = {}

  def walk(tree, prefix=""):
    for k, v in tree.items():
      if isinstance(v, dict):
        walk(v, f"{prefix}{k}/")
      else:
        flat[prefix + k] = v
  walk(read["steps"])
  assert set(flat) == set(steps)
  for key, value in steps.items():
    if key == "language_instruction":
      assert list(flat[key]) == list(value)
    else:
      np.testing.assert_array_equal(flat[key], value, err_msg=key)


def test_round_trip_is_exact(robot_dir):
  ds = EpisodeDataset(robot_dir)
  assert len(ds) == 6 and ds.num_steps == sum(ROBOT_LENGTHS)
  assert ds.spec == ROBOT_SPEC
  assert list(ds.episode_lengths) == ROBOT_LENGTHS
  for e in (0, 3, 5):
    original = synthetic.synthetic_episode(ROBOT_SPEC, ROBOT_LENGTHS[e], e)
    episode = ds.episode(e)
    _assert_same_episode(episode, original)
    assert episode["metadata"]["instruction"] == original["metadata"]["instruction"]
  # Reading a few steps without images decodes nothing else.
  steps = ds.read_steps(2, [1, 5], images=False)
  assert "observation/image_front" not in steps
  np.testing.assert_array_equal(steps["step_index"], [1, 5])


def test_errors_name_what_is_wrong(robot_dir, tmp_path):
  with pytest.raises(KeyError, match=r"no split 'val'; it has \['train'\]"):
    EpisodeDataset(robot_dir, "val")
  with pytest.raises(FileNotFoundError, match="not a built dataset"):
    EpisodeDataset(str(tmp_path))
  with pytest.raises(EpisodeError, match="split 'train' has no episodes"):
    builder.write_dataset("empty_set", ROBOT_SPEC, {"train": lambda: iter(())},
                          str(tmp_path))
  with pytest.raises(ValueError, match="lower_snake_case"):
    builder.write_dataset("Bad-Name", ROBOT_SPEC, {"train": lambda: iter(())}, str(tmp_path))
  # A failed build leaves no dataset behind.
  assert not glob.glob(str(tmp_path / "empty_set" / "*" / "dataset_info.json"))


def _copy(robot_dir, tmp_path):
  target = tmp_path / "copy"
  shutil.copytree(robot_dir, target)
  shard = glob.glob(str(target / "*.array_record-*"))[0]
  return str(target), shard


def test_damaged_record_names_file_and_record(robot_dir, tmp_path):
  path, shard = _copy(robot_dir, tmp_path)
  data = bytearray(open(shard, "rb").read())
  # Records sit at the front of the file; damage bytes inside the ~4th step record.
  pos = len(data) // 40
  data[pos:pos + 32] = b"\xa5" * 32
  open(shard, "wb").write(bytes(data))
  ds = EpisodeDataset(path)
  with pytest.raises(CorruptDataError, match=rf"{os.path.basename(shard)}: record \d+ "
                                             r"\(step \d+ of episode \d+\)"):
    for e in range(len(ds)):
      ds.episode(e)


def test_truncated_shard_names_file(robot_dir, tmp_path):
  path, shard = _copy(robot_dir, tmp_path)
  data = open(shard, "rb").read()
  open(shard, "wb").write(data[:len(data) // 2])
  ds = EpisodeDataset(path)
  with pytest.raises(CorruptDataError, match=rf"{os.path.basename(shard)}.*truncated"):
    ds.episode(0)
