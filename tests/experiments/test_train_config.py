"""experiments/configs/wam.py and experiments.lib.train (the data wiring of experiments.train)."""

from flax import nnx
import pytest

from dojo import registry
from experiments.configs import wam as wam_config
from experiments.lib import sweep as sweep_lib
from experiments.lib import train as train_lib
from wam import config as model_lib
from wam import model as wam_model
from wam import trainer


@pytest.mark.parametrize("arg", ["runlocal", "small,push", "tiny,regression,runlocal", ""])
def test_configs_pass_the_trainer_checks(arg, tmp_path):
  config = wam_config.get_config(arg)
  config.data.datasets.robot = {"path": str(tmp_path), "weight": 1.0, "split": "train"}
  config = train_lib.trainer_config(config, str(tmp_path))
  assert "dojo" not in config
  trainer.check_config(config)
  if "regression" in arg:
    assert config.model.objective == "regression"


@pytest.mark.parametrize("task", wam_config.TASKS)
@pytest.mark.parametrize("size", ["runlocal", ""])
def test_every_instruction_of_the_task_fits(task, size):
  """The pipeline refuses longer instructions (rope's are 43 bytes)."""
  space = registry.entry(task).resolve().instruction_space
  longest = max(len(space.text(i).encode()) for i in range(len(space.combinations)))
  assert longest <= wam_config.get_config(f"{task},{size}").data.max_instruction_length


def test_runlocal_is_cpu_sized():
  config = wam_config.get_config("runlocal")
  assert config.model.variant == "toy" and config.data.image_size == (32, 32)
  episodes = sum(e["num_episodes"] for e in train_lib.mixture_entries(config.dojo).values())
  assert episodes <= 1000 and config.num_steps <= 5000


@pytest.mark.parametrize("arg", ["bc", "runlocal,bc", "bc,runlocal", "runlocal,acting,bc"])
def test_bc_trains_on_actions_alone_whatever_the_other_parts(arg):
  c = wam_config.get_config(arg)
  assert c.model.loss_weights.video == 0.0 and c.model.loss_weights.state == 0.0
  assert c.model.given_action_prob == 0.0 and not c.dojo.mixture


def test_acting_gives_policy_mode_its_data_views_and_actions():
  reach = wam_config.get_config("runlocal,acting")
  assert reach.dojo.num_episodes == 1000 and reach.num_steps == 4000
  assert reach.dojo.cameras == reach.data.cameras == ("front", "head")
  assert reach.dojo.joint_actions == ""
  # reach: the target's position is predicted, never read; actions start from the state.
  assert reach.dojo.observe_target and reach.model.predict_only == ("reach_target",)
  assert reach.model.action_prior == "state"
  assert train_lib.task_overrides(reach.dojo) == (("observe_target", True),)
  push = wam_config.get_config("runlocal,acting,push")
  assert push.dojo.cameras == ("front",) and push.dojo.joint_actions == "relative"
  assert push.model.action_prior == "state" and push.model.predict_only == ()
  wrist = wam_config.get_config("runlocal,acting,wrist")
  assert wrist.dojo.cameras == wrist.data.cameras == ("front", "head", "wrist")
  plain = wam_config.get_config("runlocal")
  assert plain.dojo.joint_actions == "" and plain.model.action_prior == "zero"
  assert wam_config.get_config("wrist").dojo.cameras == ("front", "wrist")  # once only
  assert train_lib.task_overrides(plain.dojo) == ()


def test_mixture_entries_name_their_policies_and_what_to_imitate():
  config = wam_config.get_config("runlocal")
  entries = train_lib.mixture_entries(config.dojo)
  assert entries["demos"]["policy"] == "noisy_expert" and entries["demos"]["imitate"]
  assert not entries["play"]["imitate"] and entries["play"]["policy"] == "waypoints"
  assert len({e["seed"] for e in entries.values()}) == len(entries)  # distinct scenes
  # The BC baseline learns from the demonstrations alone.
  assert list(train_lib.mixture_entries(wam_config.get_config("runlocal,bc").dojo)) == ["demos"]
  # The hand also plays over its whole action range.
  hand = train_lib.mixture_entries(wam_config.get_config("runlocal,dex_lift").dojo)
  assert hand["wide"]["noise"] == 1.0 and not hand["wide"]["imitate"]
  assert "wide" not in entries
  # `scenes`: many short play episodes (more scenes for perception), full-length others.
  scenes = train_lib.mixture_entries(wam_config.get_config("runlocal,acting,scenes").dojo)
  assert scenes["scenes"]["num_steps"] == 20 and not scenes["scenes"]["imitate"]
  assert scenes["play"]["num_steps"] == -1 and "scenes" not in entries


def test_bad_mixture_entries_are_named_before_any_collection(tmp_path):
  config = wam_config.get_config("runlocal")
  config.dojo.mixture.play.policy = "wander"
  with pytest.raises(ValueError, match="mixture.play.policy is 'wander'"):
    train_lib.trainer_config(config, str(tmp_path))
  config = wam_config.get_config("runlocal")
  config.dojo.mixture.play.num_episode = 3
  with pytest.raises(ValueError, match=r"mixture.play has unknown key\(s\) \['num_episode'\]"):
    train_lib.mixture_entries(config.dojo)
  config.dojo.mixture = {}
  config.dojo.num_episodes = 0
  with pytest.raises(ValueError, match="collects nothing"):
    train_lib.mixture_entries(config.dojo)


def test_unknown_argument_and_missing_data_are_clear(tmp_path):
  with pytest.raises(ValueError, match="Unknown wam config argument.*'smal'"):
    wam_config.get_config("smal,runlocal")
  config = wam_config.get_config("runlocal")
  del config["dojo"]
  with pytest.raises(ValueError, match="names no datasets"):
    train_lib.trainer_config(config, str(tmp_path))


def test_collected_datasets_are_trained_on_as_they_are(tmp_path):
  """config.dojo.collected: experiments.collect's TFDS datasets, nothing built."""
  path = tmp_path / "tfds" / "dojo_robot" / "reach_collected" / "1.0.0"
  config = wam_config.get_config("runlocal")
  config.dojo.collected = str(path)
  with pytest.raises(FileNotFoundError, match="not a built dataset.*_collected/1.0.0"):
    train_lib.trainer_config(config, str(tmp_path))
  path.mkdir(parents=True)
  (path / "dataset_info.json").write_text("{}")
  config = train_lib.trainer_config(config, str(tmp_path / "work"))
  assert list(config.data.datasets) == ["reach_collected"]
  assert config.data.datasets.reach_collected.path == str(path)
  assert config.data.datasets.reach_collected.imitate
  trainer.check_config(config)
  assert not (tmp_path / "work").exists()   # nothing was collected


def _apply(config, overrides):
  """Sets ``{"a.b": value}`` overrides as ``--config.a.b=value`` flags do."""
  for key, value in overrides.items():
    *parents, last = key.split(".")
    node = config
    for part in parents:
      node = node[part]
    node[last] = value
  return config


def _parameters(model_config) -> int:
  dims = wam_model.Dims(num_frames=2, num_cameras=1, image_size=(32, 32), joints=9,
                        proprio=0, action=8, action_chunk=4, instruction_length=64)
  abstract = nnx.eval_shape(lambda: wam_model.WorldActionModel(model_config, dims,
                                                               rngs=nnx.Rngs(0)))
  return wam_model.count_parameters(abstract)


def test_the_sweeps_size_axis_builds_models_of_different_sizes(tmp_path):
  """The size axis sets every dim of the variant, not only the ``model.variant`` label."""
  sweep = sweep_lib.load_sweep("experiments/configs/wam.py:runlocal")
  sizes = {}
  for run in sweep.runs:
    config = _apply(wam_config.get_config("runlocal"), run.overrides)
    config.data.datasets.robot = {"path": str(tmp_path), "weight": 1.0, "split": "train"}
    trainer.check_config(train_lib.trainer_config(config, str(tmp_path)))
    sizes.setdefault(config.model.variant, set()).add(_parameters(config.model))
  assert sorted(sizes) == ["tiny", "toy"]
  assert all(len(counts) == 1 for counts in sizes.values())  # objective does not resize
  assert sizes["toy"] != sizes["tiny"]
  assert (_parameters(_apply(wam_config.get_config("runlocal"),
                             model_lib.variant_overrides("tiny")).model)
          == _parameters(model_lib.model_config("tiny")))


def test_overriding_the_size_label_alone_is_an_error(tmp_path):
  config = wam_config.get_config("runlocal")  # toy
  config.data.datasets.robot = {"path": str(tmp_path), "weight": 1.0, "split": "train"}
  config = train_lib.trainer_config(config, str(tmp_path))
  config.model.variant = "tiny"
  with pytest.raises(ValueError, match=r"variant is 'tiny' but .* are 'toy''s"):
    trainer.check_config(config)
  config.model.depth = 5  # a custom size keeps whatever label it was given
  trainer.check_config(config)
