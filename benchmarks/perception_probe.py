r"""How precisely can a network find reach's instructed target in the frames a WAM reads?

  python -m benchmarks.perception_probe \
      --train=/tmp/runs/tfds_e4/dojo_robot/<demos>/1.0.0,/tmp/runs/tfds_e4/dojo_robot/<play>/1.0.0 \
      --val=/tmp/runs/tfds_e4/dojo_robot/<demos>/1.0.0 [--image_size=32] \
      [--out=benchmarks/perception_probe_cpu.json]

A rung of the perception ladder (docs/RESULTS.md): a small convolutional network,
trained by supervised regression on nothing but this, maps the frames of every camera of
the datasets (at the WAM's resolution) and the instruction to the instructed target's
position (the ``reach_target`` proprio slot of data collected with ``observe_target``).
Its held-out error, in metres, is what perception from these pixels and this many scenes
can reach with a network built for the job; compare the WAM's own
(``benchmarks.policy_precision``: ``predict_only.reach_target.rms``) and the precision a
controller needs (``benchmarks.imitation``'s ``target_noise`` rows). ``--image_size``
reads the same frames at another resolution.

Frames are sampled at ``--frames_per_episode`` evenly spaced steps of each episode of the
``train`` splits; the error is measured on every sampled frame of the ``val`` split.
``--scenes=N`` adds N freshly reset scenes rendered by the Dojo (the arm at home, new
targets): a scene costs one render per camera, an episode fifty, so this measures what
perception gains from many more scenes at the price of a few minutes.
"""

from __future__ import annotations

import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags
from flax import nnx

import dojo
from benchmarks import results as results_lib
from wam.data import images
from wam.data.reader import EpisodeDataset

_TRAIN = flags.DEFINE_list("train", None, "Dataset directories to train on.", required=True)
_VAL = flags.DEFINE_string("val", None, "Dataset whose 'val' split is held out.",
                           required=True)
_IMAGE = flags.DEFINE_integer("image_size", 32, "Resolution the frames are read at.")
_FRAMES = flags.DEFINE_integer("frames_per_episode", 4, "Frames sampled per episode.")
_STEPS = flags.DEFINE_integer("steps", 3000, "Training steps.")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Batch size.")
_SLOT = flags.DEFINE_integer("target_dims", 3, "The target is the last this many proprio "
                             "dimensions (reach's `reach_target`).")
_SCENES = flags.DEFINE_integer("scenes", 0, "Freshly rendered reset scenes to add.")
_HEAD = flags.DEFINE_enum("head", "flatten", ["flatten", "keypoints"],
                          "How the convolutional features become a vector: 'flatten' "
                          "(strided convolutions, flattened) or 'keypoints' (full-resolution "
                          "convolutions, a spatial softmax per channel giving its expected "
                          "image coordinates: Levine et al. 2016's feature points).")
_KEYPOINTS = flags.DEFINE_integer("keypoints", 32, "Feature points per camera ('keypoints').")
_OUT = flags.DEFINE_string("out", "", "JSON results file ('' = print only).")


def load(path: str, split: str, frames_per_episode: int, size: int
         ) -> tuple[np.ndarray, list[str], np.ndarray]:
  """Frames uint8 [N, V, size, size, 3], instructions [N] and targets f32 [N, 3]."""
  ds = EpisodeDataset(path, split)
  keys = [f"observation/image_{c}" for c in ds.spec.cameras]
  frames, texts, targets = [], [], []
  for e in range(len(ds)):
    length = int(ds.episode_lengths[e])
    steps = np.linspace(0, length - 1, frames_per_episode).round().astype(int).tolist()
    rows = ds.read_steps(e, steps)
    views = []
    for k in keys:
      plan = images.resize_plan(rows[k].shape[1:3], (size, size))
      views.append(np.clip(np.round(images.resize(rows[k], plan)), 0, 255).astype(np.uint8))
    frames.append(np.stack(views, 1))
    texts += list(rows["language_instruction"])
    targets.append(rows["observation/proprio"][:, -_SLOT.value:])
  return np.concatenate(frames), texts, np.concatenate(targets).astype(np.float32)


def render_scenes(num: int, cameras: tuple[str, ...], rendered: int, size: int
                  ) -> tuple[np.ndarray, list[str], np.ndarray]:
  """``num`` reset scenes of reach (seen instructions) as ``load`` returns them."""
  task = dojo.load("reach", cameras=cameras, image_height=rendered, image_width=rendered,
                   instructions="seen", observe_target=True)
  reset = jax.jit(jax.vmap(task.reset))
  frames, texts, targets = [], [], []
  for start in range(0, num, 256):
    state = reset(jax.random.split(jax.random.key(start + 1), min(256, num - start)))
    views = []
    for c in cameras:
      x = np.asarray(state.obs[f"pixels/{c}"])
      x = images.resize(x, images.resize_plan(x.shape[1:3], (size, size)))
      views.append(np.clip(np.round(x), 0, 255).astype(np.uint8))
    frames.append(np.stack(views, 1))
    texts += [task.instruction_space.text(i) for i in np.asarray(state.info["instruction"])]
    targets.append(np.asarray(state.obs["proprio"])[:, -_SLOT.value:])
  return np.concatenate(frames), texts, np.concatenate(targets).astype(np.float32)


class Probe(nnx.Module):
  """Per-camera strided convolutions (shared), then an MLP with the instruction."""

  def __init__(self, num_cameras: int, size: int, num_instructions: int, rngs: nnx.Rngs):
    chans = (32, 64, 64)
    self.convs = nnx.List([nnx.Conv(c_in, c_out, (3, 3), strides=(2, 2), rngs=rngs)
                           for c_in, c_out in zip((3,) + chans[:-1], chans)])
    flat = num_cameras * (size // 8) ** 2 * chans[-1]
    self.hidden = nnx.Linear(flat + num_instructions, 256, rngs=rngs)
    self.out = nnx.Linear(256, 3, rngs=rngs)

  def __call__(self, frames: jax.Array, instruction: jax.Array) -> jax.Array:
    b, v = frames.shape[:2]
    x = frames.reshape((b * v,) + frames.shape[2:]).astype(jnp.float32) / 127.5 - 1.0
    for conv in self.convs:
      x = jax.nn.gelu(conv(x))
    x = jnp.concatenate([x.reshape(b, -1), instruction], -1)
    return self.out(jax.nn.gelu(self.hidden(x)))


def spatial_softmax(features: jax.Array) -> jax.Array:
  """[N, H, W, C] -> [N, C, 2]: each channel's softmax-weighted mean (x, y) in [-1, 1]."""
  n, h, w, c = features.shape
  weights = jax.nn.softmax(features.reshape(n, h * w, c), axis=1).reshape(n, h, w, c)
  ys, xs = jnp.linspace(-1.0, 1.0, h), jnp.linspace(-1.0, 1.0, w)
  return jnp.stack([jnp.einsum("nhwc,w->nc", weights, xs),
                    jnp.einsum("nhwc,h->nc", weights, ys)], -1)


class KeypointProbe(nnx.Module):
  """Full-resolution convolutions, a spatial softmax per channel, then an MLP.

  Regressing coordinates from flattened strided features is what convolutional networks
  do badly (CoordConv, Liu et al. 2018); a spatial softmax turns each channel into the
  image position where it fires, so precise localisation is built in, and the head has
  2 x keypoints inputs per camera instead of thousands.
  """

  def __init__(self, num_cameras: int, num_keypoints: int, num_instructions: int,
               rngs: nnx.Rngs):
    chans = (32, 32, num_keypoints)
    self.convs = nnx.List([nnx.Conv(c_in, c_out, (3, 3), rngs=rngs)
                           for c_in, c_out in zip((3,) + chans[:-1], chans)])
    self.hidden = nnx.Linear(num_cameras * num_keypoints * 2 + num_instructions, 256,
                             rngs=rngs)
    self.out = nnx.Linear(256, 3, rngs=rngs)

  def __call__(self, frames: jax.Array, instruction: jax.Array) -> jax.Array:
    b, v = frames.shape[:2]
    x = frames.reshape((b * v,) + frames.shape[2:]).astype(jnp.float32) / 127.5 - 1.0
    for conv in self.convs[:-1]:
      x = jax.nn.gelu(conv(x))
    points = spatial_softmax(self.convs[-1](x)).reshape(b, -1)
    x = jnp.concatenate([points, instruction], -1)
    return self.out(jax.nn.gelu(self.hidden(x)))


def main(argv):
  del argv
  start = time.time()
  train = [load(p, "train", _FRAMES.value, _IMAGE.value) for p in _TRAIN.value]
  frames = np.concatenate([t[0] for t in train])
  texts = [text for t in train for text in t[1]]
  targets = np.concatenate([t[2] for t in train])
  val_frames, val_texts, val_targets = load(_VAL.value, "val", _FRAMES.value, _IMAGE.value)
  if _SCENES.value:
    spec = EpisodeDataset(_VAL.value, "val").spec
    extra = render_scenes(_SCENES.value, tuple(spec.cameras), spec.image_size[0], _IMAGE.value)
    frames = np.concatenate([frames, extra[0]])
    texts += extra[1]
    targets = np.concatenate([targets, extra[2]])
  vocabulary = sorted(set(texts) | set(val_texts))
  one_hot = lambda ts: np.eye(len(vocabulary), dtype=np.float32)[
      [vocabulary.index(t) for t in ts]]
  instructions, val_instructions = one_hot(texts), one_hot(val_texts)
  mean, std = targets.mean(0), targets.std(0)
  print(f"{len(frames)} training frames, {len(val_frames)} held out, "
        f"{len(vocabulary)} instructions, loaded in {time.time() - start:.0f} s", flush=True)

  if _HEAD.value == "keypoints":
    model = KeypointProbe(frames.shape[1], _KEYPOINTS.value, len(vocabulary), nnx.Rngs(0))
  else:
    model = Probe(frames.shape[1], _IMAGE.value, len(vocabulary), nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, optax.adam(optax.cosine_decay_schedule(1e-3, _STEPS.value)),
                            wrt=nnx.Param)

  @nnx.jit
  def step(model, optimizer, x, i, y):
    def loss(m):
      return ((m(x, i) - (y - mean) / std) ** 2).mean()
    value, grads = nnx.value_and_grad(loss)(model)
    optimizer.update(model, grads)
    return value

  @nnx.jit
  def predict(model, x, i):
    return model(x, i) * std + mean

  def rms(x, i, y):
    p = np.concatenate([np.asarray(predict(model, x[s:s + 256], i[s:s + 256]))
                        for s in range(0, len(x), 256)])
    return float(np.sqrt(((p - y) ** 2).sum(-1).mean()))

  rng = np.random.default_rng(0)
  start = time.time()
  for s in range(_STEPS.value):
    idx = rng.integers(0, len(frames), _BATCH.value)
    loss = step(model, optimizer, jnp.asarray(frames[idx]), jnp.asarray(instructions[idx]),
                jnp.asarray(targets[idx]))
    if (s + 1) % 500 == 0:
      print(f"[probe] step {s + 1}/{_STEPS.value} loss {float(loss):.4f} "
            f"held-out rms {rms(val_frames, val_instructions, val_targets):.4f} m", flush=True)
  sub = rng.choice(len(frames), min(len(frames), len(val_frames) * 4), replace=False)
  row = {"train": _TRAIN.value, "val": _VAL.value, "scenes": _SCENES.value,
         "image_size": _IMAGE.value,
         "head": _HEAD.value, "keypoints": _KEYPOINTS.value if _HEAD.value == "keypoints" else 0,
         "train_frames": len(frames), "val_frames": len(val_frames), "steps": _STEPS.value,
         "rms_m": {"held_out": rms(val_frames, val_instructions, val_targets),
                   "train": rms(frames[sub], instructions[sub], targets[sub]),
                   "mean_guess": float(np.sqrt(((val_targets - mean) ** 2).sum(-1).mean()))},
         "train_seconds": round(time.time() - start, 1)}
  print(json.dumps(row), flush=True)
  if _OUT.value:
    results_lib.write_json(_OUT.value, row)


if __name__ == "__main__":
  app.run(main)
