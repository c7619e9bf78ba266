"""A tiny untrained world action model fitted to the toy MJX task, with run metadata.

Enough for contract tests of the neural simulator and the policy-mode controller:
shapes, caching, determinism and errors do not need a trained model.
"""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from tests.dojo.toy import Toy
from wam import config as wam_config
from wam import model as wam_model
from wam.run_metadata import RunMetadata

IMAGE = 32         # the toy task renders 32x32 ...
MODEL_IMAGE = 16   # ... the model sees 16x16 (area down-sampling by 2)
CHUNK = 2


def toy_task(**overrides) -> Toy:
  settings = dict(cameras=("front",), image_height=IMAGE, image_width=IMAGE,
                  randomize_colours=False)
  return Toy(**{**settings, **overrides})


def _stats(dim: int, scale: float) -> dict:
  z = np.zeros(dim)
  return {"mean": z.tolist(), "std": (np.ones(dim) * scale).tolist(), "min": (z - 1).tolist(),
          "max": (z + 1).tolist(), "q01": (z - 1).tolist(), "q99": (z + 1).tolist(),
          "count": 100}


def toy_model(task: Toy, seed: int = 0) -> tuple[wam_model.WorldActionModel, RunMetadata]:
  """A random tiny model whose inputs match ``task``, and metadata like a trained run's."""
  slots = task.data_slots()
  sizes = {k: sum(n for _, n in v) for k, v in slots.items()}
  dims = wam_model.Dims(num_frames=3, num_cameras=1, image_size=(MODEL_IMAGE, MODEL_IMAGE),
                        joints=sizes["joints"], proprio=sizes["proprio"],
                        action=sizes["action"], action_chunk=CHUNK, instruction_length=24)
  cfg = wam_config.model_config("toy")
  cfg.width, cfg.depth, cfg.num_heads = 32, 1, 2
  cfg.tokenizer.channels, cfg.tokenizer.latent_channels = (8, 8), 4
  cfg.text_encoder.kwargs.update(hidden=16, depth=1, num_heads=2)
  cfg.max_blocks = 6
  model = wam_model.WorldActionModel(cfg, dims, rngs=nnx.Rngs(seed))
  # Heads start at zero; make predictions depend on the inputs.
  for i, head in enumerate((model.action_head, model.frame_head, model.state_head)):
    head.kernel[...] = 0.3 * jax.random.normal(jax.random.key(i), head.kernel.shape)
  metadata = RunMetadata(
      config={"data": {"cameras": ["front"], "image_size": [MODEL_IMAGE, MODEL_IMAGE],
                       "normalization": "mean_std"}},
      statistics={"toy": {"joints": _stats(sizes["joints"], 0.5),
                          "proprio": _stats(sizes["proprio"], 2.0),
                          "action": _stats(sizes["action"], 0.5)}},
      example_batch={},
      extra={"embodiments": [task.embodiment], "datasets": ["toy"],
             "layouts": {k: [list(s) for s in v] for k, v in slots.items()}})
  return model, metadata
