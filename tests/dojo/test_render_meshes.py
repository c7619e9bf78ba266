"""Triangle meshes and materials in the JAX camera, checked against ``mujoco.mj_ray``.

The real-mesh tests use the Adroit hand that ``gymnasium-robotics`` ships (STL meshes
inside the package, read from its install path; nothing is downloaded).
"""

import importlib.util
import os

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from mujoco import mjx

from dojo.render import CameraSpec, Renderer, look_at
from dojo.render import mesh_bvh
from tests.dojo.toy import TOY_XML

_GROUPS_0_2 = np.array([1, 1, 1, 0, 0, 0], np.uint8)  # the renderer's max_group=2


def _adroit_path() -> str:
  spec = importlib.util.find_spec("gymnasium_robotics")
  if spec is None:
    pytest.fail("The mesh camera tests read the Adroit hand's meshes from the "
                "'gymnasium-robotics' package, which is not installed: "
                "pip install gymnasium-robotics==1.4.2")
  path = os.path.join(os.path.dirname(spec.origin), "envs", "assets", "adroit_hand",
                      "adroit_relocate.xml")
  assert os.path.exists(path), f"gymnasium-robotics no longer ships {path}"
  return path


@pytest.fixture(scope="module")
def adroit():
  """The Adroit hand with its fingers half closed, and a camera pose on the palm."""
  model = mujoco.MjModel.from_xml_path(_adroit_path())
  data = mujoco.MjData(model)
  for j in range(model.njnt):
    if (model.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE
        and not model.joint(j).name.startswith("AR")):
      lo, hi = model.jnt_range[j]
      data.qpos[model.jnt_qposadr[j]] = lo + 0.35 * (hi - lo)
  mujoco.mj_forward(model, data)
  target = data.xpos[model.body("palm").id] + [0.0, 0.08, 0.0]  # mid-hand
  eye = target + [0.15, 0.0, 0.2]
  xmat = np.asarray(look_at(jnp.asarray(eye), jnp.asarray(target)))
  return model, data, eye, xmat


def _mj_ray_image(model, data, eye, dirs):
  geomid = np.zeros(1, np.int32)
  depth, geom = [], []
  for d in np.asarray(dirs, np.float64):
    depth.append(mujoco.mj_ray(model, data, eye, d, _GROUPS_0_2, 1, -1, geomid))
    geom.append(geomid[0])
  return np.array(depth), np.array(geom)


def test_adroit_hand_depth_matches_mj_ray(adroit):
  model, data, eye, xmat = adroit
  renderer = Renderer(model)
  cam = CameraSpec("free", 32, 32, fovy=50.0)
  image = jax.jit(lambda d: renderer.render_pose(d, jnp.asarray(eye, jnp.float32),
                                                 jnp.asarray(xmat), cam))(
      mjx.put_data(model, data, impl="jax"))
  ref_depth, ref_geom = _mj_ray_image(model, data, eye,
                                      cam.ray_directions(jnp.asarray(xmat)))
  seg = np.asarray(image.segmentation).reshape(-1)
  depth = np.asarray(image.depth).reshape(-1)
  mesh_ids = renderer.meshes.bvh.geom_ids
  on_mesh = np.isin(ref_geom, mesh_ids)
  # The view is mostly hand, and sees several geoms that share one mesh.
  assert on_mesh.mean() > 0.25
  shared = model.geom_dataid[np.unique(ref_geom[on_mesh])]
  assert np.bincount(shared).max() >= 2
  assert (seg == ref_geom).mean() > 0.995
  same = (seg == ref_geom) & (ref_geom >= 0)
  np.testing.assert_allclose(depth[same], ref_depth[same], rtol=1e-4, atol=1e-4)
  # The bounding-box stand-in is visibly wrong on the same view (the test can fail).
  boxes = Renderer(model, meshes="boxes").render_pose(
      mjx.put_data(model, data, impl="jax"), jnp.asarray(eye, jnp.float32),
      jnp.asarray(xmat), cam)
  box_depth = np.asarray(boxes.depth).reshape(-1)
  assert (np.abs(box_depth - np.where(ref_geom >= 0, ref_depth, 10.0))[on_mesh]
          > 1e-3).mean() > 0.3


def test_adroit_parts_take_their_material_colour(adroit):
  model, data, eye, xmat = adroit
  renderer = Renderer(model)
  viz = model.material("MatViz").id
  mesh_ids = renderer.meshes.bvh.geom_ids
  assert np.all(model.geom_matid[mesh_ids] == viz)
  np.testing.assert_allclose(renderer.colours.rgba[mesh_ids],
                             model.mat_rgba[[viz] * len(mesh_ids)])
  cam = CameraSpec("free", 32, 32, fovy=50.0)  # the shape compiled above: no recompile
  image = jax.jit(lambda d: renderer.render_pose(d, jnp.asarray(eye, jnp.float32),
                                                 jnp.asarray(xmat), cam))(
      mjx.put_data(model, data, impl="jax"))
  rgb = np.asarray(image.rgb, np.float32)[np.isin(np.asarray(image.segmentation), mesh_ids)]
  # MatViz is (0.9, 0.7, 0.5): skin-coloured, never the default grey.
  assert len(rgb) > 200
  assert np.all(rgb[:, 0] > rgb[:, 1]) and np.all(rgb[:, 1] > rgb[:, 2])


_TETRA = "0 0 0  .2 0 0  0 .2 0  0 0 .2"
_CUBE = "-.1 -.1 -.1  .1 -.1 -.1  -.1 .1 -.1  .1 .1 -.1  -.1 -.1 .1  .1 -.1 .1  -.1 .1 .1  .1 .1 .1"
_HANDMADE = f"""<mujoco><asset>
    <mesh name="tetra" vertex="{_TETRA}" face="0 2 1  0 1 3  0 3 2  1 2 3"/>
    <mesh name="cube" vertex="{_CUBE}"/></asset>
  <worldbody>
    <geom name="a" type="mesh" mesh="tetra"/>
    <geom name="b" type="mesh" mesh="tetra" pos="1 0 0" euler="0 0 90"/>
    <geom name="c" type="mesh" mesh="cube" pos="0 1 0" euler="0 0 45"/>
  </worldbody></mujoco>"""


def test_hand_made_meshes_exact_hits():
  model = mujoco.MjModel.from_xml_string(_HANDMADE)
  data = mujoco.MjData(model)
  mujoco.mj_forward(model, data)
  # MuJoCo moved the tetrahedron's vertices to its centroid: the pose must undo it.
  assert np.linalg.norm(model.mesh_pos[0]) > 0.04
  renderer = Renderer(model)
  assert renderer.meshes.bvh.root.tolist()[0] == renderer.meshes.bvh.root.tolist()[1]
  s2 = np.sqrt(2.0)
  rays = [  # origin, direction, expected distance, expected geom
      ((0.05, 0.05, 1.0), (0, 0, -1), 1.0 - 0.1, 0),       # slanted face x+y+z=.2
      ((-1.0, 0.05, 0.05), (1, 0, 0), 1.0, 0),              # the face x=0
      ((0.95, 0.05, 1.0), (0, 0, -1), 0.9, 1),              # the rotated copy
      ((1.05, 0.05, 1.0), (0, 0, -1), np.inf, -1),          # beside the rotated copy
      ((0.02, 0.5, 0.03), (0, 1, 0), 0.5 - 0.1 * s2 + 0.02, 2),  # 45-degree cube face
      ((0.3, 0.3, 1.0), (0, 0, -1), np.inf, -1),
  ]
  origins = jnp.asarray([r[0] for r in rays], jnp.float32)
  dirs = jnp.asarray([r[1] for r in rays], jnp.float32)
  dx = mjx.put_data(model, data, impl="jax")
  t, geom = jax.jit(renderer.cast)(dx.geom_xpos, dx.geom_xmat, origins, dirs)
  expected_t = np.array([r[2] for r in rays])
  np.testing.assert_array_equal(np.asarray(geom), [r[3] for r in rays])
  np.testing.assert_allclose(np.asarray(t), expected_t, rtol=0, atol=2e-6)
  geomid = np.zeros(1, np.int32)
  for (o, d, want, _) in rays:
    got = mujoco.mj_ray(model, data, np.array(o, float), np.array(d, float), None, 1, -1,
                        geomid)
    assert np.isclose(got, want if np.isfinite(want) else -1.0, atol=1e-9)


def test_bvh_holds_every_triangle_once():
  model = mujoco.MjModel.from_xml_path(_adroit_path())
  mesh_geoms = np.flatnonzero(model.geom_type == mujoco.mjtGeom.mjGEOM_MESH)
  bvh = mesh_bvh.build(model, mesh_geoms, leaf_size=4)
  distinct = np.unique(model.geom_dataid[mesh_geoms])
  assert bvh.v0.shape[0] == model.mesh_facenum[distinct].sum()
  leaves = bvh.child[:, 0] < 0
  assert bvh.tri_count[leaves].sum() == bvh.v0.shape[0]
  assert bvh.tri_count.max() <= 4
  starts = np.sort(bvh.tri_start[leaves])
  assert starts[0] == 0 and np.all(np.diff(starts) > 0)
  # Every node's box holds its children's boxes.
  inner = np.flatnonzero(~leaves)
  for k in (0, 1):
    c = bvh.child[inner, k]
    assert np.all(bvh.lo[inner] <= bvh.lo[c]) and np.all(bvh.hi[inner] >= bvh.hi[c])


def test_material_colour_rule_and_texture_mean():
  model = mujoco.MjModel.from_xml_string("""<mujoco><asset>
      <texture name="t" type="2d" builtin="flat" rgb1=".2 .4 .6" width="8" height="8"/>
      <material name="red" rgba="1 0 0 1"/>
      <material name="tex" texture="t" rgba="1 1 1 1"/></asset>
    <worldbody>
      <geom type="sphere" size=".1" material="red"/>
      <geom type="sphere" size=".1" material="red" rgba="0 1 0 1" pos=".3 0 0"/>
      <geom type="sphere" size=".1" rgba=".1 .2 .3 1" pos=".6 0 0"/>
      <geom type="sphere" size=".1" material="tex" pos=".9 0 0"/>
    </worldbody></mujoco>""")
  colours = Renderer(model).colours
  np.testing.assert_allclose(colours.rgba[:3], [[1, 0, 0, 1], [0, 1, 0, 1], [.1, .2, .3, 1]])
  np.testing.assert_allclose(colours.rgba[3], [.2, .4, .6, 1], atol=3e-3)
  # A run-time table (e.g. per-episode colours) follows the same rule.
  table = jnp.asarray(model.geom_rgba).at[2].set(jnp.array([0.5, 0.5, 0.5, 1.0]))
  np.testing.assert_allclose(np.asarray(colours.resolve(table))[:3],
                             [[1, 0, 0, 1], [0, 1, 0, 1], [.5, .5, .5, 1]])


def test_scenes_without_meshes_keep_the_primitive_path(adroit):
  assert Renderer(mujoco.MjModel.from_xml_string(TOY_XML)).meshes is None
  model = adroit[0]
  boxes = Renderer(model, meshes="boxes")
  assert boxes.meshes is None
  assert np.any(model.geom_type[boxes.order] == mujoco.mjtGeom.mjGEOM_MESH)
  with pytest.raises(ValueError, match="meshes='nope'"):
    Renderer(model, meshes="nope")


def test_mesh_render_under_jit_vmap(adroit):
  model, data, eye, xmat = adroit
  renderer = Renderer(model)
  cam = CameraSpec("free", 16, 16, fovy=50.0)
  ds = []
  for bend in (0.0, 0.5):
    d = mujoco.MjData(model)
    d.qpos[:] = data.qpos
    d.qpos[model.joint("WRJ0").qposadr[0]] = bend
    mujoco.mj_forward(model, d)
    ds.append(d)
  batch = jax.tree.map(lambda *x: jnp.stack(x),
                       *[mjx.put_data(model, d, impl="jax") for d in ds])
  render = jax.jit(jax.vmap(lambda d: renderer.render_pose(
      d, jnp.asarray(eye, jnp.float32), jnp.asarray(xmat), cam)))
  images = render(batch)
  assert images.rgb.shape == (2, 16, 16, 3) and images.rgb.dtype == jnp.uint8
  assert not np.array_equal(np.asarray(images.depth[0]), np.asarray(images.depth[1]))
  dirs = cam.ray_directions(jnp.asarray(xmat))
  for i, d in enumerate(ds):  # every world of the batch matches its own mj_ray image
    _, ref_geom = _mj_ray_image(model, d, eye, dirs)
    assert (np.asarray(images.segmentation[i]).reshape(-1) == ref_geom).mean() > 0.99
