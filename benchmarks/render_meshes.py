r"""The JAX camera on triangle meshes beside the primitive arm scene, in one run.

  python -m benchmarks.render_meshes --out=benchmarks/render_meshes_cpu.json \
      [--batch=16] [--size=64]

Frames/s (one frame = one camera view of one world) at the same batch and image size:
- ``primitives``: the ``reach`` task's cameras (front, wrist, head) through the task's
  own ``render`` on a batch of reset states; this scene has no meshes, so it takes the
  same dense path as before meshes were supported;
- ``meshes``: the Adroit hand (``gymnasium-robotics``' ``adroit_relocate.xml``: 23
  mesh geoms, ~28k triangles drawn, 11 distinct meshes) from three free cameras, with
  finger poses varied over the batch;
- ``mesh_boxes``: the same hand with ``meshes="boxes"`` (the bounding-box stand-in).
``ratios`` gives ``primitives_over_meshes`` (what the meshes cost) and
``boxes_over_triangles``. On a shared CPU, compare ratios rather than absolute rates.

  MUJOCO_GL=egl python -m benchmarks.render_meshes --figure=docs/images/mesh_camera.png

draws the docs figure instead: the JAX camera beside MuJoCo's OpenGL renderer (or,
where no OpenGL context can be made, beside an ``mj_ray`` depth image) on one view.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time

import jax
import jax.numpy as jnp
import matplotlib
import mujoco
import numpy as np
from absl import app, flags
from matplotlib import pyplot as plt
from mujoco import mjx

import dojo
from benchmarks import results as results_lib
from dojo.render import CameraSpec, Renderer, look_at

_OUT = flags.DEFINE_string("out", "benchmarks/render_meshes.json", "Where to write JSON.")
_BATCH = flags.DEFINE_integer("batch", 16, "Worlds rendered per call.")
_SIZE = flags.DEFINE_integer("size", 64, "Image height and width.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed calls (best is kept).")
_FIGURE = flags.DEFINE_string("figure", None, "Write the docs figure here and stop.")

ADROIT_PATH = ("envs", "assets", "adroit_hand", "adroit_relocate.xml")
_VIEWS = ((0.15, 0.0, 0.2), (0.2, -0.05, 0.12), (0.0, 0.25, 0.15))  # eye - mid-hand


def adroit_model() -> mujoco.MjModel:
  """The Adroit hand scene shipped by ``gymnasium-robotics`` (not downloaded)."""
  spec = importlib.util.find_spec("gymnasium_robotics")
  if spec is None:
    raise SystemExit("benchmarks.render_meshes needs the Adroit meshes: "
                     "pip install gymnasium-robotics==1.4.2")
  return mujoco.MjModel.from_xml_path(os.path.join(os.path.dirname(spec.origin),
                                                   *ADROIT_PATH))


def _timed(fn, *args) -> tuple[float, float]:
  """(compile + first call seconds, best call seconds)."""
  t0 = time.perf_counter()
  jax.block_until_ready(fn(*args))
  compile_s = time.perf_counter() - t0
  return compile_s, results_lib.best_time(fn, *args, repeats=_REPEATS.value)


def measure_primitives(batch: int, size: int) -> dict:
  """The reach task's three cameras through the task's render."""
  env = dojo.load("reach", cameras=("front", "wrist", "head"), image_height=size,
                  image_width=size)
  state = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(0), batch))
  render = jax.jit(jax.vmap(env.render))
  compile_s, best = _timed(render, state.data, state.info)
  frames = batch * 3
  return {"scene": "reach", "views": 3, "frames_per_s": frames / best,
          "seconds_per_call": best, "compile_s": compile_s}


def adroit_batch(model: mujoco.MjModel, batch: int) -> tuple[mjx.Data, np.ndarray]:
  """``batch`` hand poses (fingers from open to half closed) and the mid-hand point."""
  data = mujoco.MjData(model)
  hand = [j for j in range(model.njnt)  # wrist and finger joints, not the arm's
          if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE
          and not model.joint(j).name.startswith("AR")]
  worlds = []
  for i in range(batch):
    frac = 0.1 + 0.4 * i / max(batch - 1, 1)
    for j in hand:
      lo, hi = model.jnt_range[j]
      data.qpos[model.jnt_qposadr[j]] = lo + frac * (hi - lo)
    mujoco.mj_forward(model, data)
    worlds.append(mjx.put_data(model, data, impl="jax"))
  mid_hand = data.xpos[model.body("palm").id] + [0.0, 0.08, 0.0]
  return jax.tree.map(lambda *x: jnp.stack(x), *worlds), mid_hand


def measure_meshes(model: mujoco.MjModel, batch: int, size: int, meshes: str) -> dict:
  """The hand from three free cameras."""
  t0 = time.perf_counter()
  renderer = Renderer(model, meshes=meshes)
  build_s = time.perf_counter() - t0
  data, target = adroit_batch(model, batch)
  cam = CameraSpec("free", size, size, fovy=45.0)
  poses = [(jnp.asarray(target + v, jnp.float32),
            look_at(jnp.asarray(target + v, jnp.float32), jnp.asarray(target, jnp.float32)))
           for v in _VIEWS]

  def views(d):
    return jnp.stack([renderer.render_pose(d, eye, xmat, cam).rgb for eye, xmat in poses])

  render = jax.jit(jax.vmap(views))
  compile_s, best = _timed(render, data)
  frames = batch * len(poses)
  out = {"scene": "adroit_relocate", "meshes": meshes, "views": len(poses),
         "frames_per_s": frames / best, "seconds_per_call": best, "compile_s": compile_s,
         "build_s": build_s}
  if renderer.meshes is not None:
    bvh = renderer.meshes.bvh
    out.update(mesh_geoms=int(bvh.geom_ids.size), bvh_nodes=bvh.num_nodes,
               distinct_triangles=int(bvh.v0.shape[0]), leaf_size=bvh.leaf_size,
               bvh_depth=bvh.depth)
  return out


def _opengl_view(model, data, eye, target, size) -> np.ndarray | None:
  """MuJoCo's own render of the view (None when no OpenGL context can be made)."""
  forward = (target - eye) / np.linalg.norm(target - eye)
  cam = mujoco.MjvCamera()
  cam.type = mujoco.mjtCamera.mjCAMERA_FREE
  cam.lookat[:] = target
  cam.distance = float(np.linalg.norm(target - eye))
  cam.azimuth = float(np.degrees(np.arctan2(forward[1], forward[0])))
  cam.elevation = float(np.degrees(np.arcsin(forward[2])))
  try:
    with mujoco.Renderer(model, size, size) as gl:
      gl.update_scene(data, cam)
      return gl.render()
  except Exception as e:  # pylint: disable=broad-except
    print(f"[benchmarks.render_meshes] no OpenGL render ({e!r}); using mj_ray depth")
    return None


def write_figure(path: str, size: int = 192) -> None:
  """The JAX camera beside MuJoCo's renderer on one view of the Adroit hand."""
  matplotlib.use("Agg")
  model = adroit_model()
  data, target = adroit_batch(model, 2)
  mj_data = mujoco.MjData(model)
  mj_data.qpos[:] = np.asarray(data.qpos[1])
  mujoco.mj_forward(model, mj_data)
  eye = target + np.array(_VIEWS[0])
  # MuJoCo's free camera uses the model's global field of view.
  cam = CameraSpec("free", size, size, fovy=float(model.vis.global_.fovy))
  xmat = look_at(jnp.asarray(eye, jnp.float32), jnp.asarray(target, jnp.float32))
  one = jax.tree.map(lambda x: x[1], data)
  image = Renderer(model).render_pose(one, jnp.asarray(eye, jnp.float32), xmat, cam)
  reference = _opengl_view(model, mj_data, eye, target, size)
  titles = ["JAX camera (dojo.render, meshes)"]
  panels = [np.asarray(image.rgb)]
  if reference is None:
    geomid = np.zeros(1, np.int32)
    depth = np.array([mujoco.mj_ray(model, mj_data, eye, d, np.array([1, 1, 1, 0, 0, 0],
                                    np.uint8), 1, -1, geomid)
                      for d in np.asarray(cam.ray_directions(xmat), np.float64)])
    panels.append(np.where(depth < 0, np.nan, depth).reshape(size, size))
    titles.append("mujoco.mj_ray depth (no OpenGL)")
  else:
    panels.append(reference)
    titles.append("MuJoCo OpenGL (mujoco.Renderer)")
  fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4))
  for ax, panel, title in zip(axes, panels, titles):
    ax.imshow(panel)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
  fig.suptitle("Adroit hand (gymnasium-robotics), same view, 192x192", fontsize=10)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=100)
  print(f"wrote {path}", flush=True)


def main(argv):
  del argv
  if _FIGURE.value:
    write_figure(_FIGURE.value)
    return
  batch, size = _BATCH.value, _SIZE.value
  model = adroit_model()
  runs = {}
  for name, fn in (("primitives", lambda: measure_primitives(batch, size)),
                   ("meshes", lambda: measure_meshes(model, batch, size, "triangles")),
                   ("mesh_boxes", lambda: measure_meshes(model, batch, size, "boxes"))):
    print(f"[benchmarks.render_meshes] {name}: batch={batch} {size}x{size}", flush=True)
    runs[name] = {"batch": batch, "height": size, "width": size, **fn()}
    print(json.dumps(runs[name], indent=2), flush=True)
  ratios = {
      "primitives_over_meshes": runs["primitives"]["frames_per_s"]
                                / runs["meshes"]["frames_per_s"],
      "boxes_over_triangles": runs["mesh_boxes"]["frames_per_s"]
                              / runs["meshes"]["frames_per_s"],
  }
  print(json.dumps(ratios, indent=2), flush=True)
  results_lib.write_json(_OUT.value, {
      "machine": {"backend": jax.default_backend(), "devices": str(jax.devices()),
                  "cpu_count": os.cpu_count()},
      "runs": runs, "ratios": ratios})


if __name__ == "__main__":
  app.run(main)
