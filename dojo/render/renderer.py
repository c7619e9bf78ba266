"""Ray-cast renderer over MJX ``Data`` for either physics implementation.

Each pixel's ray is intersected with every visible geom at once (a dense
[rays x geoms] problem, which XLA maps well to CPU, GPU and TPU), the nearest hit
gives depth and segmentation, and the hit normal gives Lambert shading with a
directional light and a head light. Planes get a checkerboard so motion is visible.
Mesh geoms are drawn triangle by triangle through per-mesh BVHs (`mesh_bvh`,
`mesh_cast`), or as their bounding boxes with ``meshes="boxes"``; a model without
visible meshes takes exactly the dense path above. Colours follow MuJoCo's
geom/material rule (`materials`).
"""

from __future__ import annotations

import logging
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjtGeom

from dojo.render import mesh_bvh, raycast
from dojo.render.camera import CameraSpec
from dojo.render.materials import GeomColours
from dojo.render.mesh_cast import MeshCaster

_INTERSECT = {
    int(mjtGeom.mjGEOM_PLANE): raycast.plane,
    int(mjtGeom.mjGEOM_SPHERE): raycast.sphere,
    int(mjtGeom.mjGEOM_CAPSULE): raycast.capsule,
    int(mjtGeom.mjGEOM_ELLIPSOID): raycast.ellipsoid,
    int(mjtGeom.mjGEOM_CYLINDER): raycast.cylinder,
    int(mjtGeom.mjGEOM_BOX): raycast.box,
    int(mjtGeom.mjGEOM_MESH): raycast.box,  # bounding box stand-in (meshes="boxes")
}
_MESH = int(mjtGeom.mjGEOM_MESH)
_MESH_MODES = ("triangles", "boxes")
_LIGHT = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
_SKY = np.array([0.62, 0.72, 0.85], np.float32)


class Image(NamedTuple):
  """One rendered view: uint8 RGB, metric depth along the ray and geom ids (-1 = none)."""

  rgb: jax.Array          # uint8[H, W, 3]
  depth: jax.Array        # f32[H, W]; `far` where nothing is hit
  segmentation: jax.Array  # int32[H, W]


class Renderer:
  """Renders views of one MuJoCo model; holds only static geometry tables."""

  def __init__(self, model: mujoco.MjModel, max_group: int = 2, far: float = 10.0,
               meshes: str = "triangles", leaf_size: int = 4):
    """Args:
      model: the MuJoCo model whose geoms are drawn.
      max_group: geoms in groups above this are hidden (MuJoCo shows 0-2 by default).
      far: depth reported where a ray hits nothing.
      meshes: ``"triangles"`` ray-casts mesh geoms through a BVH per mesh (built
        here, once); ``"boxes"`` draws them as their bounding boxes (cheaper).
      leaf_size: most triangles per BVH leaf.
    """
    if meshes not in _MESH_MODES:
      raise ValueError(f"meshes={meshes!r}; expected one of {_MESH_MODES}.")
    self.far = far
    self.colours = GeomColours(model)
    types = np.asarray(model.geom_type)
    visible = (np.asarray(model.geom_group) <= max_group) & (self.colours.rgba[:, 3] > 0)
    unsupported = ~np.isin(types, list(_INTERSECT))
    if np.any(unsupported & visible):
      names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, i) or f"geom {i}"
               for i in np.flatnonzero(unsupported & visible)]
      logging.warning("Renderer: geoms %s have types the ray caster does not draw "
                      "(height fields, SDFs); they are hidden.", names)
    visible &= ~unsupported
    size = np.asarray(model.geom_size, np.float32).copy()
    offset = np.zeros((model.ngeom, 3), np.float32)
    mesh = types == _MESH
    offset[mesh] = model.geom_aabb[mesh, :3]
    size[mesh] = model.geom_aabb[mesh, 3:]
    self.meshes: Optional[MeshCaster] = None
    if meshes == "triangles" and np.any(visible & mesh):
      self.meshes = MeshCaster(mesh_bvh.build(model, np.flatnonzero(visible & mesh),
                                              leaf_size))
      visible &= ~mesh  # drawn by the mesh caster, not the dense primitive pass
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
    t, geom, _ = self._cast(geom_xpos, geom_xmat, origins, dirs)
    return t, geom

  def _cast(self, geom_xpos, geom_xmat, origins, dirs):
    """``cast`` plus world normals of mesh hits (None for a model without meshes)."""
    t, geom = self._cast_primitives(geom_xpos, geom_xmat, origins, dirs)
    if self.meshes is None:
      return t, geom, None
    hit = self.meshes.cast(geom_xpos, geom_xmat, origins, dirs, t)
    on_mesh = hit.geom >= 0
    return hit.t, jnp.where(on_mesh, hit.geom, geom), hit.normal

  def _cast_primitives(self, geom_xpos, geom_xmat, origins, dirs):
    """The dense [rays x geoms] pass over every visible non-mesh geom."""
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
    """Renders from an explicit camera pose (e.g. a moving head camera).

    ``geom_rgba`` (f32[ngeom, 4], e.g. per-episode colours) defaults to the model's;
    either way MuJoCo's material rule applies (`materials.GeomColours`).
    """
    dirs = cam.ray_directions(cam_xmat)
    origins = jnp.broadcast_to(cam_pos, dirs.shape)
    t, geom, mesh_normal = self._cast(data.geom_xpos, data.geom_xmat, origins, dirs)
    hit = geom >= 0
    safe = jnp.maximum(geom, 0)
    p_world = origins + jnp.where(hit, t, 0.0)[:, None] * dirs
    rot = data.geom_xmat[safe]
    p_local = jnp.einsum("ri,rij->rj", p_world - data.geom_xpos[safe], rot) - jnp.asarray(self.offset)[safe]
    n_local = raycast.local_normal(jnp.asarray(self.types)[safe], p_local,
                                   jnp.asarray(self.size)[safe])
    normal = jnp.einsum("rij,rj->ri", rot, n_local)
    if mesh_normal is not None:
      on_mesh = jnp.asarray(self.types)[safe] == _MESH
      normal = jnp.where(on_mesh[:, None], mesh_normal, normal)
    rgba = (self.colours.resolve(jnp.asarray(geom_rgba)) if geom_rgba is not None
            else jnp.asarray(self.colours.rgba))
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
