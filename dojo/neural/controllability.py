"""Does a dream follow actions? The neural simulator against MJX from the same states.

From the same real (physics) states, the dream and MJX physics are driven by the same
action chunks for a few chunks; the changes of the joint angles are compared with the
measures of ``wam.controllability`` (``motion_gain``, ``motion_correlation``,
``tracking_ratio`` against "nothing moves"). The chunks come from one of two sources:

- ``play``: in-distribution play actions, as ``dojo.play``'s ``waypoints`` policy draws
  them: a target around the current controls (``scale`` wide in action units) held for
  the chunk;
- ``random``: uniformly random actions in [-1, 1], held for the chunk (far outside any
  demonstration: the hardest test).

Any env with ``start(real_state)`` and chunked ``step`` can be the dream: the
``NeuralEnv``, or the physics itself (``motion_gain`` 1, ratio 0: the tests' oracle).
"""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp

from dojo.env import Env, State
from dojo.play import home_action
from wam import controllability

ACTION_SOURCES = ("play", "random")


def chunk_action(task: Env, source: str, state: State, rng: jax.Array, chunk: int,
                 scale: float = 0.2) -> jax.Array:
  """One held action chunk (flat, ``chunk * A``) from ``source`` for a real state."""
  size = task.action_size
  u = jax.random.uniform(rng, (size,), minval=-1.0, maxval=1.0)
  if source == "play":
    action = jnp.clip(home_action(task, state) + scale * u, -1.0, 1.0)
  elif source == "random":
    action = u
  else:
    raise ValueError(f"Unknown action source {source!r}; choose one of {ACTION_SOURCES}.")
  return jnp.tile(action, chunk)


def track(task: Env, physics: Env, dream: Env, *, source: str, episodes: int = 16,
          chunks: int = 3, scale: float = 0.2, seed: int = 0,
          start: Optional[Callable[[State], State]] = None) -> dict:
  """The dream against physics from ``episodes`` reset states over ``chunks`` chunks.

  Args:
    task: the MJX task (unbatched); its resets are the starting states.
    physics: the task wrapped to take chunks (``dojo.wrappers.ChunkWrapper``).
    dream: an env taking the same chunks; ``start(real_state)`` begins a dream from a
      real state (default ``dream.start``).
    source: ``play`` or ``random`` (module docstring); scale: play's width.

  Returns:
    ``motion_gain``, ``motion_correlation`` (first chunk, all joints),
    ``tracking_ratio`` (first chunk), and per chunk ``joint_error_by_chunk`` (mean
    |dreamed - real| joint angle, rad) and ``joint_error_if_still_by_chunk``.
  """
  if source not in ACTION_SOURCES:
    raise ValueError(f"Unknown action source {source!r}; choose one of {ACTION_SOURCES}.")
  start = start or dream.start
  chunk = physics.action_size // task.action_size

  def episode(key):
    real = task.reset(key)
    dreamt = start(real)

    def body(carry, k):
      real, dreamt = carry
      action = chunk_action(task, source, real, k, chunk, scale)
      real, dreamt = physics.step(real, action), dream.step(dreamt, action)
      return (real, dreamt), (real.obs["joints"], dreamt.obs["joints"])

    _, (real_joints, dream_joints) = jax.lax.scan(
        body, (real, dreamt), jax.random.split(jax.random.fold_in(key, 1), chunks))
    return real.obs["joints"], real_joints, dream_joints

  start_joints, real_joints, dream_joints = jax.jit(jax.vmap(episode))(
      jax.random.split(jax.random.key(seed), episodes))
  first_real = real_joints[:, 0] - start_joints
  first_dream = dream_joints[:, 0] - start_joints
  error = jnp.abs(dream_joints - real_joints).mean(axis=(0, 2))
  still = jnp.abs(start_joints[:, None] - real_joints).mean(axis=(0, 2))
  return {
      "source": source, "episodes": episodes, "scale": scale,
      "motion_gain": float(controllability.motion_gain(first_real, first_dream)),
      "motion_correlation": float(controllability.motion_correlation(first_real, first_dream)),
      "tracking_ratio": float(controllability.tracking_ratio(
          start_joints, real_joints[:, 0], dream_joints[:, 0])),
      "joint_error_by_chunk": [float(x) for x in error],
      "joint_error_if_still_by_chunk": [float(x) for x in still],
  }
