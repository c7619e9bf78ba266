"""Loading a trained model from its directory alone: ``load(path)``.

Below the trainer: inference (``wam.policy``, the policy server, the neural simulator),
``init_from`` (``wam.transfer``) and evaluation load runs through this module without
importing training code. A checkpoint directory carries the run's config, statistics and
an example batch (``wam.run_metadata``), so no code-side config is needed.
"""

from __future__ import annotations

import os
from typing import Collection, Optional, Union

import jax
from flax import nnx
from ml_collections import config_dict

from wam import run_metadata, text_encoder, train_state
from wam.checkpoint import Checkpointer
from wam.data.layout import Layout
from wam.model import WorldActionModel
from wam.optimizer import make_optimizer


def checkpoint_directory(path: str) -> str:
  """The checkpoint directory of ``path``: ``path/checkpoints`` of a workdir, else ``path``."""
  nested = os.path.join(path, "checkpoints")
  return nested if os.path.isdir(nested) else path


def _layouts_of(meta: run_metadata.RunMetadata) -> Optional[dict[str, Layout]]:
  """The joints/proprio layouts a run recorded (None for runs from before layouts)."""
  recorded = (meta.extra or {}).get("layouts")
  return {k: Layout.of(recorded[k]) for k in ("joints", "proprio")} if recorded else None


def load(path: str, step: Optional[int] = None, *,
         allow_code_import: Union[bool, Collection[str]] = False
         ) -> tuple[WorldActionModel, run_metadata.RunMetadata]:
  """Rebuilds a trained model from a work or checkpoint directory alone.

  Args:
    path: a workdir (holding ``checkpoints/``) or the checkpoint directory itself.
    step: the step to load; None: the latest.
    allow_code_import: whether the checkpoint's ``config.json`` may name a
      ``module:Class`` text encoder, which imports (runs) that module: True for any, a
      collection of encoder names for those only; False (default): registered ones only.

  Returns:
    The model (parameters restored) and the run metadata (config, statistics, example
    batch, layouts).

  Raises:
    PermissionError: the config names a module to import and ``allow_code_import`` does
      not allow it.
  """
  ckpt_dir = checkpoint_directory(path)
  meta = run_metadata.read_run_metadata(ckpt_dir)
  # Before anything is built: building the model imports the encoder's module.
  text_encoder.check_importable(
      str(meta.config.get("model", {}).get("text_encoder", {}).get("name", "")),
      allow_code_import, os.path.join(ckpt_dir, run_metadata.CONFIG_FILE))
  config = config_dict.ConfigDict(meta.config)
  config.model.text_encoder.kwargs = dict(config.model.text_encoder.kwargs)
  optimizer = make_optimizer(config.optimizer, config.num_steps)
  layouts = _layouts_of(meta)
  abstract_state = jax.eval_shape(lambda: train_state.initial_state(
      train_state.build_model(config, meta.example_batch, config.seed, layouts), optimizer,
      jax.random.key(config.seed)))
  # Onto this process's first device, whatever mesh (or hosts) the run was trained on.
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  abstract_state = jax.tree.map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device), abstract_state)
  checkpointer = Checkpointer(ckpt_dir, read_only=True)
  _, state, _ = checkpointer.restore(abstract_state, step)
  checkpointer.close()
  graphdef, _ = nnx.split(nnx.eval_shape(
      lambda: train_state.build_model(config, meta.example_batch, layouts=layouts)))
  return nnx.merge(graphdef, state["params"]), meta
