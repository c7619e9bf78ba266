"""Pinhole cameras: MJCF cameras by name, or free cameras posed at run time."""

from __future__ import annotations

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp
import mujoco
import numpy as np


@dataclasses.dataclass(frozen=True)
class CameraSpec:
  """A pinhole camera. ``camera_id`` >= 0 follows an MJCF camera (fixed, or attached to
  a body such as the wrist or the head); -1 means a free camera posed per call."""

  name: str
  height: int
  width: int
  fovy: float  # vertical field of view, degrees
  camera_id: int = -1

  @classmethod
  def from_model(cls, model: mujoco.MjModel, name: str, height: int = 64,
                 width: int = 64) -> "CameraSpec":
    """The MJCF camera ``name``; an unknown name lists the model's cameras."""
    cam_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name)
    if cam_id < 0:
      known = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i)
               for i in range(model.ncam)]
      raise ValueError(f"Unknown camera {name!r}; this model has cameras {known}.")
    if height <= 0 or width <= 0:
      raise ValueError(f"Camera {name!r}: image size must be positive, got {height}x{width}.")
    return cls(name, height, width, float(model.cam_fovy[cam_id]), cam_id)

  def ray_directions(self, xmat: jax.Array) -> jax.Array:
    """Unit ray directions f32[H*W, 3] in the world for a camera orientation ``xmat``.

    MuJoCo cameras look along their local -z axis with +y up.
    """
    half = np.tan(np.deg2rad(self.fovy) / 2)
    ys = (self.height / 2 - (np.arange(self.height) + 0.5)) / (self.height / 2) * half
    xs = ((np.arange(self.width) + 0.5) - self.width / 2) / (self.height / 2) * half
    gx, gy = np.meshgrid(xs, ys)
    local = np.stack([gx, gy, -np.ones_like(gx)], -1).reshape(-1, 3)
    local /= np.linalg.norm(local, axis=-1, keepdims=True)
    return jnp.asarray(local, jnp.float32) @ xmat.T


def look_at(eye: jax.Array, target: jax.Array,
            up: Optional[jax.Array] = None) -> jax.Array:
  """Camera orientation (3x3, columns = camera x, y, z axes) looking from eye to target."""
  up = jnp.array([0.0, 0.0, 1.0]) if up is None else up
  z = eye - target
  z = z / jnp.linalg.norm(z)
  x = jnp.cross(up, z)
  x = x / jnp.maximum(jnp.linalg.norm(x), 1e-8)
  y = jnp.cross(z, x)
  return jnp.stack([x, y, z], axis=1)
