"""Closed-loop controllers: how a planner (or a world action model) acts in a Dojo env.

A controller is a pair of pure functions over one (unbatched) env:

- ``init(state) -> carry``: at the start of an episode;
- ``act(carry, state, rng) -> (actions [K, A], carry)``: the next chunk of ``K`` actions
  in [-1, 1] from the current (real) state.

Here: ``PlannerController``, a CEM/MPPI planner (``dojo.planners``) that plans in a
model of the world, MJX physics (the oracle, ``physics_planner``) or the neural
simulator (dreaming, ``dojo.neural.controllers.dream_planner``), from the real state;
the first planned chunk is executed and the plan warm-starts the next one. The world
action model's own policy mode is ``dojo.neural.controllers.WamPolicy``; a state
behaviour-cloning policy is ``dojo.state_bc.StateBC``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import jax
import jax.numpy as jnp

from dojo.env import State
from dojo.planners import Planner


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


def physics_planner(planner: Planner, chunk: int,
                    initial_action: Optional[Callable[[State], jax.Array]] = None
                    ) -> PlannerController:
  """Planning inside MJX physics (the oracle): ``planner.env`` is a ``ChunkWrapper``."""
  return PlannerController(planner, without_pixels, chunk, initial_action)
