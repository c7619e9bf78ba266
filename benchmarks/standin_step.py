"""A STAND-IN training step for ``benchmarks.data``, until wam's world action model lands.

The world action model is the next issue; this step only has roughly its compute on a
CPU so that the data benchmark can say whether the input pipeline keeps up with
training. It is not a model to train or to reuse: the loss is plausible, not tuned.

Per window of ``T`` blocks (``V`` cameras, ``K`` actions per block):

- each 64x64 frame is cut into 8x8 patches, linearly embedded to ``width`` (a stride-8
  conv): 64 tokens per frame and camera;
- each block adds a joint token (joints and proprio with their masks) and an
  action-chunk token (the block's ``K`` actions with their masks);
- a pre-LN transformer (``layers`` x ``heads``, MLP ``mlp``) runs over all blocks with a
  segment-causal mask: frame tokens of block ``t`` see blocks ``< t`` and each other, the
  joint token also sees them, the action token sees its whole block;
- heads regress the next frame's patch embeddings (stop-gradient target, from frame
  tokens plus the block's action token), the next block's joints (from the action token)
  and the block's actions (from the joint token), each masked; Adam updates everything.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

Params = dict[str, Any]
Batch = Mapping[str, Any]

# Fields of a pipeline batch the step reads (the rest stays on the host).
FIELDS = ("frames", "camera_mask", "joints", "joints_mask", "proprio", "proprio_mask",
          "actions", "action_mask")


@dataclasses.dataclass(frozen=True)
class StandinConfig:
  """Sizes of the stand-in; the defaults are the toy model planned for a 2-core CPU."""

  patch: int = 8
  width: int = 128
  heads: int = 4
  mlp: int = 512
  layers: int = 2
  learning_rate: float = 3e-4

  def describe(self) -> str:
    return (f"stand-in: patch-{self.patch} encoder, {self.layers}-layer transformer "
            f"(width {self.width}, {self.heads} heads, MLP {self.mlp}) over frame, joint "
            "and action-chunk tokens, next-frame-embedding/joint/action regression, Adam "
            "(benchmarks/standin_step.py; wam's world action model does not exist yet)")


def _dense(key: jax.Array, n_in: int, n_out: int) -> Params:
  return {"w": jax.random.normal(key, (n_in, n_out)) / np.sqrt(n_in),
          "b": jnp.zeros((n_out,))}


def _apply_dense(p: Params, x: jax.Array) -> jax.Array:
  return x @ p["w"] + p["b"]


def _layer_norm(p: Params, x: jax.Array) -> jax.Array:
  mean = x.mean(-1, keepdims=True)
  var = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) * jax.lax.rsqrt(var + 1e-6) * p["scale"] + p["bias"]


def _ln(width: int) -> Params:
  return {"scale": jnp.ones((width,)), "bias": jnp.zeros((width,))}


def _shapes(batch: Batch) -> dict[str, tuple[int, ...]]:
  return {k: tuple(np.shape(batch[k])) for k in FIELDS}


def init(key: jax.Array, batch: Batch, config: StandinConfig = StandinConfig()) -> Params:
  """Parameters for batches shaped like ``batch`` (only its shapes are read)."""
  s = _shapes(batch)
  _, t, v, h, w, _ = s["frames"]
  p, d = config.patch, config.width
  n = v * (h // p) * (w // p)  # frame tokens per block
  k_a = s["actions"][2] * s["actions"][3]
  vec = 2 * (s["joints"][2] + s["proprio"][2])  # values and masks
  keys = iter(jax.random.split(key, 16 + 4 * config.layers))
  layers = []
  for _ in range(config.layers):
    layers.append({"ln1": _ln(d), "qkv": _dense(next(keys), d, 3 * d),
                   "out": _dense(next(keys), d, d), "ln2": _ln(d),
                   "fc1": _dense(next(keys), d, config.mlp),
                   "fc2": _dense(next(keys), config.mlp, d)})
  return {
      "patch": _dense(next(keys), p * p * 3, d),
      "frame_pos": 0.02 * jax.random.normal(next(keys), (n, d)),
      "time_pos": 0.02 * jax.random.normal(next(keys), (t, d)),
      "joint_in": _dense(next(keys), vec, d),
      "action_in": _dense(next(keys), 2 * k_a, d),
      "layers": layers,
      "ln_out": _ln(d),
      "frame_head": _dense(next(keys), d, d),
      "joint_head": _dense(next(keys), d, s["joints"][2]),
      "action_head": _dense(next(keys), d, k_a),
  }


def _segment_mask(t: int, n: int) -> np.ndarray:
  """bool[S,S] attention mask: segments f0, j0, a0, f1, ... each see themselves and all
  earlier segments."""
  seg = np.concatenate([np.repeat([3 * i, 3 * i + 1, 3 * i + 2], [n, 1, 1])
                        for i in range(t)])
  return seg[:, None] >= seg[None, :]


def _attention(p: Params, x: jax.Array, mask: jax.Array, heads: int) -> jax.Array:
  b, s, d = x.shape
  q, k, v = jnp.split(_apply_dense(p["qkv"], x), 3, axis=-1)
  q, k, v = (a.reshape(b, s, heads, d // heads) for a in (q, k, v))
  logits = jnp.einsum("bqhc,bkhc->bhqk", q, k) / np.sqrt(d // heads)
  logits = jnp.where(mask, logits, -1e9)
  out = jnp.einsum("bhqk,bkhc->bqhc", jax.nn.softmax(logits, axis=-1), v)
  return _apply_dense(p["out"], out.reshape(b, s, d))


def _masked_mse(pred: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
  mask = jnp.broadcast_to(mask, pred.shape).astype(pred.dtype)
  return jnp.sum(mask * (pred - target) ** 2) / jnp.maximum(mask.sum(), 1.0)


def loss_fn(params: Params, batch: Batch, config: StandinConfig = StandinConfig()
            ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Scalar loss and its parts for one batch of windows."""
  frames = batch["frames"]
  b, t, v, h, w, _ = frames.shape
  p, d = config.patch, config.width
  hp, wp = h // p, w // p
  n = v * hp * wp
  # Patches: [B,T,V,H,W,3] -> [B,T,V*hp*wp, p*p*3]; a stride-p conv as one matmul.
  x = frames.astype(jnp.float32) / 255.0
  x = x.reshape(b, t, v, hp, p, wp, p, 3).transpose(0, 1, 2, 3, 5, 4, 6, 7)
  embed = _apply_dense(params["patch"], x.reshape(b, t, n, p * p * 3))  # [B,T,N,D]
  frame_tok = embed + params["frame_pos"] + params["time_pos"][:, None]
  # A missing camera's tokens are zeroed in, and ignored by the loss.
  view_mask = jnp.repeat(batch["camera_mask"], hp * wp, axis=1)  # [B,N]
  frame_tok = frame_tok * view_mask[:, None, :, None]
  vec = jnp.concatenate([batch["joints"] * batch["joints_mask"], batch["joints_mask"],
                         batch["proprio"] * batch["proprio_mask"], batch["proprio_mask"]],
                        axis=-1).astype(jnp.float32)
  joint_tok = _apply_dense(params["joint_in"], vec) + params["time_pos"]  # [B,T,D]
  act = batch["actions"] * batch["action_mask"]
  act = jnp.concatenate([act, batch["action_mask"]], axis=-1).astype(jnp.float32)
  action_tok = _apply_dense(params["action_in"], act.reshape(b, t, -1)) + params["time_pos"]
  seq = jnp.concatenate([frame_tok, joint_tok[:, :, None], action_tok[:, :, None]], axis=2)
  seq = seq.reshape(b, t * (n + 2), d)
  mask = jnp.asarray(_segment_mask(t, n))
  for layer in params["layers"]:
    seq = seq + _attention(layer, _layer_norm(layer["ln1"], seq), mask, config.heads)
    hid = jax.nn.gelu(_apply_dense(layer["fc1"], _layer_norm(layer["ln2"], seq)))
    seq = seq + _apply_dense(layer["fc2"], hid)
  out = _layer_norm(params["ln_out"], seq).reshape(b, t, n + 2, d)
  h_frame, h_joint, h_action = out[:, :, :n], out[:, :, n], out[:, :, n + 1]
  # Next frame's patch embeddings, from this block's frame tokens and action token.
  pred_frame = _apply_dense(params["frame_head"], h_frame[:, :-1] + h_action[:, :-1, None])
  target = jax.lax.stop_gradient(embed[:, 1:])
  frame_loss = _masked_mse(pred_frame, target, view_mask[:, None, :, None])
  pred_joints = _apply_dense(params["joint_head"], h_action[:, :-1])
  joint_loss = _masked_mse(pred_joints, batch["joints"][:, 1:], batch["joints_mask"][:, 1:])
  pred_actions = _apply_dense(params["action_head"], h_joint).reshape(batch["actions"].shape)
  action_loss = _masked_mse(pred_actions, batch["actions"], batch["action_mask"])
  loss = frame_loss + joint_loss + action_loss
  return loss, {"loss": loss, "frame": frame_loss, "joints": joint_loss,
                "actions": action_loss}


def make_train_step(config: StandinConfig = StandinConfig()
                    ) -> tuple[optax.GradientTransformation, Callable]:
  """``(optimizer, step)``; ``step(params, opt_state, batch) -> (params, opt_state,
  metrics)`` is jitted and takes a pipeline batch as it comes (numpy dict)."""
  optimizer = optax.adam(config.learning_rate)

  @jax.jit
  def step(params, opt_state, batch):
    (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, config)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, metrics

  def train_step(params, opt_state, batch):
    return step(params, opt_state, {k: batch[k] for k in FIELDS})

  return optimizer, train_step
