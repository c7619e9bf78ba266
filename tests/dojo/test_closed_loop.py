"""Closed-loop episodes: the runner, success intervals, policy mode and planners in MJX."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dojo import closed_loop, controllers, planners, play, wrappers
from dojo.neural import controllers as neural_controllers
from dojo.neural.env import NeuralEnv
from dojo.neural.model_io import ModelIO
from tests.dojo.neural import fixtures as nf


class ExpertController:
  """The toy task's scripted expert, holding its action for a chunk."""

  def __init__(self, task, chunk):
    self.task, self.chunk = task, chunk

  def init(self, state):
    return jnp.zeros(())

  def act(self, carry, state, rng):
    return jnp.tile(self.task.expert_action(state, rng)[None], (self.chunk, 1)), carry


class ZeroController(ExpertController):
  def act(self, carry, state, rng):
    return jnp.zeros((self.chunk, self.task.action_size)), carry


@pytest.fixture(scope="module")
def setup():
  task = nf.toy_task()
  model, metadata = nf.toy_model(task)
  io = ModelIO.create(model, metadata, task)
  return task, model, io


def test_wilson_interval():
  np.testing.assert_allclose(closed_loop.success_interval(8, 10), (0.4902, 0.9433), atol=1e-4)
  assert closed_loop.success_interval(0, 10)[0] == 0.0
  np.testing.assert_allclose(closed_loop.success_interval(10, 10), (0.7225, 1.0), atol=1e-4)


def test_runner_tells_a_good_controller_from_a_bad_one(setup):
  task = setup[0]
  good = closed_loop.run_episodes(task, ExpertController(task, 5), jax.random.key(0), 4, 6,
                                  camera="front", batch_size=3)
  bad = closed_loop.run_episodes(task, ZeroController(task, 5), jax.random.key(0), 4, 6)
  assert good["frames"].shape == (4, 7, nf.IMAGE, nf.IMAGE, 3)
  summary = closed_loop.summarize(good)
  assert summary["episodes"] == 4 and 0 <= summary["ci95"][0] <= summary["ci95"][1] <= 1
  # The expert ends nearer the goal than doing nothing (return = -sum of distances).
  assert good["return"].mean() > bad["return"].mean()
  # Same keys, same episodes: batching does not change results.
  again = closed_loop.run_episodes(task, ExpertController(task, 5), jax.random.key(0), 4, 6)
  np.testing.assert_allclose(again["return"], good["return"], rtol=1e-5)


def test_policy_mode_runs_past_the_context_limit(setup):
  task, model, io = setup
  policy = neural_controllers.WamPolicy(model, io)
  chunks = 2 * model.dims.num_frames + 1   # the context starts over twice
  out = closed_loop.run_episodes(task, policy, jax.random.key(1), 2, chunks)
  assert out["return"].shape == (2,) and np.all(np.isfinite(out["return"]))


def test_planners_act_from_physics_and_from_dreams(setup):
  task, model, io = setup
  config = planners.PlannerConfig(horizon=2, chunk=1, num_samples=8, num_elites=2,
                                  iterations=2)
  blind = nf.toy_task(cameras=())
  oracle = controllers.physics_planner(
      planners.make_planner(wrappers.ChunkWrapper(blind, nf.CHUNK), config,
                            planners.task_reward_cost()), nf.CHUNK)
  dreaming = neural_controllers.dream_planner(
      planners.make_planner(NeuralEnv(model, io, task), config, planners.task_reward_cost()))
  for controller in (oracle, dreaming):
    out = closed_loop.run_episodes(task, controller, jax.random.key(2), 2, 3)
    assert np.all(np.isfinite(out["return"]))
  # A planner may start its first plan from holding the current pose.
  hold = controllers.physics_planner(oracle.planner, nf.CHUNK,
                                     lambda s: play.home_action(task, s))
  state = task.reset(jax.random.key(4))
  first = hold.init(state)
  assert first.shape == (2, nf.CHUNK * task.action_size)
  np.testing.assert_allclose(first[1, :task.action_size], play.home_action(task, state))
  np.testing.assert_array_equal(oracle.init(state), np.zeros_like(first))
  with pytest.raises(ValueError, match="chunk=1"):
    controllers.PlannerController(
        planners.make_planner(wrappers.ChunkWrapper(blind, nf.CHUNK),
                              planners.PlannerConfig(chunk=2, horizon=1),
                              planners.task_reward_cost()), controllers.without_pixels, 2)


def test_policies_can_be_scored_inside_the_dream(setup):
  task, model, io = setup
  env = NeuralEnv(model, io, task, max_chunks=3)
  out = closed_loop.run_episodes(env, neural_controllers.WamPolicy(model, io), jax.random.key(3),
                                 2, 3)
  assert out["success"].shape == (2,) and np.all(np.isfinite(out["return"]))


def test_episodes_beside_their_dreams(setup):
  from experiments.lib import evaluate  # pylint: disable=import-outside-toplevel
  task, model, io = setup
  env = NeuralEnv(model, io, task, max_chunks=3)
  video = evaluate.beside_reality_video(task, env, ExpertController(task, nf.CHUNK),
                                                camera="front", episodes=2, chunks=2)
  # chunks + 1 frames; two rows (reality, dream) of two episodes with white gaps.
  assert video.shape == (3, 2 * nf.IMAGE + 2, 2 * nf.IMAGE + 2, 3)
  assert video.dtype == np.uint8
  # The dream starts from the real frame (seen at the model's 16x16 and shown up-sampled):
  # its first frame is the real one, blurred; later ones need not be.
  real, dreamt = video[0, :nf.IMAGE].astype(float), video[0, nf.IMAGE + 2:].astype(float)
  coarse = lambda x: x.reshape(nf.MODEL_IMAGE, 2, -1, 2, 3).mean((1, 3))
  np.testing.assert_allclose(coarse(dreamt), coarse(real), atol=1.0)
