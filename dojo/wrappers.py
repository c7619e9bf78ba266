"""Wrappers: batching, episode limits with action repeat, auto-reset and domain
randomisation. Composed by ``wrap_for_training`` exactly as brax and MuJoCo Playground
compose theirs, so ``brax.training`` agents accept Dojo envs through ``wrap_env_fn``.
"""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp

from dojo import physics
from dojo.env import Env, State, Wrapper

RandomizationFn = Callable[..., tuple]


class VmapWrapper(Wrapper):
  """Vectorises an env: ``reset`` takes a batch of keys, ``step`` a batch of actions."""

  def __init__(self, env: Env, batch_size: Optional[int] = None):
    super().__init__(env)
    self.batch_size = batch_size

  def reset(self, rng: jax.Array) -> State:
    """``rng``: a batch of keys, or (with ``batch_size``) one key to split."""
    single_key = rng.ndim == (0 if jnp.issubdtype(rng.dtype, jax.dtypes.prng_key) else 1)
    if self.batch_size is not None and single_key:
      rng = jax.random.split(rng, self.batch_size)
    return jax.vmap(self.env.reset)(rng)

  def step(self, state: State, action: jax.Array) -> State:
    expected = self.env.action_size
    if action.ndim != 2 or action.shape[-1] != expected:
      raise ValueError(f"VmapWrapper.step: actions have shape {action.shape}, expected "
                       f"(batch, {expected}).")
    return jax.vmap(self.env.step)(state, action)


class ChunkWrapper(Wrapper):
  """One step executes a chunk of ``chunk`` actions, given flat: ``[chunk * A]``.

  The interface of the neural simulator (whose engine predicts a chunk at a time), so a
  planner or a PPO agent runs unchanged on physics and on dreams. ``reward`` and
  ``metrics`` are those after the chunk's last action (as in the neural simulator);
  ``done`` is set if any step of the chunk ended the episode (later steps are not
  applied).
  """

  def __init__(self, env: Env, chunk: int):
    super().__init__(env)
    if chunk < 1:
      raise ValueError(f"ChunkWrapper: chunk must be positive, got {chunk}.")
    self.chunk = chunk

  @property
  def action_size(self) -> int:
    return self.chunk * self.env.action_size

  @property
  def dt(self) -> float:
    return self.chunk * self.env.dt

  def step(self, state: State, action: jax.Array) -> State:
    if action.shape != (self.action_size,):
      raise ValueError(f"ChunkWrapper.step: action has shape {action.shape}, expected "
                       f"({self.action_size},) = chunk {self.chunk} x {self.env.action_size}.")

    def body(s, a):
      nxt = self.env.step(s, a)
      return physics.where(s.done > 0, s, nxt), None

    state, _ = jax.lax.scan(body, state, action.reshape(self.chunk, -1))
    return state


class EpisodeWrapper(Wrapper):
  """Ends episodes after ``episode_length`` control steps; repeats each action.

  ``info["truncation"]`` is 1 where the limit (not the task) ended the episode, which
  value-bootstrapping RL needs; ``info["steps"]`` counts control steps.
  """

  def __init__(self, env: Env, episode_length: int, action_repeat: int = 1):
    super().__init__(env)
    if episode_length <= 0 or action_repeat <= 0:
      raise ValueError(f"episode_length ({episode_length}) and action_repeat "
                       f"({action_repeat}) must be positive.")
    self.episode_length = episode_length
    self.action_repeat = action_repeat

  def reset(self, rng: jax.Array) -> State:
    state = self.env.reset(rng)
    batch = state.done.shape
    state.info["steps"] = jnp.zeros(batch)
    state.info["truncation"] = jnp.zeros(batch)
    state.info["episode_done"] = jnp.zeros(batch)
    # Running sums over the current episode, read by brax's metrics aggregator.
    state.info["episode_metrics"] = {
        "sum_reward": jnp.zeros(batch), "length": jnp.zeros(batch),
        **{k: jnp.zeros(batch) for k in state.metrics}}
    state.metrics["reward"] = state.reward
    return state

  def step(self, state: State, action: jax.Array) -> State:
    def body(carry, _):
      s, ended = carry
      nxt = self.env.step(s, action)
      # An env that ended in an earlier repeat (blow-up, success) stays ended.
      nxt = physics.where(ended, s, nxt)
      reward = jnp.where(ended, 0.0, nxt.reward)
      ended = ended | (nxt.done > 0)
      return (nxt, ended), reward

    (state, ended), rewards = jax.lax.scan(
        body, (state, jnp.zeros(state.done.shape, bool)), None, length=self.action_repeat)
    state = state.replace(reward=jnp.sum(rewards, axis=0),
                          done=jnp.maximum(state.done, ended.astype(state.done.dtype)))
    steps = state.info["steps"] + self.action_repeat
    limit = steps >= self.episode_length
    done = jnp.where(limit, jnp.ones_like(state.done), state.done)
    state.info["steps"] = steps
    state.info["truncation"] = jnp.where(limit & (state.done == 0), 1.0, 0.0)
    keep = 1.0 - state.info["episode_done"]
    sums = dict(state.info["episode_metrics"])
    sums["sum_reward"] = sums["sum_reward"] * keep + state.reward
    sums["length"] = sums["length"] * keep + self.action_repeat
    for k in state.metrics:
      if k in sums and k != "reward":
        sums[k] = sums[k] * keep + state.metrics[k]
    state.info["episode_metrics"] = sums
    state.info["episode_done"] = done
    state.metrics["reward"] = state.reward
    return state.replace(done=done)


class AutoResetWrapper(Wrapper):
  """Resets finished envs in place so a batch keeps running.

  By default a finished env returns to the first state of its episode cached at
  ``reset`` (cheap, as in brax); ``full_reset=True`` draws a fresh initial state with a
  new key instead, which gives more diverse starts at the cost of a reset per step.
  """

  def __init__(self, env: Env, full_reset: bool = False):
    super().__init__(env)
    self.full_reset = full_reset

  _WRAPPER_KEYS = ("steps", "truncation", "episode_done", "episode_metrics", "first_data",
                   "first_obs", "first_info", "reset_rng")

  def reset(self, rng: jax.Array) -> State:
    state = self.env.reset(rng)
    task_info = {k: v for k, v in state.info.items() if k not in self._WRAPPER_KEYS}
    state.info["first_data"] = state.data
    state.info["first_obs"] = state.obs
    state.info["first_info"] = task_info
    state.info["reset_rng"] = rng
    return state

  def step(self, state: State, action: jax.Array) -> State:
    if "steps" in state.info:
      steps = jnp.where(state.done > 0, jnp.zeros_like(state.info["steps"]),
                        state.info["steps"])
      state = state.replace(info={**state.info, "steps": steps})  # never mutate the input
    state = state.replace(done=jnp.zeros_like(state.done))
    state = self.env.step(state, action)

    def where_done(x, y):
      return physics.where(state.done > 0, x, y)

    info = dict(state.info)
    if self.full_reset:
      keys = jax.vmap(jax.random.split)(state.info["reset_rng"])
      info["reset_rng"] = keys[:, 0]
      fresh = self.env.reset(keys[:, 1])
      first_data, first_obs = fresh.data, fresh.obs
      first_info = {k: v for k, v in fresh.info.items() if k not in self._WRAPPER_KEYS}
    else:
      first_data, first_obs = state.info["first_data"], state.info["first_obs"]
      first_info = state.info["first_info"]
    # Task entries of info (step counter, instruction, colours) restart with the data.
    for k, v in first_info.items():
      info[k] = where_done(v, state.info[k])
    data = where_done(first_data, state.data)
    obs = where_done(first_obs, state.obs)
    return state.replace(data=data, obs=obs, info=info)


class DomainRandomizationVmapWrapper(Wrapper):
  """Batches the env over a batch of randomised models (friction, mass, ...).

  ``randomization_fn(model) -> (batched_model, in_axes)``, as produced by
  ``functools.partial(task.randomize_model, rng=keys)``; each env in the batch steps its
  own model.
  """

  def __init__(self, env: Env, randomization_fn: RandomizationFn):
    super().__init__(env)
    self._batched_model, self._in_axes = randomization_fn(self.env.unwrapped.mjx_model)

  def _with_model(self, model, fn, *args):
    task = self.env.unwrapped
    original = task._mjx_model  # pylint: disable=protected-access
    task._mjx_model = model  # traced per-env model; restored below
    try:
      return fn(*args)
    finally:
      task._mjx_model = original

  def reset(self, rng: jax.Array) -> State:
    return jax.vmap(lambda m, r: self._with_model(m, self.env.reset, r),
                    in_axes=(self._in_axes, 0))(self._batched_model, rng)

  def step(self, state: State, action: jax.Array) -> State:
    return jax.vmap(lambda m, s, a: self._with_model(m, self.env.step, s, a),
                    in_axes=(self._in_axes, 0, 0))(self._batched_model, state, action)


def wrap_for_training(env: Env, episode_length: int = 100, action_repeat: int = 1,
                      randomization_fn: Optional[RandomizationFn] = None,
                      full_reset: bool = False) -> Env:
  """Batching (optionally over randomised models), episode limit, auto-reset.

  Matches ``brax.training``'s ``wrap_env_fn`` signature, so
  ``ppo.train(env, wrap_env_fn=wrap_for_training, ...)`` trains on a Dojo task.
  """
  if randomization_fn is None:
    env = VmapWrapper(env)
  else:
    env = DomainRandomizationVmapWrapper(env, randomization_fn)
  env = EpisodeWrapper(env, episode_length, action_repeat)
  return AutoResetWrapper(env, full_reset=full_reset)
