"""The ``tfds`` command line without TensorFlow (``wam-tfds build ...``).

tensorflow-datasets 4.9.10's CLI imports all its commands at start-up: ``convert_format``
evaluates ``tf.train.Example`` at import time and ``build_croissant`` imports
``mlcroissant``, so ``tfds build`` fails with "No module named 'tensorflow'" even for
datasets (like ours: ArrayRecord, numpy-encoded features) that never touch TensorFlow.
This entry point puts a stand-in for each command module whose dependency is missing in
``sys.modules`` and then runs the unchanged TFDS CLI; ``build`` and ``new`` are
upstream's. See UPSTREAM.md.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
import types

# command module -> (the package it needs, the name of its Args class)
_OPTIONAL_COMMANDS = {
    "tensorflow_datasets.scripts.cli.convert_format": ("tensorflow", "Args"),
    "tensorflow_datasets.scripts.cli.croissant": ("mlcroissant", "CmdArgs"),
}


def missing_dependencies() -> dict[str, str]:
  """Command modules whose dependency is not installed -> that dependency."""
  return {module: package for module, (package, _) in _OPTIONAL_COMMANDS.items()
          if importlib.util.find_spec(package) is None}


def _install_stub(module: str, package: str, class_name: str) -> None:
  from tensorflow_datasets.scripts.cli import cli_utils  # pylint: disable=import-outside-toplevel
  command = module.rsplit(".", 1)[1]

  @dataclasses.dataclass(frozen=True, kw_only=True)
  class Args(cli_utils.Args):
    """A TFDS command whose dependency is not installed."""

    def execute(self) -> None:
      raise SystemExit(f"This tfds command ({command}) needs {package}: pip install "
                       f"{package}, then use the upstream `tfds` command.")

  stub = types.ModuleType(module)
  setattr(stub, class_name, Args)
  sys.modules[module] = stub


def main() -> None:
  """Runs the TFDS CLI with stand-ins for the commands whose dependency is missing."""
  for module, package in missing_dependencies().items():
    _install_stub(module, package, _OPTIONAL_COMMANDS[module][1])
  from tensorflow_datasets.scripts.cli import main as tfds_main  # pylint: disable=import-outside-toplevel
  tfds_main.launch_cli()


if __name__ == "__main__":
  main()
