"""The multi-stage job runner: order, resume after a failure, refusing a mixed workdir."""

import json
import os

import numpy as np
import pytest
from ml_collections import config_dict

from experiments.configs import great_parallel
from experiments.lib import great_parallel as great_parallel_lib
from experiments.lib import great_parallel_acting as acting
from experiments.lib import great_parallel_recipe as recipe
from experiments.lib import great_parallel_report as report
from experiments.lib import research_compute
from experiments.lib import stages
from experiments.lib import sweep as sweep_lib


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
  assert json.loads((tmp_path / "c" / "stage.json").read_text())["scale"] == 1

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
  for arg in ("runlocal", "runlocal,latent", "runlocal,recipe", "runlocal,baseline", ""):
    names = [s.name for s in great_parallel_lib.stages_of(great_parallel.get_config(arg))]
    assert names[0] == "human_data" and names[-1] == "report" and "acting" in names
    # The 40-minute CPU job leaves the from-scratch baseline out unless asked for.
    assert ("scratch" in names) == (arg != "runlocal" and arg != "runlocal,latent")
  with pytest.raises(ValueError, match="Unknown great_parallel argument"):
    great_parallel.get_config("runlocl")
  config = great_parallel.get_config("runlocal")
  config.stages = ("human_data", "pretrian")
  with pytest.raises(KeyError, match="pretrian"):
    great_parallel_lib.stages_of(config)


def test_trainer_configs_of_the_recipe_name_their_datasets_and_starting_point():
  config = great_parallel.get_config("runlocal")
  c = recipe.trainer_config(config, {"robot": ("r", 0.5, 0), "human": "h"}, num_steps=40,
                            init_from="workdir/pretrain")
  assert (c.data.datasets.robot.path, c.data.datasets.robot.weight) == ("r", 0.5)
  assert (c.data.datasets.human.path, c.data.datasets.human.max_episodes) == ("h", 0)
  assert c.init_from == "workdir/pretrain" and c.num_steps == 40
  assert c.data.cameras == (config.camera,) and c.eval.every == 40
  from wam import trainer  # pylint: disable=import-outside-toplevel
  trainer.check_config(c)   # every key is one the trainer knows


def test_report_lists_tables_and_the_stages_not_run(tmp_path):
  config = great_parallel.get_config("runlocal")
  metrics = {"eval/loss": 0.5, "eval/loss/video": 0.1, "eval/psnr_h1": 25.0}
  results = {
      "human_data": {"train_episodes": 10, "train_hours": 0.01, "train_frames": 480,
                     "seconds": 1.0},
      "pretrain": {"workdir": "w/pretrain", "step": 5, "init_from": "", "metrics": metrics},
      "posttrain": {"workdir": "w/posttrain", "step": 5, "init_from": "w/pretrain",
                    "metrics": dict(metrics, **{"eval/loss": 0.4})},
      "scratch": {"workdir": "w/scratch", "step": 5, "init_from": "", "metrics": metrics},
      "scaling": {"runs": ["a", "b", "c"], "hours": [1.0, 2.0, 4.0], "loss": [3.0, 2.0, 1.0],
                  "log_linear": {"a": 3.0, "b": -1.44, "r2": 1.0},
                  "power_law": None,
                  "leave_largest_out": {"predicted": [1.1], "measured": [1.0],
                                        "relative_error": [0.1]}},
  }
  out = report.write_report(config, str(tmp_path), results)
  text = (tmp_path / "report.md").read_text()
  assert "| posttrain | pretrain | 5 | 0.4 |" in text
  assert "(+20.0% lower with pre-training)" in text
  assert "R^2 = 1.000" in text and "+10.0%" in text
  assert set(out["not_run"]) == {"robot_data", "acting"}
  assert json.loads((tmp_path / "report.json").read_text())["stages"]["pretrain"]["step"] == 5


def _cell(rate, n=10):
  return {"success_rate": rate, "ci95": [max(0.0, rate - 0.3), min(1.0, rate + 0.3)],
          "episodes": n}


def test_report_json_holds_the_acting_keys(tmp_path):
  config = great_parallel.get_config("runlocal")
  control = {"play": {"motion_gain": 0.9, "tracking_ratio": 0.1},
             "random": {"motion_gain": 0.6, "tracking_ratio": 0.4}}
  per_task = {}
  for task in config.acting.tasks:
    per_task[task] = {
        "task": task, "num_episodes": 10, "num_chunks": 12,
        "controllers": {"expert": {"seen": _cell(1.0), "unseen": _cell(0.9)},
                        "state_bc": {"seen": _cell(0.5), "unseen": _cell(0.4)},
                        "policy": {"seen": _cell(0.2), "unseen": _cell(0.1)},
                        "dream_cem": {"seen": _cell(0.7), "unseen": _cell(0.6)},
                        "physics_cem": {"seen": _cell(1.0), "unseen": _cell(1.0)}},
        "controllability": control}
  per_task["reach"]["policy_evaluation"] = {
      "policies": [{"policy": "expert@0.0", "mjx": 1.0, "dream": 0.9},
                   {"policy": "expert@8.0", "mjx": 0.2, "dream": 0.1}],
      "pearson": 1.0, "spearman": 1.0, "num_chunks": 12}
  per_task["reach"]["rl_in_dreams"] = {"num_timesteps": 100,
                                       "trained_in_dream": _cell(0.3),
                                       "trained_in_mjx": _cell(0.4)}
  out = report.write_report(config, str(tmp_path), {"acting": per_task})
  saved = json.loads((tmp_path / "report.json").read_text())
  assert saved["acting"] == out["acting"]
  for task in ("reach", "push", "dex_lift"):
    keys = saved["acting"][task]
    assert keys["episodes"] == 10
    for controller in ("expert", "bc", "wam_policy", "dream_planner", "mjx_planner"):
      for split in ("seen", "unseen"):
        assert 0.0 <= keys["success"][controller][split] <= 1.0
    assert keys["motion_gain"] == {"play": 0.9, "random": 0.6}
    assert keys["tracking_ratio"] == 0.1
  assert saved["acting"]["reach"]["success"]["dream_planner"]["seen"] == 0.7
  assert saved["policy_evaluation"]["pearson"] == 1.0
  assert abs(saved["policy_evaluation"]["real_success_span"] - 0.8) < 1e-9
  assert (saved["rl_in_dreams"]["dream"], saved["rl_in_dreams"]["mjx"]) == (0.3, 0.4)
  text = (tmp_path / "report.md").read_text()
  assert "| CEM inside the WAM's dream | 0.70 (0.40–1.00) | 0.60 (0.30–0.90) |" in text
  assert "acting/push/seen/videos/dream_beside_reality.gif" in text


def test_robot_mixture_and_acting_settings_are_checked_before_compute():
  config = great_parallel.get_config("runlocal")
  mixture = recipe.robot_mixture(config)
  assert set(mixture) == {f"{t}{s}" for t in ("reach", "push", "dex_lift")
                          for s in ("", "_dart", "_play")}
  assert [n for n, e in mixture.items() if e["imitate"]] == ["reach", "push", "dex_lift"]
  assert mixture["dex_lift_play"]["noise"] > mixture["reach_play"]["noise"]
  acting.check_config(config)
  config.robot.tasks = ("reach", "pusj")
  with pytest.raises(ValueError, match="pusj"):
    recipe.robot_mixture(config)
  config = great_parallel.get_config("runlocal")
  config.acting.controllers = ("expert", "wam_polcy")
  with pytest.raises(KeyError, match="wam_polcy"):
    acting.check_config(config)
  config = great_parallel.get_config("runlocal")
  config.acting.tasks = ("reach", "pick_place")
  with pytest.raises(ValueError, match="pick_place"):
    acting.check_config(config)
  config = great_parallel.get_config("runlocal")
  config.acting.policy_evaluation = ("bc@100",)
  with pytest.raises(ValueError, match="bc@100"):
    acting.check_config(config)


def test_acting_splits_each_task_into_work_units(tmp_path):
  config = great_parallel.get_config("runlocal")
  datasets = {}
  for task in config.robot.tasks:
    for suffix, imitate in (("", True), ("_play", False)):
      name = f"{task}{suffix}"
      path = tmp_path / "data" / "dojo_robot" / name / "1.0.0"
      path.mkdir(parents=True)
      (tmp_path / "data" / "downloads" / "dojo_robot" / name / "episodes").mkdir(parents=True)
      datasets[name] = {"task": task, "path": str(path), "imitate": imitate}
  results = {"robot_data": {"datasets": datasets},
             "posttrain": {"workdir": "w/posttrain", "step": 1200},
             "scratch": {"workdir": "w/scratch", "step": 1200}}
  reach = acting.work_units(config, "reach", results)
  assert list(reach) == ["seen", "unseen", "ranking", "ppo"]
  assert reach["seen"].controllers == ("expert", "state_bc", "policy", "dream_cem",
                                       "physics_cem")
  assert reach["seen"].state_bc == (str(tmp_path / "data" / "downloads" / "dojo_robot" /
                                        "reach" / "episodes"),)
  # Planners on the seen split only (runlocal); controllability and GIFs once per task.
  assert "dream_cem" not in reach["unseen"].controllers
  assert reach["seen"].controllability.episodes > 0 == reach["unseen"].controllability.episodes
  assert reach["ranking"].policy_evaluation[-1] == "wam@1200"
  assert reach["ppo"].ppo.num_timesteps > 0 and reach["ppo"].controllers == ()
  dex = acting.work_units(config, "dex_lift", results)
  assert list(dex) == ["seen", "unseen"] and "physics_cem" not in dex["seen"].controllers
  assert dex["seen"].num_chunks == 15
  merged = acting._merge([  # pylint: disable=protected-access
      {"task": "reach", "num_episodes": 10, "num_chunks": 12,
       "controllers": {"expert": {"seen": _cell(1.0)}}, "controllability": {"play": {}}},
      {"task": "reach", "num_episodes": 10, "num_chunks": 12,
       "controllers": {"expert": {"unseen": _cell(0.9)}}}])
  assert set(merged["controllers"]["expert"]) == {"seen", "unseen"}
  assert "controllability" in merged


def test_scaling_compute_grows_with_data():
  """Each scaling run trains steps proportional to its hours (a fixed number of passes)."""
  config = great_parallel.get_config("runlocal")
  human = {"train_episodes": 270, "train_hours": 0.36}  # runlocal's 0.4 h, 10% held out
  runs, hours = recipe.scaling_runs(config, human, "/data/human")
  steps = np.array([r.overrides["num_steps"] for r in runs], float)
  h = np.array([hours[r.name] for r in runs])
  assert len(runs) == 5 and h.max() / h.min() >= 16
  assert np.all(np.diff(steps) > 0)
  above_floor = steps > config.scaling.min_steps
  assert above_floor.sum() >= 4
  per_hour = steps[above_floor] / h[above_floor]
  np.testing.assert_allclose(per_hour, config.scaling.steps_per_hour, rtol=0.05)
  # The hand-run sweep and the research loop follow the same rule.
  sweep = sweep_lib.load_sweep("experiments/configs/human_pretrain.py:runlocal")
  by_episodes = sorted((r.overrides["data.datasets.human.max_episodes"],
                        r.overrides["num_steps"]) for r in sweep.runs)
  assert [s for _, s in by_episodes] == sorted(s for _, s in by_episodes)
  assert by_episodes[-1][1] >= 8 * by_episodes[0][1]
  spec = research_compute.load_size_spec("experiments/configs/human_pretrain.py:runlocal")
  assert spec.run_cost(256, "w128") > 1.9 * spec.run_cost(128, "w128")
  assert spec.run_cost(128, "w128") > 3.9 * spec.run_cost(128, "w64")  # N ~ width^2
