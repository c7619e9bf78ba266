"""Dreaming: imagined rollouts block by block with a key/value cache.

A rollout encodes the instruction once (``start``), then alternates

- ``observe``: append one clean observation block (frame latents + joints) to the cache,
  either real (closed loop: what the cameras saw after a chunk was executed) or the
  model's own prediction (open-loop dreaming);
- ``predict``: denoise the next prediction block against the cache with ``flow_steps``
  Euler steps (one works), either with the action chunk given (world-model mode, for
  planners and the neural simulator) or generating it jointly with the frames (policy
  mode).

Because the attention rule (``wam.sequence``) lets nothing attend to a prediction block
of another time step, the cache holds only the prefix and clean observation blocks, and
``dream(..., use_cache=False)`` (a full recomputation of the sequence at every block)
gives the same result: the tests check exactly that.
"""

from __future__ import annotations

from typing import Callable, Mapping, NamedTuple, Optional

import jax
import jax.numpy as jnp

from wam import layers, objective, sequence
from wam.model import WorldActionModel
from wam.objective import Targets
from wam.sequence import OBS, TokenMeta


TIME_FIELDS = ("frames", "joints", "joints_mask", "proprio", "proprio_mask", "actions",
               "action_mask", "hand_keypoints", "hand_keypoints_mask")


def context_of(batch: Mapping[str, jax.Array], num_context: int) -> dict:
  """The first ``num_context`` time blocks of a batch of windows (other fields unchanged)."""
  return {k: (v[:, :num_context] if k in TIME_FIELDS else v) for k, v in batch.items()}


class Cache(NamedTuple):
  """Keys/values of the prefix and the observed blocks, in fixed-size buffers."""
  kvs: list          # one layers.KV per layer: [B, capacity, heads, head_dim]
  meta: TokenMeta    # per slot; empty slots are invalid
  length: jax.Array  # int32: slots filled
  prefix: jax.Array  # int32: slots of the prefix


class Dream(NamedTuple):
  """An imagined rollout of ``H`` blocks."""
  actions: jax.Array  # [B, H, K, A]: given (world-model mode) or generated (policy mode)
  latents: jax.Array  # [B, H, V*N, C]: predicted frame latents after each chunk
  state: jax.Array    # [B, H, S]: predicted joints + proprio after each chunk
  frames: Optional[jax.Array] = None  # [B, H, V, H, W, 3] in [0, 1] (rendered)


def start(model: WorldActionModel, instruction: jax.Array, instruction_mask: jax.Array,
          camera_mask: jax.Array, *, num_blocks: int,
          goal_latents: Optional[jax.Array] = None) -> Cache:
  """Encodes the prefix and allocates room for ``num_blocks`` observation blocks."""
  if num_blocks > model.config.max_blocks:
    raise ValueError(f"A rollout of {num_blocks} blocks exceeds model.max_blocks "
                     f"{model.config.max_blocks}.")
  x, meta = model.encode_prefix(instruction, instruction_mask, goal_latents, camera_mask)
  _, kvs = model.run(x, meta)
  b, p = x.shape[:2]
  capacity = p + num_blocks * (model.frame_tokens + 1)

  def grow(a):
    return jnp.concatenate([a, jnp.zeros((b, capacity - p) + a.shape[2:], a.dtype)], 1)
  kvs = [layers.KV(grow(kv.keys), grow(kv.values)) for kv in kvs]
  full = sequence.concat(meta, TokenMeta(jnp.full((capacity - p,), OBS, jnp.int32),
                                         jnp.zeros((capacity - p,), jnp.int32),
                                         jnp.zeros((b, capacity - p), bool)))
  return Cache(kvs, full, jnp.asarray(p, jnp.int32), jnp.asarray(p, jnp.int32))


def observe(model: WorldActionModel, cache: Cache, block, latents: jax.Array,
            state: jax.Array, state_mask: jax.Array, camera_mask: jax.Array,
            embodiment: jax.Array, frames: Optional[jax.Array] = None) -> Cache:
  """Appends one clean observation block (latents [B, V*N, C], state [B, S]) to the cache.

  ``frames`` [B, V, H, W, 3]: the real pixels behind ``latents``; None for a dreamed
  observation (``model.pixel_patches`` then reads its decoded latents).
  """
  x, meta = model.embed_obs(latents[:, None], state[:, None], state_mask[:, None],
                            camera_mask, embodiment, block,
                            None if frames is None else frames[:, None])
  _, kvs = model.run(x, meta, (cache.kvs, cache.meta))

  def put(buffer, new):
    start_index = (0, cache.length) + (0,) * (buffer.ndim - 2)
    return jax.lax.dynamic_update_slice(buffer, new.astype(buffer.dtype), start_index)
  kvs = [layers.KV(put(c.keys, n.keys), put(c.values, n.values))
         for c, n in zip(cache.kvs, kvs)]
  batch = x.shape[0]
  meta = TokenMeta(*[put(c, jnp.broadcast_to(n, (batch,) + n.shape[-1:]))
                     for c, n in zip(cache.meta, meta)])
  return Cache(kvs, meta, cache.length + x.shape[1], cache.prefix)


RunFn = Callable[[jax.Array, TokenMeta], jax.Array]


def _denoise(model: WorldActionModel, run: RunFn, block, noise: Targets,
             given_actions: Optional[jax.Array], last: tuple[jax.Array, jax.Array],
             camera_mask: jax.Array, embodiment: jax.Array, flow_steps: int) -> Targets:
  """Integrates one prediction block from noise (Euler) given a way to run the backbone."""
  b = noise.frames.shape[0]
  regression = model.config.objective == "regression"
  given = given_actions is not None
  x = Targets(given_actions if given else noise.actions, noise.frames, noise.state)
  if regression:
    x = Targets(x.actions if given else jnp.zeros_like(x.actions),
                jnp.zeros_like(x.frames), jnp.zeros_like(x.state))
    flow_steps = 1
  tau_action = jnp.full((b,), 1.0 if given else 0.0)
  dt = 1.0 / flow_steps

  def step(x, i):
    tau = jnp.full((b,), i * dt)
    tokens, meta = model.embed_pred(x.actions[:, None], x.frames[:, None], x.state[:, None],
                                    tau_action[:, None] if given else tau[:, None],
                                    tau[:, None], last[0][:, None], last[1][:, None],
                                    camera_mask, embodiment, block)
    noisy = Targets(x.actions[:, None], x.frames[:, None], x.state[:, None])
    out = model.read_pred(run(tokens, meta), noisy,
                          (tau_action if given else tau)[:, None], tau[:, None],
                          last[0][:, None], last[1][:, None])
    out = Targets(out.actions[:, 0], out.frames[:, 0], out.state[:, 0])
    if regression:
      return Targets(x.actions if given else out.actions, out.frames, out.state), None
    new = Targets(x.actions if given else objective.euler_step(x.actions, out.actions, tau, dt),
                  objective.euler_step(x.frames, out.frames, tau, dt),
                  objective.euler_step(x.state, out.state, tau, dt))
    return new, None
  x, _ = jax.lax.scan(step, x, jnp.arange(flow_steps))
  return x


def predict(model: WorldActionModel, cache: Cache, block, noise: Targets, *,
            last_latents: jax.Array, last_state: jax.Array, camera_mask: jax.Array,
            embodiment: jax.Array, actions: Optional[jax.Array] = None,
            flow_steps: int = 4) -> Targets:
  """Denoises prediction block ``block`` against the cache.

  Args:
    last_latents, last_state: the observation of block ``block`` (the last one added to
      the cache), [B, V*N, C] and [B, S] (state already multiplied by its mask); the
      prediction is made relative to it.
    noise: starting noise, shaped like one block's targets ([B, K, A], [B, V*N, C], [B, S]).
    actions: the action chunk [B, K, A] to condition on (world-model mode), or None to
      generate it (policy mode).

  Returns:
    Clean estimates of the action chunk, the next frame latents and the next state.
  """
  return _denoise(model, lambda x, m: model.run(x, m, (cache.kvs, cache.meta))[0], block,
                  noise, actions, (last_latents, last_state), camera_mask, embodiment,
                  flow_steps)


def block_noise(model: WorldActionModel, rng: jax.Array, batch: int) -> Targets:
  """Standard normal noise for one prediction block."""
  d = model.dims
  k1, k2, k3 = jax.random.split(rng, 3)
  return Targets(jax.random.normal(k1, (batch, d.action_chunk, d.action)),
                 jax.random.normal(k2, (batch, model.frame_tokens,
                                        model.config.tokenizer.latent_channels)),
                 jax.random.normal(k3, (batch, d.state)))


def dream(model: WorldActionModel, context: Mapping[str, jax.Array], rng: jax.Array, *,
          horizon: int, actions: Optional[jax.Array] = None, flow_steps: int = 4,
          decode: bool = True, render: str = "anchored", use_cache: bool = True) -> Dream:
  """Imagines ``horizon`` blocks after the context frames.

  Args:
    context: ``wam.data`` window fields holding the ``c`` context frames: ``frames``
      [B, c, V, H, W, 3], ``joints``/``proprio`` and masks [B, c, ...], ``instruction``,
      ``instruction_mask``, ``camera_mask``, ``embodiment`` (and ``goal_latents`` if the
      model is goal-conditioned).
    rng: noise for the flow.
    horizon: blocks to imagine; step ``i`` predicts frame ``c + i`` (chunks are ``K``
      steps apart).
    actions: [B, horizon, K, A] chunks to execute (world-model mode) or None (policy mode).
    flow_steps: Euler steps per block (1 is fastest).
    decode: also render predicted latents to pixels.
    render: ``"anchored"``: the last context frame plus the decoded change of latents
      since it, ``frame_c + decode(z_hat) - decode(z_c)`` (what did not change stays
      pixel-exact, and the tokenizer's reconstruction error largely cancels); or
      ``"decoded"``: ``decode(z_hat)`` alone.
    use_cache: False recomputes the whole sequence at every block (a reference for tests).

  Returns:
    The ``Dream``.
  """
  z = model.latents(context["frames"])
  state, state_mask = model.state_of(context)
  c, b = z.shape[1], z.shape[0]
  cam, emb = context["camera_mask"], context["embodiment"]
  if actions is not None and actions.shape[1] != horizon:
    raise ValueError(f"actions cover {actions.shape[1]} chunks, horizon is {horizon}.")
  # Dreamed observations reuse the masks of the last real one (same sensors).
  dreamed_mask = state_mask[:, -1]

  def noise_and_actions(i):
    return (block_noise(model, jax.random.fold_in(rng, i), b),
            None if actions is None else actions[:, i])

  if use_cache:
    cache = start(model, context["instruction"], context["instruction_mask"], cam,
                  num_blocks=c + horizon, goal_latents=context.get("goal_latents"))
    for t in range(c):
      cache = observe(model, cache, t, z[:, t], state[:, t], state_mask[:, t], cam, emb,
                      context["frames"][:, t])

    def step(carry, i):
      cache, last_z, last_s = carry
      noise, given = noise_and_actions(i)
      out = predict(model, cache, c - 1 + i, noise, last_latents=last_z, last_state=last_s,
                    camera_mask=cam, embodiment=emb, actions=given, flow_steps=flow_steps)
      cache = observe(model, cache, c + i, out.frames, out.state, dreamed_mask, cam, emb)
      return (cache, out.frames, out.state * dreamed_mask), out
    last = (z[:, -1], state[:, -1] * state_mask[:, -1])
    _, outs = jax.lax.scan(step, (cache,) + last, jnp.arange(horizon))
    outs = jax.tree.map(lambda x: jnp.moveaxis(x, 0, 1), outs)
  else:
    outs = _dream_without_cache(model, context, z, state, state_mask, dreamed_mask,
                                noise_and_actions, horizon, flow_steps)
  frames = None
  if decode:
    frames = decode_latents(model, outs.frames)
    if render == "anchored":
      anchor = context["frames"][:, -1].astype(jnp.float32) / 255.0   # [B, V, H, W, 3]
      base = decode_latents(model, z[:, -1])
      frames = jnp.clip(anchor[:, None] + frames - base[:, None], 0.0, 1.0)
    elif render != "decoded":
      raise ValueError(f"Unknown render {render!r}; use 'anchored' or 'decoded'.")
  return Dream(outs.actions, outs.frames, outs.state, frames)


def _dream_without_cache(model, context, z, state, state_mask, dreamed_mask,
                         noise_and_actions, horizon, flow_steps) -> Targets:
  """``dream`` by recomputing prefix and all observation blocks at every block."""
  c = z.shape[1]
  if c + horizon > model.config.max_blocks:
    raise ValueError(f"A rollout of {c + horizon} blocks exceeds model.max_blocks "
                     f"{model.config.max_blocks}.")
  cam, emb = context["camera_mask"], context["embodiment"]
  prefix = model.encode_prefix(context["instruction"], context["instruction_mask"],
                               context.get("goal_latents"), cam)
  zs, ss, masks, outs = list(jnp.moveaxis(z, 1, 0)), list(jnp.moveaxis(state, 1, 0)), \
      list(jnp.moveaxis(state_mask, 1, 0)), []
  # Pixels as ``observe`` sees them (model.pixel_patches): real for the context, decoded
  # for dreamed blocks.
  reads_pixels = model.obs_pixel_in is not None
  pixels = list(jnp.moveaxis(context["frames"].astype(jnp.float32) / 255.0, 1, 0))
  for i in range(horizon):  # the sequence grows: a Python loop, one shape per block
    obs = model.embed_obs(jnp.stack(zs, 1), jnp.stack(ss, 1), jnp.stack(masks, 1), cam, emb, 0,
                          jnp.stack(pixels, 1) if reads_pixels else None)

    def run(x, meta, obs=obs):
      h, _ = model.run(jnp.concatenate([prefix[0], obs[0], x], 1),
                       sequence.concat(prefix[1], obs[1], meta))
      return h[:, -x.shape[1]:]
    noise, given = noise_and_actions(i)
    out = _denoise(model, run, c - 1 + i, noise, given, (zs[-1], ss[-1] * masks[-1]), cam, emb,
                   flow_steps)
    zs.append(out.frames)
    if reads_pixels:
      pixels.append(model.decode(out.frames))
    ss.append(out.state)
    masks.append(dreamed_mask)
    outs.append(out)
  return jax.tree.map(lambda *x: jnp.stack(x, 1), *outs)


def act(model: WorldActionModel, cache: Cache, block, observation: Mapping[str, jax.Array],
        rng: jax.Array, *, flow_steps: int = 1) -> tuple[jax.Array, Targets, Cache]:
  """One closed-loop control step: observe the real observation, then plan a chunk.

  The real observation of time block ``block`` enters the cache (replacing what the model
  would have dreamed), then the next block is denoised in policy mode.

  Args:
    cache: from ``start`` (with room for the blocks to come) or the previous ``act``.
    observation: one time step of ``wam.data`` fields without the time axis: ``frames``
      [B, V, H, W, 3], ``joints``/``proprio`` and masks [B, ...], ``camera_mask``,
      ``embodiment``; vectors normalised like the training data.

  Returns:
    The action chunk [B, K, A] (normalised), the predicted next latents and state, and
    the cache holding the observation.
  """
  z = model.latents(observation["frames"][:, None])[:, 0]
  state, mask = model.state_of({k: observation[k][:, None] for k in
                                ("joints", "joints_mask", "proprio", "proprio_mask")})
  state, mask = state[:, 0], mask[:, 0]
  cam, emb = observation["camera_mask"], observation["embodiment"]
  cache = observe(model, cache, block, z, state, mask, cam, emb, observation["frames"])
  out = predict(model, cache, block, block_noise(model, rng, z.shape[0]), last_latents=z,
                last_state=state * mask, camera_mask=cam, embodiment=emb,
                flow_steps=flow_steps)
  return out.actions, out, cache


def decode_latents(model: WorldActionModel, latents: jax.Array) -> jax.Array:
  """Latents [..., V*N, C] -> frames [..., V, H, W, 3] in [0, 1]."""
  return model.decode(latents)
