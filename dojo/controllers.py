"""Closed-loop controllers: how a world action model (or a planner) acts in a Dojo env.

A controller is a pair of pure functions over one (unbatched) env:

- ``init(state) -> carry``: at the start of an episode;
- ``act(carry, state, rng) -> (actions [K, A], carry)``: the next chunk of ``K`` actions
  in [-1, 1] from the current (real) state.

Controllers:

- ``WamPolicy`` (policy mode): the model denoises an action chunk jointly with the frames
  it expects (``wam.dream.act``); the chunk is executed (receding horizon) and the real
  observation that follows replaces what the model imagined in its KV cache (a window of
  at most ``num_frames`` blocks, as in training, then it starts over). A
  behaviour-cloning model (same backbone, trained on actions only) acts the same way.
- ``PlannerController``: a CEM/MPPI planner (``dojo.planners``) plans in a model of the
  world, MJX physics (the oracle) or the neural simulator (dreaming), from the real state;
  the first planned chunk is executed and the plan warm-starts the next one.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp

from dojo.env import State
from dojo.model_io import ModelIO
from dojo.neural_env import NeuralEnv
from dojo.planners import Planner
from wam import dream
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
    tokens, mask = self.io.instruction(state.info["instruction"])
    prefix = dream.start(self.model, tokens[None], mask[None],
                         jnp.ones((1, len(self.io.cameras)), bool),
                         num_blocks=self.model.dims.num_frames)
    return {"cache": prefix, "prefix": prefix, "block": jnp.zeros((), jnp.int32),
            "predicted_state": jnp.zeros((self.model.dims.state,), jnp.float32)}

  def act(self, carry: dict[str, Any], state: State, rng: jax.Array
          ) -> tuple[jax.Array, dict[str, Any]]:
    # The model was trained on windows of num_frames blocks: when they are used up the
    # context starts over from the current observation (the instruction is kept).
    full = carry["block"] >= self.model.dims.num_frames
    cache = jax.tree.map(lambda p, c: jnp.where(full, p, c), carry["prefix"], carry["cache"])
    block = jnp.where(full, 0, carry["block"])
    obs = jax.tree.map(lambda x: x[None], self.io.observation(state.obs))
    actions, predicted, cache = dream.act(self.model, cache, block, obs, rng,
                                          flow_steps=self.flow_steps)
    # The next joints and proprio it expects (normalised): what it believes of the scene,
    # e.g. a predict-only target position (benchmarks.policy_precision).
    return self.io.actions_to_env(actions[0]), {
        **carry, "cache": cache, "block": block + 1,
        "predicted_state": predicted.state[0].astype(jnp.float32)}


@dataclasses.dataclass(frozen=True)
class PlannerController:
  """Receding-horizon planning in ``planner.env`` from each real state.

  ``to_plan_state`` maps the acting env's state to a state of the planning env (e.g.
  ``NeuralEnv.start`` to dream from the real frame, or dropping the pixels for a
  physics env without cameras). The planning env steps whole chunks
  (``ChunkWrapper`` or ``NeuralEnv``), so plans are ``[horizon, K * A]`` and
  ``planner.config.chunk`` must be 1.

  ``initial_action(state)`` (one env action) centres the first plan of an episode: for
  absolute position targets, holding the current controls (``dojo.play.home_action``)
  keeps the first samples near the robot's pose instead of the middle of the joint
  ranges, which also keeps a dream's candidates near the motions it was trained on.
  ``None`` centres it on zeros.
  """

  planner: Planner
  to_plan_state: Callable[[State], State]
  chunk: int
  initial_action: Optional[Callable[[State], jax.Array]] = None

  def __post_init__(self):
    if self.planner.config.chunk != 1:
      raise ValueError("PlannerController plans whole chunks per env step: use "
                       f"PlannerConfig(chunk=1), got chunk={self.planner.config.chunk}.")

  def init(self, state: State) -> jax.Array:
    shape = (self.planner.config.horizon, self.planner.env.action_size)
    if self.initial_action is None:
      return jnp.zeros(shape)
    return jnp.broadcast_to(jnp.tile(self.initial_action(state), self.chunk), shape)

  def act(self, carry: jax.Array, state: State, rng: jax.Array
          ) -> tuple[jax.Array, jax.Array]:
    plan, _ = self.planner(self.to_plan_state(state), rng, previous_plan=carry)
    return plan[0].reshape(self.chunk, -1), plan


def without_pixels(state: State) -> State:
  """The state with camera images dropped (for planning in physics without cameras)."""
  return state.replace(obs={k: v for k, v in state.obs.items()
                            if not k.startswith(("pixels/", "depth/", "segmentation/"))})


def dream_planner(planner: Planner, initial_action: Optional[Callable[[State], jax.Array]] = None
                  ) -> PlannerController:
  """Planning inside the neural simulator ``planner.env`` from each real state."""
  env = planner.env.unwrapped
  if not isinstance(env, NeuralEnv):
    raise TypeError(f"dream_planner needs a planner over a NeuralEnv, got {type(env)}.")
  return PlannerController(planner, env.start, env.chunk, initial_action)


def physics_planner(planner: Planner, chunk: int,
                    initial_action: Optional[Callable[[State], jax.Array]] = None
                    ) -> PlannerController:
  """Planning inside MJX physics (the oracle): ``planner.env`` is a ``ChunkWrapper``."""
  return PlannerController(planner, without_pixels, chunk, initial_action)
