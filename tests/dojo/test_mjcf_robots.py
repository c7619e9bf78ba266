"""Robots and scenes from MJCF or URDF files anywhere (``dojo.mjcf``, ``MjxTask``).

Models are tiny and written by the tests (a one-link arm whose link is an STL mesh),
plus the Fetch robot that ``gymnasium-robotics`` ships (its meshes read from its install
path; nothing is downloaded). Tasks are built with ``impl="jax"`` and never stepped:
loading is what is tested here.
"""

import os
import struct

import jax
import jax.numpy as jnp
import mujoco
import pytest

from dojo import mjcf
from dojo.instructions import InstructionSpace
from dojo.task import ASSETS_DIR, MjxTask

FETCH = "gymnasium_robotics:envs/assets/fetch/reach.xml"


def _write_stl(path, scale=0.05):
  """A binary STL tetrahedron."""
  v = [(0, 0, 0), (scale, 0, 0), (0, scale, 0), (0, 0, scale)]
  faces = [(v[0], v[2], v[1]), (v[0], v[1], v[3]), (v[0], v[3], v[2]), (v[1], v[2], v[3])]
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    f.write(b"\0" * 80 + struct.pack("<I", len(faces)))
    for face in faces:
      f.write(struct.pack("<3f", 0, 0, 0))
      for vertex in face:
        f.write(struct.pack("<3f", *vertex))
      f.write(b"\0\0")


def _arm_xml(mesh_file="link.stl", option='timestep="0.005"', flags="", extra=""):
  return f"""
<mujoco model="mesh_arm">
  <compiler meshdir="meshes"/>
  <option {option}>{flags}</option>
  <asset><mesh name="link" file="{mesh_file}"/></asset>
  <worldbody>
    <camera name="front" pos="0 -1 0.5" xyaxes="1 0 0 0 0.5 1"/>
    <body name="link" pos="0 0 0.1">
      <joint name="hinge" axis="0 0 1" damping="1" range="-2 2"/>
      <geom type="mesh" mesh="link" contype="0" conaffinity="0"/>
      <site name="tip" pos="0.05 0 0"/>
    </body>
  </worldbody>
  <actuator><position name="hinge" joint="hinge" kp="10" ctrlrange="-2 2"/></actuator>
  {extra}
</mujoco>"""


class MeshArm(MjxTask):
  """The smallest task on a loaded robot: the reward is the hinge angle."""

  robot_joints = ("hinge",)
  instruction_space = InstructionSpace(template="turn {way}", parts={"way": ("left",)})

  def _reset_data(self, rng, data, info):
    return data, info

  def _reward(self, data, info, action):
    return data.qpos[0], {}

  def _success(self, data, info):
    return data.qpos[0] > 1.0

  def _privileged(self, data, info):
    return data.qpos

  def expert_action(self, state, rng, noise=0.0):
    return jnp.ones(1)


def _task(path, **overrides):
  cls = type("Loaded", (MeshArm,), {"xml_path": str(path)})
  return cls(**{"impl": "jax", "cameras": (), **overrides})


def _scene(tmp_path, name="arm.xml", **kw):
  _write_stl(str(tmp_path / "meshes" / "link.stl"))
  path = tmp_path / name
  path.write_text(_arm_xml(**kw))
  return path


# ---------------------------------------------------------------- paths


def test_resolve_path_forms(tmp_path):
  fetch = mjcf.resolve_path(FETCH, ASSETS_DIR)
  assert fetch.endswith(os.path.join("gymnasium_robotics", "envs", "assets", "fetch",
                                     "reach.xml"))
  assert mjcf.resolve_path("arm.xml", ASSETS_DIR) == os.path.join(ASSETS_DIR, "arm.xml")
  path = _scene(tmp_path)
  assert mjcf.resolve_path(str(path), ASSETS_DIR) == str(path)
  with pytest.raises(FileNotFoundError, match="package 'no_such_package' is not installed"):
    mjcf.resolve_path("no_such_package:robot.xml", ASSETS_DIR)
  with pytest.raises(FileNotFoundError, match=r"nope\.xml.*inside package 'gymnasium_robotics'"):
    mjcf.resolve_path("gymnasium_robotics:envs/assets/fetch/nope.xml", ASSETS_DIR)
  with pytest.raises(FileNotFoundError, match=r"Loaded: MJCF file .*missing\.xml"):
    _task(tmp_path / "missing.xml")


def test_packaged_robot_with_meshes_and_what_mjx_says_of_it():
  path = mjcf.resolve_path(FETCH, ASSETS_DIR)
  model = mjcf.compile_spec(mjcf.load_spec(path), path)
  assert model.nmesh > 10   # STL files found next to the package's model
  assert mjcf.unsupported(model, "warp") == []
  # MJX's JAX implementation refuses collision margins on meshes; Fetch has them.
  problems = mjcf.unsupported(model, "jax")
  assert len(problems) == 1 and "margin" in problems[0] and "robot0:" in problems[0]


def test_task_from_mjcf_with_a_mesh(tmp_path):
  env = _task(_scene(tmp_path), cameras=("front",), image_height=16, image_width=16)
  assert env.mj_model.nmesh == 1 and env.action_size == 1
  state = jax.jit(env.reset)(jax.random.key(0))
  assert state.obs["pixels/front"].shape == (16, 16, 3)
  assert (state.obs["pixels/front"].std(axis=(0, 1)) > 0).any()   # the mesh is drawn


def test_task_from_urdf_with_a_mesh(tmp_path):
  """URDF goes through MuJoCo's compiler; ``<mujoco><compiler>`` places its meshes."""
  _write_stl(str(tmp_path / "meshes" / "link.stl"))
  (tmp_path / "arm.urdf").write_text("""
<robot name="urdf_arm">
  <mujoco><compiler meshdir="meshes" discardvisual="false"/></mujoco>
  <link name="base"/>
  <link name="link">
    <inertial><mass value="0.5"/>
      <inertia ixx="0.001" iyy="0.001" izz="0.001" ixy="0" ixz="0" iyz="0"/></inertial>
    <visual><geometry><mesh filename="link.stl"/></geometry></visual>
  </link>
  <joint name="hinge" type="revolute"><parent link="base"/><child link="link"/>
    <axis xyz="0 0 1"/><limit lower="-2" upper="2" effort="5" velocity="1"/></joint>
</robot>""")

  class UrdfArm(MeshArm):
    xml_path = str(tmp_path / "arm.urdf")

    def _edit_spec(self, spec):
      # A URDF has no actuators: the task adds the servo it drives.
      spec.add_actuator(name="hinge", target="hinge", trntype=mujoco.mjtTrn.mjTRN_JOINT,
                        gainprm=[10] + [0] * 9, biasprm=[0, -10, -1] + [0] * 7,
                        biastype=mujoco.mjtBias.mjBIAS_AFFINE, ctrlrange=[-2, 2],
                        ctrllimited=True)

  env = UrdfArm(impl="jax", cameras=())
  assert env.mj_model.nmesh == 1 and env.action_size == 1
  assert mujoco.mj_name2id(env.mj_model, mujoco.mjtObj.mjOBJ_JOINT, "hinge") >= 0


# ---------------------------------------------------------------- bad input


def test_missing_and_malformed_mesh_files_are_named(tmp_path):
  missing = _scene(tmp_path, "missing_mesh.xml", mesh_file="nope.stl")
  with pytest.raises(FileNotFoundError) as err:
    _task(missing)
  message = str(err.value)
  assert "mesh 'link'" in message
  assert os.path.join(str(tmp_path), "meshes", "nope.stl") in message

  (tmp_path / "meshes" / "broken.stl").write_bytes(b"not an stl file")
  broken = _scene(tmp_path, "broken_mesh.xml", mesh_file="broken.stl")
  with pytest.raises(ValueError, match=r"cannot compile .*broken_mesh\.xml; the error is "
                                       r"about mesh 'link' \(.*broken\.stl\)"):
    _task(broken)


def test_everything_mjx_cannot_run_is_listed_in_one_error(tmp_path):
  path = _scene(tmp_path, "unsupported.xml",
                option='integrator="implicit" solver="PGS"',
                flags='<flag energy="enable" midphase="disable"/>',
                extra='<sensor><jointlimitpos joint="hinge"/></sensor>')
  with pytest.raises(ValueError) as err:
    _task(path)
  message = str(err.value)
  assert "Loaded: the model" in message and "impl='jax'" in message
  for line in ('option integrator=implicit: MJX (jax) supports Euler, RK4, implicitfast; '
               'set <option integrator="implicitfast"/>',
               'option solver=PGS: MJX (jax) supports CG, Newton; '
               'set <option solver="Newton"/>',
               'remove <flag energy="enable"/>',
               'remove <flag midphase="disable"/>',
               "sensor(s) ['#0']: sensor ['mjSENS_JOINTLIMITPOS'] is not supported by "
               "MJX (jax)"):
    assert line in message, (line, message)
  assert message.count("\n  - ") == 5


# ---------------------------------------------------------------- timestep


def test_timestep_comes_from_the_model_unless_the_config_sets_it(tmp_path):
  path = _scene(tmp_path)   # <option timestep="0.005"/>
  env = _task(path)
  assert env.config.sim_dt == 0.005 and env.mj_model.opt.timestep == 0.005
  assert env.n_substeps == 8   # ctrl_dt 0.04
  env = _task(path, sim_dt=0.01)
  assert env.config.sim_dt == 0.01 and env.mj_model.opt.timestep == 0.01
  assert env.n_substeps == 4
