"""Ray-primitive intersections in a geom's local frame, vectorised over rays x geoms.

Every function takes local ray origins and directions ``o, d: [R, G, 3]`` and geom
sizes ``size: [G, 3]`` (MuJoCo's convention per type) and returns the distance along
the ray ``t: [R, G]`` (``inf`` where the ray misses).
"""

from __future__ import annotations

import jax.numpy as jnp

INF = jnp.inf
_EPS = 1e-9


def _positive(t, valid):
  return jnp.where(valid & (t > 1e-6), t, INF)


def _quadratic_min_root(a, b, c):
  """Smallest positive root of a t^2 + 2 b t + c = 0 (inf when none)."""
  disc = b * b - a * c
  sq = jnp.sqrt(jnp.maximum(disc, 0.0))
  a = jnp.where(jnp.abs(a) < _EPS, _EPS, a)
  t0 = (-b - sq) / a
  t1 = (-b + sq) / a
  ok = disc >= 0
  t0 = _positive(t0, ok)
  t1 = _positive(t1, ok)
  return jnp.minimum(t0, t1)


def plane(o, d, size):
  """z = 0 plane seen from above, bounded by size[0:2] when those are positive."""
  t = -o[..., 2] / jnp.where(jnp.abs(d[..., 2]) < _EPS, -_EPS, d[..., 2])
  p = o + t[..., None] * d
  sx, sy = size[:, 0], size[:, 1]
  inside = ((sx <= 0) | (jnp.abs(p[..., 0]) <= sx)) & ((sy <= 0) | (jnp.abs(p[..., 1]) <= sy))
  return _positive(t, (d[..., 2] < 0) & inside)


def sphere(o, d, size):
  r = size[:, 0]
  return _quadratic_min_root((d * d).sum(-1), (o * d).sum(-1), (o * o).sum(-1) - r * r)


def ellipsoid(o, d, size):
  s = jnp.maximum(size, _EPS)
  o, d = o / s, d / s
  return _quadratic_min_root((d * d).sum(-1), (o * d).sum(-1), (o * o).sum(-1) - 1.0)


def _cylinder_side(o, d, r, h):
  a = d[..., 0] ** 2 + d[..., 1] ** 2
  b = o[..., 0] * d[..., 0] + o[..., 1] * d[..., 1]
  c = o[..., 0] ** 2 + o[..., 1] ** 2 - r * r
  disc = b * b - a * c
  sq = jnp.sqrt(jnp.maximum(disc, 0.0))
  a_safe = jnp.where(a < _EPS, _EPS, a)
  ts = []
  for sign in (-1.0, 1.0):
    t = (-b + sign * sq) / a_safe
    z = o[..., 2] + t * d[..., 2]
    ts.append(_positive(t, (disc >= 0) & (a > _EPS) & (jnp.abs(z) <= h)))
  return jnp.minimum(*ts)


def cylinder(o, d, size):
  r, h = size[:, 0], size[:, 1]
  t = _cylinder_side(o, d, r, h)
  dz = jnp.where(jnp.abs(d[..., 2]) < _EPS, _EPS, d[..., 2])
  for cap in (-1.0, 1.0):
    tc = (cap * h - o[..., 2]) / dz
    p = o + tc[..., None] * d
    t = jnp.minimum(t, _positive(tc, p[..., 0] ** 2 + p[..., 1] ** 2 <= r * r))
  return t


def capsule(o, d, size):
  r, h = size[:, 0], size[:, 1]
  t = _cylinder_side(o, d, r, h)
  for cap in (-1.0, 1.0):
    oc = o.at[..., 2].add(-cap * h)
    t = jnp.minimum(t, _quadratic_min_root((d * d).sum(-1), (oc * d).sum(-1),
                                           (oc * oc).sum(-1) - r * r))
  return t


def box(o, d, size):
  """Slab test; ``size`` holds half-extents."""
  d_safe = jnp.where(jnp.abs(d) < _EPS, _EPS, d)
  t1 = (-size - o) / d_safe
  t2 = (size - o) / d_safe
  t_near = jnp.minimum(t1, t2).max(-1)
  t_far = jnp.maximum(t1, t2).min(-1)
  hit = t_near <= t_far
  t = jnp.where(t_near > 1e-6, t_near, t_far)  # origin inside: exit point
  return _positive(t, hit)


def local_normal(geom_type, p, size):
  """Outward normal at local hit point ``p: [R, 3]`` for per-ray geom types/sizes."""
  from mujoco import mjtGeom  # local import keeps this module numpy-free at import
  s = jnp.maximum(size, _EPS)
  z_axis = jnp.zeros_like(p).at[..., 2].set(1.0)
  sphere_n = p
  ellipsoid_n = p / (s * s)
  capsule_n = p.at[..., 2].set(p[..., 2] - jnp.clip(p[..., 2], -s[..., 1], s[..., 1]))
  on_cap = jnp.abs(p[..., 2]) >= s[..., 1] * (1 - 1e-3)
  cyl_n = jnp.where(on_cap[..., None], z_axis * jnp.sign(p[..., 2:3]), p.at[..., 2].set(0.0))
  q = jnp.abs(p) / s
  axis = jnp.argmax(q, axis=-1)
  box_n = jnp.take_along_axis(jnp.sign(p), axis[..., None], -1) * (
      jnp.arange(3) == axis[..., None])
  choices = {
      int(mjtGeom.mjGEOM_PLANE): z_axis,
      int(mjtGeom.mjGEOM_SPHERE): sphere_n,
      int(mjtGeom.mjGEOM_ELLIPSOID): ellipsoid_n,
      int(mjtGeom.mjGEOM_CAPSULE): capsule_n,
      int(mjtGeom.mjGEOM_CYLINDER): cyl_n,
      int(mjtGeom.mjGEOM_BOX): box_n,
      int(mjtGeom.mjGEOM_MESH): box_n,
  }
  n = jnp.zeros_like(p)
  for t, value in choices.items():
    n = jnp.where((geom_type == t)[..., None], value, n)
  return n / jnp.maximum(jnp.linalg.norm(n, axis=-1, keepdims=True), _EPS)
