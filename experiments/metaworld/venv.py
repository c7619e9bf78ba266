"""Meta-World's own Python environment: created once, checked, reused.

Meta-World 3.x pins ``mujoco==3.3.0``; this project runs MuJoCo 4 and JAX, so the
simulator cannot share the project's venv. It gets its own (default
``<repo>/.venv-metaworld``), made with the project's Python and holding exactly
:data:`PINS` plus the Gymnasium client (``clients/gymnasium``, no JAX). A marker file
in the venv records what was installed; a venv whose marker differs (other pins, another
Python, a changed client) is brought up to date in place, so re-running is free.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from typing import Mapping, Optional, Sequence

from absl import logging

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_DIR = os.path.join(REPO, ".venv-metaworld")
CLIENT_DIR = os.path.join(REPO, "clients", "gymnasium")
MARKER = "wam-metaworld.json"
# Everything the simulator's venv holds, at the versions resolved together by pip on
# Python 3.11 (metaworld 3.1.1's own requirements plus gymnasium's MuJoCo extras and the
# client's). `packaging` is needed by gymnasium.envs.mujoco but declared by neither.
PINS: tuple[str, ...] = (
    "metaworld==3.1.1", "mujoco==3.3.0", "gymnasium==1.4.0", "numpy==2.4.6",
    "scipy==1.17.1", "packaging==26.4", "PyOpenGL==3.1.10", "glfw==2.11.0",
    "imageio==2.38.2", "pillow==13.0.0", "cloudpickle==3.1.3", "farama-notifications==0.0.6",
    "typing_extensions==4.16.0", "absl-py==2.5.1", "etils==1.15.0", "fsspec==2026.9.0",
    "zipp==4.1.2", "msgpack==1.2.4", "websockets==17.4",
)
# Run in the venv to prove it works: the simulator, its policies and the client import.
CHECK = ("import metaworld, metaworld.policies, mujoco, wam_gym_client.record, "
         "wam_gym_client.evaluate; print(mujoco.__version__)")


def python(venv_dir: str) -> str:
  """The venv's interpreter."""
  return os.path.join(venv_dir, "bin", "python")


def client_hash(client_dir: str = CLIENT_DIR) -> str:
  """A hash of the client package's sources (links followed): a changed client is
  reinstalled, since ``pip install`` copies it into the venv."""
  digest = hashlib.sha256()
  for root, dirs, files in os.walk(client_dir, followlinks=True):
    dirs[:] = sorted(d for d in dirs if d not in ("build", "__pycache__")
                     and not d.endswith(".egg-info"))
    for name in sorted(files):
      if name.endswith((".py", ".toml", ".md")):
        path = os.path.join(root, name)
        digest.update(os.path.relpath(path, client_dir).encode())
        with open(path, "rb") as f:
          digest.update(f.read())
  return digest.hexdigest()[:16]


def wanted(pins: Sequence[str] = PINS, client_dir: str = CLIENT_DIR,
           base_python: Optional[str] = None) -> dict:
  """What a ready venv's marker must say."""
  return {"pins": list(pins), "client": client_hash(client_dir),
          "python": ".".join(map(str, sys.version_info[:3])),
          "base_python": base_python or sys.executable}


def read_marker(venv_dir: str) -> Optional[dict]:
  """The venv's marker, or None where there is none (or an unreadable one)."""
  try:
    with open(os.path.join(venv_dir, MARKER)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def is_ready(venv_dir: str, want: Mapping) -> bool:
  """Whether ``venv_dir`` holds what ``want`` asks (its marker matches, its python runs)."""
  marker = read_marker(venv_dir)
  return (marker is not None and os.path.exists(python(venv_dir))
          and all(marker.get(k) == want[k] for k in ("pins", "client", "python")))


def _run(command: Sequence[str], log: str) -> None:
  with open(log, "a") as f:
    f.write("$ " + " ".join(command) + "\n")
    f.flush()
    done = subprocess.run(list(command), stdout=f, stderr=subprocess.STDOUT, check=False)
  if done.returncode:
    raise RuntimeError(f"{' '.join(command[:4])} ... failed (exit {done.returncode}); "
                       f"its output is in {log}.")


def ensure(venv_dir: str = DEFAULT_DIR, *, pins: Sequence[str] = PINS,
           client_dir: str = CLIENT_DIR, log: Optional[str] = None) -> str:
  """Creates or updates Meta-World's venv; returns its python.

  Args:
    venv_dir: where the venv lives (kept across runs and work directories).
    pins: the exact requirements.
    client_dir: the Gymnasium client package, installed beside them.
    log: where pip's output goes (default ``<venv_dir>.log``).

  Raises:
    RuntimeError: venv creation, pip or the import check failed (the log says why).
  """
  want = wanted(pins, client_dir)
  if is_ready(venv_dir, want):
    return python(venv_dir)
  log = log or venv_dir.rstrip("/") + ".log"
  logging.info("[metaworld] installing the simulator's venv %s (%s; log %s)", venv_dir,
               ", ".join(pins[:2]), log)
  if not os.path.exists(python(venv_dir)):
    # The project's interpreter (the venv module resolves a venv's python to its base).
    _run([sys.executable, "-m", "venv", venv_dir], log)
  _run([python(venv_dir), "-m", "pip", "install", "--disable-pip-version-check",
        *pins, client_dir], log)
  # The client's own version does not change with its sources: force the fresh copy.
  _run([python(venv_dir), "-m", "pip", "install", "--disable-pip-version-check",
        "--no-deps", "--force-reinstall", client_dir], log)
  _run([python(venv_dir), "-c", CHECK], log)
  with open(os.path.join(venv_dir, MARKER), "w") as f:
    json.dump(want, f, indent=1)
  return python(venv_dir)
