"""Does the policy read its action off the future frames? Action error by video flow time.

In policy mode the network denoises the action chunk and the next frames together. Their
flow times are drawn independently (``wam.objective.Flow``, UWM's recipe), so many
training blocks show a nearly clean next frame beside a noisy action, and the action
could be read off the change between frames (inverse dynamics) instead of
chosen from the context. A rollout never sees that: it starts every modality from pure
noise, and a one-step rollout (``flow_steps = 1``) predicts the action at ``tau = 0``
with no future frame at all.

``action_error_by_video_time`` measures the gap on a batch of windows: the action error
with the action chunk at pure noise (``tau_action = 0``, as a rollout starts) and the
frames and state at flow time ``tau_video``. An error that falls steeply as
``tau_video`` goes from 0 to 1 means the action head leans on the future it will not
have when acting (docs/benchmarks/metaworld.md, "Why the WAM trails").
"""

from __future__ import annotations

from typing import Mapping, Sequence

import jax
import jax.numpy as jnp

from wam import objective

VIDEO_TIMES = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)


def action_error_by_video_time(model, batch: Mapping[str, jax.Array], rng: jax.Array,
                               video_times: Sequence[float] = VIDEO_TIMES,
                               draws: int = 4) -> jax.Array:
  """Masked action MSE (normalised units) per ``tau_video``, action chunk at pure noise.

  Args:
    model: a ``WorldActionModel``.
    batch: windows as the trainer's batches (normalised vectors).
    rng: the noise draws (the same noise at every video time, so the rows differ only
      in how much of the future is visible).
    video_times: flow times of the frames and state (0 = pure noise, 1 = clean).
    draws: noise draws averaged per video time.

  Returns:
    [len(video_times)] mean squared action errors over the blocks that have actions.
  """
  z = model.latents(batch["frames"])
  state, state_mask = model.state_of(batch)
  x1, masks = objective.targets(z, state, state_mask, batch, model.tokens_per_frame)
  shape = masks["has_actions"].shape
  action_mask = masks["actions"]
  if "imitate" in batch:   # play windows' actions are not a policy target
    action_mask = action_mask & batch["imitate"].astype(bool)[:, None, None, None]

  def error(key: jax.Array, tau: jax.Array) -> jax.Array:
    keys = jax.random.split(key, 3)
    noise = objective.Targets(*[jax.random.normal(k, x.shape) for k, x in zip(keys, x1)])
    tau_video = jnp.full(shape, tau)
    tau_action = jnp.zeros(shape)
    noisy = objective.Targets(noise.actions,
                              objective.interpolate(noise.frames, x1.frames, tau_video),
                              objective.interpolate(noise.state, x1.state, tau_video))
    out = model.forward(batch, z, noisy, tau_action, tau_video)
    return objective.masked_mse(out.actions, x1.actions, action_mask)

  keys = jax.random.split(rng, draws)
  times = jnp.asarray(video_times, jnp.float32)
  return jax.vmap(lambda t: jax.vmap(lambda k: error(k, t))(keys).mean())(times)
