"""experiments/configs/wam.py and experiments.dojo_data (the data wiring of experiments.train)."""

import pytest

from experiments import dojo_data
from experiments.configs import wam as wam_config
from wam import trainer


@pytest.mark.parametrize("arg", ["runlocal", "small,push", "tiny,regression,runlocal", ""])
def test_configs_pass_the_trainer_checks(arg, tmp_path):
  config = wam_config.get_config(arg)
  config.data.datasets.robot = {"path": str(tmp_path), "weight": 1.0, "split": "train"}
  config = dojo_data.trainer_config(config, str(tmp_path))
  assert "dojo" not in config
  trainer.check_config(config)
  if "regression" in arg:
    assert config.model.objective == "regression"


def test_runlocal_is_cpu_sized():
  config = wam_config.get_config("runlocal")
  assert config.model.variant == "toy" and config.data.image_size == (32, 32)
  assert config.dojo.num_episodes <= 64 and config.num_steps <= 5000


def test_unknown_argument_and_missing_data_are_clear(tmp_path):
  with pytest.raises(ValueError, match="Unknown wam config argument.*'smal'"):
    wam_config.get_config("smal,runlocal")
  config = wam_config.get_config("runlocal")
  del config["dojo"]
  with pytest.raises(ValueError, match="names no datasets"):
    dojo_data.trainer_config(config, str(tmp_path))
