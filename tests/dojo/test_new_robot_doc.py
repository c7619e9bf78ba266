"""docs/new_robot_or_task.md shows the repository's files as they are, and names real commands.

The files it lists (``# path`` or ``<!-- path -->`` as a code block's first line) are
``dojo/tasks/reach_panda.py`` and the ``tap`` example in ``examples/my_tasks/``; the
example's own tests run with ``PYTHONPATH=examples pytest examples/my_tasks/test_tap.py``
(about 1.5 minutes, so not in this suite).
"""

import importlib.util
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(ROOT, "docs", "new_robot_or_task.md")
# Where a listed path lives: the example's package sits under examples/.
PREFIXES = {"my_tasks/": "examples/my_tasks/"}
MARKER = re.compile(r"^(?:# |<!-- )([\w/]+\.(?:py|xml))(?: -->)?$")


def _doc() -> str:
  with open(DOC, encoding="utf-8") as f:
    return f.read()


def _listed_files() -> dict[str, str]:
  """Repository path -> the code block that shows it."""
  out = {}
  for block in re.findall(r"```\w*\n(.*?)```", _doc(), re.S):
    match = MARKER.match(block.splitlines()[0])
    if match:
      path = match.group(1)
      for prefix, repo_prefix in PREFIXES.items():
        if path.startswith(prefix):
          path = repo_prefix + path[len(prefix):]
      out[path] = block
  return out


def test_the_doc_lists_the_panda_task_and_the_example():
  assert set(_listed_files()) == {"dojo/tasks/reach_panda.py", "examples/my_tasks/tap.xml",
                                  "examples/my_tasks/tap.py", "examples/my_tasks/test_tap.py"}


@pytest.mark.parametrize("path", sorted(_listed_files()))
def test_listed_file_is_the_repository_file(path):
  block = _listed_files()[path]
  with open(os.path.join(ROOT, path), encoding="utf-8") as f:
    text = f.read()
  # The marker line is the file's own first line (the example) or a caption (the task).
  shown = block if text.startswith(block.splitlines()[0]) else block.split("\n", 1)[1]
  assert shown == text, f"docs/new_robot_or_task.md shows an outdated copy of {path}"


def test_named_configs_keys_and_defaults_exist():
  import mujoco   # pylint: disable=import-outside-toplevel
  from dojo.task import base_config   # pylint: disable=import-outside-toplevel
  from dojo.tasks.serial_arm import serial_arm_config   # pylint: disable=import-outside-toplevel
  from experiments.configs import collect, wam   # pylint: disable=import-outside-toplevel
  doc = _doc()
  assert collect.get_config("reach_panda,runlocal").task == "reach_panda"
  assert "noise" in collect.get_config("reach_panda,runlocal")
  assert "collected" in wam.get_config("reach_panda,runlocal").dojo
  # The defaults the page quotes.
  assert (base_config().naconmax, base_config().njmax) == (4096, 128)
  assert (serial_arm_config().naconmax, serial_arm_config().njmax) == (1024, 64)
  assert "`base_config()`: 4096 and 128; `serial_arm_config()`: 1024 and" in doc
  # The example's scene compiles (its task and tests: PYTHONPATH=examples pytest ...).
  model = mujoco.MjModel.from_xml_path(os.path.join(ROOT, "examples/my_tasks/tap.xml"))
  assert model.nu == 2 and model.ncam == 3


def test_commands_name_modules_and_configs_that_exist():
  doc = _doc()
  modules = set(re.findall(r"python -m ([\w.]+)", doc))
  assert {"dojo.look", "benchmarks.experts", "experiments.collect",
          "experiments.train"} <= modules
  for module in modules - {"pytest", "mujoco.viewer"}:
    assert importlib.util.find_spec(module) is not None, module
  for config in set(re.findall(r"--config=([\w/]+\.py):", doc)):
    assert os.path.exists(os.path.join(ROOT, config)), config
