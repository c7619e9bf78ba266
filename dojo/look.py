r"""Look at a Dojo task's scene: one PNG per camera, headless.

  python -m dojo.look --task=reach_panda --out=/tmp/look [--seed=0 --size=128 \
      --cameras=front,wrist --mujoco=auto --impl=auto]

Resets the task (a registered name or ``module:Class``) with ``--seed`` and renders each
named camera (default: every camera of the model) with the Dojo's JAX ray-cast camera
(``dojo.render``), the renderer that makes the observations. Where MuJoCo's own OpenGL
renderer works (``MUJOCO_GL=egl``, the default here, runs headless, on a GPU or on
Mesa's software EGL), the same camera of the same state, with the same episode colours,
is rendered by MuJoCo too and put beside it: ``<out>/<camera>.png`` is
``Dojo | MuJoCo``, so that the scene, the cameras and the colours can be checked against
MuJoCo's reference render. ``--mujoco=off`` skips MuJoCo; ``auto`` (default) falls back
to the Dojo's view alone, with a message, where no OpenGL is available; ``on`` makes
that an error. Prints the paths written.
"""

from __future__ import annotations

import os

# MuJoCo picks its OpenGL back end when its renderer is first imported: ask for the
# headless one unless the user chose (the variable is read by mujoco, not by the Dojo).
os.environ.setdefault("MUJOCO_GL", "egl")

from typing import Optional, Sequence  # pylint: disable=g-import-not-at-top

import numpy as np  # pylint: disable=g-import-not-at-top

MUJOCO_MODES = ("auto", "on", "off")


def _task(env):
  """The ``MjxTask`` under any wrappers."""
  return getattr(env, "unwrapped", env)


def mujoco_render(mj_model, qpos, qvel, mocap_pos, mocap_quat, geom_rgba, camera: str,
                  size: int) -> np.ndarray:
  """MuJoCo's OpenGL render uint8[size, size, 3] of ``camera`` in the given state.

  Raises whatever MuJoCo raises when no OpenGL context can be made.
  """
  import mujoco  # pylint: disable=import-outside-toplevel
  data = mujoco.MjData(mj_model)
  data.qpos[:] = qpos
  data.qvel[:] = qvel
  if mj_model.nmocap:
    data.mocap_pos[:] = mocap_pos
    data.mocap_quat[:] = mocap_quat
  saved = mj_model.geom_rgba.copy()
  mj_model.geom_rgba[:] = geom_rgba   # the episode's colours (jitter, instructed object)
  try:
    mujoco.mj_forward(mj_model, data)
    with mujoco.Renderer(mj_model, height=size, width=size) as renderer:
      renderer.update_scene(data, camera=camera)
      return np.asarray(renderer.render(), np.uint8).copy()
  finally:
    mj_model.geom_rgba[:] = saved


def look(task: str, out: str, seed: int = 0, size: int = 128,
         cameras: Optional[Sequence[str]] = None, mujoco: str = "auto",
         impl: str = "auto") -> list[str]:
  """Writes ``<out>/<camera>.png`` for each camera of ``task`` reset with ``seed``.

  Returns the paths written. Raises KeyError for an unknown task (the registry's
  message, listing the known ones) and ValueError for an unknown camera (listing the
  model's cameras) or ``mujoco`` mode; with ``mujoco="on"``, MuJoCo's renderer error.
  """
  import jax  # pylint: disable=import-outside-toplevel
  from PIL import Image  # pylint: disable=import-outside-toplevel

  from dojo import registry  # pylint: disable=import-outside-toplevel
  from dojo.mjcf import names  # pylint: disable=import-outside-toplevel
  from dojo.render.camera import CameraSpec  # pylint: disable=import-outside-toplevel
  import mujoco as mj  # pylint: disable=import-outside-toplevel

  if mujoco not in MUJOCO_MODES:
    raise ValueError(f"--mujoco={mujoco!r}: use one of {MUJOCO_MODES}.")
  if size <= 0:
    raise ValueError(f"--size must be positive, got {size}.")
  # The cameras are rendered here, not as observations: the env renders none itself.
  env = registry.load(task, cameras=(), impl=impl)
  base = _task(env)
  model = base.mj_model
  cameras = list(cameras or names(model, mj.mjtObj.mjOBJ_CAMERA))
  if not cameras:
    raise ValueError(f"Task {task!r} has no cameras in its model.")
  specs = {c: CameraSpec.from_model(model, c, size, size) for c in cameras}

  state = jax.jit(env.reset)(jax.random.PRNGKey(seed))
  try:   # MuJoCo Warp's contact and constraint buffers hold this state's contacts?
    base.check_buffers(state.data)
  except ValueError as e:
    print(f"Warning: {e}")
  images = jax.jit(lambda d, i: base.render(d, i, specs))(state.data, state.info)

  d = state.data
  qpos, qvel = np.asarray(d.qpos), np.asarray(d.qvel)
  mocap_pos, mocap_quat = np.asarray(d.mocap_pos), np.asarray(d.mocap_quat)
  geom_rgba = np.asarray(state.info["geom_rgba"])
  os.makedirs(out, exist_ok=True)
  paths, use_mujoco = [], mujoco != "off"
  for name in cameras:
    panels = [np.asarray(images[f"pixels/{name}"], np.uint8)]
    if use_mujoco:
      try:
        panels.append(mujoco_render(model, qpos, qvel, mocap_pos, mocap_quat, geom_rgba,
                                    name, size))
      except Exception as e:  # pylint: disable=broad-except
        if mujoco == "on":
          raise RuntimeError(f"MuJoCo's renderer failed (MUJOCO_GL="
                             f"{os.environ.get('MUJOCO_GL', '')!r}): {e}") from e
        print(f"MuJoCo's renderer is not available (MUJOCO_GL="
              f"{os.environ.get('MUJOCO_GL', '')!r}: {type(e).__name__}: {e}); writing "
              "the Dojo's views alone. Headless Linux needs EGL (e.g. Mesa's libegl1) or "
              "MUJOCO_GL=osmesa; --mujoco=off skips this.")
        use_mujoco = False
    if len(panels) == 2:
      gap = np.full((size, 2, 3), 255, np.uint8)
      panels = [panels[0], gap, panels[1]]
    path = os.path.join(out, f"{name}.png")
    Image.fromarray(np.concatenate(panels, axis=1)).save(path)
    paths.append(path)
  return paths


def main(argv=None) -> None:
  import argparse  # pylint: disable=import-outside-toplevel
  parser = argparse.ArgumentParser(prog="python -m dojo.look",
                                   description=__doc__.split("\n\n")[0].strip())
  parser.add_argument("--task", required=True,
                      help="a registered task name or module:Class")
  parser.add_argument("--out", required=True, help="output directory")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--size", type=int, default=128, help="pixels per side of a view")
  parser.add_argument("--cameras", default="",
                      help="comma-separated camera names (default: all of the model's)")
  parser.add_argument("--mujoco", choices=MUJOCO_MODES, default="auto",
                      help="also MuJoCo's OpenGL render beside the Dojo's")
  parser.add_argument("--impl", default="auto", help="physics: jax, warp or auto")
  args = parser.parse_args(argv)
  cameras = [c for c in args.cameras.split(",") if c]
  try:
    paths = look(args.task, args.out, args.seed, args.size, cameras, args.mujoco,
                 args.impl)
  except (KeyError, ValueError) as e:
    parser.exit(2, f"error: {e.args[0] if e.args else e}\n")
  for path in paths:
    print(path)


if __name__ == "__main__":
  main()
