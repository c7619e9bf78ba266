"""`python -m dojo.look`: a PNG per camera of a reset task (tiny, the JAX camera only)."""

import numpy as np
import pytest
from PIL import Image

from dojo import look


def test_look_writes_a_png_per_camera(tmp_path, capsys):
  # The tests run with MUJOCO_GL=disabled (conftest): MuJoCo's half falls back, saying so;
  # with a working OpenGL it is the right half (after a 2-pixel gap).
  look.main(["--task=reach_dojo_arm", f"--out={tmp_path}", "--size=8", "--cameras=front",
             "--mujoco=auto", "--impl=jax"])
  path = tmp_path / "front.png"
  out = capsys.readouterr().out
  assert out.strip().splitlines()[-1] == str(path)
  image = np.asarray(Image.open(path))
  width = 8 if "renderer is not available" in out else 18
  assert image.shape == (8, width, 3) and image[:, :8].std() > 0


def test_bad_task_and_camera_say_what_exists(tmp_path):
  with pytest.raises(KeyError, match="Known tasks"):
    look.look("no_such_task", str(tmp_path), mujoco="off")
  with pytest.raises(ValueError, match=r"this model has cameras \['front'"):
    look.look("reach_dojo_arm", str(tmp_path), cameras=["nope"], mujoco="off", impl="jax")
