"""The neural simulator honours the Env contract and dreams what ``wam.dream`` dreams."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from dojo import planners, wrappers
from dojo.neural.env import NeuralEnv
from dojo.neural.model_io import ModelIO, ModelTaskMismatchError
from tests.dojo.neural import fixtures as nf
from wam import dream


@pytest.fixture(scope="module")
def setup():
  task = nf.toy_task()
  model, metadata = nf.toy_model(task)
  io = ModelIO.create(model, metadata, task)
  env = NeuralEnv(model, io, task)
  return task, model, metadata, io, env


@pytest.fixture(scope="module")
def jitted(setup):
  env = setup[-1]
  return jax.jit(env.reset), jax.jit(env.step)


def test_contract_shapes_and_sliding_context(setup):
  task, model, _, io, _ = setup
  env = NeuralEnv(model, io, task, max_chunks=5)
  reset, step = jax.jit(env.reset), jax.jit(env.step)
  assert env.action_size == nf.CHUNK * task.action_size
  assert env.max_plan_steps == model.dims.num_frames - 1   # one training window
  sizes = env.observation_size
  assert sizes["pixels/front"] == (nf.MODEL_IMAGE, nf.MODEL_IMAGE, 3)
  assert sizes["joints"] == task.observation_size["joints"]
  state = reset(jax.random.key(0))
  assert state.obs["pixels/front"].dtype == jnp.uint8
  rewards, blocks = [], []
  for i in range(5):
    state = step(state, jnp.full((env.action_size,), 0.2))
    rewards.append(float(state.reward))
    blocks.append(int(state.data["block"]))
    assert set(state.obs) == set(sizes)
    assert float(state.done) == float(i == 4)  # max_chunks
  assert np.all(np.isfinite(rewards))
  assert float(state.metrics["dream_end"]) == 1.0
  # Never a block position beyond the training window: the context starts over.
  assert blocks == [1, 2, 0, 1, 2], blocks


def test_reward_comes_from_the_task_on_dreamed_joints(setup, jitted):
  task, *_ , env = setup
  reset, step = jitted
  state = step(reset(jax.random.key(1)), jnp.full((env.action_size,), -0.3))
  data = state.data["physics"]
  tip = data.site_xpos[task.site_id("tip")]
  assert np.allclose(float(state.reward), -float(jnp.linalg.norm(tip - state.info["goal"])),
                     atol=1e-5)
  np.testing.assert_allclose(np.asarray(data.qpos[:2]), np.asarray(state.obs["joints"]),
                             atol=1e-6)


def test_steps_equal_an_open_loop_dream(setup, jitted):
  """Stepping the env = ``wam.dream.dream`` with the same context, actions and noise."""
  _, model, _, io, env = setup
  reset, step = jitted
  state = reset(jax.random.key(2))
  obs = io.observation(state.obs)
  tokens, mask = io.instruction(state.info["instruction"])
  context = {k: v[None, None] for k, v in obs.items()
             if k not in ("camera_mask", "embodiment")}
  context.update(instruction=tokens[None], instruction_mask=mask[None],
                 camera_mask=obs["camera_mask"][None], embodiment=obs["embodiment"][None])
  actions = jax.random.uniform(jax.random.key(3), (3, env.action_size), minval=-1,
                               maxval=1)
  latents = []
  for a in actions:
    state = step(state, a)
    latents.append(state.data["latents"])
  chunks = io.actions_to_model(actions.reshape(3, nf.CHUNK, -1))[None]
  out = dream.dream(model, context, state.info["dream_rng"], horizon=3, actions=chunks,
                    flow_steps=1, decode=False)
  np.testing.assert_allclose(np.stack(latents), np.asarray(out.latents[0]), atol=1e-4)


def test_deterministic_and_batched(setup, jitted):
  env = setup[-1]
  reset, step = jitted
  a = jnp.full((env.action_size,), 0.5)
  s1 = step(reset(jax.random.key(4)), a)
  s2 = step(reset(jax.random.key(4)), a)
  np.testing.assert_array_equal(s1.obs["pixels/front"], s2.obs["pixels/front"])
  batched = wrappers.VmapWrapper(env, batch_size=2)
  states = batched.reset(jax.random.key(5))
  states = jax.jit(batched.step)(states, jnp.stack([a, -a]))
  assert states.obs["joints"].shape == (2, 2)
  # A NaN action ends only its own env.
  states = jax.jit(batched.step)(states, jnp.stack([a, jnp.full_like(a, jnp.nan)]))
  np.testing.assert_array_equal(np.asarray(states.metrics["invalid_action"]), [0.0, 1.0])
  assert np.all(np.isfinite(np.asarray(states.obs["joints"])))


def test_planner_runs_in_the_dream(setup):
  env = setup[-1]
  config = planners.PlannerConfig(method="cem", horizon=2, chunk=1, num_samples=8,
                                  num_elites=2, iterations=2)
  planner = planners.make_planner(env, config, planners.task_reward_cost())
  state = env.reset(jax.random.key(6))
  plan, info = planner(state, jax.random.key(7))
  assert plan.shape == (2, env.action_size)
  assert np.all(np.diff(np.asarray(info["costs"])) <= 1e-6)
  too_long = planners.PlannerConfig(horizon=env.max_plan_steps + 1, chunk=1)
  with pytest.raises(ValueError, match="max_plan_steps"):
    planners.make_planner(env, too_long, planners.task_reward_cost())


def test_mismatched_task_or_settings_are_clear_errors(setup):
  task, model, metadata, io, _ = setup
  wrong_camera = nf.toy_task()
  wrong_camera._cameras = {}  # renders nothing the model reads
  with pytest.raises(ModelTaskMismatchError, match="camera 'front'"):
    ModelIO.create(model, metadata, wrong_camera)
  with pytest.raises(ModelTaskMismatchError, match="integer factor"):
    ModelIO.create(model, metadata, nf.toy_task(image_height=24, image_width=24))
  other = type(task)
  other_robot = other.__new__(other)
  other_robot.__dict__.update(task.__dict__)
  other_robot.embodiment = "another_robot"
  with pytest.raises(ModelTaskMismatchError, match="another_robot"):
    ModelIO.create(model, metadata, other_robot)
  with pytest.raises(ValueError, match="max_chunks"):
    NeuralEnv(model, io, task, max_chunks=0)
  with pytest.raises(ValueError, match="expected"):
    NeuralEnv(model, io, task).step(setup[-1].reset(jax.random.key(0)), jnp.zeros(3))


@pytest.mark.slow
def test_brax_ppo_trains_inside_the_dream(setup):
  from dojo.brax_training import ppo_train  # pylint: disable=import-outside-toplevel
  env = setup[-1]
  progress = []
  make_policy, params, _ = ppo_train(
      env, num_timesteps=256, num_envs=8, episode_length=4, num_evals=2, unroll_length=4,
      batch_size=8, num_minibatches=2, num_updates_per_batch=1, learning_rate=1e-3,
      seed=0, progress_fn=lambda step, metrics: progress.append(
          float(metrics["eval/episode_reward"])))
  assert progress and np.all(np.isfinite(progress))
  policy = make_policy(params, deterministic=True)
  state = env.reset(jax.random.key(8))
  action, _ = policy(state.obs, jax.random.key(9))
  assert action.shape == (env.action_size,)


def test_a_diverging_dream_ends_its_episode_with_a_flag(setup):
  task, model, metadata, io, _ = setup
  # A copy of the model whose state head predicts NaN (the toy's joints have no range;
  # joints beyond a range by DIVERGENCE_MARGIN end a dream the same way).
  graphdef, state = nnx.split(model)
  broken = nnx.merge(graphdef, jax.tree.map(lambda x: x, state))
  broken.state_head.bias.value = jnp.full_like(broken.state_head.bias.value, jnp.nan)
  env = NeuralEnv(broken, ModelIO.create(broken, metadata, task), task)
  first = env.reset(jax.random.key(0))
  after = jax.jit(env.step)(first, jnp.zeros(env.action_size))
  assert float(after.metrics["dream_diverged"]) == 1.0 and float(after.done) == 1.0
  assert float(after.reward) == 0.0
  # It keeps its last good state.
  np.testing.assert_allclose(after.obs["joints"], first.obs["joints"], atol=1e-5)
  assert np.all(np.isfinite(np.asarray(after.obs["pixels/front"], np.float32)))
  healthy = NeuralEnv(model, io, task)
  ok = jax.jit(healthy.step)(healthy.reset(jax.random.key(0)), jnp.zeros(healthy.action_size))
  assert float(ok.metrics["dream_diverged"]) == 0.0
