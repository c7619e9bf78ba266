"""Rays against triangle meshes in JAX: a stack traversal of `mesh_bvh` trees.

Every ray keeps its own stack of (geom, node) entries in a fixed-size array. The stack
starts with the root of every mesh geom whose box the ray enters (nearest on top), and
a bounded ``lax.while_loop`` pops one entry per ray and iteration: an inner node pushes
the children whose boxes the ray enters before its nearest hit so far (the nearer one
on top), a leaf tests its triangles (Möller-Trumbore, two-sided like ``mj_ray``). Rays
run in lockstep; the loop ends when every stack is empty. Nothing branches in Python on
traced values, so it jits, vmaps and scans on CPU, GPU and TPU.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dojo.render.mesh_bvh import MeshBVH

_EPS = 1e-12
_T_MIN = 1e-6  # hits closer than this are ignored, as for the primitives


class MeshHit(NamedTuple):
  """Nearest mesh hit per ray."""

  t: jax.Array         # f32[R]; the given bound where no mesh is nearer
  geom: jax.Array      # int32[R]; the mesh geom id, -1 where no mesh is nearer
  normal: jax.Array    # f32[R, 3]; world unit normal facing the ray (zero on miss)
  iterations: jax.Array  # int32[]; loop iterations the traversal took (all rays)


def ray_triangles(o: jax.Array, d: jax.Array, v0: jax.Array, e1: jax.Array,
                  e2: jax.Array) -> jax.Array:
  """Möller-Trumbore: distance along ``d`` to each triangle, ``inf`` on a miss.

  Arrays broadcast over leading axes and end in 3. Both faces count (as in ``mj_ray``).
  """
  p = jnp.cross(d, e2)
  det = jnp.sum(e1 * p, -1)
  ok = jnp.abs(det) > _EPS
  inv = 1.0 / jnp.where(ok, det, 1.0)
  s = o - v0
  u = jnp.sum(s * p, -1) * inv
  q = jnp.cross(s, e1)
  v = jnp.sum(d * q, -1) * inv
  t = jnp.sum(e2 * q, -1) * inv
  hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > _T_MIN)
  return jnp.where(hit, t, jnp.inf)


def _slab(o, inv_d, lo, hi):
  """Entry and exit distances of rays through boxes (entry clamped at 0)."""
  t1 = (lo - o) * inv_d
  t2 = (hi - o) * inv_d
  enter = jnp.maximum(jnp.minimum(t1, t2).max(-1), 0.0)
  leave = jnp.maximum(t1, t2).min(-1)
  return enter, leave


class MeshCaster:
  """The device-side tables of a `MeshBVH` and the traversal over them."""

  def __init__(self, bvh: MeshBVH):
    self.bvh = bvh
    self.num_geoms = int(bvh.geom_ids.shape[0])
    self.num_nodes = bvh.num_nodes
    # A pop adds at most one entry net (two children), so this never overflows.
    self.stack_size = self.num_geoms + bvh.depth + 1
    # Each (geom, node) pair is popped at most once per ray: a hard bound on the loop.
    self.max_iterations = int(sum(self._tree_size(r) for r in bvh.root))
    if self.num_geoms * self.num_nodes >= 2**31:
      raise ValueError("Too many mesh nodes x mesh geoms for int32 stack entries.")
    # Packed tables, so one iteration gathers boxes, links and triangles once each.
    self.box = np.stack([bvh.lo, bvh.hi], 1)                                # [N, 2, 3]
    self.links = np.concatenate(
        [bvh.child, bvh.tri_start[:, None], bvh.tri_count[:, None]], 1)     # [N, 4]
    self.tris = np.stack([bvh.v0, bvh.e1, bvh.e2], 1)                      # [T, 3, 3]

  def _tree_size(self, root: int) -> int:
    size, pending = 0, [int(root)]
    while pending:
      n = pending.pop()
      size += 1
      pending.extend(int(c) for c in self.bvh.child[n] if c >= 0)
    return size

  def cast(self, geom_xpos: jax.Array, geom_xmat: jax.Array, origins: jax.Array,
           dirs: jax.Array, t_bound: jax.Array) -> MeshHit:
    """Nearest mesh hit of rays ``origins, dirs: [R, 3]`` closer than ``t_bound: [R]``.

    Args:
      geom_xpos: f32[ngeom, 3] geom positions (``Data.geom_xpos``).
      geom_xmat: f32[ngeom, 3, 3] geom orientations (``Data.geom_xmat``).
      origins: ray origins in the world.
      dirs: unit ray directions in the world.
      t_bound: distances of the nearest hits found so far (``inf`` for none); only
        nearer mesh hits are reported, and the bound prunes the traversal.

    Returns:
      The nearest mesh hits.
    """
    b = self.bvh
    n_rays, k_leaf = dirs.shape[0], b.leaf_size
    rows = jnp.arange(n_rays)
    box, links, tris = (jnp.asarray(x) for x in (self.box, self.links, self.tris))
    root = jnp.asarray(b.root)

    # Rays in every mesh geom's frame: [R, G, 3] each, packed as [R, G, 3, 3].
    rot = geom_xmat[b.geom_ids]
    o = jnp.einsum("rgi,gij->rgj", origins[:, None, :] - geom_xpos[b.geom_ids][None], rot)
    d = jnp.einsum("ri,gij->rgj", dirs, rot)
    inv_d = 1.0 / jnp.where(jnp.abs(d) < _EPS, _EPS, d)
    local = jnp.stack([o, d, inv_d], 2)

    # Initial stacks: the roots the ray enters before t_bound, farthest at the bottom.
    enter, leave = _slab(o, inv_d, box[root, 0][None], box[root, 1][None])
    hit = (enter <= leave) & (enter < t_bound[:, None])
    order = jnp.argsort(jnp.where(hit, -enter, jnp.inf), axis=1)
    n_hit = hit.sum(1).astype(jnp.int32)
    pad = self.stack_size - self.num_geoms
    stack = jnp.pad(order * self.num_nodes + root[order], ((0, 0), (0, pad)))
    stack_t = jnp.pad(jnp.take_along_axis(enter, order, 1), ((0, 0), (0, pad)))

    def cond(state):
      _, _, sp, _, _, _, it = state
      return jnp.any(sp > 0) & (it < self.max_iterations)

    def body(state):
      stack, stack_t, sp, t_best, best_geom, best_tri, it = state
      top = jnp.maximum(sp - 1, 0)
      entry = jnp.take_along_axis(stack, top[:, None], 1)[:, 0]
      t_entry = jnp.take_along_axis(stack_t, top[:, None], 1)[:, 0]
      active = (sp > 0) & (t_entry < t_best)
      sp = jnp.maximum(sp - 1, 0)
      geom, node = entry // self.num_nodes, entry % self.num_nodes
      ray = local[rows, geom]                                   # [R, 3, 3]
      oi, di, inv_i = ray[:, 0], ray[:, 1], ray[:, 2]
      link = links[node]                                        # [R, 4]
      kids = link[:, :2]
      leaf = kids[:, 0] < 0

      # Leaf: its triangles.
      slot = jnp.arange(k_leaf)
      tri = jnp.minimum(link[:, 2:3] + slot, tris.shape[0] - 1)  # [R, K]
      valid = (slot < link[:, 3:4]) & (active & leaf)[:, None]
      corner = tris[tri]                                        # [R, K, 3, 3]
      t = ray_triangles(oi[:, None], di[:, None], corner[..., 0, :], corner[..., 1, :],
                        corner[..., 2, :])
      t = jnp.where(valid, t, jnp.inf)
      j = jnp.argmin(t, axis=1)
      t_leaf = jnp.take_along_axis(t, j[:, None], 1)[:, 0]
      better = t_leaf < t_best
      t_best = jnp.where(better, t_leaf, t_best)
      best_geom = jnp.where(better, geom, best_geom)
      best_tri = jnp.where(better, jnp.take_along_axis(tri, j[:, None], 1)[:, 0], best_tri)

      # Inner node: push the children the ray enters before t_best, the nearer on top.
      safe = jnp.maximum(kids, 0)
      kid_box = box[safe]                                       # [R, 2, 2, 3]
      c_enter, c_leave = _slab(oi[:, None], inv_i[:, None], kid_box[:, :, 0],
                               kid_box[:, :, 1])
      push = (active & ~leaf)[:, None] & (c_enter <= c_leave) & (c_enter < t_best[:, None])
      near = jnp.where(c_enter[:, 0] <= c_enter[:, 1], 0, 1)
      slots = jnp.arange(self.stack_size)[None]
      for which in (1 - near, near):  # far first
        pushed = jnp.take_along_axis(push, which[:, None], 1)[:, 0]
        # A dense select rather than a scatter: cheaper on CPU, and writing above the
        # top is harmless when nothing is pushed.
        at = (slots == jnp.minimum(sp, self.stack_size - 1)[:, None])
        entry = geom * self.num_nodes + jnp.take_along_axis(safe, which[:, None], 1)[:, 0]
        stack = jnp.where(at, entry[:, None], stack)
        stack_t = jnp.where(at, jnp.take_along_axis(c_enter, which[:, None], 1), stack_t)
        sp = sp + pushed.astype(jnp.int32)
      return stack, stack_t, sp, t_best, best_geom, best_tri, it + 1

    init = (stack, stack_t, n_hit, t_bound, jnp.full((n_rays,), -1, jnp.int32),
            jnp.zeros((n_rays,), jnp.int32), jnp.zeros((), jnp.int32))
    _, _, _, t_best, best, tri, iterations = jax.lax.while_loop(cond, body, init)

    found = best >= 0
    geom_local = jnp.maximum(best, 0)
    n = jnp.einsum("rij,rj->ri", rot[geom_local], jnp.asarray(b.normal)[tri])
    n = jnp.where((jnp.sum(n * dirs, -1) > 0)[:, None], -n, n)
    return MeshHit(t=t_best,
                   geom=jnp.where(found, jnp.asarray(b.geom_ids)[geom_local], -1),
                   normal=jnp.where(found[:, None], n, 0.0), iterations=iterations)

