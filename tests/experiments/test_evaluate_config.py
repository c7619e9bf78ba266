"""The closed-loop evaluation config, its input checks and its results table."""

import types

import pytest

from experiments.configs import evaluate as evaluate_config
from experiments.lib import evaluate, evaluate_controllers


def test_config_variants_and_bad_argument():
  full, local = evaluate_config.get_config(), evaluate_config.get_config("runlocal")
  assert local.num_episodes < full.num_episodes
  assert set(local.controllers) <= set(evaluate_controllers.CONTROLLERS)
  with pytest.raises(ValueError, match="runlocal"):
    evaluate_config.get_config("runlocl")


def test_bad_settings_fail_before_any_compute(tmp_path):
  config = evaluate_config.get_config("runlocal")
  config.controllers = ("policy", "dreamcem")
  with pytest.raises(KeyError, match="dreamcem"):
    evaluate.evaluate(config, str(tmp_path))
  config.controllers = ("policy",)
  with pytest.raises(ValueError, match="config.wam"):
    evaluate.evaluate(config, str(tmp_path))


def test_the_models_task_overrides_fill_what_the_config_leaves_unset():
  config = evaluate_config.get_config("runlocal")
  run = types.SimpleNamespace(extra={"layouts": {
      "proprio": [["dojo_arm_proprio", 14], ["reach_target", 3]],
      "action": [["arm_joint_offsets", 7], ["gripper", 1]]}})
  filled = evaluate._with_the_models_task(config, {"policy": (None, run)})
  assert filled.observe_target and filled.joint_actions == "relative"
  assert not config.observe_target  # the caller's config is left as it was
  config.joint_actions = "absolute"  # what the config says wins
  assert evaluate._with_the_models_task(
      config, {"policy": (None, run)}).joint_actions == "absolute"
  config.task = "push"  # reach's target slot is no option of push
  assert not evaluate._with_the_models_task(
      config, {"policy": (None, run)}).observe_target
  assert evaluate._with_the_models_task(config, {}) is config


def test_markdown_table():
  results = {"task": "reach", "num_episodes": 10, "num_chunks": 12, "controllers": {
      "policy": {"seen": {"success_rate": 0.8, "ci95": [0.49, 0.94]}},
      "bc": {"seen": {"success_rate": 0.5, "ci95": [0.24, 0.76]},
             "unseen": {"success_rate": 0.1, "ci95": [0.02, 0.40]}}},
      "policy_evaluation": {"policies": [{"policy": "wam@500", "mjx": 0.2, "dream": 0.3}],
                            "pearson": None, "spearman": None}}
  table = evaluate.markdown_table(results)
  assert "| policy | 0.80 (0.49–0.94) | — |" in table
  assert "| bc | 0.50 (0.24–0.76) | 0.10 (0.02–0.40) |" in table
  assert "n/a (constant)" in table
