"""Test settings: CPU, deterministic, quiet MuJoCo Warp."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MUJOCO_GL", "disabled")

import warnings  # noqa: E402

warnings.filterwarnings("ignore", message=".*(solver|linesearch) iterations.*")
