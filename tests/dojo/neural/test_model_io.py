"""Which dataset of a mixture normalises a task's vectors, and which tasks a model refuses
(ModelIO)."""

import dataclasses
import types

import pytest
from flax import nnx

import dojo
from dojo.neural.model_io import ModelIO, ModelTaskMismatchError, _dataset_of
from wam import config as wam_config
from wam import model as wam_model
from wam.run_metadata import RunMetadata

HAND = types.SimpleNamespace(embodiment="dojo_hand",
                             data_slots=lambda: {"joints": (("wrist", 4), ("fingers", 20))})
STATS = {"human": {"proprio": {"mean": [0.0] * 18}},
         "robot": {"joints": {"mean": [0.0] * 24}, "proprio": {"mean": [0.0] * 27}}}


def test_the_recorded_embodiment_of_each_dataset_decides():
  # Dataset names and the sorted embodiment list are in different orders: index
  # matching would pick the human statistics for the robot.
  extra = {"dataset_embodiments": {"human": "human_hand", "robot": "dojo_hand"},
           "embodiments": ["dojo_hand", "human_hand"]}
  assert _dataset_of(HAND, ["human", "robot"], extra, STATS) == "robot"


def test_older_runs_fall_back_to_the_joint_count_and_say_when_they_cannot():
  assert _dataset_of(HAND, ["human", "robot"], {}, STATS) == "robot"
  assert _dataset_of(HAND, ["only"], {}, {}) == "only"
  with pytest.raises(ModelTaskMismatchError, match="dataset=NAME"):
    _dataset_of(HAND, ["a", "b"], {}, {"a": STATS["robot"], "b": STATS["robot"]})


def test_a_multi_task_run_normalises_each_task_with_a_dataset_of_its_sizes():
  """`reach` and `push` share the arm; only `push` has its block's position."""
  def arm(proprio):
    return types.SimpleNamespace(embodiment="dojo_arm", data_slots=lambda: {
        "joints": (("arm", 7),), "proprio": (("arm_proprio", 7),) + proprio})
  reach, push = arm(()), arm((("push_blocks", 3),))
  stats = {"reach": {"joints": {"mean": [0.0] * 7}, "proprio": {"mean": [0.0] * 7}},
           "push": {"joints": {"mean": [0.0] * 7}, "proprio": {"mean": [0.0] * 10}}}
  extra = {"dataset_embodiments": {"reach": "dojo_arm", "push": "dojo_arm"}}
  assert _dataset_of(push, ["reach", "push"], extra, stats) == "push"
  assert _dataset_of(reach, ["reach", "push"], extra, stats) == "reach"


def test_a_model_of_absolute_joint_targets_refuses_relative_actions():
  absolute = dojo.load("reach", cameras=("front",), image_height=16, image_width=16)
  relative = dojo.load("reach", cameras=("front",), image_height=16, image_width=16,
                       joint_actions="relative")
  slots = absolute.data_slots()
  sizes = {k: sum(n for _, n in v) for k, v in slots.items()}
  dims = wam_model.Dims(num_frames=2, num_cameras=1, image_size=(16, 16),
                        joints=sizes["joints"], proprio=sizes["proprio"],
                        action=sizes["action"], action_chunk=2, instruction_length=32)
  model = wam_model.WorldActionModel(wam_config.model_config("toy"), dims, rngs=nnx.Rngs(0))
  metadata = RunMetadata(
      config={"data": {"cameras": ["front"], "image_size": [16, 16],
                       "normalization": "none"}},
      statistics={}, example_batch={},
      extra={"embodiments": [absolute.embodiment], "datasets": ["untrained"],
             "layouts": {k: [list(x) for x in v] for k, v in slots.items()}})
  ModelIO.create(model, metadata, absolute)
  with pytest.raises(ModelTaskMismatchError, match="arm_joint_offsets"):
    ModelIO.create(model, metadata, relative)
  # A model that reads fewer bytes than the task's instructions have is refused too
  # (encoding would cut them silently).
  short = types.SimpleNamespace(dims=dataclasses.replace(dims, instruction_length=8))
  with pytest.raises(ModelTaskMismatchError, match="is 21 utf-8 bytes, longer than "
                     "max_instruction_length=8"):
    ModelIO.create(short, metadata, absolute)
