"""The generic serial-arm expert (``dojo.tasks.serial_arm``, ``dojo.servo``) on two arms.

``reach_dojo_arm`` is the Dojo's own arm (``dojo/assets/arm.xml``) and ``reach_panda`` a
Franka Panda with STL meshes from the ``gymnasium-robotics`` package; each is one task
file. One batched rollout per arm (compiled once) runs the expert in some envs, the
same expert with plain servo targets (no lag or load compensation) in others, and
uniform random actions in the rest.
"""

import functools

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

import dojo
from dojo import rollout
from dojo.kinematics import SerialChain
from dojo.servo import PositionServos

ARMS = ("reach_dojo_arm", "reach_panda")
NUM_EXPERT, NUM_PLAIN, NUM_RANDOM = 16, 8, 8
MID_STEP = 10


@functools.lru_cache(maxsize=None)
def _env(name):
  return dojo.load(name, cameras=())


@functools.lru_cache(maxsize=None)
def _rollout(name):
  """f32[T, N] success and distance: NUM_EXPERT expert envs, NUM_PLAIN with plain
  servo targets, NUM_RANDOM random."""
  env = _env(name)

  def policy(state, rng, args):
    data = state.data
    expert = env.expert_action(state, rng)
    q_target = env.joint_targets(data, state.info["target"])
    plain_arm = env.servos.command(data, q_target, lead=False)
    plain = env.ctrl_to_action(data.ctrl.at[env.servos.actuators].set(plain_arm), data)
    random = jax.random.uniform(rng, expert.shape, minval=-1.0, maxval=1.0)
    return jnp.where(args["mode"] == 0, expert, jnp.where(args["mode"] == 1, plain, random))

  run = rollout.make_rollout(env, policy, env.config.episode_length,
                             keep=lambda s: {"success": s.metrics["success"],
                                             "distance": s.metrics["distance"]})
  mode = np.repeat([0, 1, 2], [NUM_EXPERT, NUM_PLAIN, NUM_RANDOM])
  _, records, _ = run(jax.random.key(0), mode.size, {"mode": jnp.asarray(mode)})
  return {k: np.asarray(v) for k, v in records.items()}


@pytest.mark.parametrize("name", ARMS)
def test_expert_succeeds_and_servo_lead_helps(name):
  rec = _rollout(name)
  expert = slice(0, NUM_EXPERT)
  plain = slice(NUM_EXPERT, NUM_EXPERT + NUM_PLAIN)
  random = slice(NUM_EXPERT + NUM_PLAIN, None)
  success = rec["success"][-1]
  assert success[expert].mean() >= 0.9, f"{name}: expert success {success[expert].mean()}"
  assert success[random].mean() <= 0.25
  final = rec["distance"][-1]
  assert final[expert].mean() < 0.5 * final[random].mean()
  # Cancelling the servos' lag gets there sooner: at step 10 the expert is closer than
  # the same expert commanding its joint targets as they are.
  mid = rec["distance"][MID_STEP]
  assert mid[expert].mean() < 0.75 * mid[plain].mean(), (name, mid[expert].mean(),
                                                          mid[plain].mean())
  if name == "reach_panda":
    # No gravcomp on the Panda: plain targets sag short of the ball for good.
    assert final[plain].mean() > 4 * final[expert].mean()


def test_config_timestep_wins_over_the_model():
  env = _env("reach_dojo_arm")   # arm.xml says <option timestep="0.004"/>
  assert env.config.sim_dt == env.mj_model.opt.timestep == 0.008


# ---------------------------------------------------------------- servo model

_SERVO_XML = """
<mujoco>
  <option timestep="0.001"/>
  <worldbody>
    <body name="link">
      <joint name="hinge" axis="0 1 0" damping="2" armature="0.02"/>
      <geom type="capsule" fromto="0 0 0 0.3 0 0" size="0.02" mass="1"/>
    </body>
    <body name="other" pos="0 0 1">
      <joint name="free_hinge" axis="0 1 0"/>
      <geom size="0.05"/>
    </body>
  </worldbody>
  <actuator>
    <position name="hinge" joint="hinge" kp="40"/>
    <motor name="torque" joint="free_hinge"/>
  </actuator>
</mujoco>"""


def test_servo_command_lands_on_target_one_period_later():
  """C MuJoCo, one joint under gravity: the lead command puts the joint where asked
  after one control period; the plain target falls short by ``p11`` of the step and
  sags by the gravity load."""
  model = mujoco.MjModel.from_xml_string(_SERVO_XML)
  dt, step = 0.04, 0.15
  servos = PositionServos(model, ["hinge"], dt)
  errors = {}
  for lead in (True, False):
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    target = jnp.asarray([step])
    data.ctrl[0] = float(servos.command(data, target, lead=lead)[0])
    for _ in range(round(dt / model.opt.timestep)):
      mujoco.mj_step(model, data)
    errors[lead] = abs(data.qpos[0] - step)
  assert errors[True] < 0.1 * step, errors
  assert errors[False] > 0.5 * step, errors


def test_unknown_names_are_listed():
  model = mujoco.MjModel.from_xml_string(_SERVO_XML)
  with pytest.raises(ValueError, match=r"no joint named 'elbow'; the model's joints: "
                                       r"\['hinge', 'free_hinge'\]"):
    PositionServos(model, ["elbow"], 0.04)
  with pytest.raises(ValueError, match=r"joint 'free_hinge' has no position actuator.*"
                                       r"actuators on it: \['torque'\]"):
    PositionServos(model, ["free_hinge"], 0.04)
  with pytest.raises(ValueError, match=r"no site named 'tip'; the model's sites: \[\]"):
    SerialChain(model, "tip", ["hinge"])
  with pytest.raises(ValueError, match=r"no site named 'hand'; the model's sites: "
                                       r"\['end_effector'"):
    dojo.load("reach_panda", site="hand", impl="jax", cameras=())
  with pytest.raises(ValueError, match=r"no joint named 'j8'.*'j7', 'finger_l'"):
    dojo.load("reach_dojo_arm", arm_joints=("j1", "j8"), rest_pose=(0.0, 0.0),
              impl="jax", cameras=())
