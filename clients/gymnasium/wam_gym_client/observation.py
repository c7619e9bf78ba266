"""A wrapper that adds what a robot sends the policy to a Gymnasium env's observation.

``RobotObservation(env, cameras={"front": "corner"}, joints="data.qpos[:7]")`` turns the
observation into a dict::

  {"state": <the env's own observation>,
   "image_front": uint8 [H, W, 3], ...,   # one per camera, at image_size
   "joints": f32 [J], "proprio": f32 [P]}  # when given

Images and vectors are computed inside the env, so the same wrapper works in
``gymnasium.vector`` (sync or async: each sub-env renders its own cameras) and the
vector env stacks them. To learn the vectors' sizes the wrapper resets the env once
when it is made (seed it again with ``reset(seed=...)`` as usual).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import gymnasium as gym
import numpy as np

from wam_gym_client import cameras as cameras_lib
from wam_gym_client import fields as fields_lib

STATE, JOINTS, PROPRIO = "state", "joints", "proprio"
IMAGE_PREFIX = "image_"   # as in the policy server's observations
DEFAULT_IMAGE_SIZE = (128, 128)


def camera_names(cameras: Mapping[str, cameras_lib.Camera] | Sequence[cameras_lib.Camera]
                 ) -> dict[str, cameras_lib.Camera]:
  """``{name: camera}``: a list names each camera after itself (``"render"``, ``"corner"``,
  ``"camera2"`` for id 2, ``"free"`` for -1)."""
  if isinstance(cameras, Mapping):
    return dict(cameras)
  named = {}
  for camera in cameras:
    if callable(camera):
      raise ValueError("Give a camera function a name: cameras={'name': fn}.")
    text = str(camera)
    name = "free" if text == "-1" else f"camera{text}" if text.isdigit() else text
    named[name] = camera
  return named


class RobotObservation(gym.Wrapper):
  """Adds camera images, joints and proprio to the observation (see the module doc)."""

  def __init__(self, env: gym.Env,
               cameras: Mapping[str, cameras_lib.Camera] | Sequence[cameras_lib.Camera] = (),
               *, image_size: Sequence[int] = DEFAULT_IMAGE_SIZE,
               joints: Optional[fields_lib.Field | Sequence[fields_lib.Field]] = None,
               proprio: Optional[fields_lib.Field | Sequence[fields_lib.Field]] = None):
    """Wraps ``env``.

    Args:
      env: any Gymnasium env.
      cameras: ``{name: camera}`` or a list of cameras (:mod:`wam_gym_client.cameras`).
      image_size: (height, width) of every camera image.
      joints: field(s) of the joint vector (:mod:`wam_gym_client.fields`), or None.
      proprio: field(s) of the proprioceptive vector, or None.
    """
    super().__init__(env)
    self.image_size = (int(image_size[0]), int(image_size[1]))
    self.cameras = camera_names(cameras)
    self._renderers = {name: cameras_lib.make_camera(env, cam, self.image_size)
                       for name, cam in self.cameras.items()}
    self._vectors = {key: fields_lib.compile_vector(spec)
                     for key, spec in ((JOINTS, joints), (PROPRIO, proprio))
                     if spec is not None and spec != [] and spec != ()}
    obs, info = env.reset()   # the vectors' sizes
    spaces = {STATE: env.observation_space}
    for name in self._renderers:
      spaces[IMAGE_PREFIX + name] = gym.spaces.Box(0, 255, self.image_size + (3,), np.uint8)
    for key, read in self._vectors.items():
      dim = read(env, obs, info).shape[0]
      spaces[key] = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)
    self.observation_space = gym.spaces.Dict(spaces)

  def _observe(self, obs: Any, info: Mapping[str, Any]) -> dict[str, Any]:
    out = {STATE: obs}
    for name, render in self._renderers.items():
      out[IMAGE_PREFIX + name] = render()
    for key, read in self._vectors.items():
      out[key] = read(self.env, obs, info)
    return out

  def reset(self, **kwargs) -> tuple[dict[str, Any], dict[str, Any]]:
    obs, info = self.env.reset(**kwargs)
    return self._observe(obs, info), info

  def step(self, action: Any) -> tuple[dict[str, Any], Any, bool, bool, dict[str, Any]]:
    obs, reward, terminated, truncated, info = self.env.step(action)
    return self._observe(obs, info), reward, terminated, truncated, info

  def close(self) -> None:
    for render in self._renderers.values():
      render.close()
    super().close()
