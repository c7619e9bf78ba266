"""Sampling-based planners (CEM and MPPI) over action chunks, for any Dojo env.

A planner rolls candidate action sequences out from one env state with the env's own
``step`` (MJX physics or the neural simulator: anything with the ``Env`` contract),
scores them with a ``Cost`` and refits its sampling distribution. Everything is pure:
samples are ``vmap``-ed, time and iterations are ``lax.scan``-ned, and the whole of
``plan`` jits once per (env, config, cost).

- ``plan(env, state, rng, config, cost)`` returns the best plan ``[horizon*chunk, A]``
  that it evaluated (the sampling mean of every iteration is evaluated too, so the
  result is never worse than the refitted distribution's centre).
- ``make_planner(env, config, cost)`` checks everything once and returns a jitted
  ``Planner``; ``mpc_rollout`` runs it in a receding-horizon loop (plan, execute the
  first chunk, warm start the next plan from the shifted one).

Candidates are rolled out from the same state, so a stochastic env (whose randomness
lives in ``state.info``) sees common random numbers across candidates.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp

from dojo import physics
from dojo.env import Env, State

METHODS = ("cem", "mppi")


# ---------------------------------------------------------------------- configuration

@dataclasses.dataclass(frozen=True)
class PlannerConfig:
  """How to plan. A plan holds ``horizon * chunk`` actions in [-1, 1].

  Attributes:
    method: "cem" (refit mean/std on the elites) or "mppi" (exponentially weighted
      average of all candidates with ``temperature``).
    horizon: number of action chunks planned.
    chunk: env steps per chunk (one action per step); MPC executes one chunk per plan.
    num_samples: Gaussian samples per iteration. The sampling mean and any
      ``prior_samples`` are evaluated beside them.
    num_elites: CEM only: candidates the distribution is refitted on.
    iterations: refits of the sampling distribution.
    init_std: initial standard deviation of every action.
    min_std: floor of the standard deviation (``min_std == init_std`` keeps it fixed).
    temperature: MPPI only: weights are ``softmax(-cost / temperature)`` (cost units).
    momentum: new mean/std = ``momentum * old + (1 - momentum) * refit``.
    smoothing: correlation in [0, 1) of the sampling noise between consecutive steps
      (an AR(1) process with unit variance), for smoother, more coherent samples.
    warm_start: start from the shifted ``previous_plan`` when one is given.
  """

  method: str = "cem"
  horizon: int = 4
  chunk: int = 4
  num_samples: int = 64
  num_elites: int = 8
  iterations: int = 4
  init_std: float = 0.5
  min_std: float = 0.05
  temperature: float = 0.1
  momentum: float = 0.0
  smoothing: float = 0.0
  warm_start: bool = True

  def __post_init__(self):
    if self.method not in METHODS:
      raise ValueError(f"PlannerConfig: method {self.method!r} is not one of {METHODS}.")
    for name in ("horizon", "chunk", "num_samples", "iterations"):
      value = getattr(self, name)
      if not isinstance(value, int) or value < 1:
        raise ValueError(f"PlannerConfig: {name} must be a positive int, got {value!r}.")
    if self.method == "cem" and not 1 <= self.num_elites <= self.num_samples:
      raise ValueError(f"PlannerConfig: num_elites ({self.num_elites}) must be in "
                       f"[1, num_samples ({self.num_samples})].")
    if not self.init_std > 0:
      raise ValueError(f"PlannerConfig: init_std must be positive, got {self.init_std}.")
    if not 0 <= self.min_std <= self.init_std:
      raise ValueError(f"PlannerConfig: min_std ({self.min_std}) must be in "
                       f"[0, init_std ({self.init_std})].")
    if not self.temperature > 0:
      raise ValueError(f"PlannerConfig: temperature must be positive, got "
                       f"{self.temperature}.")
    if not 0 <= self.momentum < 1:
      raise ValueError(f"PlannerConfig: momentum must be in [0, 1), got {self.momentum}.")
    if not 0 <= self.smoothing < 1:
      raise ValueError(f"PlannerConfig: smoothing must be in [0, 1), got {self.smoothing}.")

  @property
  def plan_steps(self) -> int:
    """Env steps in one plan: ``horizon * chunk``."""
    return self.horizon * self.chunk


# ---------------------------------------------------------------------- costs

@dataclasses.dataclass(frozen=True)
class Cost:
  """A per-step cost, accumulated over a planned rollout.

  ``total = sum_t discount**t * step(s_t) + terminal_weight * step(s_T)`` over the
  states ``s_1 .. s_T`` reached by the plan's actions.

  Attributes:
    step: cost of one unbatched state (a scalar); lower is better.
    discount: per-step discount in (0, 1].
    terminal_weight: extra weight on the last state's cost.
    check: raises a clear ``ValueError`` if the cost does not fit an env (shapes).
  """

  step: Callable[[State], jax.Array]
  discount: float = 1.0
  terminal_weight: float = 0.0
  check: Optional[Callable[[Env], None]] = None

  def __post_init__(self):
    if not 0 < self.discount <= 1:
      raise ValueError(f"Cost: discount must be in (0, 1], got {self.discount}.")
    if self.terminal_weight < 0:
      raise ValueError(f"Cost: terminal_weight must be >= 0, got {self.terminal_weight}.")

  def validate(self, env: Env) -> None:
    """Raises ``ValueError`` if the cost does not fit ``env``."""
    if self.check is not None:
      self.check(env)

  def total(self, step_costs: jax.Array) -> jax.Array:
    """Accumulates per-step costs ``[..., T]`` into ``[...]``."""
    weights = self.discount ** jnp.arange(step_costs.shape[-1], dtype=jnp.float32)
    return (jnp.sum(step_costs * weights, axis=-1)
            + self.terminal_weight * step_costs[..., -1])


def task_reward_cost(discount: float = 1.0, terminal_weight: float = 0.0) -> Cost:
  """The negative sum of the env's own ``State.reward`` along the rollout."""
  return Cost(step=lambda s: -s.reward, discount=discount, terminal_weight=terminal_weight)


def goal_joints_cost(goal_joints: Any, discount: float = 1.0,
                     terminal_weight: float = 0.0) -> Cost:
  """Squared Euclidean distance of ``obs["joints"]`` to ``goal_joints`` at every step."""
  goal = jnp.asarray(goal_joints, jnp.float32)

  def check(env: Env) -> None:
    _check_obs_shape(env, "joints", goal.shape, "goal_joints_cost: goal_joints")

  return Cost(step=lambda s: jnp.sum((s.obs["joints"] - goal) ** 2), discount=discount,
              terminal_weight=terminal_weight, check=check)


def goal_image_cost(goal_image: Any, camera: str = "front", discount: float = 1.0,
                    terminal_weight: float = 0.0) -> Cost:
  """Mean squared pixel error between ``obs["pixels/<camera>"]`` and ``goal_image``.

  uint8 images (observed or goal) are scaled to [0, 1]; float images are taken as
  already in [0, 1].
  """
  goal = _unit_float(jnp.asarray(goal_image))
  key = f"pixels/{camera}"

  def check(env: Env) -> None:
    _check_obs_shape(env, key, goal.shape, "goal_image_cost: goal_image")

  return Cost(step=lambda s: jnp.mean((_unit_float(s.obs[key]) - goal) ** 2),
              discount=discount, terminal_weight=terminal_weight, check=check)


def _unit_float(image: jax.Array) -> jax.Array:
  if image.dtype == jnp.uint8:
    return image.astype(jnp.float32) / 255.0
  return image.astype(jnp.float32)


def _check_obs_shape(env: Env, key: str, shape: tuple[int, ...], what: str) -> None:
  sizes = env.observation_size
  if key not in sizes:
    raise ValueError(f"{what}: the env has no obs[{key!r}] (it has {sorted(sizes)}).")
  if tuple(shape) != tuple(sizes[key]):
    raise ValueError(f"{what} has shape {tuple(shape)} but the env's obs[{key!r}] has "
                     f"shape {tuple(sizes[key])}.")


# ---------------------------------------------------------------------- planning

def check_plan_inputs(env: Env, config: PlannerConfig, cost: Cost) -> None:
  """Raises ``ValueError`` if ``env`` cannot run ``config``'s plans or ``cost``."""
  limit = getattr(env, "max_plan_steps", None)
  if limit is not None and config.plan_steps > limit:
    raise ValueError(f"Planner: horizon * chunk = {config.horizon} * {config.chunk} = "
                     f"{config.plan_steps} steps exceeds the env's max_plan_steps "
                     f"({limit}); plan fewer or shorter chunks.")
  cost.validate(env)


def shift_plan(previous_plan: jax.Array, chunk: int, pad: str = "last") -> jax.Array:
  """Drops the first ``chunk`` actions (executed) and pads the end to the same length.

  Args:
    previous_plan: ``[..., T, A]``.
    chunk: steps executed since the plan was made.
    pad: "last" repeats the last action, "zeros" appends zeros.
  """
  if pad not in ("last", "zeros"):
    raise ValueError(f"shift_plan: pad must be 'last' or 'zeros', got {pad!r}.")
  steps = previous_plan.shape[-2]
  chunk = min(chunk, steps)
  tail = previous_plan[..., -1:, :] if pad == "last" else jnp.zeros_like(
      previous_plan[..., -1:, :])
  filler = jnp.repeat(tail, chunk, axis=-2)
  return jnp.concatenate([previous_plan[..., chunk:, :], filler], axis=-2)


def rollout_cost(env: Env, cost: Cost, state: State, actions: jax.Array) -> jax.Array:
  """Cost of executing ``actions`` ``[T, A]`` from ``state`` (done states freeze)."""
  def body(s, action):
    nxt = env.step(s, action)
    nxt = physics.where(s.done > 0, s, nxt)
    return nxt, cost.step(nxt)

  _, step_costs = jax.lax.scan(body, state, actions)
  return cost.total(step_costs)


def plan(env: Env, state: State, rng: jax.Array, config: PlannerConfig, cost: Cost,
         previous_plan: Optional[jax.Array] = None,
         prior_samples: Optional[jax.Array] = None) -> tuple[jax.Array, dict]:
  """Plans ``config.horizon`` action chunks from one (unbatched) env state.

  Args:
    env: an unbatched env.
    state: the state to plan from.
    rng: a PRNG key.
    config: the planner's settings.
    cost: what to minimise.
    previous_plan: ``[T, A]``, the plan returned one executed chunk ago; its shifted
      version is the initial mean when ``config.warm_start`` (otherwise zeros).
    prior_samples: ``[M, T, A]`` extra candidates evaluated at every iteration (e.g.
      the world model's own policy-mode actions).

  Returns:
    ``(plan, info)``: the lowest-cost candidate evaluated, ``[T, A]`` in [-1, 1], where
    ``T = horizon * chunk``; ``info`` holds ``cost`` (the plan's), ``costs`` (the best
    cost after each iteration, ``[iterations]``), ``mean_costs`` (the cost of the
    sampling mean at each iteration) and the final ``mean`` and ``std``.

  Raises:
    ValueError: ``env.max_plan_steps`` is exceeded, ``cost`` does not fit the env, or
      ``previous_plan``/``prior_samples`` have the wrong shape.
  """
  check_plan_inputs(env, config, cost)
  steps, size = config.plan_steps, env.action_size
  if previous_plan is not None:
    _check_actions("previous_plan", previous_plan.shape, (steps, size))
  if prior_samples is None:
    prior_samples = jnp.zeros((0, steps, size), jnp.float32)
  if prior_samples.ndim != 3:
    raise ValueError(f"plan: prior_samples has shape {prior_samples.shape}, expected "
                     f"(num_priors, {steps}, {size}).")
  _check_actions("prior_samples", prior_samples.shape[1:], (steps, size))
  prior_samples = jnp.clip(prior_samples.astype(jnp.float32), -1.0, 1.0)

  if previous_plan is not None and config.warm_start:
    mean = shift_plan(jnp.asarray(previous_plan, jnp.float32), config.chunk)
  else:
    mean = jnp.zeros((steps, size), jnp.float32)
  std = jnp.full((steps, size), config.init_std, jnp.float32)
  evaluate = jax.vmap(lambda actions: rollout_cost(env, cost, state, actions))

  def iteration(carry, i):
    mean, std, best, best_cost = carry
    noise = _noise(jax.random.fold_in(rng, i), (config.num_samples, steps, size),
                   config.smoothing)
    candidates = jnp.concatenate([jnp.clip(mean, -1.0, 1.0)[None], prior_samples,
                                  jnp.clip(mean + std * noise, -1.0, 1.0)])
    costs = evaluate(candidates)
    # A NaN/inf cost (a blown-up rollout) is just the worst candidate.
    costs = jnp.where(jnp.isfinite(costs), costs, jnp.finfo(jnp.float32).max)
    fit_mean, fit_std = _refit(config, candidates, costs)
    mean = config.momentum * mean + (1 - config.momentum) * fit_mean
    std = jnp.maximum(config.momentum * std + (1 - config.momentum) * fit_std,
                      config.min_std)
    i_best = jnp.argmin(costs)
    better = costs[i_best] < best_cost
    best = jnp.where(better, candidates[i_best], best)
    best_cost = jnp.minimum(costs[i_best], best_cost)
    return (mean, std, best, best_cost), (best_cost, costs[0])

  init = (mean, std, jnp.clip(mean, -1.0, 1.0), jnp.array(jnp.inf, jnp.float32))
  # Iteration i's noise comes from fold_in(rng, i), so running more iterations only
  # adds candidates: the returned cost never gets worse.
  (mean, std, best, best_cost), (costs, mean_costs) = jax.lax.scan(
      iteration, init, jnp.arange(config.iterations))
  final = jnp.clip(mean, -1.0, 1.0)
  final_cost = evaluate(final[None])[0]
  use_final = final_cost < best_cost
  best = jnp.where(use_final, final, best)
  best_cost = jnp.minimum(final_cost, best_cost)
  info = {"cost": best_cost, "costs": costs.at[-1].set(best_cost),
          "mean_costs": mean_costs, "mean": mean, "std": std}
  return best, info


def _noise(rng: jax.Array, shape: tuple[int, int, int], smoothing: float) -> jax.Array:
  """Standard normal noise ``[N, T, A]``, AR(1)-correlated along time by ``smoothing``."""
  white = jax.random.normal(rng, shape)
  if smoothing == 0:
    return white

  def body(previous, w):
    e = smoothing * previous + (1 - smoothing ** 2) ** 0.5 * w
    return e, e

  _, noise = jax.lax.scan(body, white[:, 0], jnp.swapaxes(white[:, 1:], 0, 1))
  return jnp.concatenate([white[:, :1], jnp.swapaxes(noise, 0, 1)], axis=1)


def _refit(config: PlannerConfig, candidates: jax.Array,
           costs: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The new sampling mean and std from the scored candidates ``[N, T, A]``."""
  if config.method == "cem":
    _, elite = jax.lax.top_k(-costs, config.num_elites)
    elites = candidates[elite]
    return jnp.mean(elites, axis=0), jnp.std(elites, axis=0)
  # Shifted by the best cost so that all-worst candidates (every rollout blew up) get
  # uniform weights rather than NaN.
  weights = jax.nn.softmax(-(costs - jnp.min(costs)) / config.temperature)
  mean = jnp.einsum("n,nta->ta", weights, candidates)
  var = jnp.einsum("n,nta->ta", weights, (candidates - mean) ** 2)
  return mean, jnp.sqrt(var)


def _check_actions(what: str, shape: tuple[int, ...], expected: tuple[int, int]) -> None:
  if tuple(shape) != expected:
    raise ValueError(f"plan: {what} has (steps, action_size) {tuple(shape)}, expected "
                     f"(horizon * chunk, env.action_size) = {expected}.")


class Planner:
  """``plan`` for one env, config and cost, checked once and jitted once.

  Call as ``planner(state, rng, previous_plan=None, prior_samples=None)``; the first
  call with and without each optional argument compiles, later calls do not.
  """

  def __init__(self, env: Env, config: PlannerConfig, cost: Cost):
    check_plan_inputs(env, config, cost)
    self.env, self.config, self.cost = env, config, cost
    self._plan = jax.jit(
        lambda state, rng, previous, prior: plan(env, state, rng, config, cost,
                                                 previous, prior))

  def __call__(self, state: State, rng: jax.Array,
               previous_plan: Optional[jax.Array] = None,
               prior_samples: Optional[jax.Array] = None) -> tuple[jax.Array, dict]:
    return self._plan(state, rng, previous_plan, prior_samples)


def make_planner(env: Env, config: PlannerConfig, cost: Cost) -> Planner:
  """A jitted planner; raises ``ValueError`` at once if env, config and cost clash."""
  return Planner(env, config, cost)


# ---------------------------------------------------------------------- control

PriorFn = Callable[[State, jax.Array], jax.Array]


def mpc_rollout(env: Env, planner: Planner, rng: jax.Array, num_steps: int,
                keep: Optional[Callable[[State], Any]] = None,
                prior_fn: Optional[PriorFn] = None,
                state: Optional[State] = None) -> dict:
  """Receding-horizon control: plan, execute the first chunk, warm start, repeat.

  Pure and traceable: ``jax.jit(jax.vmap(lambda k: mpc_rollout(env, p, k, n)))`` runs
  several envs at once.

  Args:
    env: an unbatched env (the one planned in, or a different one to act in).
    planner: from ``make_planner``; its env is the model the plans are made in.
    rng: a PRNG key for the reset and the planner.
    num_steps: env steps to run, a multiple of ``planner.config.chunk``.
    keep: what to record from each state (default: obs, reward, done, metrics).
    prior_fn: ``prior_fn(state, rng) -> [M, T, A]`` candidates for each plan.
    state: start here instead of ``env.reset``.

  Returns:
    A dict with ``first`` (``keep`` of the first state), ``records`` (``keep`` of each
    later state, leading axis ``num_steps``), ``actions`` ``[num_steps, A]``,
    ``reward`` ``[num_steps]``, ``return``, ``plan_cost`` ``[num_steps // chunk]``,
    and, if the env reports ``metrics["success"]``, ``success`` (reached at any step).
  """
  chunk = planner.config.chunk
  if num_steps < 1 or num_steps % chunk:
    raise ValueError(f"mpc_rollout: num_steps ({num_steps}) must be a positive multiple "
                     f"of the planner's chunk ({chunk}).")
  if env.action_size != planner.env.action_size:
    raise ValueError(f"mpc_rollout: the env's action_size ({env.action_size}) differs "
                     f"from the planner env's ({planner.env.action_size}).")
  keep = keep or (lambda s: {"obs": s.obs, "reward": s.reward, "done": s.done,
                             "metrics": s.metrics})
  rng_reset, rng_plan = jax.random.split(rng)
  first = env.reset(rng_reset) if state is None else state
  has_success = "success" in first.metrics

  def execute(s, action):
    nxt = env.step(s, action)
    nxt = physics.where(s.done > 0, s, nxt)
    success = nxt.metrics["success"] if has_success else jnp.zeros(())
    return nxt, (keep(nxt), nxt.reward, success)

  def control(carry, key):
    s, previous = carry
    key_plan, key_prior = jax.random.split(key)
    prior = None if prior_fn is None else prior_fn(s, key_prior)
    new_plan, info = planner(s, key_plan, previous_plan=previous, prior_samples=prior)
    actions = new_plan[:chunk]
    s, records = jax.lax.scan(execute, s, actions)
    return (s, new_plan), (records, actions, info["cost"])

  # Shifting zeros gives zeros, the cold-start mean: one compiled path for every chunk.
  previous = jnp.zeros((planner.config.plan_steps, env.action_size), jnp.float32)
  _, ((records, reward, success), actions, plan_cost) = jax.lax.scan(
      control, (first, previous), jax.random.split(rng_plan, num_steps // chunk))
  flat = lambda x: x.reshape((num_steps,) + x.shape[2:])
  reward = flat(reward)
  out = {"first": keep(first), "records": jax.tree.map(flat, records),
         "actions": flat(actions), "reward": reward, "return": jnp.sum(reward),
         "plan_cost": plan_cost}
  if has_success:
    out["success"] = jnp.max(flat(success)) > 0
  return out
