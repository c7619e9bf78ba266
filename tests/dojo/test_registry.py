"""The task registry: self-registering task modules, discovery, and what reads the list.

No env is built here (factories are stand-ins), so the module runs in seconds.
"""

import sys
import textwrap

import pytest

import dojo
from dojo import registry
from dojo.datasets.dojo_robot import dojo_robot_dataset_builder as builder
from experiments.configs import collect as collect_config
from experiments.configs import wam as wam_config

BUILT_IN = {"reach", "push", "pick_place", "dex_lift", "rope", "reach_dojo_arm",
            "reach_panda"}


def _factory(**overrides):
  return ("built", overrides)


def _other_factory(**overrides):
  return ("other", overrides)


@pytest.fixture
def throwaway():
  """Names registered by a test, removed afterwards."""
  names = []
  yield names
  for name in names:
    registry.unregister(name)


def test_built_in_task_modules_register_themselves():
  assert BUILT_IN <= set(dojo.names())
  # What the launchers and the dataset builder offer is the registry's list.
  # The configs read the registry when imported; other tests of the same process may
  # register throwaway tasks (e.g. "toy") before or after: compare dojo.tasks' own.
  def own(names):
    return {n for n in names if n in registry.names()
            and registry.entry(n).resolve().__module__.startswith("dojo.tasks.")}
  assert own(wam_config.TASKS) == own(collect_config.TASKS) == own(dojo.names())
  assert BUILT_IN | {"reach_dojo_arm", "reach_panda"} <= own(wam_config.TASKS)
  configs = {c.name for c in builder.Builder.BUILDER_CONFIGS}
  assert {"reach_panda", "reach_panda_small", "reach_dojo_arm_small"} <= configs
  # Data defaults that the training config used to hard-code now come with the task.
  assert wam_config.PLAY_NOISE["dex_lift"] == (0.1, 0.3)
  assert wam_config.WIDE_PLAY == {"dex_lift": 1.0}
  assert wam_config.FLOATING_TARGETS == ("reach",)
  assert set(wam_config.RELATIVE_JOINTS) == {"push", "pick_place"}
  assert registry.data("reach_panda")["play_noise"] == registry.DATA_DEFAULTS["play_noise"]


def test_register_as_call_and_decorator(throwaway):
  throwaway += ["t_call", "t_deco"]
  assert registry.register("t_call", _factory) is _factory
  assert dojo.load("t_call", a=1) == ("built", {"a": 1})

  @registry.register("t_deco", data={"play_noise": 0.5})
  def make(**overrides):
    return ("deco", overrides)

  assert make() == ("deco", {})   # the decorator returns the factory itself
  assert dojo.load("t_deco") == ("deco", {})
  assert registry.data("t_deco")["play_noise"] == 0.5
  assert registry.data("t_deco")["dart_noise"] == registry.DATA_DEFAULTS["dart_noise"]
  assert {"t_call", "t_deco"} <= set(dojo.names())


def test_duplicate_name_names_both_factories(throwaway):
  throwaway.append("t_dup")
  registry.register("t_dup", _factory)
  registry.register("t_dup", _factory)   # the same factory again (a reload): fine
  with pytest.raises(ValueError) as err:
    registry.register("t_dup", _other_factory)
  message = str(err.value)
  assert "'t_dup' is already registered" in message
  assert "test_registry:_factory" in message and "test_registry:_other_factory" in message
  # A built-in name is protected the same way.
  with pytest.raises(ValueError, match=r"'reach'.*dojo\.tasks\.reach:Reach.*_other_factory"):
    registry.register("reach", _other_factory)
  assert dojo.load("t_dup") == ("built", {})


def test_bad_data_key_and_unknown_name(throwaway):
  with pytest.raises(ValueError, match=r"unknown data key\(s\) \['play_nois'\].*play_noise"):
    registry.register("t_bad", _factory, data={"play_nois": 0.1})
  assert "t_bad" not in dojo.names()
  with pytest.raises(KeyError, match="Unknown Dojo task 'reach_pand'.*reach_panda"):
    dojo.load("reach_pand")


def test_user_module_by_import_path_and_environment(tmp_path, monkeypatch, throwaway):
  """A task module outside the package: loaded by path, or discovered from the env."""
  (tmp_path / "my_dojo_tasks_a.py").write_text(textwrap.dedent("""
      from dojo import registry

      @registry.register("tap_a")
      def tap(**overrides):
        return ("tap_a", overrides)

      def unregistered(**overrides):
        return ("unregistered", overrides)
      """))
  (tmp_path / "my_dojo_tasks_b.py").write_text(textwrap.dedent("""
      from dojo import registry
      registry.register("tap_b", lambda **kw: ("tap_b", kw))
      """))
  monkeypatch.syspath_prepend(str(tmp_path))
  throwaway += ["tap_a", "tap_b"]
  try:
    # "module:attr": the attribute is called; importing the module registered its task.
    assert dojo.load("my_dojo_tasks_a:unregistered", x=2) == ("unregistered", {"x": 2})
    assert "tap_a" in dojo.names()
    assert dojo.load("my_dojo_tasks_a:tap_a") == ("tap_a", {})
    with pytest.raises(KeyError, match="no task factory 'nope'"):
      dojo.load("my_dojo_tasks_a:nope")
    # $DOJO_TASK_MODULES: discovered by names() without any import in the caller.
    assert "tap_b" not in dojo.names()
    monkeypatch.setenv(registry.TASK_MODULES_ENV, "my_dojo_tasks_b")
    assert "tap_b" in dojo.names() and dojo.load("tap_b") == ("tap_b", {})
    monkeypatch.setenv(registry.TASK_MODULES_ENV, "my_dojo_tasks_missing")
    with pytest.raises(ImportError, match="DOJO_TASK_MODULES names task module "
                                          "'my_dojo_tasks_missing'"):
      dojo.names()
  finally:
    for module in ("my_dojo_tasks_a", "my_dojo_tasks_b"):
      sys.modules.pop(module, None)
