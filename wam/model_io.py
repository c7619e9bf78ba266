"""A trained world action model's inputs and outputs for one robot, task-free.

A WAM sees normalised, padded vectors (``wam.vectors``: per-dataset statistics, layouts
shared by a mixture of robots), frames at its own resolution and cameras, and byte
tokens of the instruction; it was trained on windows of ``num_frames`` blocks. ``ModelIO``
is the one definition of that interface as pure JAX functions on *unbatched* values:
the vector codecs, the assembly of one observation into model inputs, starting a
context from the instruction, the window restart and one closed-loop step. Both
``wam.policy`` (a robot over the network) and ``dojo.neural`` (a Dojo task, dreamed or
real) build on it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Optional

import jax
import jax.numpy as jnp

from wam import dream
from wam.data.layout import Layout
from wam.data.statistics import VectorStatistics
from wam.model import WorldActionModel
from wam.vectors import VectorCodec, vector_codec

VECTORS = ("joints", "proprio", "action")


@dataclasses.dataclass(frozen=True)
class ModelIO:
  """Conversions between one robot and one trained model (all unbatched, pure).

  Attributes are constants (numpy), so a ``ModelIO`` can be closed over by jitted
  functions.
  """

  cameras: tuple[str, ...]
  image_size: tuple[int, int]
  joints: VectorCodec
  proprio: VectorCodec
  action: VectorCodec
  action_chunk: int
  window: int            # blocks per training window (``model.dims.num_frames``)
  embodiment_id: int

  @classmethod
  def for_robot(cls, model: WorldActionModel, metadata, dataset: str,
                layouts: Mapping[str, Layout], embodiment_id: int, *,
                mismatch: Callable[[str, ValueError], Optional[Exception]], **extra: Any):
    """The conversions of a robot with vector slots ``layouts`` (``VECTORS``).

    Args:
      model: the trained model (its ``dims``).
      metadata: its ``RunMetadata`` (data config, statistics, the run's layouts).
      dataset: whose statistics normalise the robot's vectors.
      layouts: the robot's own slots of each vector.
      embodiment_id: the robot's index in the run's embodiments.
      mismatch: ``(vector name, error) -> exception to raise`` when a vector does not
        fit the model, or None to raise the error as it is.
      **extra: further fields of a subclass.
    """
    data_config = metadata.config["data"]
    statistics = (metadata.statistics or {}).get(dataset, {})
    model_layouts = (metadata.extra or {}).get("layouts", {})
    normalization = data_config.get("normalization", "mean_std")
    codecs = {}
    for name in VECTORS:
      stats = statistics.get(name)
      stats = VectorStatistics.from_json(stats) if isinstance(stats, Mapping) else stats
      try:
        codecs[name] = vector_codec(layouts[name], Layout.of(model_layouts[name]), stats,
                                    normalization)
      except ValueError as e:
        error = mismatch(name, e)
        if error is None:
          raise
        raise error from None
    d = model.dims
    return cls(tuple(data_config["cameras"]), tuple(int(s) for s in data_config["image_size"]),
               codecs["joints"], codecs["proprio"], codecs["action"], d.action_chunk,
               d.num_frames, embodiment_id, **extra)

  def inputs(self, frames: jax.Array, joints: jax.Array, proprio: jax.Array,
             has_proprio: Optional[jax.Array] = None) -> dict[str, jax.Array]:
    """One time step of model inputs (``wam.data`` field names, no batch/time axes).

    Args:
      frames: uint8 [V, H, W, 3] at the model's cameras and size.
      joints, proprio: the robot's vectors in its own units.
      has_proprio: whether ``proprio`` was read this step (a bool scalar); without a
        reading it is padded and masked, never invented. None: always read.
    """
    j, j_mask = self.joints.to_model(joints)
    p, p_mask = self.proprio.to_model(proprio)
    if has_proprio is not None:
      p, p_mask = jnp.where(has_proprio, p, 0.0), p_mask & has_proprio
    return {"frames": frames, "joints": j, "joints_mask": j_mask, "proprio": p,
            "proprio_mask": p_mask, "camera_mask": jnp.ones((len(self.cameras),), bool),
            "embodiment": jnp.asarray(self.embodiment_id, jnp.int32)}

  def start(self, model: WorldActionModel, tokens: jax.Array, mask: jax.Array
            ) -> dream.Cache:
    """The KV-cache prefix of an instruction (byte tokens and mask [L]), with room for
    one window of observation blocks: where every context starts (over)."""
    return dream.start(model, tokens[None], mask[None],
                       jnp.ones((1, len(self.cameras)), bool), num_blocks=self.window)

  def restart(self, cache: dream.Cache, prefix: dream.Cache, block
              ) -> tuple[dream.Cache, Any]:
    """Where the observation of window position ``block`` goes: ``(cache, block)``, or
    ``(prefix, 0)`` once the window is used up, as in training (never block positions
    training did not see). A Python int ``block`` is decided on the host; an array one
    under jit."""
    if isinstance(block, int):
      return (prefix, 0) if block >= self.window else (cache, block)
    full = block >= self.window
    return (jax.tree.map(lambda p, c: jnp.where(full, p, c), prefix, cache),
            jnp.where(full, 0, block))

  def act(self, model: WorldActionModel, cache: dream.Cache, block,
          inputs: Mapping[str, jax.Array], rng: jax.Array, *, flow_steps: int = 1
          ) -> tuple[jax.Array, jax.Array, dream.Cache]:
    """One closed-loop step (``wam.dream.act``) from ``inputs`` (``ModelIO.inputs``).

    Returns:
      The next action chunk [K, A] (normalised), the next joints and proprio the model
      expects (normalised state [S]) and the cache holding the observation.
    """
    inputs = jax.tree.map(lambda x: x[None], inputs)
    actions, predicted, cache = dream.act(model, cache, block, inputs, rng,
                                          flow_steps=flow_steps)
    return actions[0], predicted.state[0], cache

  def state_to_env(self, state: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A predicted model state [S] (joints + proprio, normalised) -> robot joints, proprio."""
    j = self.joints.model_dim
    return self.joints.to_env(state[..., :j]), self.proprio.to_env(state[..., j:])
