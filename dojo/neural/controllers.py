"""A world action model acting in a Dojo env: policy mode, and planning in its dreams.

Controllers follow the protocol of ``dojo.controllers`` (``init(state) -> carry``,
``act(carry, state, rng) -> (actions [K, A], carry)``, over one unbatched env):

- ``WamPolicy`` (policy mode): the model denoises an action chunk jointly with the frames
  it expects (``wam.dream.act``); the chunk is executed (receding horizon) and the real
  observation that follows replaces what the model imagined in its KV cache (a window of
  at most ``num_frames`` blocks, as in training, then it starts over). A
  behaviour-cloning model (same backbone, trained on actions only) acts the same way.
- ``dream_planner``: a CEM/MPPI planner (``dojo.planners``) plans inside the neural
  simulator from each real state (``dojo.controllers.PlannerController``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp

from dojo.controllers import PlannerController
from dojo.env import State
from dojo.neural.env import NeuralEnv
from dojo.neural.model_io import ModelIO
from dojo.planners import Planner
from wam.model import WorldActionModel


@dataclasses.dataclass(frozen=True)
class WamPolicy:
  """Policy mode with receding horizon and real observations re-injected (see module)."""

  model: WorldActionModel
  io: ModelIO
  flow_steps: int = 1

  @property
  def chunk(self) -> int:
    return self.model.dims.action_chunk

  def init(self, state: State) -> dict[str, Any]:
    prefix = self.io.start(self.model, *self.io.instruction(state.info["instruction"]))
    return {"cache": prefix, "prefix": prefix, "block": jnp.zeros((), jnp.int32),
            "predicted_state": jnp.zeros((self.model.dims.state,), jnp.float32)}

  def act(self, carry: dict[str, Any], state: State, rng: jax.Array
          ) -> tuple[jax.Array, dict[str, Any]]:
    # The model was trained on windows of num_frames blocks: when they are used up the
    # context starts over from the current observation (the instruction is kept).
    cache, block = self.io.restart(carry["cache"], carry["prefix"], carry["block"])
    actions, predicted, cache = self.io.act(self.model, cache, block,
                                            self.io.observation(state.obs), rng,
                                            flow_steps=self.flow_steps)
    # The next joints and proprio it expects (normalised): what it believes of the scene,
    # e.g. a predict-only target position (benchmarks.policy_precision).
    return self.io.actions_to_env(actions), {
        **carry, "cache": cache, "block": block + 1,
        "predicted_state": predicted.astype(jnp.float32)}


def dream_planner(planner: Planner, initial_action: Optional[Callable[[State], jax.Array]] = None
                  ) -> PlannerController:
  """Planning inside the neural simulator ``planner.env`` from each real state."""
  env = planner.env.unwrapped
  if not isinstance(env, NeuralEnv):
    raise TypeError(f"dream_planner needs a planner over a NeuralEnv, got {type(env)}.")
  return PlannerController(planner, env.start, env.chunk, initial_action)
