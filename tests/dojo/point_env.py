"""A pure-JAX point mass (an integrator) with a known optimum, for planner/RL tests.

``x_{t+1} = x_t + gain * clip(a_t, -1, 1)``, reward ``-|x_{t+1} - goal|^2``. Each axis is
independent and moving towards the goal at full speed is optimal, so the best return
over ``T`` steps has a closed form (``optimal_cost``). It implements the Dojo ``Env``
contract (no MuJoCo) and can render a tiny camera image (a bright blob at the point).
"""

from __future__ import annotations

from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dojo.env import Env, State, sanitize_action


class PointEnv(Env):
  """Drive a point in ``[-1, 1]^dim`` to ``goal``; obs ``joints`` is its position.

  Args:
    goal: target position (length ``dim``).
    start: initial position; ``start_noise`` adds uniform noise of that half-width.
    gain: distance moved per step at full action.
    image_size: side of the square ``pixels/front`` image; 0 renders no camera.
    max_plan_steps: if set, exposed as the longest plan the env supports (as a neural
      simulator's context limit would be).
  """

  def __init__(self, goal: Sequence[float] = (0.5, -0.3),
               start: Sequence[float] = (0.0, 0.0), start_noise: float = 0.0,
               gain: float = 0.1, image_size: int = 0,
               max_plan_steps: Optional[int] = None):
    if len(goal) != len(start):
      raise ValueError(f"PointEnv: goal {tuple(goal)} and start {tuple(start)} differ in "
                       "length.")
    self.goal = jnp.asarray(goal, jnp.float32)
    self.start = jnp.asarray(start, jnp.float32)
    self.start_noise = start_noise
    self.gain = gain
    self.image_size = image_size
    if max_plan_steps is not None:
      self.max_plan_steps = max_plan_steps

  @property
  def action_size(self) -> int:
    return int(self.goal.shape[0])

  @property
  def observation_size(self) -> dict[str, tuple[int, ...]]:
    dim = self.action_size
    sizes = {"joints": (dim,), "proprio": (dim,), "privileged": (2 * dim,)}
    if self.image_size:
      sizes["pixels/front"] = (self.image_size, self.image_size, 3)
    return sizes

  @property
  def dt(self) -> float:
    return 0.1

  def reset(self, rng: jax.Array) -> State:
    noise = jax.random.uniform(rng, self.start.shape, minval=-1.0, maxval=1.0)
    x = self.start + self.start_noise * noise
    _, metrics = self._reward(x)
    return State(data=x, obs=self._observe(x, jnp.zeros_like(x)), reward=jnp.zeros(()),
                 done=jnp.zeros(()), metrics=metrics,
                 info={"step": jnp.zeros((), jnp.int32)})

  def step(self, state: State, action: jax.Array) -> State:
    action, invalid = sanitize_action(action, self.action_size, "PointEnv.step")
    velocity = self.gain * jnp.clip(action, -1.0, 1.0)
    x = state.data + velocity
    reward, metrics = self._reward(x)
    return state.replace(data=x, obs=self._observe(x, velocity), reward=reward,
                         done=invalid.astype(jnp.float32), metrics=metrics,
                         info={**state.info, "step": state.info["step"] + 1})

  def _reward(self, x: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    distance = jnp.linalg.norm(x - self.goal)
    return -jnp.sum((x - self.goal) ** 2), {
        "distance": distance, "success": (distance < 0.05).astype(jnp.float32)}

  def _observe(self, x: jax.Array, velocity: jax.Array) -> dict[str, jax.Array]:
    obs = {"joints": x, "proprio": velocity,
           "privileged": jnp.concatenate([x, self.goal])}
    if self.image_size:
      obs["pixels/front"] = self.render(x)
    return obs

  def render(self, x: jax.Array) -> jax.Array:
    """A uint8 image with a Gaussian blob at the first two coordinates of ``x``."""
    grid = jnp.linspace(-1.0, 1.0, self.image_size)
    d2 = (grid[None, :] - x[0]) ** 2 + (grid[:, None] - x[1]) ** 2
    blob = jnp.exp(-d2 / (2 * 0.3 ** 2))
    return jnp.repeat((255 * blob)[..., None], 3, axis=-1).astype(jnp.uint8)


def optimal_cost(env: PointEnv, num_steps: int, start=None) -> float:
  """The smallest ``sum_t |x_t - goal|^2`` over ``num_steps`` steps (``-`` best return)."""
  start = np.asarray(env.start if start is None else start, np.float64)
  gap = np.abs(np.asarray(env.goal, np.float64) - start)
  steps = np.arange(1, num_steps + 1)[:, None]
  return float(np.sum(np.maximum(gap[None] - env.gain * steps, 0.0) ** 2))


def optimal_actions(env: PointEnv, num_steps: int, start=None) -> np.ndarray:
  """The plan achieving ``optimal_cost``: full speed towards the goal, then stop."""
  x = np.asarray(env.start if start is None else start, np.float64)
  goal = np.asarray(env.goal, np.float64)
  actions = []
  for _ in range(num_steps):
    a = np.clip((goal - x) / env.gain, -1.0, 1.0)
    x = x + env.gain * a
    actions.append(a)
  return np.asarray(actions, np.float32)
