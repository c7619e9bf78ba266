"""MuJoCo Warp contact/constraint buffers: counted from the states, checked with a
clear error (dojo.physics.check_buffers)."""

import logging
import types

import mujoco
import numpy as np
import pytest
from mujoco import mjx

from dojo import physics

# Three boxes sunk 1 mm into the floor: 4 contacts each, 4 pyramid rows per contact.
XML = ("<mujoco><worldbody><geom type='plane' size='1 1 .1'/>"
       + "".join(f"<body pos='{0.1 * i} 0 0.029'><freejoint/>"
                 "<geom type='box' size='.03 .03 .03'/></body>" for i in range(3))
       + "</worldbody></mujoco>")


def _model_and_state():
  model = mujoco.MjModel.from_xml_string(XML)
  data = mujoco.MjData(model)
  mujoco.mj_forward(model, data)
  return model, data


def test_needs_are_counted_from_the_state():
  model, data = _model_and_state()
  contacts, rows = physics.buffer_needs(model, mjx.put_data(model, data, impl="jax"))
  assert data.ncon == contacts == 12
  assert rows == 48   # pyramidal friction cones: 4 rows per contact


@pytest.mark.skipif(not physics.warp_available(), reason="needs warp-lang")
def test_too_small_warp_buffers_name_the_numbers_to_set():
  model, data = _model_and_state()
  # Warp's put_data refuses too small buffers itself; a Data made empty takes the state.
  small = physics.make_data(model, "warp", naconmax=4, njmax=8).replace(qpos=data.qpos)
  with pytest.raises(ValueError, match=r"naconmax >= 12.*njmax >= 48.*default_config"):
    physics.check_buffers(model, small, 4, 8, where="boxes")
  big = mjx.put_data(model, data, impl="warp", naconmax=64, njmax=64)
  assert physics.check_buffers(model, big, 64, 64) == (12, 48)


def test_collection_warns_with_the_sizes_to_set(caplog):
  from dojo import collect   # pylint: disable=import-outside-toplevel
  model, data = _model_and_state()
  # Two steps of two envs, all four states the boxes at rest: 24 contacts at a step.
  states = {"qpos": np.tile(data.qpos, (2, 2, 1)), "qvel": np.zeros((2, 2, model.nv)),
            "mocap_pos": np.zeros((2, 2, 0, 3)), "mocap_quat": np.zeros((2, 2, 0, 4))}
  task = types.SimpleNamespace(mj_model=model,
                               config=types.SimpleNamespace(naconmax=16, njmax=64))
  with caplog.at_level(logging.WARNING):
    problem = collect.warn_buffers(task, states)
  assert "set naconmax >= 24" in problem and "njmax >=" not in problem
  assert problem in caplog.text
  task.config.naconmax = 24
  assert collect.warn_buffers(task, states) is None


def test_audit_of_a_rollout():
  # Two steps of three worlds: one world peaks at 5 contacts, the worlds at 7 together.
  contacts = np.array([[0, 3, 1], [2, 5, 0]])
  rows = np.array([[0, 12, 4], [8, 20, 0]])
  audit = physics.buffer_audit(contacts, rows, naconmax=64, njmax=16)
  assert audit["contacts_per_world_max"] == 5 and audit["contacts_all_worlds_max"] == 7
  assert audit["rows_per_world_max"] == 20 and not audit["rows_fit"]
  assert audit["batch_fits"] == 12   # 64 slots // 5 contacts per world
  assert physics.buffer_audit(np.zeros((2, 3)), np.zeros((2, 3)), 64, 16)["batch_fits"] == 64
  with pytest.raises(ValueError, match=r"\[steps, worlds"):
    physics.buffer_audit(np.zeros(3), np.zeros(3), 64, 16)
