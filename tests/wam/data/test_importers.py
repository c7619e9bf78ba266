"""Importers: tiny HDF5 / npz fixtures go in, EpisodeDataset reads the same values back."""

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from wam.data.importers import (KeyMapping, SourceError, VectorKey, read_report,
                                split_counts)
from wam.data.importers import hdf5, npz
from wam.data.importers.convert import to_frames
from wam.data.importers.sources import natural_key
from wam.data.reader import EpisodeDataset

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))


def _images(rng, n, h=8, w=8):
  return rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)


# ---------------------------------------------------------------------------- fixtures
def _write_aloha(path, seed, n=6, sim=False):
  rng = np.random.default_rng(seed)
  ep = {"cam_high": _images(rng, n), "cam_left_wrist": _images(rng, n),
        "qpos": rng.normal(size=(n, 14)).astype(np.float32),
        "qvel": rng.normal(size=(n, 14)).astype(np.float32),
        "action": rng.normal(size=(n, 14)).astype(np.float32)}
  with h5py.File(path, "w") as f:
    f.attrs["sim"] = sim
    for cam in ("cam_high", "cam_left_wrist"):
      f.create_dataset(f"observations/images/{cam}", data=ep[cam])
    f.create_dataset("observations/qpos", data=ep["qpos"])
    f.create_dataset("observations/qvel", data=ep["qvel"])
    f.create_dataset("action", data=ep["action"])
  return ep


@pytest.fixture()
def aloha_files(tmp_path):
  src = tmp_path / "aloha"
  src.mkdir()
  # episode_10 sorts after episode_2 (natural order), not before it.
  return str(src), {i: _write_aloha(str(src / f"episode_{i}.hdf5"), i) for i in (10, 2)}


def test_aloha_roundtrip_natural_order_and_splits(aloha_files, tmp_path):
  src, eps = aloha_files
  path = hdf5.import_hdf5(os.path.join(src, "episode_*.hdf5"), hdf5.aloha(instruction="fold"),
                          name="aloha_t", data_dir=str(tmp_path / "data"),
                          splits={"train": 0.5, "val": 0.5})
  train, val = EpisodeDataset(path, "train"), EpisodeDataset(path, "val")
  spec = train.spec
  assert (len(train), len(val)) == (1, 1)
  assert spec.cameras == ("cam_high", "cam_left_wrist") and spec.image_size == (8, 8)
  assert (spec.embodiment, spec.source, spec.fps) == ("aloha", "robot", 50.0)
  assert spec.joints.names == ("left_arm", "left_gripper", "right_arm", "right_gripper")
  assert spec.action.names == spec.joints.names
  assert spec.proprio.names[0] == "left_arm_vel" and spec.proprio.dim == 14
  for ds, i in ((train, 2), (val, 10)):
    got, want = ds.episode(0), eps[i]
    obs = got["steps"]["observation"]
    np.testing.assert_array_equal(obs["image_cam_high"], want["cam_high"])
    np.testing.assert_array_equal(obs["image_cam_left_wrist"], want["cam_left_wrist"])
    np.testing.assert_array_equal(obs["joints"], want["qpos"])
    np.testing.assert_array_equal(obs["proprio"], want["qvel"])
    np.testing.assert_array_equal(got["steps"]["action"], want["action"])
    assert got["steps"]["action_mask"].all()
    assert list(got["steps"]["language_instruction"]) == ["fold"] * 6
    assert ds.instructions == ["fold"] and ds.tasks == ["aloha_t"]
  report = read_report(path)
  assert report["episodes"] == {"train": 1, "val": 1} and report["skipped"] == []
  assert [os.path.basename(f) for f in report["files"]] == ["episode_2.hdf5", "episode_10.hdf5"]


def test_aloha_resize_camera_choice_and_sim_flag(tmp_path):
  src = tmp_path / "sim"
  src.mkdir()
  ep = _write_aloha(str(src / "episode_0.hdf5"), 0, n=3, sim=True)
  path = hdf5.import_hdf5(str(src / "*.hdf5"), hdf5.aloha(), name="aloha_small",
                          data_dir=str(tmp_path / "data"), cameras=["cam_left_wrist"],
                          image_size=(4, 16))  # down by 2 in height, up by 2 in width
  ds = EpisodeDataset(path)
  assert ds.spec.cameras == ("cam_left_wrist",) and ds.spec.source == "sim"
  frames = ds.episode(0)["steps"]["observation"]["image_cam_left_wrist"]
  x = ep["cam_left_wrist"].astype(np.float32)
  want = np.repeat((x[:, 0::2] + x[:, 1::2]) / 2, 2, axis=2)
  np.testing.assert_array_equal(frames, np.clip(np.rint(want), 0, 255).astype(np.uint8))


def test_to_frames_conversions_and_errors():
  u8 = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
  chw_float = u8.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
  np.testing.assert_array_equal(to_frames(chw_float, (4, 4), "k", "w"), u8)
  block = np.array([0, 2, 4, 7], np.uint8).reshape(1, 2, 2, 1).repeat(3, -1)
  np.testing.assert_array_equal(to_frames(block, (1, 1), "k", "w"), np.full((1, 1, 1, 3), 3))
  np.testing.assert_array_equal(to_frames(u8, (8, 8), "k", "w"),
                                u8.repeat(2, axis=1).repeat(2, axis=2))
  with pytest.raises(SourceError, match=r"k is 4x4.*3x3.*not an integer-factor"):
    to_frames(u8, (3, 3), "k", "w")
  with pytest.raises(SourceError, match=r"float images must be in \[0, 1\]"):
    to_frames(u8.astype(np.float32), (4, 4), "k", "w")
  with pytest.raises(SourceError, match="encoded"):
    to_frames(np.zeros((2, 100), np.uint8), (4, 4), "k", "w")


def test_robomimic_groups_channels_first_float_and_resize(tmp_path):
  demos = {}
  with h5py.File(tmp_path / "demo.hdf5", "w") as f:
    for i, n in ((0, 4), (1, 5), (10, 7), (2, 6)):
      rng = np.random.default_rng(i)
      d = {"agentview": _images(rng, n), "eye8": _images(rng, n),
           "joint_pos": rng.normal(size=(n, 7)), "gripper": rng.normal(size=(n, 2)),
           "eef_pos": rng.normal(size=(n, 3)), "actions": rng.normal(size=(n, 7)),
           "rewards": (np.arange(n) == n - 1).astype(np.float64),
           "dones": (np.arange(n) == n - 1).astype(np.int64)}
      g = f.create_group(f"data/demo_{i}")
      # Channels-first floats in [0, 1], and a wrist camera at twice the size.
      g.create_dataset("obs/agentview_image",
                       data=d["agentview"].transpose(0, 3, 1, 2).astype(np.float32) / 255)
      g.create_dataset("obs/robot0_eye_in_hand_image",
                       data=d["eye8"].repeat(2, axis=1).repeat(2, axis=2))
      for key, name in (("obs/robot0_joint_pos", "joint_pos"), ("obs/robot0_gripper_qpos",
                        "gripper"), ("obs/robot0_eef_pos", "eef_pos"), ("actions", "actions"),
                        ("rewards", "rewards"), ("dones", "dones")):
        g.create_dataset(key, data=d[name])
      demos[i] = d
    f.create_group("mask")  # robomimic's filter keys: not an episode
  path = hdf5.import_hdf5(str(tmp_path / "demo.hdf5"), hdf5.robomimic(instruction="lift"),
                          name="robomimic_t", data_dir=str(tmp_path / "data"),
                          splits={"train": 0.75, "val": 0.25})
  train, val = EpisodeDataset(path, "train"), EpisodeDataset(path, "val")
  assert list(train.episode_lengths) == [4, 5, 6] and list(val.episode_lengths) == [7]
  spec = train.spec
  assert spec.cameras == ("agentview", "robot0_eye_in_hand") and spec.image_size == (8, 8)
  assert spec.joints.to_json() == [["arm_joints", 7], ["gripper_qpos", 2]]
  assert spec.action.names == ("eef_delta_pos", "eef_delta_rot", "gripper")
  for ds, e, i in ((train, 2, 2), (val, 0, 10)):
    got, want = ds.episode(e)["steps"], demos[i]
    obs = got["observation"]
    np.testing.assert_array_equal(obs["image_agentview"], want["agentview"])
    np.testing.assert_array_equal(obs["image_robot0_eye_in_hand"], want["eye8"])
    np.testing.assert_array_equal(
        obs["joints"], np.concatenate([want["joint_pos"], want["gripper"]], -1)
        .astype(np.float32))
    np.testing.assert_array_equal(obs["proprio"], want["eef_pos"].astype(np.float32))
    np.testing.assert_array_equal(got["action"], want["actions"].astype(np.float32))
    np.testing.assert_array_equal(got["reward"], want["rewards"])
    np.testing.assert_array_equal(got["is_terminal"], want["dones"].astype(bool))
  assert train.instructions == ["lift"] * 3 and train.successes.all()


def test_egocentric_hand_next_step_actions(tmp_path):
  eps = {}
  with h5py.File(tmp_path / "ego.hdf5", "w") as f:
    for i in range(2):
      rng = np.random.default_rng(i)
      ep = {"rgb": _images(rng, 5), "kp": rng.normal(size=(5, 21, 3)).astype(np.float32),
            "wrist": rng.normal(size=(5, 9)).astype(np.float32)}
      g = f.create_group(f"seq_{i}")
      g.create_dataset("rgb", data=ep["rgb"])
      g.create_dataset("hand/keypoints", data=ep["kp"])
      g.create_dataset("hand/wrist_pose", data=ep["wrist"])
      if i == 0:
        g.attrs["text"] = "wave"
      eps[i] = ep
  path = hdf5.import_hdf5(str(tmp_path / "ego.hdf5"), hdf5.egocentric_hand(instruction="none"),
                          name="ego_t", data_dir=str(tmp_path / "data"))
  ds = EpisodeDataset(path)
  assert ds.spec.source == "human" and ds.spec.joints.dim == 0 and ds.spec.hand_keypoints
  assert ds.spec.action.to_json() == [["wrist_pose", 9], ["hand_keypoints", 63]]
  assert ds.instructions == ["wave", "none"]
  for i, want in eps.items():
    got = ds.episode(i)["steps"]
    np.testing.assert_array_equal(got["observation"]["image_egocentric"], want["rgb"])
    np.testing.assert_array_equal(got["observation"]["hand_keypoints"], want["kp"])
    next_hand = np.concatenate([want["wrist"][1:], want["kp"][1:].reshape(4, 63)], -1)
    np.testing.assert_array_equal(got["action"][:4], next_hand)
    np.testing.assert_array_equal(got["action"][4], 0.0)
    assert list(got["action_mask"]) == [True] * 4 + [False]


def test_dojo_npz_roundtrip(tmp_path):
  from dojo import collect  # pylint: disable=import-outside-toplevel
  eps = []
  for i in range(3):
    rng = np.random.default_rng(i)
    n = 5
    action = rng.normal(size=(n, 4)).astype(np.float32)
    action[-1] = 0.0
    ep = {"steps": {"observation": {"image_front": _images(rng, n),
                                    "joints": rng.normal(size=(n, 4)).astype(np.float32),
                                    "proprio": rng.normal(size=(n, 3)).astype(np.float32),
                                    "privileged": rng.normal(size=(n, 2)).astype(np.float32)},
                    "action": action, "reward": rng.normal(size=n).astype(np.float32),
                    "discount": np.ones(n, np.float32), "is_first": np.arange(n) == 0,
                    "is_last": np.arange(n) == n - 1, "is_terminal": np.arange(n) == n - 1,
                    "language_instruction": np.array([f"pick {i}"] * n)},
          "metadata": {"embodiment": "dojo_arm", "source": "sim", "task": "pick_place",
                       "instruction": f"pick {i}", "fps": 25.0, "success": i != 1,
                       "policy": "expert", "noise": 0.0}}
    collect.write_npz(ep, str(tmp_path / "episodes" / f"episode_{i:05d}.npz"))
    eps.append(ep)
  path = npz.import_npz(str(tmp_path / "episodes" / "episode_*.npz"), npz.dojo(),
                        name="dojo_t", data_dir=str(tmp_path / "data"))
  ds = EpisodeDataset(path)
  assert (ds.spec.embodiment, ds.spec.source, ds.spec.fps) == ("dojo_arm", "sim", 25.0)
  assert ds.spec.cameras == ("front",) and ds.spec.privileged_dim == 2
  assert ds.tasks == ["pick_place"] * 3 and list(ds.successes) == [True, False, True]
  assert ds.instructions == ["pick 0", "pick 1", "pick 2"]
  for i, want in enumerate(eps):
    got = ds.episode(i)["steps"]
    for key in ("image_front", "joints", "proprio", "privileged"):
      np.testing.assert_array_equal(got["observation"][key], want["steps"]["observation"][key])
    for key in ("action", "reward", "is_terminal"):
      np.testing.assert_array_equal(got[key], want["steps"][key])
    assert list(got["action_mask"]) == [True] * 4 + [False]  # the padding action


def test_generic_npz_mapping_with_episode_groups(tmp_path):
  rng = np.random.default_rng(0)
  arrays = {}
  for i in (0, 2, 10):
    arrays[f"demo_{i}/cam"] = _images(rng, 3)
    arrays[f"demo_{i}/qpos"] = np.full((3, 2), i, np.float32)
    arrays[f"demo_{i}/text"] = np.array(f"task {i}")
  np.savez(tmp_path / "all.npz", **arrays)
  mapping = KeyMapping(images={"top": "cam"}, joints=(VectorKey("qpos", name="arm"),),
                       action=(VectorKey("qpos", name="arm", next_step=True),),
                       instruction="text")
  path = npz.import_npz(str(tmp_path / "all.npz"), mapping, name="generic_t",
                        data_dir=str(tmp_path / "data"), episode_groups="demo_*",
                        embodiment="toy", max_episodes=2)
  ds = EpisodeDataset(path)
  assert ds.instructions == ["task 0", "task 2"] and ds.spec.embodiment == "toy"
  np.testing.assert_array_equal(ds.episode(1)["steps"]["observation"]["joints"], 2.0)
  np.testing.assert_array_equal(ds.episode(1)["steps"]["observation"]["image_top"],
                                arrays["demo_2/cam"])
  assert KeyMapping.from_json(json.loads(json.dumps(mapping.to_json()))) == mapping


def test_missing_key_names_file_group_and_close_matches(aloha_files, tmp_path):
  src, _ = aloha_files
  mapping = KeyMapping(images={"high": "observations/images/cam_high"},
                       joints=("observations/qpoz",))
  with pytest.raises(SourceError) as e:
    hdf5.import_hdf5(os.path.join(src, "*.hdf5"), mapping, name="bad",
                     data_dir=str(tmp_path / "data"))
  message = str(e.value)
  assert "episode_2.hdf5" in message and "episode group '/'" in message
  assert "'observations/qpoz'" in message and "Did you mean ['observations/qpos'" in message
  assert not os.path.exists(tmp_path / "data" / "bad")  # nothing written


def test_corrupt_file_raises_or_is_skipped(aloha_files, tmp_path):
  src, eps = aloha_files
  with open(os.path.join(src, "episode_5.hdf5"), "wb") as f:
    f.write(b"\x00garbage, not HDF5" * 10)
  _write_aloha(os.path.join(src, "episode_7.hdf5"), 7)
  with h5py.File(os.path.join(src, "episode_7.hdf5"), "a") as f:
    f["observations/qpos"][1, 0] = np.nan  # caught only when the values are read
  files = os.path.join(src, "episode_*.hdf5")
  with pytest.raises(SourceError, match=r"episode_5\.hdf5: cannot open as HDF5"):
    hdf5.import_hdf5(files, hdf5.aloha(), name="strict", data_dir=str(tmp_path / "data"))
  path = hdf5.import_hdf5(files, hdf5.aloha(), name="lenient", data_dir=str(tmp_path / "data"),
                          on_error="skip")
  ds = EpisodeDataset(path)
  assert len(ds) == 2
  np.testing.assert_array_equal(ds.episode(1)["steps"]["observation"]["joints"],
                                eps[10]["qpos"])
  report = read_report(path)
  assert [(os.path.basename(s["file"]), s["stage"]) for s in report["skipped"]] == [
      ("episode_5.hdf5", "open"), ("episode_7.hdf5", "write")]
  assert report["episodes"] == {"train": 2}
  with open(os.path.join(path, "dataset_info.json")) as f:
    assert "1 files or episodes skipped while scanning" in json.load(f)["description"]
  with open(tmp_path / "garbage.npz", "wb") as f:
    f.write(b"PK\x03\x04 truncated")
  with pytest.raises(SourceError, match=r"garbage\.npz: cannot open as npz"):
    npz.import_npz(str(tmp_path / "garbage.npz"), npz.dojo(), name="x",
                   data_dir=str(tmp_path / "data"))


def test_split_counts_and_natural_key():
  assert split_counts(10, {"train": 0.9, "val": 0.1}) == {"train": 9, "val": 1}
  assert split_counts(3, {"train": 0.5, "val": 0.5}) == {"train": 2, "val": 1}
  assert split_counts(2, {"train": 0.99, "val": 0.01}) == {"train": 1, "val": 1}
  with pytest.raises(SourceError, match="cannot fill"):
    split_counts(1, {"train": 0.5, "val": 0.5})
  names = ["demo_10", "demo_2", "demo_1", "demo_0"]
  assert sorted(names, key=natural_key) == ["demo_0", "demo_1", "demo_2", "demo_10"]


def test_cli(aloha_files, tmp_path):
  src, eps = aloha_files
  subprocess.run([sys.executable, "-m", "wam.data.importers.hdf5",
                  f"--files={os.path.join(src, 'episode_*.hdf5')}", "--preset=aloha",
                  "--name=cli_aloha", f"--data_dir={tmp_path / 'data'}", "--image_size=4,4",
                  "--instruction=fold it", "--splits=train=0.5,val=0.5"],
                 check=True, cwd=ROOT, capture_output=True)
  ds = EpisodeDataset(str(tmp_path / "data" / "cli_aloha" / "1.0.0"), "val")
  assert ds.instructions == ["fold it"] and ds.spec.image_size == (4, 4)
  np.testing.assert_array_equal(ds.episode(0)["steps"]["action"], eps[10]["action"])
