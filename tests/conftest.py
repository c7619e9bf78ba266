"""Test settings: CPU, deterministic, quiet MuJoCo Warp, one JAX compilation cache per
session; tests that share a module fixture run on one pytest-xdist worker."""

import os
import shutil
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MUJOCO_GL", "disabled")

# One JAX compilation cache for the whole session: the xdist workers, and every process a
# test starts (command lines, multi-host runs, the notebook's kernel), inherit this
# variable. Many tests build a fresh jit of the same program (each training run traces its
# own step), and the cache turns those recompiles into reads. A fresh directory per session
# (removed at its end) keeps runs independent of each other; set the variable yourself to
# keep a cache across runs.
_OWN_COMPILATION_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if _OWN_COMPILATION_CACHE:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="wam-tests-jax-cache-")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")

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


def pytest_unconfigure(config: pytest.Config) -> None:
  """The session's compilation cache goes with the process that made it (the xdist
  controller, which ends after its workers)."""
  del config
  if _OWN_COMPILATION_CACHE:
    shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
