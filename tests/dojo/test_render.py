"""The JAX camera: parity with MuJoCo's ray casting, cameras, both physics impls."""

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from mujoco import mjx

from dojo import physics
from dojo.render import CameraSpec, Renderer, look_at
from tests.dojo.toy import TOY_XML


@pytest.fixture(scope="module")
def scene():
  model = mujoco.MjModel.from_xml_string(TOY_XML)
  data = mujoco.MjData(model)
  data.qpos[:2] = [0.4, -0.7]
  mujoco.mj_forward(model, data)
  return model, data


def test_depth_matches_mujoco_mj_ray(scene):
  model, data = scene
  renderer = Renderer(model)
  cam = CameraSpec.from_model(model, "front", 24, 32)
  dx = mjx.put_data(model, data, impl="jax")
  image = jax.jit(lambda d: renderer.render(d, cam))(dx)
  dirs = np.asarray(cam.ray_directions(jnp.asarray(data.cam_xmat[cam.camera_id].reshape(3, 3))))
  origin = data.cam_xpos[cam.camera_id]
  geomid = np.zeros(1, np.int32)
  ref_depth, ref_geom = [], []
  for d in dirs:
    dist = mujoco.mj_ray(model, data, origin, d, np.array([1, 1, 1, 0, 0, 0], np.uint8),
                         1, -1, geomid)
    ref_depth.append(dist)
    ref_geom.append(geomid[0])
  ref_depth = np.array(ref_depth).reshape(24, 32)
  ref_geom = np.array(ref_geom).reshape(24, 32)
  depth = np.asarray(image.depth)
  seg = np.asarray(image.segmentation)
  hit = ref_geom >= 0
  assert hit.mean() > 0.5
  np.testing.assert_array_equal(seg >= 0, hit)
  assert (seg[hit] == ref_geom[hit]).mean() > 0.99
  np.testing.assert_allclose(depth[hit], ref_depth[hit], rtol=1e-4, atol=1e-4)


def test_every_primitive_matches_mj_ray():
  xml = """<mujoco><worldbody>
    <geom type="sphere" size=".1" pos="-.6 0 0"/>
    <geom type="capsule" size=".08 .12" pos="-.3 0 0" euler="30 40 0"/>
    <geom type="ellipsoid" size=".1 .15 .07" pos="0 0 0" euler="10 0 50"/>
    <geom type="cylinder" size=".09 .1" pos=".3 0 0" euler="60 0 20"/>
    <geom type="box" size=".08 .1 .12" pos=".6 0 0" euler="20 30 40"/>
    <camera name="c" pos="0 -1.5 .3" xyaxes="1 0 0 0 .2 1"/></worldbody></mujoco>"""
  model = mujoco.MjModel.from_xml_string(xml)
  data = mujoco.MjData(model)
  mujoco.mj_forward(model, data)
  renderer = Renderer(model)
  cam = CameraSpec.from_model(model, "c", 40, 80)
  image = renderer.render(mjx.put_data(model, data, impl="jax"), cam)
  dirs = np.asarray(cam.ray_directions(jnp.asarray(data.cam_xmat[0].reshape(3, 3))))
  geomid = np.zeros(1, np.int32)
  ref = np.array([mujoco.mj_ray(model, data, data.cam_xpos[0], d, None, 1, -1, geomid)
                  for d in dirs]).reshape(40, 80)
  hit = ref >= 0
  seg = np.asarray(image.segmentation)
  # Silhouettes agree except at a few grazing-edge pixels.
  assert ((seg >= 0) == hit).mean() > 0.995
  both = hit & (seg >= 0)
  np.testing.assert_allclose(np.asarray(image.depth)[both], ref[both], rtol=1e-3, atol=1e-3)
  assert set(np.unique(seg[seg >= 0])) == set(range(5))


def test_renders_inside_jit_vmap_scan_with_warp_data():
  model = mujoco.MjModel.from_xml_string(TOY_XML)
  renderer = Renderer(model)
  cam = CameraSpec.from_model(model, "wrist", 16, 16)
  mx = physics.put_model(model, "warp")
  d0 = physics.make_data(model, "warp", naconmax=64, njmax=32)

  def episode(q):
    d = mjx.forward(mx, d0.replace(qpos=d0.qpos.at[0].set(q)))

    def body(d, _):
      d = mjx.step(mx, d.replace(ctrl=jnp.array([1.0, 0.0])))
      return d, renderer.render(d, cam).rgb

    return jax.lax.scan(body, d, None, length=3)[1]

  frames = jax.jit(jax.vmap(episode))(jnp.array([0.0, 1.5]))
  assert frames.shape == (2, 3, 16, 16, 3)
  assert not np.array_equal(np.asarray(frames[0, -1]), np.asarray(frames[1, -1]))


def test_free_camera_pose_and_errors(scene):
  model, data = scene
  renderer = Renderer(model)
  cam = CameraSpec("head", 20, 20, fovy=60.0)
  dx = mjx.put_data(model, data, impl="jax")
  eye, target = jnp.array([0.0, -0.6, 0.9]), jnp.array([0.2, 0.1, 0.1])
  image = renderer.render_pose(dx, eye, look_at(eye, target), cam)
  center = np.asarray(image.depth)[10, 10]
  np.testing.assert_allclose(center, float(jnp.linalg.norm(eye - target)), rtol=0.15)
  with pytest.raises(ValueError, match="free camera"):
    renderer.render(dx, cam)
  with pytest.raises(ValueError, match="Unknown camera 'nope'"):
    CameraSpec.from_model(model, "nope")


def test_material_guard_prevents_mjx_ray_crash():
  spec = mujoco.MjSpec.from_string(
      "<mujoco><worldbody><body><freejoint/><geom type='sphere' size='.1'/></body>"
      "</worldbody></mujoco>")
  physics.ensure_material(spec)
  model = spec.compile()
  assert model.nmat == 1
  dx = mjx.make_data(model, impl="jax")
  dx = mjx.forward(mjx.put_model(model, impl="jax"), dx)
  dist, geom = mjx.ray(mjx.put_model(model, impl="jax"), dx, jnp.array([0, 0, 1.0]),
                       jnp.array([0, 0, -1.0]))
  np.testing.assert_allclose(float(dist), 0.9, atol=1e-5)
  assert int(geom) == 0
