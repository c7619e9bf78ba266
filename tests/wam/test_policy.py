"""``wam.policy.Policy``: task-free closed-loop control from instructions and observations."""

import types

import jax
import numpy as np
import pytest

from benchmarks.serve import random_model, random_observation
from benchmarks.toy_runs import write_policy_run as write_run  # test_serving imports it
from wam import policy as policy_lib
from wam.policy import InstructionError, ObservationError, Policy


@pytest.fixture(scope="module")
def built():
  return random_model("tiny")   # building a model is slow: one per module


@pytest.fixture(scope="module")
def policy(built):
  return Policy(*built)


def _observations(policy, n, seed=0, scale=2):
  rng = np.random.default_rng(seed)
  return [random_observation(policy, rng, scale) for _ in range(n)]


def _rollout(policy, instruction, observations, seed=0):
  session = policy.new_session(instruction, seed=seed)
  out = []
  for obs in observations:
    session, actions = policy.act(session, obs)
    out.append(actions)
  return session, out


def test_actions_in_robot_units_any_integer_image_scale_one_trace(policy):
  assert policy.describe()["action"] == 4 and policy.action_chunk == 2
  session = policy.new_session("pick up the cube")
  for scale in (2, 1, 4):   # 32x32 and 64x64 area-down-sampled, 16x16 as is
    session, actions = policy.act(session, _observations(policy, 1, scale=scale)[0])
    assert actions.shape == (2, 4) and actions.dtype == np.float32
    assert np.isfinite(actions).all()
  # Up-sampling by an integer factor is exact too.
  small = {k: (v[::4, ::4] if k.startswith("image_") else v)
           for k, v in _observations(policy, 1)[0].items()}
  session, _ = policy.act(session, small)
  assert policy.traces == 1, "the hot path must be traced once per policy"
  # Robot units: the action statistics (gripper mean 0.5, std 0.2) are undone.
  normalised = (actions - np.array([0.0, 0.1, -0.1, 0.5])) / np.array([0.5, 0.5, 1.0, 0.2])
  assert not np.allclose(normalised, actions)


def test_sessions_are_independent_values(policy):
  a_obs, b_obs = _observations(policy, 3, seed=1), _observations(policy, 3, seed=2)
  _, alone_a = _rollout(policy, "open the drawer", a_obs, seed=3)
  _, alone_b = _rollout(policy, "close the drawer", b_obs, seed=4)
  a, b = policy.new_session("open the drawer", seed=3), policy.new_session(
      "close the drawer", seed=4)
  for i in range(3):   # interleaved
    a, actions_a = policy.act(a, a_obs[i])
    b, actions_b = policy.act(b, b_obs[i])
    np.testing.assert_array_equal(actions_a, alone_a[i])
    np.testing.assert_array_equal(actions_b, alone_b[i])
  assert not np.allclose(alone_a[0], alone_b[0])
  # A session is a value: acting again from an old one replays the same chunk.
  first = policy.new_session("open the drawer", seed=3)
  _, again = policy.act(first, a_obs[0])
  np.testing.assert_array_equal(again, alone_a[0])
  # The seed is the session's noise: another seed, other actions.
  _, other = policy.act(policy.new_session("open the drawer", seed=5), a_obs[0])
  assert not np.allclose(other, alone_a[0])


def test_context_starts_over_when_the_window_is_used_up(policy):
  session = policy.new_session("stack the blocks")
  blocks, lengths = [], []
  for obs in _observations(policy, 2 * policy.window + 1, seed=5):
    session, _ = policy.act(session, obs)
    blocks.append(session.block)
    lengths.append(int(session.cache.length))
  w = policy.window
  assert blocks == [1, 2, 3, 1, 2, 3, 1] and w == 3
  assert lengths[:w] == lengths[w:2 * w] and lengths[0] < lengths[1] < lengths[2]
  assert session.step == 2 * w + 1


def test_proprio_is_optional_and_masked(policy):
  obs = _observations(policy, 1, seed=6)[0]
  without = {k: v for k, v in obs.items() if k != "proprio"}
  _, a = policy.act(policy.new_session("x"), obs)
  _, b = policy.act(policy.new_session("x"), without)
  _, c = policy.act(policy.new_session("x"), {**obs, "proprio": obs["proprio"] + 1.0})
  assert np.isfinite(b).all()
  assert not np.allclose(a, b) and not np.allclose(a, c)


@pytest.mark.parametrize("change, match", [
    (lambda o: {**o, "image_side": o["image_front"]}, "Unknown camera 'side'"),
    (lambda o: {k: v for k, v in o.items() if k != "image_wrist"}, "Missing 'image_wrist'"),
    (lambda o: {**o, "image_front": o["image_front"][:30, :30]}, "image_front: 30x30 does not"),
    (lambda o: {**o, "image_front": o["image_front"].astype(np.float32)}, "must be uint8"),
    (lambda o: {**o, "image_front": o["image_front"][..., :1]}, r"uint8 \[H, W, 3\]"),
    (lambda o: {**o, "joints": o["joints"][:2]}, r"joints must be f32\[3\]"),
    (lambda o: {**o, "joints": np.array([0.0, np.nan, 1.0])}, "non-finite"),
    (lambda o: {**o, "proprio": np.zeros(5)}, r"proprio must be f32\[2\]"),
    (lambda o: {**o, "velocity": np.zeros(3)}, "Unknown observation field 'velocity'"),
    (lambda o: [1, 2, 3], "is a mapping"),
])
def test_bad_observations_name_the_field(policy, change, match):
  session = policy.new_session("x")
  with pytest.raises(ObservationError, match=match):
    policy.act(session, change(_observations(policy, 1)[0]))


def test_instructions_are_checked_not_cut(policy):
  policy.new_session("é" * 12)   # 24 utf-8 bytes: the limit
  with pytest.raises(InstructionError, match="25 utf-8 bytes; the model reads at most 24"):
    policy.new_session("é" * 12 + "a")
  with pytest.raises(InstructionError, match="encoding 'sentencepiece' is unknown"):
    policy.new_session("pick", encoding="sentencepiece")
  with pytest.raises(InstructionError, match="must be a string"):
    policy.new_session(b"pick")
  with pytest.raises(InstructionError, match="not encodable as utf-8"):
    policy.new_session("lone \udc80 surrogate")
  assert policy.new_session("pick", encoding="bytes").step == 0


def test_metadata_that_does_not_describe_the_robot_fails_clearly(built):
  model, metadata = built
  with pytest.raises(ValueError, match="Unknown dataset 'human'"):
    Policy(model, metadata, dataset="human")
  with pytest.raises(ValueError, match="'wrist' is not in the target layout"):
    Policy(model, metadata, layouts={"joints": [["wrist", 3]]})
  with pytest.raises(ValueError, match="flow_steps"):
    Policy(model, metadata, flow_steps=0)
  mixture = types.SimpleNamespace(**vars(metadata))
  mixture.extra = {**metadata.extra, "datasets": ["robot", "other"],
                   "embodiments": ["toy_arm", "hand"]}
  with pytest.raises(ValueError, match="pass embodiment= and layouts="):
    Policy(model, mixture, dataset="other")
  with pytest.raises(ValueError, match=r"lacks \['action'\]"):
    Policy(model, mixture, dataset="other", embodiment="hand",
           layouts={"joints": [["arm", 3]], "proprio": [["grip", 2]]})
  # Given explicitly, the robot of a mixture needs no dataset directory.
  explicit = Policy(model, mixture, dataset="robot", embodiment="toy_arm",
                    layouts=metadata.extra["layouts"])
  assert explicit.embodiment_id == 0 and explicit.describe()["action"] == 4


def test_same_actions_as_the_dojo_wam_policy():
  """On a Dojo task, ``Policy`` acts exactly as ``dojo.neural.controllers.WamPolicy`` (clipped)."""
  from dojo.neural.controllers import WamPolicy  # pylint: disable=import-outside-toplevel
  from dojo.neural.model_io import ModelIO  # pylint: disable=import-outside-toplevel
  from tests.dojo.neural import fixtures as nf  # pylint: disable=import-outside-toplevel
  task = nf.toy_task()
  model, metadata = nf.toy_model(task)
  reference = WamPolicy(model, ModelIO.create(model, metadata, task))
  policy = Policy(model, metadata)
  rng = np.random.default_rng(7)
  instruction = 1
  session = policy.new_session(task.instruction_space.text(instruction), seed=11)
  info = {"instruction": np.int32(instruction)}
  carry = reference.init(types.SimpleNamespace(info=info))
  ref_act = jax.jit(lambda c, obs, key: reference.act(c, types.SimpleNamespace(obs=obs), key))
  for step in range(2 * model.dims.num_frames):   # across a restart of the context
    obs = {"pixels/front": rng.integers(0, 256, (nf.IMAGE, nf.IMAGE, 3), dtype=np.uint8),
           "joints": rng.normal(size=2).astype(np.float32),
           "proprio": rng.normal(size=task.observation_size["proprio"]).astype(np.float32)}
    expected, carry = ref_act(carry, obs, jax.random.fold_in(jax.random.key(11), step))
    session, actions = policy.act(session, {"image_front": obs["pixels/front"],
                                            "joints": obs["joints"], "proprio": obs["proprio"]})
    np.testing.assert_allclose(np.clip(actions, -1, 1), expected, atol=1e-5)


def test_from_workdir_loads_a_checkpoint(built, tmp_path):
  """A run directory (orbax checkpoint + run metadata) gives the same policy."""
  model, metadata = built
  write_run(model, metadata, str(tmp_path))
  loaded = Policy.from_workdir(str(tmp_path), flow_steps=2)
  direct = Policy(model, metadata, flow_steps=2)
  assert loaded.describe() == direct.describe()
  obs = _observations(direct, 1)[0]
  _, expected = direct.act(direct.new_session("go", seed=2), obs)
  _, actions = loaded.act(loaded.new_session("go", seed=2), obs)
  np.testing.assert_allclose(actions, expected, atol=1e-6)
  with pytest.raises(FileNotFoundError):
    policy_lib.Policy.from_workdir(str(tmp_path / "missing"))
