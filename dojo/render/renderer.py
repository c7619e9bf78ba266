"""Ray-cast renderer over MJX ``Data`` for either physics implementation.

Each pixel's ray is intersected with every visible geom at once (a dense
[rays x geoms] problem, which XLA maps well to CPU, GPU and TPU), the nearest hit
gives depth and segmentation, and the hit normal gives Lambert shading with a
directional light and a head light. Planes get a checkerboard so motion is visible.
Meshes are drawn as their bounding boxes.
"""

from __future__ import annotations

import logging
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjtGeom

from dojo.render import raycast
from dojo.render.camera import CameraSpec

_INTERSECT = {
    int(mjtGeom.mjGEOM_PLANE): raycast.plane,
    int(mjtGeom.mjGEOM_SPHERE): raycast.sphere,
    int(mjtGeom.mjGEOM_CAPSULE): raycast.capsule,
    int(mjtGeom.mjGEOM_ELLIPSOID): raycast.ellipsoid,
    int(mjtGeom.mjGEOM_CYLINDER): raycast.cylinder,
    int(mjtGeom.mjGEOM_BOX): raycast.box,
    int(mjtGeom.mjGEOM_MESH): raycast.box,  # bounding box stand-in
}
_LIGHT = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
_SKY = np.array([0.62, 0.72, 0.85], np.float32)


class Image(NamedTuple):
  """One rendered view: uint8 RGB, metric depth along the ray and geom ids (-1 = none)."""

  rgb: jax.Array          # uint8[H, W, 3]
  depth: jax.Array        # f32[H, W]; `far` where nothing is hit
  segmentation: jax.Array  # int32[H, W]


class Renderer:
  """Renders views of one MuJoCo model; holds only static geometry tables."""

  def __init__(self, model: mujoco.MjModel, max_group: int = 2, far: float = 10.0):
    """Args:
      model: the MuJoCo model whose geoms are drawn.
      max_group: geoms in groups above this are hidden (MuJoCo shows 0-2 by default).
      far: depth reported where a ray hits nothing.
    """
    self.far = far
    types = np.asarray(model.geom_type)
    visible = (np.asarray(model.geom_group) <= max_group) & (model.geom_rgba[:, 3] > 0)
    unsupported = ~np.isin(types, list(_INTERSECT))
    if np.any(unsupported & visible):
      names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, i) or f"geom {i}"
               for i in np.flatnonzero(unsupported & visible)]
      logging.warning("Renderer: geoms %s have types the ray caster does not draw "
                      "(height fields, SDFs); they are hidden.", names)
    visible &= ~unsupported
    size = np.asarray(model.geom_size, np.float32).copy()
    offset = np.zeros((model.ngeom, 3), np.float32)
    mesh = types == int(mjtGeom.mjGEOM_MESH)
    offset[mesh] = model.geom_aabb[mesh, :3]
    size[mesh] = model.geom_aabb[mesh, 3:]
    self.geom_ids = np.flatnonzero(visible).astype(np.int32)
    self.groups = [(t, self.geom_ids[types[self.geom_ids] == t])
                   for t in _INTERSECT if np.any(types[self.geom_ids] == t)]
    self.order = np.concatenate([ids for _, ids in self.groups]) if self.groups else (
        np.zeros((0,), np.int32))
    self.types = types
    self.size = size
    self.offset = offset

  def cast(self, geom_xpos: jax.Array, geom_xmat: jax.Array, origins: jax.Array,
           dirs: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Nearest hit per ray: distance f32[R] (inf on miss) and geom id int32[R] (-1)."""
    if self.order.size == 0:
      return jnp.full(dirs.shape[:1], jnp.inf), jnp.full(dirs.shape[:1], -1, jnp.int32)
    ts = []
    for gtype, ids in self.groups:
      rot = geom_xmat[ids]                                  # [G, 3, 3]
      rel = origins[:, None, :] - geom_xpos[ids][None]      # [R, G, 3]
      o = jnp.einsum("rgi,gij->rgj", rel, rot) - self.offset[ids]
      d = jnp.einsum("ri,gij->rgj", dirs, rot)
      ts.append(_INTERSECT[gtype](o, d, jnp.asarray(self.size[ids])))
    t = jnp.concatenate(ts, axis=1)                         # [R, G_visible]
    best = jnp.argmin(t, axis=1)
    t_best = jnp.take_along_axis(t, best[:, None], 1)[:, 0]
    geom = jnp.where(jnp.isfinite(t_best), jnp.asarray(self.order)[best], -1)
    return t_best, geom

  def render_pose(self, data, cam_pos: jax.Array, cam_xmat: jax.Array, cam: CameraSpec,
                  geom_rgba: Optional[jax.Array] = None) -> Image:
    """Renders from an explicit camera pose (e.g. a moving head camera)."""
    dirs = cam.ray_directions(cam_xmat)
    origins = jnp.broadcast_to(cam_pos, dirs.shape)
    t, geom = self.cast(data.geom_xpos, data.geom_xmat, origins, dirs)
    hit = geom >= 0
    safe = jnp.maximum(geom, 0)
    p_world = origins + jnp.where(hit, t, 0.0)[:, None] * dirs
    rot = data.geom_xmat[safe]
    p_local = jnp.einsum("ri,rij->rj", p_world - data.geom_xpos[safe], rot) - jnp.asarray(self.offset)[safe]
    n_local = raycast.local_normal(jnp.asarray(self.types)[safe], p_local,
                                   jnp.asarray(self.size)[safe])
    normal = jnp.einsum("rij,rj->ri", rot, n_local)
    rgba = jnp.asarray(geom_rgba) if geom_rgba is not None else jnp.asarray(
        np.zeros((self.types.shape[0], 4), np.float32) + 0.7)
    colour = rgba[safe, :3]
    is_plane = jnp.asarray(self.types)[safe] == int(mjtGeom.mjGEOM_PLANE)
    checker = (jnp.floor(p_local[:, 0] / 0.1) + jnp.floor(p_local[:, 1] / 0.1)) % 2
    colour = jnp.where(is_plane[:, None], colour * (0.8 + 0.2 * checker[:, None]), colour)
    diffuse = jnp.maximum(normal @ jnp.asarray(_LIGHT, jnp.float32), 0.0)
    head = jnp.abs(jnp.sum(normal * dirs, -1))
    shade = 0.25 + 0.45 * diffuse + 0.3 * head
    sky = jnp.asarray(_SKY) * (0.8 + 0.2 * dirs[:, 2:3])
    rgb = jnp.where(hit[:, None], colour * shade[:, None], sky)
    hw = (cam.height, cam.width)
    return Image(
        rgb=jnp.clip(rgb * 255.0 + 0.5, 0, 255).astype(jnp.uint8).reshape(*hw, 3),
        depth=jnp.where(hit, t, self.far).reshape(hw).astype(jnp.float32),
        segmentation=geom.reshape(hw).astype(jnp.int32))

  def render(self, data, cam: CameraSpec, geom_rgba: Optional[jax.Array] = None) -> Image:
    """Renders an MJCF camera (which may ride on a body: wrist, head)."""
    if cam.camera_id < 0:
      raise ValueError(f"Camera {cam.name!r} is a free camera; use render_pose().")
    return self.render_pose(data, data.cam_xpos[cam.camera_id],
                            data.cam_xmat[cam.camera_id], cam, geom_rgba)
