"""Named-slot layouts, the episode schema's checks and the byte tokenizer."""

import numpy as np
import pytest

from wam.data import synthetic, text
from wam.data.layout import Layout, union
from wam.data.schema import EpisodeError, EpisodeSpec

from tests.wam.data.conftest import HUMAN_SPEC, ROBOT_SPEC


def test_union_and_pack_share_slots_by_name():
  arm = Layout.of([("arm", 3), ("gripper", 1)])
  hand = Layout.of([("wrist", 2), ("gripper", 1)])
  shared = union([arm, hand], field="action")
  assert shared.names == ("arm", "gripper", "wrist") and shared.dim == 6
  values, mask = shared.pack(hand, np.array([[1., 2., 3.], [4., 5., 6.]]),
                             mask=np.array([True, False]))
  np.testing.assert_array_equal(values[0], [0, 0, 0, 3, 1, 2])
  np.testing.assert_array_equal(mask[0], [False, False, False, True, True, True])
  assert not mask[1].any() and not values[1].any()  # a masked step is all padding


def test_slot_size_conflict_names_field_and_slot():
  with pytest.raises(ValueError, match=r"action slot 'gripper' has size 1 .* and 2"):
    union([Layout.of([("gripper", 1)]), Layout.of([("gripper", 2)])], field="action")
  with pytest.raises(ValueError, match="duplicate slot names"):
    Layout.of([("a", 1), ("a", 2)])


def test_spec_round_trips_through_json():
  assert EpisodeSpec.from_json(HUMAN_SPEC.to_json()) == HUMAN_SPEC
  assert EpisodeSpec.from_json(ROBOT_SPEC.to_json()) == ROBOT_SPEC
  with pytest.raises(ValueError, match="source must be one of"):
    EpisodeSpec(embodiment="x", source="youtube", cameras=("a",), image_size=(4, 4))


def test_validate_fills_defaults_and_names_bad_fields():
  episode = synthetic.synthetic_episode(ROBOT_SPEC, 5, seed=0)
  steps, metadata = ROBOT_SPEC.validate(episode)
  assert steps["is_first"].tolist() == [True, False, False, False, False]
  assert steps["is_last"][-1] and metadata["embodiment"] == "toy_arm"
  assert steps["observation/joints_mask"].all()

  bad = synthetic.synthetic_episode(ROBOT_SPEC, 5, seed=0)
  bad["steps"]["observation"]["joints"] = np.zeros((5, 4), np.float32)
  with pytest.raises(EpisodeError, match=r"ep 7: steps/observation/joints has shape \(5, 4\)"):
    ROBOT_SPEC.validate(bad, where="ep 7")
  bad = synthetic.synthetic_episode(ROBOT_SPEC, 5, seed=0)
  bad["steps"]["action"][2, 1] = np.nan
  with pytest.raises(EpisodeError, match="steps/action has NaN or inf at step 2"):
    ROBOT_SPEC.validate(bad)
  bad["steps"]["action_mask"][2] = False  # a masked NaN is padding, not an error
  steps, _ = ROBOT_SPEC.validate(bad)
  assert (steps["action"][2] == 0).all()
  bad = synthetic.synthetic_episode(ROBOT_SPEC, 5, seed=0)
  bad["steps"]["observation"]["depth"] = np.zeros((5, 16, 16))
  with pytest.raises(EpisodeError, match=r"\['observation/depth'\] are not in the dataset"):
    ROBOT_SPEC.validate(bad)
  bad = synthetic.synthetic_episode(ROBOT_SPEC, 5, seed=0)
  bad["steps"]["reward"] = np.zeros(4)
  with pytest.raises(EpisodeError, match="disagree on the number of steps"):
    ROBOT_SPEC.validate(bad)
  del bad["steps"]["observation"]["image_wrist"]
  bad["steps"]["reward"] = np.zeros(5)
  with pytest.raises(EpisodeError, match="missing field steps/observation/image_wrist"):
    ROBOT_SPEC.validate(bad)


def test_byte_tokenizer_round_trip():
  tokens, mask = text.encode("pick up the red cube", 32)
  assert tokens.dtype == np.int32 and mask.sum() == 20
  assert text.decode(tokens) == "pick up the red cube"
  tokens, mask = text.encode("ä" * 40, 8)  # cut at max_length bytes
  assert mask.all() and tokens.max() < text.VOCAB_SIZE
