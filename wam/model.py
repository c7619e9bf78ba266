"""The world action model: a block-causal transformer over frames, joints and actions.

One network predicts, for every time block ``t`` of a window, the action chunk taken
from step ``t`` together with the next physical state it leads to (frame latents and
joint angles of step ``t + 1``), conditioned on the instruction and the clean
observations of blocks ``0..t`` (``wam.sequence`` lays out the tokens and the mask).

- ``loss(batch, rng)``: the training objective on a batch of windows from ``wam.data``
  (flow matching or regression, ``wam.objective``) plus the tokenizer's reconstruction.
- ``encode_prefix`` / ``encode_obs`` / ``predict``: the pieces a rollout needs; they
  take and return keys/values so that ``wam.dream`` can cache them.

Dimensions come from the data (``Dims.from_batch``): the number of cameras, image size,
joint/proprio/action vector sizes and chunk length; checkpoints store an example batch so
``wam.run_metadata`` / ``wam.loading.load`` rebuild the same model from a directory.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from ml_collections import config_dict

from wam import layers, objective, sequence, text_encoder
from wam.sequence import OBS, PRED, PREFIX, TokenMeta
from wam.tokenizer import FrameTokenizer

ACTION_PRIORS = ("zero", "state")
TOKENIZER_GRADIENTS = ("reconstruction", "context")


class BatchShapeError(ValueError):
  """A batch whose fields disagree with the model's dimensions."""


@dataclasses.dataclass(frozen=True)
class Dims:
  """Sizes the model is built for, read off a batch of windows."""

  num_frames: int
  num_cameras: int
  image_size: tuple[int, int]
  joints: int
  proprio: int
  action: int
  action_chunk: int
  instruction_length: int
  # Indices into joints + proprio that are prediction targets only (``model.predict_only``).
  hidden_state: tuple[int, ...] = ()

  @property
  def state(self) -> int:
    return self.joints + self.proprio

  @classmethod
  def from_batch(cls, batch: Mapping[str, Any]) -> "Dims":
    """Reads the dimensions of a batch from ``wam.data.Pipeline`` (leading batch axis)."""
    missing = [k for k in ("frames", "joints", "proprio", "actions", "instruction")
               if k not in batch]
    if missing:
      raise BatchShapeError(f"Batch lacks field(s) {missing}; it has {sorted(batch)}.")
    f = batch["frames"].shape
    if len(f) != 6 or f[-1] != 3:
      raise BatchShapeError(f"batch['frames'] must be [B, T, V, H, W, 3], got {list(f)}.")
    a = batch["actions"].shape
    return cls(num_frames=f[1], num_cameras=f[2], image_size=(f[3], f[4]),
               joints=batch["joints"].shape[-1], proprio=batch["proprio"].shape[-1],
               action=a[-1], action_chunk=a[-2],
               instruction_length=batch["instruction"].shape[-1])

  def expected_shapes(self, batch_size: int) -> dict[str, tuple[int, ...]]:
    b, t, v = batch_size, self.num_frames, self.num_cameras
    return {
        "frames": (b, t, v) + tuple(self.image_size) + (3,), "camera_mask": (b, v),
        "joints": (b, t, self.joints), "joints_mask": (b, t, self.joints),
        "proprio": (b, t, self.proprio), "proprio_mask": (b, t, self.proprio),
        "actions": (b, t, self.action_chunk, self.action),
        "action_mask": (b, t, self.action_chunk, self.action),
        "instruction": (b, self.instruction_length),
        "instruction_mask": (b, self.instruction_length), "embodiment": (b,)}

  def check_batch(self, batch: Mapping[str, Any]) -> None:
    """Raises ``BatchShapeError`` listing every field whose shape disagrees."""
    size = batch["frames"].shape[0] if "frames" in batch else 0
    bad = []
    for name, shape in self.expected_shapes(size).items():
      if name not in batch:
        bad.append(f"{name}: missing")
      elif tuple(batch[name].shape) != shape:
        bad.append(f"{name}: batch {list(batch[name].shape)} vs model {list(shape)}")
    if bad:
      raise BatchShapeError("Batch does not match the model's dimensions (set from the "
                            f"config/checkpoint: {self}):\n  " + "\n  ".join(bad))


class Prediction(NamedTuple):
  """Model outputs on prediction tokens: estimates of the clean targets ``x1``."""
  actions: jax.Array  # [B, T, K, A]
  frames: jax.Array   # [B, T, V*N, C]  latents of the next frame
  state: jax.Array    # [B, T, S]       joints + proprio of the next step


class WorldActionModel(nnx.Module):
  """Tokenizer + text encoder + block-causal transformer + prediction heads."""

  def __init__(self, config, dims: Dims, *, rngs: nnx.Rngs):
    # Frozen (hashable): module attributes that are not arrays are static graph data.
    config = config_dict.FrozenConfigDict(config)
    self.config = config
    self.dims = dims
    if dims.num_frames > config.max_blocks:
      raise ValueError(f"Windows of {dims.num_frames} frames exceed model.max_blocks "
                       f"{config.max_blocks}.")
    dtype = jnp.dtype(config.dtype)
    d = config.width
    self.tokenizer = FrameTokenizer(channels=tuple(config.tokenizer.channels),
                                    latent_channels=config.tokenizer.latent_channels,
                                    rngs=rngs)
    c = config.tokenizer.latent_channels
    self.tokens_per_frame = self.tokenizer.tokens_per_frame(dims.image_size)
    self.frame_tokens = dims.num_cameras * self.tokens_per_frame
    self.text = text_encoder.build(config.text_encoder.name, config.text_encoder.kwargs,
                                   width=d, rngs=rngs)
    # Inputs.
    self.obs_frame_in = layers.dense(rngs, c, d, ("latent", "embed"))
    self.obs_state_in = layers.dense(rngs, 2 * dims.state, d, ("state", "embed"))
    # Raw pixel patches beside the latents (model.pixel_patches): the tokenizer is trained
    # on reconstruction alone and blurs what is small (docs/model.md).
    p = self.tokenizer.patch
    self.obs_pixel_in = (layers.dense(rngs, p * p * 3, d, ("patch", "embed"))
                         if config.get("pixel_patches", False) else None)
    # Prediction tokens read their noisy input side by side with the block's own (clean)
    # observation: each frame token sees the latent it is to change without having to
    # find it by attention (conditioning by concatenation, as video diffusion models do).
    self.pred_frame_in = layers.dense(rngs, 2 * c, d, ("latent", "embed"))
    # The state token also reads the block's action chunk: in world-model mode the next
    # joints follow the commanded ones, an effect it should not have to find by attention.
    self.pred_state_in = layers.dense(rngs, 2 * dims.state + dims.action_chunk * dims.action,
                                      d, ("state", "embed"))
    self.action_in = layers.dense(rngs, dims.action, d, ("action", "embed"))
    self.spatial = layers.embedding(rngs, self.frame_tokens, d, axis="positions")
    self.chunk_position = layers.embedding(rngs, dims.action_chunk, d, axis="positions")
    self.block_position = layers.embedding(rngs, config.max_blocks, d, axis="positions")
    self.embodiment = layers.embedding(rngs, config.max_embodiments, d)
    # Token roles: text, goal, obs frame, obs state, action, pred frame, pred state.
    self.role = layers.embedding(rngs, 7, d)
    self.time_mlp = nnx.Sequential(layers.dense(rngs, 256, d, (None, "embed")), jax.nn.silu,
                                   layers.dense(rngs, d, d, ("embed", "embed_out")))
    self.backbone = layers.Transformer(d, config.depth, config.num_heads, config.mlp_ratio,
                                       rngs=rngs, dtype=dtype, remat=config.remat)
    # Heads (zero-initialised: training starts from "predict zero velocity").
    self.action_head = layers.dense(rngs, d, dims.action, ("embed", "action"), zero=True)
    self.frame_head = layers.dense(rngs, d, c, ("embed", "latent"), zero=True)
    self.state_head = layers.dense(rngs, d, dims.state, ("embed", "state"), zero=True)
    prior = config.get("action_prior", "zero")
    if prior not in ACTION_PRIORS:
      raise ValueError(f"Unknown model.action_prior {prior!r}; choose from {ACTION_PRIORS}.")
    self.action_prior = (layers.dense(rngs, dims.state, dims.action_chunk * dims.action,
                                      ("state", "action"), zero=True)
                         if prior == "state" else None)

  # ---------------------------------------------------------------- token embedding

  def _time(self, tau: jax.Array) -> jax.Array:
    return self.time_mlp(layers.sinusoidal(tau * 1000.0, 256))

  def encode_prefix(self, instruction: jax.Array, instruction_mask: jax.Array,
                    goal_latents: Optional[jax.Array] = None,
                    camera_mask: Optional[jax.Array] = None
                    ) -> tuple[jax.Array, TokenMeta]:
    """Instruction (and goal) tokens [B, P, D] and their metadata."""
    x, valid = self.text(instruction, instruction_mask.astype(bool))
    x = x + self.role(jnp.asarray(0))
    if self.config.goal_image:
      if goal_latents is None:
        raise ValueError("model.goal_image is set but no goal frame was given.")
      g = self.obs_frame_in(goal_latents.reshape(goal_latents.shape[0], self.frame_tokens, -1))
      x = jnp.concatenate([x, g + self.spatial.embedding[...] + self.role(jnp.asarray(1))], 1)
      valid = jnp.concatenate([valid, self._frame_valid(camera_mask)], 1)
    kind = jnp.full((x.shape[1],), PREFIX, jnp.int32)
    return x, TokenMeta(kind, jnp.zeros_like(kind), valid)

  def _frame_valid(self, camera_mask: jax.Array) -> jax.Array:
    return jnp.repeat(camera_mask.astype(bool), self.tokens_per_frame, axis=-1)

  def embed_obs(self, latents: jax.Array, state: jax.Array, state_mask: jax.Array,
                camera_mask: jax.Array, embodiment: jax.Array, first_block,
                frames: Optional[jax.Array] = None) -> tuple[jax.Array, TokenMeta]:
    """Clean observation blocks -> tokens [B, n*(V*N+1), D].

    Args:
      latents: frame latents [B, n, V*N, C]; state, state_mask: [B, n, S].
      camera_mask: bool [B, V]; embodiment: int [B]; first_block: index of block 0.
      frames: the pixels behind ``latents``, [B, n, V, H, W, 3] (uint8, or float in
        [0, 1]), read with ``model.pixel_patches``; None for dreamed observations, whose
        pixels are decoded from their latents.
    """
    b, n = latents.shape[:2]
    blocks = first_block + jnp.arange(n)
    pos = self.block_position(blocks)[None, :, None]
    frame = (self.obs_frame_in(latents) + self.spatial.embedding[...] + self.role(jnp.asarray(2))
             + pos)
    if self.obs_pixel_in is not None:
      if frames is None:
        frames = self.decode(latents)
      frame = frame + self.obs_pixel_in(self.patches(frames))
    m = self.hide(state_mask.astype(jnp.float32))
    st = (self.obs_state_in(jnp.concatenate([state * m, m], -1)) + self.role(jnp.asarray(3))
          + self.embodiment(embodiment)[:, None] + pos[:, :, 0])
    x = jnp.concatenate([frame, st[:, :, None]], 2).reshape(b, -1, frame.shape[-1])
    per_block = self.frame_tokens + 1
    valid = jnp.concatenate([self._frame_valid(camera_mask), jnp.ones((b, 1), bool)], -1)
    return x, sequence.block_meta(OBS, n, per_block, valid, first_block)

  def embed_pred(self, actions: jax.Array, frames: jax.Array, state: jax.Array,
                 tau_action: jax.Array, tau_video: jax.Array, last_latents: jax.Array,
                 last_state: jax.Array, camera_mask: jax.Array, embodiment: jax.Array,
                 first_block) -> tuple[jax.Array, TokenMeta]:
    """Noisy prediction blocks -> tokens [B, n*(K+V*N+1), D].

    Args:
      actions: [B, n, K, A]; frames: [B, n, V*N, C]; state: [B, n, S] (flow states x_tau).
      tau_action, tau_video: flow times [B, n] (1 = clean; given actions have 1).
      last_latents, last_state: each block's own observation, [B, n, V*N, C] and
        [B, n, S] (as in ``read_pred``).
    """
    b, n = frames.shape[:2]
    blocks = first_block + jnp.arange(n)
    pos = self.block_position(blocks)[None, :, None]
    emb = self.embodiment(embodiment)[:, None, None]
    t_act = self._time(tau_action)[:, :, None]
    t_vid = self._time(tau_video)[:, :, None]
    act = (self.action_in(actions) + self.chunk_position.embedding[...]
           + self.role(jnp.asarray(4)) + pos + emb + t_act)
    frame = (self.pred_frame_in(jnp.concatenate([frames, last_latents.astype(frames.dtype)], -1))
             + self.spatial.embedding[...]
             + self.role(jnp.asarray(5)) + pos + t_vid)
    chunk = actions.reshape(actions.shape[:2] + (-1,)).astype(state.dtype)
    last_state = self.hide(last_state)
    st = (self.pred_state_in(jnp.concatenate([state, last_state.astype(state.dtype), chunk],
                                             -1))[:, :, None]
          + self.role(jnp.asarray(6)) + pos + emb + t_vid)
    x = jnp.concatenate([act, frame, st], 2).reshape(b, -1, act.shape[-1])
    k = self.dims.action_chunk
    valid = jnp.concatenate([jnp.ones((b, k), bool), self._frame_valid(camera_mask),
                             jnp.ones((b, 1), bool)], -1)
    return x, sequence.block_meta(PRED, n, k + self.frame_tokens + 1, valid, first_block)

  def read_pred(self, h: jax.Array, noisy: Prediction, tau_action: jax.Array,
                tau_video: jax.Array, last_latents: jax.Array, last_state: jax.Array
                ) -> Prediction:
    """Estimates of the clean targets from the transformer outputs of ``n`` pred blocks.

    The next frame and state are predicted relative to the block's own (last)
    observation, ``last_latents`` [B, n, V*N, C] and ``last_state`` [B, n, S], the action
    chunk relative to zero or to a linear function of ``last_state``
    (``model.action_prior``), and all are blended
    with the noisy inputs (``objective.precondition``): an untrained model predicts
    "nothing moves" from noise and the clean input when it is given, and learning only
    has to explain what changes.
    """
    b, n = last_latents.shape[:2]
    k = self.dims.action_chunk
    last_state = self.hide(last_state)  # predict-only dimensions start from zero
    h = h.reshape(b, n, k + self.frame_tokens + 1, -1).astype(jnp.float32)
    s = self.config.residual_scale
    if self.action_prior is None:
      action_base = jnp.zeros_like(noisy.actions)
    else:
      action_base = self.action_prior(last_state.astype(jnp.float32)).reshape(
          noisy.actions.shape)
    return Prediction(
        objective.precondition(self.action_head(h[:, :, :k]), noisy.actions, tau_action,
                               action_base, s.actions),
        objective.precondition(self.frame_head(h[:, :, k:k + self.frame_tokens]),
                               noisy.frames, tau_video, last_latents, s.frames),
        objective.precondition(self.state_head(h[:, :, -1]), noisy.state, tau_video,
                               last_state, s.state))

  def run(self, x: jax.Array, meta: TokenMeta, cache: Optional[tuple[list, TokenMeta]] = None
          ) -> tuple[jax.Array, list[layers.KV]]:
    """The transformer on tokens ``x`` given cached keys (``(kvs, meta)``) or none."""
    if cache is None:
      mask = sequence.allowed(meta, meta)
      return self.backbone(x.astype(jnp.dtype(self.config.dtype)), mask)
    kvs, cache_meta = cache
    mask = jnp.concatenate([sequence.allowed(meta, cache_meta), sequence.allowed(meta, meta)], -1)
    return self.backbone(x.astype(jnp.dtype(self.config.dtype)), mask, kvs)

  # ------------------------------------------------------------------- training

  def latents(self, frames: jax.Array) -> jax.Array:
    """uint8 frames [B, T, V, H, W, 3] -> latents [B, T, V*N, C]."""
    z = self.tokenizer.encode(frames)
    return z.reshape(z.shape[:2] + (-1, z.shape[-1]))

  def decode(self, latents: jax.Array) -> jax.Array:
    """Latents [..., V*N, C] -> frames float32 [..., V, H, W, 3] in [0, 1]."""
    d, p = self.dims, self.tokenizer.patch
    z = latents.reshape(latents.shape[:-2] + (d.num_cameras, d.image_size[0] // p,
                                              d.image_size[1] // p, latents.shape[-1]))
    return self.tokenizer.decode(z)

  def patches(self, frames: jax.Array) -> jax.Array:
    """Frames [..., V, H, W, 3] (uint8 or [0, 1]) -> pixel patches [..., V*N, p*p*3] in
    [-1, 1], in the order of the latent tokens (camera, row, column)."""
    p = self.tokenizer.patch
    x = frames.astype(jnp.float32)
    if frames.dtype == jnp.uint8:
      x = x / 255.0
    *lead, v, h, w, c = x.shape
    x = x.reshape(*lead, v, h // p, p, w // p, p, c)
    x = jnp.moveaxis(x, -4, -3)  # [..., V, h/p, w/p, p, p, 3]
    return x.reshape(*lead, v * (h // p) * (w // p), p * p * c) * 2.0 - 1.0

  def state_of(self, batch: Mapping[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
    """Joints and proprio side by side: values and masks, [B, T, S]."""
    return (jnp.concatenate([batch["joints"], batch["proprio"]], -1),
            jnp.concatenate([batch["joints_mask"], batch["proprio_mask"]], -1))

  def hide(self, state: jax.Array) -> jax.Array:
    """``state`` (or its mask) [..., S] with the predict-only dimensions zeroed: what the
    model may read of an observation."""
    if not self.dims.hidden_state:
      return state
    seen = np.ones(self.dims.state, bool)
    seen[list(self.dims.hidden_state)] = False
    return state * jnp.asarray(seen, state.dtype)

  def forward(self, batch: Mapping[str, jax.Array], z: jax.Array, noisy: Prediction,
              tau_action: jax.Array, tau_video: jax.Array) -> Prediction:
    """Full teacher-forced pass over a window: all obs blocks clean, all pred blocks noisy."""
    state, state_mask = self.state_of(batch)
    goal = z[:, -1] if self.config.goal_image else None
    px, pmeta = self.encode_prefix(batch["instruction"], batch["instruction_mask"], goal,
                                   batch["camera_mask"])
    ox, ometa = self.embed_obs(z, state, state_mask, batch["camera_mask"], batch["embodiment"], 0,
                               batch["frames"])
    last_state = state * state_mask.astype(state.dtype)
    qx, qmeta = self.embed_pred(noisy.actions, noisy.frames, noisy.state, tau_action, tau_video,
                                z, last_state, batch["camera_mask"], batch["embodiment"], 0)
    h, _ = self.run(jnp.concatenate([px, ox, qx], 1), sequence.concat(pmeta, ometa, qmeta))
    return self.read_pred(h[:, px.shape[1] + ox.shape[1]:], noisy, tau_action, tau_video, z,
                          last_state)

  def loss(self, batch: Mapping[str, jax.Array], rng: jax.Array
           ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Training loss on a batch of windows; returns ``(loss, metrics)``."""
    z_grad = self.latents(batch["frames"])
    recon = self.tokenizer.decode(z_grad.reshape(batch["frames"].shape[:3] + (
        self.dims.image_size[0] // self.tokenizer.patch,
        self.dims.image_size[1] // self.tokenizer.patch, -1)), clip=False)
    pixels = batch["frames"].astype(jnp.float32) / 255.0
    cam = batch["camera_mask"].astype(jnp.float32)[:, None, :, None, None, None]
    recon_loss = ((recon - pixels) ** 2 * cam).sum() / jnp.maximum(
        cam.sum() * np.prod(pixels.shape[1:2] + pixels.shape[3:]), 1.0)
    # Targets are always fixed latents. The context is too by default (only
    # reconstruction trains the tokenizer); with model.tokenizer_gradient="context" every
    # loss also shapes the tokenizer through the latents it reads, as DreamerV3's encoder
    # learns from all its losses (measured on reach's 1-2 pixel targets: docs/model.md).
    z = jax.lax.stop_gradient(z_grad)
    mode = self.config.get("tokenizer_gradient", "reconstruction")
    if mode not in TOKENIZER_GRADIENTS:
      raise ValueError(f"Unknown model.tokenizer_gradient {mode!r}; choose from "
                       f"{TOKENIZER_GRADIENTS}.")
    context = z_grad if mode == "context" else z
    state, state_mask = self.state_of(batch)
    targets, masks = objective.targets(z, state, state_mask, batch, self.tokens_per_frame)
    flow = objective.Flow.sample(rng, targets, masks["has_actions"], self.config,
                                 batch.get("imitate"))
    out = self.forward(batch, context, flow.noisy, flow.tau_action, flow.tau_video)
    terms = objective.losses(out, flow, targets, masks)
    w = self.config.loss_weights
    total = (w.video * terms["video"] + w.state * terms["state"] + w.action * terms["action"]
             + w.reconstruction * recon_loss)
    return total, {"loss": total, "loss/reconstruction": recon_loss,
                   **{f"loss/{k}": v for k, v in terms.items()}}


def count_parameters(model: nnx.Module) -> int:
  """Number of trainable parameters."""
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(nnx.state(model, nnx.Param))))
