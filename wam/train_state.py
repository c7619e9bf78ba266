"""The model and its training state: what the trainer trains and the loader restores.

``wam.trainer`` builds the state to train, ``wam.loading`` the same state's shapes to
restore a checkpoint onto; both build the model here so that they agree on its tree.

The training state is a dict::

  params           nnx.State of the model's parameters
  opt_state        the optimizer's state
  step             int32 scalar, steps taken
  rng              the run's PRNG key (each step folds in its index)
  nonfinite_step   int32 scalar, the first step with a NaN/inf loss or gradient; -1: none
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from ml_collections import config_dict

from wam import sharding
from wam.data.layout import Layout
from wam.model import Dims, WorldActionModel


def build_model(config: config_dict.ConfigDict, example_batch: Mapping[str, Any],
                seed: int = 0, layouts: Optional[Mapping[str, Layout]] = None
                ) -> WorldActionModel:
  """A model sized by ``example_batch`` (host arrays; the batch axis is ignored).

  ``layouts`` (``{"joints": Layout, "proprio": Layout}``) resolve ``model.predict_only``
  slot names; a model without predict-only slots needs none.
  """
  dims = dataclasses.replace(Dims.from_batch(example_batch),
                             hidden_state=hidden_state(config.model, layouts))
  return WorldActionModel(config.model, dims, rngs=nnx.Rngs(seed))


def hidden_state(model_config, layouts: Optional[Mapping[str, Layout]]) -> tuple[int, ...]:
  """Indices into joints + proprio of the ``model.predict_only`` slots.

  Raises:
    ValueError: a slot that neither layout has, or predict-only slots without layouts.
  """
  names = tuple(model_config.get("predict_only", ()))
  if not names:
    return ()
  if layouts is None:
    raise ValueError(f"model.predict_only {names} needs the data layouts to find them.")
  joints, proprio = layouts["joints"], layouts["proprio"]
  indices = []
  for name in names:
    if name in joints.names:
      start, size = joints.offset(name), joints.slots[joints.names.index(name)].size
    elif name in proprio.names:
      start = joints.dim + proprio.offset(name)
      size = proprio.slots[proprio.names.index(name)].size
    else:
      raise ValueError(f"model.predict_only names slot {name!r}, which the data does not "
                       f"have; joints slots: {joints.names}, proprio slots: {proprio.names}.")
    indices.extend(range(start, start + size))
  return tuple(indices)


def initial_state(model: WorldActionModel, optimizer: optax.GradientTransformation,
                  rng: jax.Array) -> dict:
  """The training state at step 0 of ``model`` (see the module docstring)."""
  params = nnx.state(model, nnx.Param)
  return {"params": params, "opt_state": optimizer.init(params),
          "step": jnp.zeros((), jnp.int32), "rng": rng,
          "nonfinite_step": jnp.full((), -1, jnp.int32)}


def state_shardings(abstract_state: dict, optimizer: optax.GradientTransformation,
                    mesh: jax.sharding.Mesh, rules: Sequence[tuple[str, Any]]) -> dict:
  """Shardings of the training state: parameters by the rules, the rest replicated."""
  params = sharding.param_shardings(abstract_state["params"], mesh, rules)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  return {"params": params,
          "opt_state": sharding.optimizer_shardings(optimizer, abstract_state["opt_state"],
                                                    params, mesh),
          "step": replicated, "rng": replicated, "nonfinite_step": replicated}
