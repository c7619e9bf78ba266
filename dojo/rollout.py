"""Batched rollouts of a policy in a Dojo env with ``vmap`` and ``lax.scan``."""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from dojo import physics
from dojo.env import Env, State
from dojo.play import StatefulPolicy

# policy(state, rng) -> action, or policy(state, rng, args) -> action with per-env args,
# for one (unbatched) env; or a ``dojo.play.StatefulPolicy`` that carries a memory.
Policy = Callable[..., jax.Array] | StatefulPolicy


def expert_policy(env: Env, noise: float = 0.0) -> Policy:
  """The task's scripted expert with Gaussian action noise of scale ``noise``."""
  task = env.unwrapped
  return lambda state, rng: task.expert_action(state, rng, noise)


def random_policy(env: Env) -> Policy:
  """Uniform random actions in [-1, 1]."""
  return lambda state, rng: jax.random.uniform(rng, (env.action_size,), minval=-1.0,
                                               maxval=1.0)


def expert_or_random_policy(env: Env) -> Policy:
  """Per-env choice made by ``args``: the expert with noise ``args["noise"]`` where
  ``args["expert"]``, else uniform random actions. Lets one compiled rollout run clean,
  noisy and random envs side by side (pass ``policy_args`` to the rollout)."""
  task = env.unwrapped

  def policy(state, rng, args):
    expert = task.expert_action(state, rng, args["noise"])
    random = jax.random.uniform(rng, expert.shape, minval=-1.0, maxval=1.0)
    return jnp.where(args["expert"], expert, random)

  return policy


def make_rollout(env: Env, policy: Policy, num_steps: int,
                 keep: Optional[Callable[[State], dict]] = None):
  """Builds a jitted ``rollout(rng, num_envs)`` returning per-step records.

  Args:
    env: an unbatched env (it is vmapped here).
    policy: ``policy(state, rng) -> action`` for one env, or
      ``policy(state, rng, args)`` when the rollout is given ``policy_args``, or a
      ``StatefulPolicy`` whose memory the scan carries from step to step.
    num_steps: control steps per episode (no auto-reset: one episode per env).
    keep: picks what to record from each state (default: obs, reward, done, metrics).

  Returns:
    ``rollout(rng, num_envs, policy_args=None) -> (first, records, actions)``:
    ``keep`` of each env's first state, and records and actions with leading axes
    ``[num_steps, num_envs]``. ``policy_args`` (leading axis ``num_envs``) are handed
    to the policy per env.
  """
  keep = keep or (lambda s: {"obs": s.obs, "reward": s.reward, "done": s.done,
                             "metrics": s.metrics})

  stateful = isinstance(policy, StatefulPolicy)

  def one_env(rng, args):
    rng_reset, rng_policy = jax.random.split(rng)
    first = env.reset(rng_reset)
    memory = policy.init(first, jax.random.fold_in(rng_reset, 1)) if stateful else ()

    def body(carry, key):
      state, memory = carry
      if stateful:
        action, memory = policy.step(state, key, memory)
      else:
        action = policy(state, key) if args is None else policy(state, key, args)
      # An env that is done (e.g. after a NaN action) stays frozen.
      nxt = env.step(state, action)
      nxt = physics.where(state.done > 0, state, nxt)
      # Record what the env executed: actions live in [-1, 1], and a NaN action ran as 0.
      executed = jnp.where(jnp.all(jnp.isfinite(action)), jnp.clip(action, -1.0, 1.0), 0.0)
      return (nxt, memory), (keep(nxt), executed)

    _, (records, actions) = jax.lax.scan(body, (first, memory),
                                         jax.random.split(rng_policy, num_steps))
    return keep(first), records, actions

  batched = jax.jit(jax.vmap(one_env))

  def rollout(rng: jax.Array, num_envs: int, policy_args=None):
    first, records, actions = batched(jax.random.split(rng, num_envs), policy_args)
    swap = lambda x: jnp.swapaxes(x, 0, 1)
    return first, jax.tree.map(swap, records), swap(actions)

  return rollout


def success_rate(env: Env, policy: Policy, num_episodes: int, num_steps: int,
                 seed: int = 0) -> float:
  """Fraction of episodes whose final state satisfies the task's success predicate."""
  rollout = make_rollout(env, policy, num_steps,
                         keep=lambda s: {"success": s.metrics["success"]})
  _, records, _ = rollout(jax.random.key(seed), num_episodes)
  return float(np.mean(np.asarray(records["success"][-1])))
