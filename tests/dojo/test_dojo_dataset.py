"""The dojo_robot TFDS builder: Dojo episodes round-trip through it and the loader."""

import os

import numpy as np
import pytest

import dojo
from dojo import collect as collect_lib
from dojo.datasets.dojo_robot import Builder, DojoRobotConfig
from wam.data.pipeline import DatasetRef, Pipeline
from wam.data.reader import EpisodeDataset
from wam.data.window import WindowConfig, WindowSource

from tests.dojo import toy

CONFIG = DojoRobotConfig(name="toy_tiny", task="toy", num_episodes=5, batch_size=4,
                         cameras=("front", "wrist"), image_size=(16, 16), num_steps=9,
                         val_fraction=0.2)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  if "toy" not in dojo.names():
    dojo.register("toy", toy.Toy)
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  builder = Builder(config=CONFIG, data_dir=data_dir)
  builder.download_and_prepare()
  episode_dir = os.path.join(data_dir, "downloads", "dojo_robot", "toy_tiny", "episodes")
  return os.fspath(builder.data_dir), episode_dir


def test_spec_and_splits(built):
  path, _ = built
  train, val = EpisodeDataset(path, "train"), EpisodeDataset(path, "val")
  assert (len(train), len(val)) == (4, 1)
  spec = train.spec
  assert spec.source == "sim" and spec.cameras == ("front", "wrist")
  assert spec.image_size == (16, 16) and spec.fps == pytest.approx(25.0)
  assert spec.action.dim == 2 and spec.joints.dim == 2 and spec.privileged_dim > 0


def test_collected_episodes_round_trip_through_builder_and_loader(built):
  path, episode_dir = built
  train = EpisodeDataset(path, "train")
  window = WindowConfig(num_frames=3, num_context=1, action_chunk=2, cameras=("front", "wrist"),
                        image_size=(16, 16))
  source = WindowSource(train, window, normalization="none")
  for index in range(0, len(source), 5):
    w = source[index]
    e, t0 = int(w["episode"]), int(w["start"])
    episode = collect_lib.read_npz(collect_lib.episode_path(episode_dir, e))
    obs, frames = episode["steps"]["observation"], t0 + np.arange(3) * 2
    np.testing.assert_array_equal(w["frames"][:, 0], obs["image_front"][frames])
    np.testing.assert_array_equal(w["frames"][:, 1], obs["image_wrist"][frames])
    np.testing.assert_array_equal(w["joints"], obs["joints"][frames])
    np.testing.assert_array_equal(w["proprio"], obs["proprio"][frames])
    np.testing.assert_array_equal(w["actions"].reshape(6, -1),
                                  episode["steps"]["action"][t0:t0 + 6])
    np.testing.assert_array_equal(w["action_mask"].reshape(6, -1)[:, 0],
                                  episode["steps"]["action_mask"][t0:t0 + 6])
  # The whole episode too, metadata included.
  episode = collect_lib.read_npz(collect_lib.episode_path(episode_dir, 2))
  read = train.episode(2)
  for key in ("image_front", "joints", "proprio", "privileged"):
    np.testing.assert_array_equal(read["steps"]["observation"][key],
                                  episode["steps"]["observation"][key])
  assert read["metadata"]["instruction"] == episode["metadata"]["instruction"]
  assert read["metadata"]["success"] == episode["metadata"]["success"]


def test_pipeline_reads_the_dataset(built, tmp_path):
  path, _ = built
  pipeline = Pipeline([DatasetRef(path)], WindowConfig(num_frames=2, action_chunk=2,
                                                       image_size=(8, 8)),
                      batch_size=4, statistics_dir=str(tmp_path), shard_index=0,
                      shard_count=1)
  batch = next(iter(pipeline))
  assert batch["frames"].shape == (4, 2, 1, 8, 8, 3)  # 16x16 frames area-downsampled
  assert np.isfinite(batch["actions"]).all()


def test_missing_episodes_are_reported(tmp_path):
  if "toy" not in dojo.names():
    dojo.register("toy", toy.Toy)
  builder = Builder(config=CONFIG, data_dir=str(tmp_path), episodes_dir=str(tmp_path / "none"))
  with pytest.raises(FileNotFoundError, match="holds 0 episodes; config 'toy_tiny' needs 5"):
    builder.download_and_prepare()
