"""Training objectives: flow matching (default) and a deterministic regression variant.

Targets of prediction block ``t`` (``x1``): the action chunk taken from step ``t``, the
frame latents of step ``t + 1`` and its joints + proprio. Flow matching follows the
straight path ``x_tau = (1 - tau) * noise + tau * x1`` (``tau = 1`` is clean). The network
predicts the clean ``x1`` itself ("x-prediction", as in Li & He 2025, "Back to Basics:
Let Denoising Generative Models Denoise") and is trained with the squared error on
``x1``, i.e. the velocity loss weighted by ``(1 - tau)^2``; a rollout integrates the
implied velocity ``(x1_hat - x_tau) / (1 - tau)`` with Euler steps from ``tau = 0``. One
step returns ``x1_hat`` at ``tau = 0``, the conditional mean: one step works (fast, a
little blurry). A small model predicting ``x1`` (most of which is "the same as the last
frame", see ``WorldActionModel.read_pred``) learns far faster than one that must cancel
the noise exactly to predict a velocity.

Each block draws its own flow times: ``tau_video`` for frames and state together and
``tau_action`` for the action chunk. With probability ``given_action_prob`` the chunk is
*given* (``tau_action = 1``, clean input, no action loss): this trains world-model mode
(predict the outcome of given actions) and policy mode (denoise actions and frames
jointly) in one network. A window without actions (human or unlabeled video) always
gets ``tau_action = 0`` (pure noise in, nothing to learn from out): the video and state
terms train, the action head receives exactly zero gradient. A window from a dataset
whose actions are not to be imitated (``batch["imitate"]`` False: play or exploration
data) always gets its actions given: it teaches what actions do, never which to take.

The regression variant feeds zeros (``tau = 0``) instead of noise, with the same loss.
Per-modality masks (absent cameras, the last block's missing next frame, joints a
source does not have, padded action slots) weight every term.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple

import jax
import jax.numpy as jnp

OBJECTIVES = ("flow", "regression")
TIME_SAMPLING = ("uniform", "logit_normal", "quadratic")


class Targets(NamedTuple):
  actions: jax.Array  # [B, T, K, A]
  frames: jax.Array   # [B, T, V*N, C]
  state: jax.Array    # [B, T, S]


def targets(z: jax.Array, state: jax.Array, state_mask: jax.Array,
            batch: Mapping[str, jax.Array], tokens_per_frame: int
            ) -> tuple[Targets, dict[str, jax.Array]]:
  """Prediction targets of every block and their masks (bool, broadcastable)."""
  t = z.shape[1]
  next_frames = jnp.concatenate([z[:, 1:], jnp.zeros_like(z[:, :1])], 1)
  next_state = jnp.concatenate([state[:, 1:], jnp.zeros_like(state[:, :1])], 1)
  has_next = (jnp.arange(t) < t - 1)[None, :, None]
  frame_valid = jnp.repeat(batch["camera_mask"].astype(bool), tokens_per_frame, -1)
  action_mask = batch["action_mask"].astype(bool)
  masks = {
      "frames": has_next & frame_valid[:, None, :],
      "state": jnp.concatenate([state_mask[:, 1:].astype(bool),
                                jnp.zeros_like(state_mask[:, :1], bool)], 1),
      "actions": action_mask,
      "has_actions": action_mask.any((-1, -2)),
  }
  return Targets(batch["actions"].astype(jnp.float32), next_frames, next_state), masks


def _times(rng: jax.Array, shape, sampling: str) -> jax.Array:
  if sampling == "uniform":
    return jax.random.uniform(rng, shape)
  if sampling == "logit_normal":
    return jax.nn.sigmoid(jax.random.normal(rng, shape))
  if sampling == "quadratic":  # tau = u^2: half the draws below 0.25, where a 1-step
    return jax.random.uniform(rng, shape) ** 2  # rollout starts and context matters most

  raise ValueError(f"Unknown model.time_sampling {sampling!r}; choose from {TIME_SAMPLING}.")


def _expand(tau: jax.Array, x: jax.Array) -> jax.Array:
  return tau.reshape(tau.shape + (1,) * (x.ndim - tau.ndim))


class Flow(NamedTuple):
  """One draw of the objective's inputs for a batch."""
  noisy: Targets          # inputs x_tau of the prediction tokens
  noise: Targets          # x0 (zeros for regression)
  tau_action: jax.Array   # [B, T]
  tau_video: jax.Array    # [B, T]
  regression: bool

  @classmethod
  def sample(cls, rng: jax.Array, x1: Targets, has_actions: jax.Array, config,
             imitate: jax.Array | None = None) -> "Flow":
    """Draws noise, flow times and given-action choices for every block.

    ``imitate`` (bool [B], default all True): windows whose actions are not behaviour
    to imitate (play data) always get their actions given: world-model mode only.
    """
    if config.objective not in OBJECTIVES:
      raise ValueError(f"Unknown model.objective {config.objective!r}; choose from {OBJECTIVES}.")
    regression = config.objective == "regression"
    k_va, k_act, k_given, k_noise = jax.random.split(rng, 4)
    shape = has_actions.shape
    given = jax.random.bernoulli(k_given, config.given_action_prob, shape)
    if imitate is not None:
      given = given | ~imitate.astype(bool)[:, None]
    given = given & has_actions
    if regression:
      tau_video = jnp.zeros(shape)
      tau_action = given.astype(jnp.float32)
      noise = jax.tree.map(jnp.zeros_like, x1)
    else:
      tau_video = _times(k_va, shape, config.time_sampling)
      tau_action = jnp.where(given, 1.0, jnp.where(has_actions, _times(k_act, shape,
                                                                      config.time_sampling), 0.0))
      keys = jax.random.split(k_noise, 3)
      noise = Targets(*[jax.random.normal(k, x.shape) for k, x in zip(keys, x1)])
    noisy = Targets(interpolate(noise.actions, x1.actions, tau_action),
                    interpolate(noise.frames, x1.frames, tau_video),
                    interpolate(noise.state, x1.state, tau_video))
    return cls(noisy, noise, tau_action, tau_video, regression)


def interpolate(x0: jax.Array, x1: jax.Array, tau: jax.Array) -> jax.Array:
  """The flow path ``(1 - tau) * x0 + tau * x1`` with ``tau`` [B, T] broadcast."""
  tau = _expand(tau, x1)
  return (1.0 - tau) * x0 + tau * x1


def masked_mse(pred: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
  """Mean squared error over the entries ``mask`` (broadcast from the left) keeps."""
  mask = jnp.broadcast_to(mask.reshape(mask.shape + (1,) * (pred.ndim - mask.ndim)),
                          pred.shape).astype(jnp.float32)
  return ((pred - target) ** 2 * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def losses(out, flow: Flow, x1: Targets, masks: Mapping[str, jax.Array]
           ) -> dict[str, jax.Array]:
  """Masked mean squared errors of the video, state and action terms (on ``x1``)."""
  target = x1
  # Given (clean) action chunks carry no action loss.
  action_mask = masks["actions"] & (flow.tau_action < 1.0)[:, :, None, None]
  return {"video": masked_mse(out.frames, target.frames, masks["frames"]),
          "state": masked_mse(out.state, target.state, masks["state"]),
          "action": masked_mse(out.actions, target.actions, action_mask)}


def precondition(network: jax.Array, x_tau: jax.Array, tau: jax.Array, base: jax.Array,
                 scale: float) -> jax.Array:
  """The estimate of ``x1`` from the network's output, blended with the noisy input.

  With ``x1 = base + r`` and ``r`` of typical size ``scale``, the best linear guess of
  ``x1`` from ``x_tau`` alone is ``base + k (x_tau - tau base)`` with
  ``k = tau s^2 / (tau^2 s^2 + (1 - tau)^2)``; the network adds a correction scaled by
  ``c = s (1 - tau) / sqrt(tau^2 s^2 + (1 - tau)^2)`` (EDM's ``c_skip``/``c_out``, Karras
  et al. 2022, for this flow path). At ``tau = 1`` the estimate is the (clean) input, at
  ``tau = 0`` it is ``base + s * network``: the network never has to learn to copy its
  input, only to correct it, with unit-scale outputs at every noise level.

  Args:
    network: raw head outputs; x_tau: the noisy inputs; tau: flow times broadcastable
      to them ([B, T] is expanded); base: the prior guess (the last observation for
      frames and state, 0 for actions); scale: ``s``.
  """
  tau = _expand(tau, x_tau)
  s2 = scale ** 2
  denominator = tau ** 2 * s2 + (1.0 - tau) ** 2
  k = tau * s2 / denominator
  c = scale * (1.0 - tau) * jax.lax.rsqrt(denominator)
  return base + k * (x_tau - tau * base) + c * network


def euler_step(x: jax.Array, x1_hat: jax.Array, tau: jax.Array, dt: float) -> jax.Array:
  """One Euler step of the flow from ``tau`` to ``tau + dt`` given the model's ``x1_hat``."""
  tau = _expand(tau, x)
  return x + dt * (x1_hat - x) / jnp.maximum(1.0 - tau, dt)
