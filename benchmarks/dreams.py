r"""Where dreamed frames stand: the model against copying the last frame and an oracle.

  python -m benchmarks.dreams --workdir=workdir/demo --out=benchmarks/dreams_cpu.json

On ``--windows`` evenly spread windows of the run's held-out (``val``) and training
splits, one context frame and one dreamed block in world-model mode (real actions):

- ``latent_mse`` (model's predicted next latents) vs ``latent_mse_copy`` (the last
  latents): whether the model predicts motion in latent space at all;
- PSNR at horizon 1 of the model's anchored rendering, of copying the last frame, and of
  the *oracle*: the anchored rendering of the true next latents (the ceiling the
  tokenizer allows), averaged per image (``psnr_*``) and pooled over the set
  (``pooled_psnr_*``, from the mean squared error, which near-static windows whose
  per-image PSNR is very high cannot dominate).
"""

from __future__ import annotations

import numpy as np
from absl import app, flags

from benchmarks import results as results_lib

_WORKDIR = flags.DEFINE_string("workdir", None, "A trained WAM run.")
_OUT = flags.DEFINE_string("out", "benchmarks/dreams.json", "Where to write the JSON results.")
_WINDOWS = flags.DEFINE_integer("windows", 32, "Windows per split.")
flags.mark_flag_as_required("workdir")


def measure(model, config, data, split: str, windows: int) -> dict:
  """The figures of the module docstring on ``windows`` windows of ``split``."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from wam import dream, image_metrics, trainer  # pylint: disable=import-outside-toplevel
  config.eval.batch_size, config.eval.split = windows, split
  batch = {k: jnp.asarray(v) for k, v in trainer._eval_batch(config, data).items()}  # pylint: disable=protected-access
  frames = batch["frames"].astype(jnp.float32) / 255.0
  z = model.latents(batch["frames"])
  decoded = dream.decode_latents(model, z)
  out = dream.dream(model, dream.context_of(batch, 1), jax.random.key(0), horizon=1,
                    actions=batch["actions"][:, :1], flow_steps=1)
  real, last = frames[:, 1], frames[:, 0]
  renders = {"model": out.frames[:, 0], "copy": last,
             "oracle": jnp.clip(last + decoded[:, 1] - decoded[:, 0], 0.0, 1.0)}
  result = {"windows": windows,
            "latent_mse": float(jnp.mean((out.latents[:, 0] - z[:, 1]) ** 2)),
            "latent_mse_copy": float(jnp.mean((z[:, 0] - z[:, 1]) ** 2))}
  for name, image in renders.items():
    result[f"psnr_{name}"] = float(image_metrics.psnr(image, real).mean())
    mse = float(jnp.mean((image - real) ** 2))
    result[f"pooled_psnr_{name}"] = float(image_metrics.psnr_from_mse(mse))
  return result


def main(argv):
  del argv
  from ml_collections import config_dict  # pylint: disable=import-outside-toplevel
  from wam import trainer  # pylint: disable=import-outside-toplevel
  from wam.data import pipeline  # pylint: disable=import-outside-toplevel
  model, metadata = trainer.load(_WORKDIR.value)
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
  results_lib.write_json(_OUT.value, results)


if __name__ == "__main__":
  app.run(main)
