"""Synthetic egocentric video: the generator, its tasks, the TFDS builder and the loader."""

import numpy as np
import pytest

from egoscale import actions, hand, scenes, synthetic
from egoscale.datasets.egocentric_human import build
from egoscale.datasets.egocentric_human import egocentric_human_dataset_builder as builder_lib
from wam.data.pipeline import DatasetRef, Pipeline
from wam.data.reader import EpisodeDataset
from wam.data.window import WindowConfig

# One compiled generator (12 steps, 16x16, batches of 4) serves every test here.
CONFIG = synthetic.GeneratorConfig(image_size=(16, 16), episode_length=12, batch_size=4)
KNOBS = dict(image_size=(16, 16), episode_length=12, batch_size=4)
EPISODE_HOURS = 12 / 10 / 3600  # one 12-step episode at 10 fps


@pytest.fixture(scope="module")
def batches():
  """Episodes 0-7 (every task at least once) as two generated batches."""
  return [synthetic.generate(CONFIG, range(0, 4)), synthetic.generate(CONFIG, range(4, 8))]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="module")
def labeled(data_dir):
  return build(data_dir, hours=8 * EPISODE_HOURS, val_fraction=0.25, **KNOBS)


@pytest.fixture(scope="module")
def unlabeled(data_dir):
  return build(data_dir, hours=4 * EPISODE_HOURS, val_fraction=0.0, actions="none", **KNOBS)


def _episode(batches, e):
  out = batches[e // 4]
  return {k: v[e % 4] for k, v in out.items() if k in (
      "frames", "segmentation", "camera_pose", "wrist_pose", "hand_keypoints",
      "articulation", "action", "action_mask")}


def test_hours_set_the_episode_count():
  assert synthetic.num_episodes(1.0, 10.0, 60) == 600
  assert synthetic.num_episodes(0.5, 30.0, 90) == 600
  assert synthetic.num_episodes(1e-6, 10.0, 64) == 1
  with pytest.raises(ValueError, match="hours must be positive"):
    synthetic.num_episodes(0.0, 10.0, 64)
  config = builder_lib.EgocentricHumanConfig(name="x", hours=2.0, fps=10.0, episode_length=64)
  assert config.num_episodes == 1125


def test_every_task_does_what_its_instruction_says(batches):
  tasks = batches[0]["tasks"] + batches[1]["tasks"]
  instructions = batches[0]["instructions"] + batches[1]["instructions"]
  assert tasks[:6] == list(scenes.TASKS)
  assert instructions[3].startswith("push the ") and instructions[4].startswith("pour the ")
  traj = [batches[e // 4]["trajectory"] for e in range(8)]
  pos = lambda e: np.asarray(traj[e].target_pos[e % 4])
  moved = lambda e: np.linalg.norm(pos(e)[-1, :2] - pos(e)[0, :2])
  assert moved(0) < 1e-6                                   # reach leaves it
  assert pos(1)[-1, 2] - pos(1)[0, 2] > 0.05                # grasp lifts it
  assert moved(2) > 0.05 and abs(pos(2)[-1, 2] - pos(2)[0, 2]) < 0.01  # move: put down
  assert moved(3) > 0.04 and abs(pos(3)[-1, 2] - pos(3)[0, 2]) < 1e-6  # push: slides
  upright = np.asarray(traj[4].target_rot[0])[:, 2, 2]      # pour tilts the cup
  assert upright[0] > 0.99 and upright.min() < 0.5
  assert np.asarray(traj[5].fold[1])[-1] > 2.5              # fold turns the far half over
  # The direction word matches the motion (+y is the camera's left).
  scene = batches[0]["scene"]
  for e in (2, 3):
    word = scenes.DIRECTION_NAMES[int(scene.direction[e])]
    assert word in instructions[e]
    shift = pos(e)[-1, :2] - pos(e)[0, :2]
    assert np.dot(shift, scenes.DIRECTIONS[word]) > 0.8 * np.linalg.norm(shift)


def test_streams_are_consistent(batches):
  for e in range(8):
    ep = _episode(batches, e)
    hand.check_pose(ep["articulation"], where=f"episode {e}")
    assert ep["frames"].shape == (12, 16, 16, 3) and ep["frames"].dtype == np.uint8
    assert ep["hand_keypoints"].shape == (12, 21, 3)
    # Keypoints are in the camera frame: the camera looks along -z, the hand is ahead.
    assert (ep["hand_keypoints"][..., 2] < -0.1).all()
    # The camera-frame wrist pose is the first keypoint.
    np.testing.assert_allclose(ep["wrist_pose"][:, :3], ep["hand_keypoints"][:, 0], atol=1e-5)
  # Actions come from world poses: applying them to the first world wrist pose gives the
  # world trajectory back.
  world_pose = np.concatenate([b["trajectory"].wrist_pose for b in batches])
  world_kp = np.concatenate([b["trajectory"].keypoints for b in batches])
  action = np.concatenate([b["action"] for b in batches])
  rec_pose, rec_kp = actions.reconstruct(world_pose[:, 0], action, world_kp[:, 0])
  np.testing.assert_allclose(rec_pose, world_pose, atol=1e-4)
  np.testing.assert_allclose(rec_kp, world_kp, atol=1e-4)
  # Camera pose + camera-frame wrist pose = world wrist pose.
  camera = np.concatenate([b["camera_pose"] for b in batches])
  wrist = np.concatenate([b["wrist_pose"] for b in batches])
  c_pos, c_rot = hand.split_pose(camera)
  w_pos, w_rot = hand.split_pose(wrist)
  np.testing.assert_allclose(np.einsum("bnij,bnj->bni", c_rot, w_pos) + c_pos,
                             world_pose[..., :3], atol=1e-5)
  np.testing.assert_allclose(hand.matrix_to_rot6d(c_rot @ w_rot), world_pose[..., 3:],
                             atol=1e-5)


def test_keypoints_land_on_the_hand_in_the_frames(batches):
  """The palm's projected centre falls on a pixel the renderer drew as the hand."""
  hand_geoms = [i for i, n in enumerate(scenes.GEOM_NAMES) if n == "palm" or
                n.startswith("bone_")]
  hits, total = 0, 0
  for e in range(8):
    ep = _episode(batches, e)
    centre = ep["hand_keypoints"][:, list(hand.PALM)].mean(axis=1)
    rows, cols = np.floor(np.asarray(synthetic.project(centre, 16, 16))).astype(int).T
    inside = (rows >= 0) & (rows < 16) & (cols >= 0) & (cols < 16)
    t = np.flatnonzero(inside)
    hits += np.isin(ep["segmentation"][t, rows[t], cols[t]], hand_geoms).sum()
    total += len(t)
  assert total >= 80 and hits / total > 0.8, (hits, total)


def test_generation_is_deterministic_per_seed_and_episode(batches):
  again = synthetic.generate(CONFIG, [2, 0, 3, 1])   # other order, same compiled size
  for i, e in enumerate([2, 0, 3, 1]):
    np.testing.assert_array_equal(again["frames"][i], batches[0]["frames"][e])
    np.testing.assert_allclose(again["hand_keypoints"][i], batches[0]["hand_keypoints"][e],
                               atol=1e-6)
  assert again["instructions"][0] == batches[0]["instructions"][2]
  other_seed = synthetic.generate(
      synthetic.GeneratorConfig(**{**KNOBS, "seed": 1}), range(4))
  assert not np.array_equal(other_seed["frames"], batches[0]["frames"])


def test_dataset_reads_back_through_reader_and_pipeline(labeled, batches, tmp_path):
  train, val = EpisodeDataset(labeled, "train"), EpisodeDataset(labeled, "val")
  assert (len(train), len(val)) == (6, 2)
  spec = train.spec
  assert spec.source == "human" and spec.embodiment == "human_hand"
  assert spec.cameras == ("ego",) and spec.joints.dim == 0 and spec.hand_keypoints
  assert spec.proprio.names == ("camera_pose", "wrist_pose")
  assert spec.action.names == ("wrist_motion", "hand_keypoints")
  assert train.tasks == list(scenes.TASKS)
  for split, e in ((train, 5), (val, 1)):
    read = split.episode(e)
    ep = _episode(batches, e if split is train else 6 + e)
    obs = read["steps"]["observation"]
    np.testing.assert_array_equal(obs["image_ego"], ep["frames"])
    np.testing.assert_array_equal(obs["hand_keypoints"], ep["hand_keypoints"])
    np.testing.assert_array_equal(obs["proprio"][:, :9], ep["camera_pose"])
    np.testing.assert_array_equal(obs["proprio"][:, 9:], ep["wrist_pose"])
    np.testing.assert_array_equal(read["steps"]["action_mask"], [True] * 11 + [False])
    np.testing.assert_array_equal(read["steps"]["action"][:11], ep["action"][:11])
    assert read["metadata"]["source"] == "human"
  window = WindowConfig(num_frames=2, action_chunk=2, cameras=("ego",), image_size=(16, 16),
                        hand_keypoints=True)
  pipeline = Pipeline([DatasetRef(labeled)], window, batch_size=4,
                      statistics_dir=str(tmp_path), shard_index=0, shard_count=1)
  batch = next(iter(pipeline))
  assert batch["frames"].shape == (4, 2, 1, 16, 16, 3)
  assert batch["actions"].shape == (4, 2, 2, 72) and batch["joints"].shape[-1] == 0
  assert batch["hand_keypoints"].shape == (4, 2, 21, 3) and batch["hand_keypoints_mask"].all()


def test_unlabeled_video_has_no_action_layout(unlabeled, labeled, tmp_path):
  ds = EpisodeDataset(unlabeled, "train")
  assert len(ds) == 4 and ds.spec.action.dim == 0
  assert "action" not in ds.episode(0)["steps"]
  window = WindowConfig(num_frames=2, action_chunk=2, cameras=("ego",), image_size=(16, 16))
  pipeline = Pipeline([DatasetRef(labeled, name="human"),
                       DatasetRef(unlabeled, name="video")], window, batch_size=8,
                      normalization="none", shard_index=0, shard_count=1)
  batch = next(iter(pipeline))
  video = batch["dataset"] == 1
  assert video.any() and (~video).any()
  assert not batch["action_mask"][video].any() and batch["action_mask"][~video].any()


def test_build_reuses_a_complete_dataset(labeled, data_dir, monkeypatch):
  def fail(*args, **kwargs):
    raise AssertionError("a complete dataset was generated again")

  monkeypatch.setattr(synthetic, "episodes", fail)
  assert build(data_dir, hours=8 * EPISODE_HOURS, val_fraction=0.25, **KNOBS) == labeled
  with pytest.raises(ValueError, match="Unknown tasks"):
    build(data_dir, hours=1.0, tasks=("juggle",))


def test_bad_streams_are_errors_naming_the_episode(batches):
  ep = _episode(batches, 0)
  common = dict(instruction="x", task="reach", fps=10.0, where="egocentric_human episode 7")
  ok = synthetic.make_episode(ep["frames"], ep["camera_pose"], ep["wrist_pose"],
                              ep["hand_keypoints"], action=ep["action"],
                              articulation=ep["articulation"], **common)
  assert ok["steps"]["observation"]["proprio"].shape == (12, 18)
  with pytest.raises(synthetic.SyntheticDataError,
                     match=r"episode 7: video and pose streams have different lengths "
                           r"\{'frames': 12, 'hand_keypoints': 12, 'camera_pose': 11"):
    synthetic.make_episode(ep["frames"], ep["camera_pose"][:11], ep["wrist_pose"],
                           ep["hand_keypoints"], **common)
  with pytest.raises(hand.HandPoseError, match=r"episode 7 hand_keypoints: hand keypoints "
                                               r"must have shape \[\.\.\., 21, 3\]"):
    synthetic.make_episode(ep["frames"], ep["camera_pose"], ep["wrist_pose"],
                           ep["hand_keypoints"][:, :17], **common)
  bent = ep["articulation"].copy()
  bent[4, hand.JOINT_NAMES.index("middle_dip")] = -1.0
  with pytest.raises(hand.HandPoseError,
                     match=r"episode 7: joint middle_dip = -1\.000 rad at index \(4,\)"):
    synthetic.make_episode(ep["frames"], ep["camera_pose"], ep["wrist_pose"],
                           ep["hand_keypoints"], articulation=bent, **common)
  with pytest.raises(synthetic.SyntheticDataError, match="episode 7: frames must be uint8"):
    synthetic.make_episode(ep["frames"].astype(np.float32), ep["camera_pose"],
                           ep["wrist_pose"], ep["hand_keypoints"], **common)
