r"""Where dreamed frames stand: the model against copying the last frame and an oracle.

  python -m benchmarks.dreams --workdir=workdir/wam --out=benchmarks/dreams_cpu.json

On ``--windows`` evenly spread windows of the run's held-out (``val``) and training
splits, one context frame and one dreamed block in world-model mode (real actions):

- ``latent_mse`` (model's predicted next latents) vs ``latent_mse_copy`` (the last
  latents): whether the model predicts motion in latent space at all;
- PSNR at horizon 1 of the model's anchored rendering, of copying the last frame, and of
  the *oracle*: the anchored rendering of the true next latents (the ceiling the
  tokenizer allows), averaged per image (``psnr_*``) and pooled over the set
  (``pooled_psnr_*``, from the mean squared error, which near-static windows whose
  per-image PSNR is very high cannot dominate);
- ``tracking``: the neural simulator against MJX from the same real states, driven by
  the same chunks (``dojo.neural.controllability``: ``play`` actions around the current pose,
  ``--play_scale`` wide, and uniformly ``random`` ones, held for a chunk): the joint-angle
  error (rad) after each chunk against "the joints do not move" (``tracking_ratio``
  after one chunk), and how much of the real joint motion the dream reproduces
  (``motion_gain``: least-squares slope of dreamed on real joint change; 1 is right, 0
  is "ignores the actions").
"""

from __future__ import annotations

from absl import app, flags

from benchmarks import results as results_lib

_WORKDIR = flags.DEFINE_string("workdir", None, "A trained WAM run.")
_OUT = flags.DEFINE_string("out", "benchmarks/dreams.json", "Where to write the JSON results.")
_WINDOWS = flags.DEFINE_integer("windows", 32, "Windows per split.")
_TASK = flags.DEFINE_string("task", "reach", "The Dojo task the run was trained on.")
_EPISODES = flags.DEFINE_integer("episodes", 16, "Episodes for the tracking measure.")
_CHUNKS = flags.DEFINE_integer("chunks", 3, "Chunks per episode for the tracking measure.")
_PLAY_SCALE = flags.DEFINE_float("play_scale", 0.2, "Width of play actions (action units).")
flags.mark_flag_as_required("workdir")


def measure(model, config, data, split: str, windows: int) -> dict:
  """The figures of the module docstring on ``windows`` windows of ``split``."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from wam import dream, image_metrics, trainer  # pylint: disable=import-outside-toplevel
  config.eval.batch_size, config.eval.split = windows, split
  windows_of_split, found = trainer.eval_batch(config, data)
  batch = {k: jnp.asarray(v) for k, v in windows_of_split.items()}
  frames = batch["frames"].astype(jnp.float32) / 255.0
  z = model.latents(batch["frames"])
  decoded = dream.decode_latents(model, z)
  out = dream.dream(model, dream.context_of(batch, 1), jax.random.key(0), horizon=1,
                    actions=batch["actions"][:, :1], flow_steps=1)
  real, last = frames[:, 1], frames[:, 0]
  renders = {"model": out.frames[:, 0], "copy": last,
             "oracle": jnp.clip(last + decoded[:, 1] - decoded[:, 0], 0.0, 1.0)}
  result = {"windows": windows, "split_found": found,  # False: training windows instead
            "latent_mse": float(jnp.mean((out.latents[:, 0] - z[:, 1]) ** 2)),
            "latent_mse_copy": float(jnp.mean((z[:, 0] - z[:, 1]) ** 2))}
  for name, image in renders.items():
    result[f"psnr_{name}"] = float(image_metrics.psnr(image, real).mean())
    mse = float(jnp.mean((image - real) ** 2))
    result[f"pooled_psnr_{name}"] = float(image_metrics.psnr_from_mse(mse))
  return result


def tracking(model, metadata, task_name: str, episodes: int, chunks: int,
             source: str, scale: float) -> dict:
  """The ``tracking`` figures of the module docstring (``dojo.neural.controllability.track``)."""
  import dojo  # pylint: disable=import-outside-toplevel
  from dojo import wrappers  # pylint: disable=import-outside-toplevel
  from dojo.neural import controllability  # pylint: disable=import-outside-toplevel
  from dojo.neural.env import NeuralEnv  # pylint: disable=import-outside-toplevel
  from dojo.neural.model_io import ModelIO  # pylint: disable=import-outside-toplevel
  task = dojo.load(task_name, cameras=tuple(metadata.config["data"]["cameras"]),
                   image_height=64, image_width=64, instructions="seen")
  neural = NeuralEnv(model, ModelIO.create(model, metadata, task), task, render="none")
  physics = wrappers.ChunkWrapper(task, neural.chunk)
  return controllability.track(task, physics, neural, source=source, episodes=episodes,
                               chunks=chunks, scale=scale)


def main(argv):
  del argv
  from ml_collections import config_dict  # pylint: disable=import-outside-toplevel
  from wam import loading  # pylint: disable=import-outside-toplevel
  from wam.data import pipeline  # pylint: disable=import-outside-toplevel
  model, metadata = loading.load(_WORKDIR.value)
  config = config_dict.ConfigDict(metadata.config)
  data = pipeline.from_config(config.data)
  results = {"workdir": _WORKDIR.value}
  for split in ("val", "train"):
    results[split] = measure(model, config, data, split, _WINDOWS.value)
    r = results[split]
    print(f"[benchmarks.dreams] {split}: latent mse {r['latent_mse']:.3f} (copy "
          f"{r['latent_mse_copy']:.3f}); PSNR h1 model {r['psnr_model']:.2f}, copy "
          f"{r['psnr_copy']:.2f}, oracle {r['psnr_oracle']:.2f} dB; pooled model "
          f"{r['pooled_psnr_model']:.2f}, copy {r['pooled_psnr_copy']:.2f}, oracle "
          f"{r['pooled_psnr_oracle']:.2f} dB", flush=True)
  task = _TASK.value
  for source in ("play", "random"):
    results[f"tracking_{source}"] = t = tracking(model, metadata, task, _EPISODES.value,
                                                 _CHUNKS.value, source, _PLAY_SCALE.value)
    print(f"[benchmarks.dreams] tracking ({task}, {source} actions): joint error by chunk "
          f"{[round(x, 3) for x in t['joint_error_by_chunk']]} rad vs "
          f"{[round(x, 3) for x in t['joint_error_if_still_by_chunk']]} if still (ratio "
          f"{t['tracking_ratio']:.2f}); motion gain {t['motion_gain']:.2f}, correlation "
          f"{t['motion_correlation']:.2f}", flush=True)
  results_lib.write_json(_OUT.value, results)


if __name__ == "__main__":
  app.run(main)
