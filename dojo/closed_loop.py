"""Closed-loop episodes of a controller in a physics env, and success statistics.

``run_episodes`` resets ``num_episodes`` envs, lets a controller (``dojo.controllers``)
act chunk by chunk and executes every action in the env, all under one ``jit`` (``vmap``
over episodes, ``lax.scan`` over chunks and steps). An episode succeeds if the task's
``success`` metric holds at any step. ``success_interval`` gives the Wilson score
interval that results tables report.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from dojo import physics
from dojo.env import Env


def run_episodes(env: Env, controller: Any, rng: jax.Array, num_episodes: int,
                 num_chunks: int, *, camera: Optional[str] = None,
                 batch_size: Optional[int] = None) -> dict[str, np.ndarray]:
  """Runs a controller for ``num_chunks`` chunks in ``num_episodes`` episodes of ``env``.

  Args:
    env: an unbatched env: one that steps single actions (physics; a chunk is executed
      step by step) or whole flat chunks (``NeuralEnv``, ``ChunkWrapper``: policies
      are then evaluated in the dream).
    controller: has ``init(state) -> carry``, ``act(carry, state, rng) -> (actions
      [K, A], carry)`` and ``chunk`` (K).
    rng: PRNG key; episode ``i`` uses ``fold_in(rng, i)`` whatever the batching.
    camera: also return this camera's frame after every chunk (for videos).
    batch_size: episodes run side by side per compiled call (default: all).

  Returns:
    ``success`` [N] (bool), ``return`` [N], ``steps_to_success`` [N] (-1 if never),
    ``instruction`` [N] (combination ids) and, with ``camera``, ``frames``
    [N, num_chunks + 1, H, W, 3].
  """
  if num_episodes < 1 or num_chunks < 1:
    raise ValueError(f"num_episodes ({num_episodes}) and num_chunks ({num_chunks}) must "
                     "be positive.")
  k = controller.chunk
  key = None if camera is None else f"pixels/{camera}"

  def episode(key_episode):
    k_reset, k_act = jax.random.split(key_episode)
    state = env.reset(k_reset)
    if key is not None and key not in state.obs:
      raise ValueError(f"The env renders {sorted(state.obs)}; no {key!r} for videos.")
    carry = controller.init(state)

    def execute(s, action):
      nxt = env.step(s, action)
      nxt = physics.where(s.done > 0, s, nxt)
      return nxt, (nxt.reward, nxt.metrics["success"])

    def chunk(c, key_chunk):
      s, carry = c
      actions, carry = controller.act(carry, s, key_chunk)
      if env.action_size == actions.size:   # the env steps whole chunks (NeuralEnv)
        s, records = execute(s, actions.reshape(-1))
        reward, success = jax.tree.map(lambda x: x[None], records)
      else:
        s, (reward, success) = jax.lax.scan(execute, s, actions.reshape(k, -1))
      frame = s.obs[key] if key is not None else jnp.zeros(())
      return (s, carry), (reward, success, frame)

    _, (reward, success, frames) = jax.lax.scan(
        chunk, (state, carry), jax.random.split(k_act, num_chunks))
    success = success.reshape(-1) > 0
    first = jnp.where(jnp.any(success), jnp.argmax(success) + 1, -1)
    out = {"success": jnp.any(success), "return": jnp.sum(reward),
           "steps_to_success": first, "instruction": state.info["instruction"]}
    if key is not None:
      out["frames"] = jnp.concatenate([state.obs[key][None], frames])
    return out

  run = jax.jit(jax.vmap(episode))
  batch_size = batch_size or num_episodes
  keys = jax.vmap(lambda i: jax.random.fold_in(rng, i))(jnp.arange(num_episodes))
  parts = []
  for start in range(0, num_episodes, batch_size):
    batch = keys[start:start + batch_size]
    pad = batch_size - batch.shape[0]   # the last batch is padded: one compiled shape
    if pad:
      batch = jnp.concatenate([batch, jnp.repeat(batch[-1:], pad, 0)])
    out = jax.device_get(run(batch))
    parts.append({name: v[:batch_size - pad] for name, v in out.items()})
  return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def success_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
  """The Wilson score interval (95% by default) of a success rate."""
  if trials <= 0:
    return (0.0, 1.0)
  p = successes / trials
  denominator = 1 + z ** 2 / trials
  centre = (p + z ** 2 / (2 * trials)) / denominator
  half = z * math.sqrt(p * (1 - p) / trials + z ** 2 / (4 * trials ** 2)) / denominator
  return (max(0.0, centre - half), min(1.0, centre + half))


def summarize(result: dict[str, np.ndarray]) -> dict[str, Any]:
  """Success rate, its 95% interval, mean return and steps to success of ``run_episodes``."""
  n = int(result["success"].shape[0])
  s = int(result["success"].sum())
  lo, hi = success_interval(s, n)
  reached = result["steps_to_success"][result["success"]]
  return {"episodes": n, "successes": s, "success_rate": s / n, "ci95": [lo, hi],
          "mean_return": float(np.mean(result["return"])),
          "mean_steps_to_success": float(np.mean(reached)) if reached.size else None}
