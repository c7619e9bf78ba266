"""Test settings: CPU, deterministic, quiet MuJoCo Warp; tests that share a module fixture
run on one pytest-xdist worker."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MUJOCO_GL", "disabled")

import warnings  # noqa: E402

import pytest  # noqa: E402

warnings.filterwarnings("ignore", message=".*(solver|linesearch) iterations.*")


@pytest.hookimpl(tryfirst=True)   # before xdist reads the groups (`--dist loadgroup`)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
  """Puts the tests of a module that use module-scoped fixtures in one xdist group: spread
  over two workers, each worker would build the fixture (a training run, three
  processes...) again."""
  for item in items:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
      continue
    if any(d.scope == "module" for defs in info.name2fixturedefs.values() for d in defs):
      item.add_marker(pytest.mark.xdist_group(item.module.__name__))
