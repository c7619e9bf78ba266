"""Bounding volume hierarchies over mesh triangles, built once per model on the host.

Each distinct mesh gets one binary BVH in its own frame: the frame of
``model.mesh_vert``, which MuJoCo has already recentred and aligned at compile time
(``mesh_pos``/``mesh_quat`` record that shift, and ``geom_xpos``/``geom_xmat`` already
include it), so a vertex ``v`` of a geom's mesh is at ``geom_xpos + geom_xmat @ v``.
Geoms that share a mesh share its tree. The trees are flattened into fixed-size numpy
arrays that `dojo.render.mesh_cast` traverses inside jit/vmap.
"""

from __future__ import annotations

import dataclasses

import mujoco
import numpy as np


@dataclasses.dataclass(frozen=True)
class MeshBVH:
  """The trees of the meshes of some mesh geoms, concatenated (numpy, mesh frames).

  A node is a leaf when ``child[n] == (-1, -1)``; its triangles are
  ``tri_start[n] : tri_start[n] + tri_count[n]`` of the triangle arrays, which hold
  the triangles in leaf order as a vertex and two edges (Möller-Trumbore's form).
  """

  lo: np.ndarray         # f32[N, 3] node box minimum
  hi: np.ndarray         # f32[N, 3] node box maximum
  child: np.ndarray      # i32[N, 2] children, -1 for leaves
  tri_start: np.ndarray  # i32[N]
  tri_count: np.ndarray  # i32[N]
  v0: np.ndarray         # f32[T, 3]
  e1: np.ndarray         # f32[T, 3] v1 - v0
  e2: np.ndarray         # f32[T, 3] v2 - v0
  normal: np.ndarray     # f32[T, 3] unit face normal (zero for degenerate faces)
  geom_ids: np.ndarray   # i32[G] the mesh geoms drawn (instances)
  root: np.ndarray       # i32[G] root node of each geom's mesh
  leaf_size: int         # most triangles in one leaf
  depth: int             # most nodes on a root-to-leaf path

  @property
  def num_nodes(self) -> int:
    return int(self.lo.shape[0])


def mesh_triangles(model: mujoco.MjModel, mesh_id: int) -> np.ndarray:
  """The triangles f32[F, 3, 3] of mesh ``mesh_id`` in its (recentred) mesh frame."""
  vadr, fadr = model.mesh_vertadr[mesh_id], model.mesh_faceadr[mesh_id]
  verts = np.asarray(model.mesh_vert[vadr:vadr + model.mesh_vertnum[mesh_id]], np.float32)
  faces = np.asarray(model.mesh_face[fadr:fadr + model.mesh_facenum[mesh_id]])
  return verts[faces]


def _build_tree(tris: np.ndarray, leaf_size: int):
  """Median-split BVH of ``tris``: node arrays, the triangle order and the depth."""
  centroid = tris.mean(axis=1)
  lo, hi, child, start, count, order = [], [], [], [], [], []
  depth, n_ordered = 1, 0
  pending = [(-1, 0, np.arange(len(tris)), 1)]  # (parent, slot, triangles, depth)
  while pending:
    parent, slot, idx, level = pending.pop()
    node = len(lo)
    if parent >= 0:
      child[parent][slot] = node
    pts = tris[idx].reshape(-1, 3)
    lo.append(pts.min(0))
    hi.append(pts.max(0))
    child.append([-1, -1])
    depth = max(depth, level)
    if len(idx) <= leaf_size:
      start.append(n_ordered)
      count.append(len(idx))
      order.append(idx)
      n_ordered += len(idx)
      continue
    start.append(0)
    count.append(0)
    c = centroid[idx]
    axis = int(np.argmax(c.max(0) - c.min(0)))
    half = len(idx) // 2
    split = np.argpartition(c[:, axis], half)
    # The right child is pushed first so the left one is built (and numbered) first.
    pending.append((node, 1, idx[split[half:]], level + 1))
    pending.append((node, 0, idx[split[:half]], level + 1))
  return (np.asarray(lo, np.float32), np.asarray(hi, np.float32),
          np.asarray(child, np.int32), np.asarray(start, np.int32),
          np.asarray(count, np.int32), np.concatenate(order), depth)


def build(model: mujoco.MjModel, geom_ids: np.ndarray, leaf_size: int = 4) -> MeshBVH:
  """BVHs for the meshes of ``geom_ids`` (mesh geoms), one tree per distinct mesh.

  Args:
    model: the compiled model (its ``mesh_vert``/``mesh_face`` tables).
    geom_ids: the mesh geoms to draw; several may share one mesh.
    leaf_size: most triangles per leaf (more: shallower trees, more tests per leaf).

  Returns:
    The concatenated, flattened trees.
  """
  geom_ids = np.asarray(geom_ids, np.int32)
  mesh_ids = np.asarray(model.geom_dataid[geom_ids])
  if np.any(mesh_ids < 0):
    raise ValueError(f"Geoms {geom_ids[mesh_ids < 0].tolist()} have no mesh.")
  parts = {k: [] for k in ("lo", "hi", "child", "start", "count", "tris")}
  root_of, n_nodes, n_tris, depth = {}, 0, 0, 1
  for mesh_id in dict.fromkeys(mesh_ids.tolist()):  # distinct, in order
    tris = mesh_triangles(model, mesh_id)
    lo, hi, child, start, count, order, d = _build_tree(tris, leaf_size)
    parts["lo"].append(lo)
    parts["hi"].append(hi)
    parts["child"].append(np.where(child >= 0, child + n_nodes, -1))
    parts["start"].append(start + n_tris)
    parts["count"].append(count)
    parts["tris"].append(tris[order])
    root_of[mesh_id] = n_nodes
    n_nodes += len(lo)
    n_tris += len(tris)
    depth = max(depth, d)
  tris = np.concatenate(parts["tris"]).astype(np.float32)
  e1, e2 = tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0]
  normal = np.cross(e1, e2)
  norm = np.linalg.norm(normal, axis=-1, keepdims=True)
  normal = np.where(norm > 0, normal / np.maximum(norm, 1e-30), 0.0).astype(np.float32)
  return MeshBVH(
      lo=np.concatenate(parts["lo"]), hi=np.concatenate(parts["hi"]),
      child=np.concatenate(parts["child"]), tri_start=np.concatenate(parts["start"]),
      tri_count=np.concatenate(parts["count"]), v0=tris[:, 0].copy(), e1=e1, e2=e2,
      normal=normal, geom_ids=geom_ids,
      root=np.asarray([root_of[m] for m in mesh_ids.tolist()], np.int32),
      leaf_size=leaf_size, depth=depth)
