"""The multi-stage job runner: order, resume after a failure, refusing a mixed workdir."""

import json
import os

import pytest
from ml_collections import config_dict

from experiments import jobs, stages
from experiments.configs import great_parallel


def _job(calls, fail_at=None):
  def make(name):
    def run(config, stage_dir, results):
      calls.append(name)
      if name == fail_at:
        raise RuntimeError("simulated crash")
      with open(os.path.join(stage_dir, "out.txt"), "w") as f:
        f.write(name)
      return {"value": len(results), "scale": config.scale}
    return run
  return [stages.Stage("a", make("a"), "first"),
          stages.Stage("b", make("b"), "second", needs=("a",)),
          stages.Stage("c", make("c"), "third", needs=("b",))]


def _config(scale=1):
  return config_dict.ConfigDict(dict(scale=scale, nested=dict(x=1)))


def test_finished_stages_are_read_not_rerun_and_a_failed_stage_reruns(tmp_path):
  calls = []
  with pytest.raises(stages.StageError, match="Stage 'b' failed: RuntimeError: simulated"):
    stages.run_stages(_job(calls, fail_at="b"), _config(), str(tmp_path))
  assert calls == ["a", "b"]
  assert os.path.exists(tmp_path / "a" / "stage.json")
  assert not os.path.exists(tmp_path / "b" / "stage.json")

  calls.clear()
  results = stages.run_stages(_job(calls), _config(), str(tmp_path))
  assert calls == ["b", "c"]  # a was finished: read back
  assert results["a"]["value"] == 0 and results["c"]["value"] == 2
  assert json.load(open(tmp_path / "c" / "stage.json"))["scale"] == 1

  calls.clear()
  stages.run_stages(_job(calls), _config(), str(tmp_path))
  assert calls == []


def test_a_workdir_from_another_config_is_refused_naming_the_keys(tmp_path):
  stages.run_stages(_job([]), _config(scale=1), str(tmp_path))
  with pytest.raises(stages.StageError, match=r"1 keys differ: scale: 1 -> 2"):
    stages.run_stages(_job([]), _config(scale=2), str(tmp_path))


def test_only_runs_the_named_stages_and_checks_their_inputs(tmp_path):
  calls = []
  with pytest.raises(stages.StageError, match="needs the results of"):
    stages.run_stages(_job(calls), _config(), str(tmp_path), only=["b"])
  with pytest.raises(stages.StageError, match="Unknown stage"):
    stages.run_stages(_job(calls), _config(), str(tmp_path), only=["z"])


def test_main_job_configs_name_known_stages():
  for arg in ("runlocal", "runlocal,latent", "runlocal,recipe", ""):
    names = [s.name for s in jobs.stages_of(great_parallel.get_config(arg))]
    assert names[0] == "human_data" and names[-1] == "report"
  with pytest.raises(ValueError, match="Unknown great_parallel argument"):
    great_parallel.get_config("runlocl")
  config = great_parallel.get_config("runlocal")
  config.stages = ("human_data", "pretrian")
  with pytest.raises(KeyError, match="pretrian"):
    jobs.stages_of(config)
