"""Cameras of a Gymnasium env: ``env.render()``, a named MuJoCo camera, or a function.

A camera is given as:

- ``"render"``: ``env.render()`` (the env made with ``render_mode="rgb_array"``);
- a MuJoCo camera name (``"corner"``), id (``2``, ``"2"``) or ``-1`` (the free camera):
  rendered with ``mujoco.Renderer`` from ``env.unwrapped.model`` and ``.data`` (Gymnasium's
  MuJoCo envs, Meta-World, robosuite-style envs with those attributes);
- a function ``camera(env) -> image``.

Each renders at the size it is asked for where it can (MuJoCo), else the image is
resized by area (:func:`wam_gym_client.images.resize`).
"""

from __future__ import annotations

from typing import Any, Callable, Union

import gymnasium as gym
import numpy as np

from wam_gym_client import images

RENDER = "render"
Camera = Union[str, int, Callable[[gym.Env], Any]]


class _RenderCamera:
  """``env.render()``, resized."""

  def __init__(self, env: gym.Env, size: tuple[int, int]):
    if env.render_mode != "rgb_array":
      raise ValueError(f"Camera 'render' needs the env made with render_mode='rgb_array'; "
                       f"it has {env.render_mode!r}.")
    self._env, self._size = env, size

  def __call__(self) -> np.ndarray:
    return images.resize(self._env.render(), self._size)

  def close(self) -> None:
    pass


class _FunctionCamera:
  """A user function of the env, resized."""

  def __init__(self, env: gym.Env, fn: Callable[[gym.Env], Any], size: tuple[int, int]):
    self._env, self._fn, self._size = env, fn, size

  def __call__(self) -> np.ndarray:
    return images.resize(self._fn(self._env), self._size)

  def close(self) -> None:
    pass


class MujocoCamera:
  """One named (or numbered) camera of a MuJoCo env, rendered offscreen at ``size``.

  Headless machines need ``MUJOCO_GL=egl`` (GPU or Mesa EGL) or ``osmesa``.
  """

  def __init__(self, env: gym.Env, camera: str | int, size: tuple[int, int]):
    # Imported here, not at the top: MuJoCo is optional (only MuJoCo envs have named
    # cameras) and comes with the simulator's own environment, at its own version.
    import mujoco  # pylint: disable=import-outside-toplevel
    sim = env.unwrapped
    model, data = getattr(sim, "model", None), getattr(sim, "data", None)
    if not isinstance(model, mujoco.MjModel) or not isinstance(data, mujoco.MjData):
      raise ValueError(f"Camera {camera!r}: {type(sim).__name__} has no MuJoCo model/data "
                       "(env.unwrapped.model, .data); use 'render' or a function.")
    names = [model.camera(i).name for i in range(model.ncam)]
    if isinstance(camera, str) and camera.lstrip("-").isdigit():
      camera = int(camera)
    if isinstance(camera, int) and not -1 <= camera < model.ncam:
      raise ValueError(f"Camera id {camera} is out of range; the model has {model.ncam} "
                       f"cameras {names} (-1: the free camera).")
    if isinstance(camera, str) and camera not in names:
      raise ValueError(f"No camera {camera!r} in the MuJoCo model; it has {names} (or use "
                       "-1 for the free camera, 'render' for env.render()).")
    try:
      self._renderer = mujoco.Renderer(model, int(size[0]), int(size[1]))
    except ValueError as e:   # larger than the model's offscreen buffer
      raise ValueError(f"Camera {camera!r} at {tuple(size)}: {e}") from None
    self._data, self._camera = data, camera

  def __call__(self) -> np.ndarray:
    self._renderer.update_scene(self._data, camera=self._camera)
    return self._renderer.render().copy()

  def close(self) -> None:
    self._renderer.close()


def make_camera(env: gym.Env, camera: Camera, size: tuple[int, int]
                ) -> Callable[[], np.ndarray]:
  """A function rendering ``camera`` of ``env`` as uint8 [size..., 3] (has ``close()``)."""
  size = (int(size[0]), int(size[1]))
  if callable(camera):
    return _FunctionCamera(env, camera, size)
  if camera == RENDER:
    return _RenderCamera(env, size)
  return MujocoCamera(env, camera, size)
