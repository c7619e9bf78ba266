"""The EgoDex importer on a tiny fixture written by the test (HDF5 transforms + mp4)."""

import json
import os

import h5py
import imageio.v2 as imageio
import numpy as np
import pytest

from egoscale import hand
from egoscale.importers import egodex
from egoscale.importers.egodex_files import EGODEX_JOINTS, EgoDexError
from wam.data.importers.two_pass import REPORT_FILE
from wam.data.reader import EpisodeDataset

# imageio runs ffmpeg in a subprocess (fork + exec), which JAX warns about.
pytestmark = pytest.mark.filterwarnings("ignore:os.fork")

N = 12          # frames per episode
SIZE = 32       # video side


def world_keypoints(seed: int) -> np.ndarray:
  """A right hand in a z-up world (m), waving a little and flexing its fingers: [N,21,3]."""
  rng = np.random.default_rng(seed)
  t = np.linspace(0.0, 1.0, N)
  yaw = 0.3 * t + rng.uniform(-0.5, 0.5)
  rot = np.stack([hand.euler_to_matrix(y, 0.2, -0.1) for y in yaw])
  pos = np.stack([0.3 + 0.05 * t, 0.1 * np.sin(3 * t), 0.8 + 0.02 * t], -1)
  articulation = np.zeros((N, 20), np.float32)
  articulation[:, 4::4] = 0.8 * t[:, None]            # finger MCP flexion
  articulation[:, 6::4] = 0.5 * t[:, None]            # PIP
  return np.asarray(hand.keypoints(hand.make_pose(pos, rot), articulation), np.float64)


def camera_to_world() -> np.ndarray:
  """Camera poses [N,4,4] in ARKit's y-up world, looking down at the hand."""
  cam = np.tile(np.eye(4), (N, 1, 1))
  tilt = -1.0  # pitched down (about x)
  c, s = np.cos(tilt), np.sin(tilt)
  cam[:, :3, :3] = [[1, 0, 0], [0, c, -s], [0, s, c]]
  cam[:, :3, 3] = np.stack([0.3 + 0.01 * np.arange(N), np.full(N, 1.4),
                            np.full(N, 0.1)], -1)
  return cam


def write_episode(directory, index, seed, *, video_frames=N, transform_shape=None,
                  drop=None, low_confidence=None):
  """Writes <directory>/<index>.hdf5 + .mp4; returns the expected camera-frame keypoints."""
  os.makedirs(directory, exist_ok=True)
  kp_zup = world_keypoints(seed)
  kp_yup = kp_zup @ egodex.Y_UP_TO_Z_UP  # z-up -> ARKit y-up (the inverse rotation)
  cam = camera_to_world()
  path = os.path.join(directory, f"{index}.hdf5")
  with h5py.File(path, "w") as f:
    f.attrs["llm_description"] = f"pick up the cup {index}"
    f["camera/intrinsic"] = np.array([[20.0, 0, 16], [0, 20.0, 16], [0, 0, 1]], np.float32)
    f["transforms/camera"] = cam.astype(np.float32)
    for k, name in enumerate(EGODEX_JOINTS):
      if drop == "right" + name:
        continue
      m = np.tile(np.eye(4), (N, 1, 1))
      m[:, :3, 3] = kp_yup[:, k]
      if transform_shape is not None and k == 3:
        m = m[:, :3]
      f[f"transforms/right{name}"] = m.astype(np.float32)
      conf = np.ones(N, np.float32)
      if low_confidence is not None:
        conf[low_confidence] = 0.1
      f[f"confidences/right{name}"] = conf
    f["transforms/leftHand"] = np.tile(np.eye(4), (N, 1, 1)).astype(np.float32)
  frames = np.zeros((video_frames, SIZE, SIZE, 3), np.uint8)
  for t in range(video_frames):
    frames[t, :, : 2 * t + 2] = 200  # a bar that grows: frames tell steps apart
  imageio.mimwrite(os.path.join(directory, f"{index}.mp4"), frames, fps=30,
                   codec="libx264", quality=9, macro_block_size=16)
  rot, pos = cam[:, :3, :3], cam[:, :3, 3]
  return np.einsum("nkj,nji->nki", kp_yup - pos[:, None], rot), frames


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
  root = tmp_path_factory.mktemp("egodex")
  expected = {}
  expected[0] = write_episode(root / "pick_cup", 0, seed=0)
  expected[1] = write_episode(root / "pick_cup", 1, seed=1, low_confidence=5)
  data_dir = tmp_path_factory.mktemp("data")
  options = egodex.EgoDexOptions(image_size=(16, 16), actions="both")
  path = egodex.import_egodex(str(root), name="egodex_tiny", data_dir=str(data_dir),
                              options=options)
  return EpisodeDataset(path), expected, root


def test_import_reads_back_camera_frame_keypoints(imported):
  dataset, expected, _ = imported
  assert dataset.spec.cameras == ("ego",) and dataset.spec.source == "human"
  assert dataset.spec.embodiment == "human_hand" and dataset.spec.hand_keypoints
  assert dataset.spec.proprio.names == ("camera_pose", "wrist_pose")
  assert dataset.spec.action.names == ("wrist_motion", "hand_keypoints", "wrist_delta",
                                       "hand_joint_targets")
  assert list(dataset.episode_lengths) == [N, N]
  assert dataset.instructions == ["pick up the cup 0", "pick up the cup 1"]
  for e in range(2):
    ep = dataset.episode(e)
    steps = ep["steps"]
    obs = steps["observation"]
    kp_cam, frames = expected[e]
    mask = obs["hand_keypoints_mask"]
    np.testing.assert_allclose(obs["hand_keypoints"][mask], kp_cam[mask], atol=2e-5)
    # Camera looks along -z: the hand in front of it has negative z.
    assert (obs["hand_keypoints"][mask][..., 2] < 0).all()
    # Wrist pose (camera frame) = keypoint 0 and a rotation.
    np.testing.assert_allclose(obs["proprio"][mask, 9:12], kp_cam[mask, 0], atol=2e-5)
    # Video: 32x32 -> 16x16 by 2x2 area; the bar's width grows one stored pixel per step.
    images = obs["image_ego"]
    assert images.shape == (N, 16, 16, 3) and images.dtype == np.uint8
    lit = (images[:, 8, :, 0] > 100).sum(-1)
    np.testing.assert_array_equal(lit, np.arange(1, N + 1))
  ep1 = dataset.episode(1)["steps"]
  assert list(np.flatnonzero(~ep1["observation"]["hand_keypoints_mask"])) == [5]
  assert list(np.flatnonzero(~ep1["action_mask"])) == [4, 5, N - 1]


def test_actions(imported):
  dataset, expected, _ = imported
  steps = dataset.episode(0)["steps"]
  action, mask = steps["action"], steps["action_mask"]
  assert action.shape == (N, 9 + 63 + 4 + 20) and list(np.flatnonzero(~mask)) == [N - 1]
  kp = world_keypoints(0)
  # hand_keypoints slot: the next step's keypoints in its wrist frame (distances to the
  # wrist do not depend on the frame).
  local = action[:-1, 9:72].reshape(-1, 21, 3)
  np.testing.assert_allclose(np.linalg.norm(local, axis=-1),
                             np.linalg.norm(kp[1:] - kp[1:, :1], axis=-1), atol=1e-5)
  # wrist_motion translation: the wrist's step length.
  np.testing.assert_allclose(np.linalg.norm(action[:-1, :3], axis=-1),
                             np.linalg.norm(np.diff(kp[:, 0], axis=0), axis=-1), atol=1e-5)
  # Retargeted slots: dex_lift's [-1, 1] actions; fingers curl as the human's do.
  retargeted = action[:-1, 72:]
  assert np.abs(retargeted).max() <= 1.0
  index_mcp = retargeted[:, 4 + 1]
  assert index_mcp[-1] > index_mcp[0] + 0.2


def test_schema_matches_synthetic_human_data():
  from egoscale import scenes, synthetic  # pylint: disable=import-outside-toplevel
  spec = egodex.EgoDexOptions(actions="human").spec((16, 16))
  synth = synthetic.episode_spec(synthetic.GeneratorConfig(image_size=(16, 16)))
  assert (spec.cameras, spec.embodiment, spec.proprio, spec.action) == (
      synth.cameras, synth.embodiment, synth.proprio, synth.action)
  assert egodex.CAMERA == scenes.CAMERA


def test_bad_episodes_name_their_file(tmp_path):
  data_dir = str(tmp_path / "data")
  options = egodex.EgoDexOptions(image_size=(16, 16), actions="none")

  def run(root, **kw):
    return egodex.import_egodex(str(root), name="bad", data_dir=data_dir, options=options,
                                overwrite=True, **kw)

  # Video and poses of different lengths (found when decoding).
  write_episode(tmp_path / "short" / "t", 0, seed=0, video_frames=N - 3)
  with pytest.raises(EgoDexError, match=r"t/0\.hdf5.*9 frames.*pose stream has 12"):
    run(tmp_path / "short")
  # A corrupt mp4.
  write_episode(tmp_path / "corrupt" / "t", 0, seed=0)
  with open(tmp_path / "corrupt" / "t" / "0.mp4", "wb") as f:
    f.write(b"\x00\x00\x00\x18ftypmp42 not a video at all" * 10)
  with pytest.raises(EgoDexError, match=r"t/0\.hdf5.*cannot read the video"):
    run(tmp_path / "corrupt")
  # A missing joint and a wrong transform shape (found by the scan).
  write_episode(tmp_path / "missing" / "t", 0, seed=0, drop="rightIndexFingerTip")
  with pytest.raises(EgoDexError, match=r"t/0\.hdf5.*missing joints "
                     r"\['rightIndexFingerTip'\]"):
    run(tmp_path / "missing")
  write_episode(tmp_path / "shape" / "t", 0, seed=0, transform_shape=True)
  with pytest.raises(EgoDexError, match=r"t/0\.hdf5.*transforms/rightThumbIntermediate"
                     r"Tip has shape \(12, 3, 4\)"):
    run(tmp_path / "shape")
  # With on_error="skip" the good episode is imported and the bad one reported.
  write_episode(tmp_path / "shape" / "t", 1, seed=1)
  path = run(tmp_path / "shape", on_error="skip")
  assert list(EpisodeDataset(path).episode_lengths) == [N]
  with open(os.path.join(path, REPORT_FILE)) as f:
    report = json.load(f)
  assert len(report["skipped"]) == 1 and report["skipped"][0]["file"].endswith("t/0.hdf5")
  # An image size that is no integer factor of the video's.
  with pytest.raises(EgoDexError, match="integer-factor"):
    egodex.import_egodex(str(tmp_path / "short"), name="bad2", data_dir=data_dir,
                         options=egodex.EgoDexOptions(image_size=(10, 10), actions="none"))


def test_wrist_frame_of_right_and_left_hands():
  kp = world_keypoints(0)
  right = egodex.wrist_rotation(kp, "right")
  # A right hand at rest in its own frame: x along the fingers, z out of the back.
  rest = np.asarray(hand.keypoints(hand.make_pose(np.zeros(3), np.eye(3)), np.zeros(20)))
  np.testing.assert_allclose(egodex.wrist_rotation(rest, "right")[:, 2], [0, 0, 1], atol=1e-6)
  # The mirror image is a left hand: its frame is mirrored (x and z), still a rotation.
  mirror = np.diag([-1.0, 1.0, 1.0])
  left = egodex.wrist_rotation(kp @ mirror, "left")
  np.testing.assert_allclose(left[..., 0], right[..., 0] @ mirror, atol=1e-6)
  np.testing.assert_allclose(left[..., 2], right[..., 2] @ mirror, atol=1e-6)
  np.testing.assert_allclose(np.linalg.det(left), 1.0, atol=1e-5)
