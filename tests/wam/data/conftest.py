"""Small episode datasets written once per test session (synthetic, no simulator)."""

import pytest

from wam.data import builder, synthetic
from wam.data.layout import Layout
from wam.data.schema import EpisodeSpec

ROBOT_SPEC = EpisodeSpec(
    embodiment="toy_arm", source="sim", cameras=("front", "wrist"), image_size=(16, 16),
    joints=Layout.of([("arm_joints", 3)]), proprio=Layout.of([("toy_arm_proprio", 2)]),
    action=Layout.of([("arm_joints", 3)]), fps=10.0)
HUMAN_SPEC = EpisodeSpec(
    embodiment="human_hand", source="human", cameras=("head",), image_size=(32, 32),
    action=Layout.of([("wrist_pose", 9)]), hand_keypoints=True, fps=10.0)
ROBOT_LENGTHS = [10, 12, 8, 9, 11, 14]


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
  return tmp_path_factory.mktemp("datasets")


@pytest.fixture(scope="session")
def robot_dir(data_root):
  return builder.write_dataset(
      "toy_robot", ROBOT_SPEC,
      {"train": lambda: synthetic.synthetic_episodes(ROBOT_SPEC, 6, ROBOT_LENGTHS)},
      str(data_root))


@pytest.fixture(scope="session")
def human_dir(data_root):
  return builder.write_dataset(
      "toy_human", HUMAN_SPEC,
      {"train": lambda: synthetic.synthetic_episodes(HUMAN_SPEC, 20, 12, seed=1)},
      str(data_root))
