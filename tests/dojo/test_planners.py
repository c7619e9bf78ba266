"""CEM and MPPI planners on a point mass with a known optimum, and on the MJX toy task."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dojo import planners
from dojo.planners import PlannerConfig
from tests.dojo.point_env import PointEnv, optimal_actions, optimal_cost

STEPS = 16  # horizon * chunk of the configs below
CONFIGS = {
    "cem": PlannerConfig(method="cem", horizon=4, chunk=4, num_samples=256,
                         num_elites=16, iterations=10, init_std=1.0),
    "mppi": PlannerConfig(method="mppi", horizon=4, chunk=4, num_samples=256,
                          iterations=10, init_std=1.0, temperature=0.05, smoothing=0.5),
}
# Small configs for tests about mechanics rather than quality (fast to compile).
SMALL = PlannerConfig(horizon=4, chunk=4, num_samples=16, num_elites=4, iterations=2)


@pytest.fixture(scope="module")
def env():
  return PointEnv()


@pytest.fixture(scope="module")
def state(env):
  return env.reset(jax.random.key(0))


@pytest.fixture(scope="module")
def planner_of(env):
  cache = {}

  def get(method):
    if method not in cache:
      cache[method] = planners.make_planner(env, CONFIGS[method], planners.task_reward_cost())
    return cache[method]

  return get


@pytest.fixture(scope="module")
def cost_of(env, state):
  """Jitted cost of a plan ``[STEPS, 2]`` from ``state`` under a cost."""
  return jax.jit(lambda actions, cost: planners.rollout_cost(env, cost, state, actions),
                 static_argnums=1)


def _final_position(env, state, plan):
  return np.asarray(state.data + env.gain * jnp.sum(jnp.clip(plan, -1, 1), axis=0))


@pytest.mark.parametrize("method,slack", [("cem", 0.05), ("mppi", 0.15)])
def test_planner_reaches_known_optimum(env, state, planner_of, method, slack):
  best = optimal_cost(env, STEPS)
  still = STEPS * float(jnp.sum((env.goal - env.start) ** 2))  # ~15x the optimum
  plan, info = planner_of(method)(state, jax.random.key(1))
  assert plan.shape == (STEPS, 2)
  assert np.all(np.abs(np.asarray(plan)) <= 1.0)
  cost = float(info["cost"])
  assert best - 1e-5 <= cost <= best + slack, (cost, best, still)
  # Only a few of the 16 summed terms see the end, so it is close, not exact (MPC is).
  np.testing.assert_allclose(_final_position(env, state, plan), env.goal, atol=0.1)
  # The reported cost is the returned plan's.
  cost_of = jax.jit(lambda a: planners.rollout_cost(env, planners.task_reward_cost(),
                                                    state, a))
  np.testing.assert_allclose(float(cost_of(plan)), cost, rtol=1e-5)


def test_more_iterations_are_never_worse(env, state, planner_of):
  _, long_info = planner_of("cem")(state, jax.random.key(1))
  costs = np.asarray(long_info["costs"])
  assert np.all(np.diff(costs) <= 1e-6), costs
  short = planners.make_planner(env, dataclasses.replace(CONFIGS["cem"], iterations=3),
                                planners.task_reward_cost())
  _, short_info = short(state, jax.random.key(1))
  assert float(long_info["cost"]) <= float(short_info["cost"]) + 1e-6


def test_deterministic_and_compiled_once(env, planner_of):
  planner = planner_of("mppi")
  s1, s2 = env.reset(jax.random.key(0)), env.reset(jax.random.key(5))
  a, _ = planner(s1, jax.random.key(7))
  b, _ = planner(s1, jax.random.key(7))
  c, _ = planner(s2, jax.random.key(8))
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert not np.array_equal(np.asarray(a), np.asarray(c))
  assert planner._plan._cache_size() == 1  # pylint: disable=protected-access


def test_prior_samples_with_the_optimum_are_returned(env, state, planner_of):
  best = optimal_actions(env, STEPS)
  prior = jnp.stack([jnp.asarray(best), jnp.zeros((STEPS, 2))])
  plan, info = planner_of("mppi")(state, jax.random.key(1), prior_samples=prior)
  np.testing.assert_allclose(float(info["cost"]), optimal_cost(env, STEPS), atol=1e-5)
  np.testing.assert_allclose(np.asarray(plan), best, atol=1e-3)


def test_shift_plan():
  p = jnp.arange(12.0).reshape(6, 2)
  np.testing.assert_array_equal(
      planners.shift_plan(p, 2), [[4, 5], [6, 7], [8, 9], [10, 11], [10, 11], [10, 11]])
  np.testing.assert_array_equal(
      planners.shift_plan(p, 4, pad="zeros"), [[8, 9], [10, 11], [0, 0], [0, 0],
                                               [0, 0], [0, 0]])
  batched = planners.shift_plan(jnp.stack([p, -p]), 2)
  np.testing.assert_array_equal(batched[1], -planners.shift_plan(p, 2))


@pytest.mark.parametrize("warm_start", [True, False])
def test_warm_start_starts_from_the_shifted_plan(env, state, cost_of, warm_start):
  config = dataclasses.replace(SMALL, warm_start=warm_start)
  cost = planners.task_reward_cost()
  previous = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (STEPS, 2)), jnp.float32)
  _, info = planners.plan(env, state, jax.random.key(0), config, cost,
                          previous_plan=previous)
  start = planners.shift_plan(previous, 4) if warm_start else jnp.zeros((STEPS, 2))
  np.testing.assert_allclose(float(info["mean_costs"][0]), float(cost_of(start, cost)),
                             rtol=1e-5)


def test_goal_costs(env, state, cost_of):
  best = jnp.asarray(optimal_actions(env, STEPS))
  still = jnp.zeros((STEPS, 2))
  reward_cost = planners.task_reward_cost()
  joints_cost = planners.goal_joints_cost(env.goal)
  # The point env's reward is minus the squared distance to the goal.
  np.testing.assert_allclose(float(cost_of(best, joints_cost)),
                             float(cost_of(best, reward_cost)), rtol=1e-5)
  # Discount and terminal weight: total = sum_t d^t c_t + w c_T.
  per_step = jnp.array([1.0, 2.0, 3.0])
  weighted = planners.Cost(step=lambda s: 0.0, discount=0.5, terminal_weight=2.0)
  np.testing.assert_allclose(float(weighted.total(per_step)), 1 + 1 + 0.75 + 6)
  # Pixels: reaching the goal beats standing still.
  cam_env = PointEnv(image_size=8)
  image_cost = planners.goal_image_cost(cam_env.render(cam_env.goal), "front")
  image_cost.validate(cam_env)
  cam_state = cam_env.reset(jax.random.key(0))
  run = jax.jit(lambda a: planners.rollout_cost(cam_env, image_cost, cam_state, a))
  assert float(run(best)) < 0.5 * float(run(still))


def test_mpc_reaches_goal_in_a_batch(planner_of):
  planner = planner_of("cem")
  noisy = PointEnv(start_noise=0.2)  # acts from varied starts; plans in the planner's env
  run = jax.jit(jax.vmap(functools.partial(planners.mpc_rollout, noisy, planner,
                                           num_steps=12)))
  out = run(jax.random.split(jax.random.key(0), 2))
  assert out["actions"].shape == (2, 12, 2)
  assert out["plan_cost"].shape == (2, 3)
  assert bool(jnp.all(out["success"]))
  final = np.asarray(out["records"]["obs"]["joints"][:, -1])
  np.testing.assert_allclose(final, np.tile(noisy.goal, (2, 1)), atol=0.05)


# ---------------------------------------------------------------------- bad input

@pytest.mark.parametrize("overrides,match", [
    (dict(num_elites=32, num_samples=16), r"num_elites \(32\) must be in \[1, num_samples"),
    (dict(method="ilqr"), "method 'ilqr'"),
    (dict(horizon=0), "horizon must be a positive int"),
    (dict(min_std=2.0, init_std=1.0), "min_std"),
    (dict(temperature=0.0), "temperature must be positive"),
    (dict(momentum=1.0), "momentum"),
])
def test_bad_config_is_a_clear_error(overrides, match):
  with pytest.raises(ValueError, match=match):
    PlannerConfig(**overrides)


def test_plan_longer_than_env_supports_is_a_clear_error():
  short_env = PointEnv(max_plan_steps=8)
  with pytest.raises(ValueError, match=r"4 \* 4 = 16 steps exceeds the env's "
                                       r"max_plan_steps \(8\)"):
    planners.make_planner(short_env, SMALL, planners.task_reward_cost())


def test_wrong_goal_shapes_are_clear_errors(env):
  with pytest.raises(ValueError, match=r"goal_joints has shape \(3,\) but the env's "
                                       r"obs\['joints'\] has shape \(2,\)"):
    planners.make_planner(env, SMALL, planners.goal_joints_cost(jnp.zeros(3)))
  cam_env = PointEnv(image_size=8)
  with pytest.raises(ValueError, match=r"goal_image has shape \(16, 16, 3\) but the "
                                       r"env's obs\['pixels/front'\] has shape \(8, 8, 3\)"):
    planners.make_planner(cam_env, SMALL,
                          planners.goal_image_cost(jnp.zeros((16, 16, 3), jnp.uint8)))
  with pytest.raises(ValueError, match=r"no obs\['pixels/wrist'\]"):
    planners.make_planner(cam_env, SMALL,
                          planners.goal_image_cost(jnp.zeros((8, 8, 3)), "wrist"))


def test_wrong_action_sizes_are_clear_errors(env, state):
  cost = planners.task_reward_cost()
  with pytest.raises(ValueError, match=r"previous_plan has \(steps, action_size\) "
                                       r"\(16, 3\), expected .* = \(16, 2\)"):
    planners.plan(env, state, jax.random.key(0), SMALL, cost,
                  previous_plan=jnp.zeros((STEPS, 3)))
  with pytest.raises(ValueError, match=r"prior_samples has \(steps, action_size\) "
                                       r"\(16, 3\)"):
    planners.plan(env, state, jax.random.key(0), SMALL, cost,
                  prior_samples=jnp.zeros((2, STEPS, 3)))
  with pytest.raises(ValueError, match="multiple of the planner's chunk"):
    planners.mpc_rollout(env, planners.make_planner(env, SMALL, cost),
                         jax.random.key(0), num_steps=6)


# ---------------------------------------------------------------------- MJX

def test_planner_runs_unchanged_on_mjx_toy_task():
  from tests.dojo.toy import Toy  # pylint: disable=import-outside-toplevel
  toy = Toy(cameras=())
  state = jax.jit(toy.reset)(jax.random.key(0))
  goal = jnp.array([0.785, 0.0])
  config = PlannerConfig(horizon=2, chunk=2, num_samples=8, num_elites=2, iterations=2)
  planner = planners.make_planner(toy, config, planners.goal_joints_cost(goal))
  plan, info = planner(state, jax.random.key(1))
  assert plan.shape == (4, toy.action_size)
  costs = np.asarray(info["costs"])
  assert np.all(np.isfinite(costs)) and np.all(np.diff(costs) <= 1e-6)
  # Better than the all-zero plan (the first candidate of the first iteration).
  assert float(info["cost"]) < float(info["mean_costs"][0])
  with pytest.raises(ValueError, match=r"goal_joints has shape \(7,\)"):
    planners.make_planner(toy, config, planners.goal_joints_cost(jnp.zeros(7)))
