r"""Does a trained tokenizer keep what acting needs? Reconstruction error on reach's targets.

  python -m benchmarks.tokenizer_targets --workdir=/tmp/runs/wam_e4 [--workdir=...] \
      --out=benchmarks/tokenizer_targets_cpu.json --image=docs/images/tokenizer_targets.png

``reach``'s four targets cover 1-2 pixels of a 32x32 view, so a tokenizer trained on
the mean pixel error alone can blur them or shift their colours and lose little loss,
while the instruction names a colour. Each scene is rendered twice, with and without
its targets (moved far below the table), at the model's resolution; pixels that differ
are target pixels. For every run the benchmark encodes and decodes the scenes and
reports the mean absolute reconstruction error (0-1 units, RGB mean) on target pixels
and on all pixels, and their ratio; the PNG shows scenes beside each run's
reconstruction.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from mujoco import mjx
from PIL import Image

import dojo
from benchmarks import results as results_lib
from wam import loading, visualize
from wam.data import images

_WORKDIRS = flags.DEFINE_multi_string("workdir", None, "Trained WAM runs (reach).",
                                      required=True)
_CAMERAS = flags.DEFINE_list("cameras", ["front", "head"], "Cameras (as the runs saw).")
_SCENES = flags.DEFINE_integer("scenes", 64, "Random reach scenes.")
_OUT = flags.DEFINE_string("out", "", "JSON results file ('' = print only).")
_IMAGE = flags.DEFINE_string("image", "", "PNG of scenes and reconstructions ('' = none).")


def render_scenes(cameras: tuple[str, ...], size: tuple[int, int], num: int
                  ) -> tuple[np.ndarray, np.ndarray]:
  """uint8 frames [N, V, H, W, 3] of random reach scenes and bool target masks [N, V, H, W]."""
  task = dojo.load("reach", cameras=cameras, image_height=64, image_width=64)
  arm = task.unwrapped
  states = jax.jit(jax.vmap(task.reset))(jax.random.split(jax.random.key(0), num))

  def render(data, info):
    obs = arm.render(data, info)
    return jnp.stack([obs[f"pixels/{c}"] for c in cameras])

  # Targets far below the table; forward kinematics moves their geoms there too.
  hidden = jax.jit(jax.vmap(lambda d: mjx.forward(arm.mjx_model, d.replace(
      mocap_pos=d.mocap_pos.at[:, 2].set(-10.0)))))(states.data)
  with_targets = np.asarray(jax.jit(jax.vmap(render))(states.data, states.info))
  without = np.asarray(jax.jit(jax.vmap(render))(hidden, states.info))
  plan = images.resize_plan((64, 64), size)
  with_targets = images.to_uint8(images.resize(with_targets, plan))
  without = images.to_uint8(images.resize(without, plan))
  mask = np.abs(with_targets.astype(np.int32) - without.astype(np.int32)).max(-1) > 24
  return with_targets, mask


def main(argv):
  del argv
  rows, panels = {}, []
  frames = None
  for workdir in _WORKDIRS.value:
    model, _ = loading.load(workdir)
    if frames is None:
      frames, mask = render_scenes(tuple(_CAMERAS.value), model.dims.image_size,
                                   _SCENES.value)
      panels.append(frames[:4])
    z = jax.jit(model.latents)(jnp.asarray(frames[:, None]))
    h, w = model.dims.image_size
    p = model.tokenizer.patch
    recon = jax.jit(lambda z: model.tokenizer.decode(z.reshape(
        z.shape[:2] + (len(_CAMERAS.value), h // p, w // p, -1))))(z)
    recon = np.asarray(recon)[:, 0]
    error = np.abs(recon - frames.astype(np.float32) / 255.0).mean(-1)  # [N, V, H, W]
    on_targets, overall = float(error[mask].mean()), float(error.mean())
    rows[workdir] = {"error_on_targets": on_targets, "error_overall": overall,
                     "ratio": on_targets / overall}
    panels.append(visualize.to_uint8(recon[:4]))
    print(json.dumps({workdir: rows[workdir]}), flush=True)
  result = {"task": "reach", "cameras": _CAMERAS.value, "scenes": _SCENES.value,
            "target_pixel_fraction": float(mask.mean()), "runs": rows}
  if _OUT.value:
    results_lib.write_json(_OUT.value, result)
  if _IMAGE.value:
    # Rows: scenes; columns: the frames, then each run's reconstruction (cameras side by side).
    rows_img = [visualize.tile([np.concatenate(list(panel[i]), 1) for panel in panels])
                for i in range(min(4, len(frames)))]
    image = np.concatenate(rows_img, 0)
    Image.fromarray(np.kron(image, np.ones((4, 4, 1), np.uint8))).save(_IMAGE.value)


if __name__ == "__main__":
  app.run(main)
