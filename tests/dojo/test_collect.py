"""Batched collection into the episode schema, .npz round trip and resume."""

import numpy as np
import pytest

from dojo import collect
from tests.dojo.toy import Toy
from wam import visualize


@pytest.fixture(scope="module")
def episodes():
  env = Toy(cameras=("front", "wrist"), image_height=16, image_width=16)
  eps = list(collect.collect(env, task_name="toy", num_episodes=3, num_steps=6,
                             batch_size=2, policy="noisy_expert", noise=0.2))
  resumed = list(collect.collect(env, task_name="toy", num_episodes=3, num_steps=6,
                                 batch_size=2, policy="noisy_expert", noise=0.2,
                                 skip_batches=1))
  return eps, resumed


def test_episode_schema(episodes):
  eps, _ = episodes
  assert len(eps) == 3
  steps = eps[0]["steps"]
  obs = steps["observation"]
  assert obs["image_front"].shape == (7, 16, 16, 3) and obs["image_front"].dtype == np.uint8
  assert obs["image_wrist"].shape == (7, 16, 16, 3)
  assert obs["joints"].shape == (7, 2)
  assert steps["action"].shape == (7, 2)
  assert steps["is_first"].tolist() == [True] + [False] * 6
  assert steps["is_last"].tolist() == [False] * 6 + [True]
  assert not steps["is_terminal"].any()  # a time limit is a truncation
  assert steps["language_instruction"][0] in ("touch the green point", "touch the blue point")
  meta = eps[0]["metadata"]
  assert meta["source"] == "sim" and meta["task"] == "toy" and meta["fps"] == pytest.approx(25)
  assert set(meta) >= {"embodiment", "source", "task", "instruction", "fps", "success"}
  # Noisy actions differ between episodes.
  assert not np.allclose(eps[0]["steps"]["action"], eps[1]["steps"]["action"])


def test_resume_reproduces_the_same_episodes(episodes):
  eps, resumed = episodes
  assert len(resumed) == 1
  np.testing.assert_array_equal(resumed[0]["steps"]["action"], eps[2]["steps"]["action"])


def test_npz_round_trip_and_corruption(episodes, tmp_path):
  eps, _ = episodes
  path = collect.write_npz(eps[0], str(tmp_path / "episode_00000.npz"))
  back = collect.read_npz(path)
  assert back["metadata"] == eps[0]["metadata"]
  assert collect.read_metadata(path) == eps[0]["metadata"]
  np.testing.assert_array_equal(back["steps"]["observation"]["image_front"],
                                eps[0]["steps"]["observation"]["image_front"])
  with open(path, "rb") as f:
    blob = f.read()
  bad = tmp_path / "bad.npz"
  bad.write_bytes(blob[: len(blob) // 2])
  with pytest.raises(ValueError, match="bad.npz.*unreadable or truncated"):
    collect.read_npz(str(bad))
  with pytest.raises(ValueError, match="bad.npz.*unreadable or truncated"):
    collect.read_metadata(str(bad))


def test_unknown_policy():
  with pytest.raises(ValueError, match="Unknown collection policy 'greedy'"):
    collect.make_policy(Toy(cameras=()), "greedy", 0.0)


def test_video_writers(episodes, tmp_path):
  eps, _ = episodes
  frames = visualize.tile([eps[0]["steps"]["observation"]["image_front"],
                       eps[0]["steps"]["observation"]["image_wrist"]])
  assert frames.shape == (7, 16, 34, 3)
  assert (tmp_path / "a.gif").exists() is False
  visualize.write_video(str(tmp_path / "a.gif"), frames)
  visualize.write_video(str(tmp_path / "a.mp4"), frames)
  assert (tmp_path / "a.gif").stat().st_size > 0 and (tmp_path / "a.mp4").stat().st_size > 0
  with pytest.raises(ValueError, match="unknown video extension"):
    visualize.write_video(str(tmp_path / "a.avi"), frames)
  assert visualize.grid(frames[:5], columns=3).shape == (2 * 18 - 2, 3 * 36 - 2, 3)
