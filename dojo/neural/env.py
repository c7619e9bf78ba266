"""The neural simulator: a Dojo env whose engine is a trained world action model.

``NeuralEnv`` implements the Env contract (``dojo.env``) with dreams instead of physics:

- ``reset(rng)`` resets the *task* (MJX physics draws the scene, the instruction and
  renders the first frame, as DreamDojo starts every dream from a real first frame),
  encodes the instruction and observes that first frame into the model's KV cache.
- ``step(state, action)`` takes one **action chunk** (``chunk * A`` values, flat, the
  interface of ``dojo.wrappers.ChunkWrapper`` around the physics env), dreams the next
  frame latents and joints in world-model mode (``wam.dream.predict`` with the chunk
  given), renders the frame, and appends the dreamed observation to the cache (open-loop
  dreaming: the model continues from its own imagination).
- Reward, success and the ``privileged`` observation come from the task's own functions
  applied to the dreamed state (``task.score``, ``task.privileged``): the predicted
  joint angles (and velocities) and, for tasks with ``object_joints`` (push,
  pick_place, dex_lift), the predicted object positions (the proprio slot
  ``task.object_slot``, which simulated data records) are written into the physics
  state of the reset, and forward kinematics places them (``task.kinematic_state``:
  positions and orientations, no collisions or dynamics).
  Object orientations stay as reset. A model trained without that slot (real-robot data
  has no object poses) cannot be built into a NeuralEnv for such a task:
  ``ModelIO.create`` names the missing slot before any compute.

``State.data`` holds the cache, the last latents/state and the kinematic physics state;
everything is unbatched and jit-able, so ``VmapWrapper``/``wrap_for_training`` batch it
and ``brax.training`` PPO and the planners use it exactly like the MJX env.

Context: the model was trained on windows of ``model.dims.num_frames`` blocks, so the
cache holds at most that many; when it is full the dream continues from its latest
(dreamed) observation as block 0 (the instruction prefix is kept, ``ModelIO.restart``),
never at block positions training did not see. A planner may plan ``max_plan_steps =
num_frames - 1`` chunks ahead (what one window covers); a dream ends after
``max_chunks`` chunks (``done``, ``metrics["dream_end"]``).
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp

from dojo.env import Env, State, sanitize_action
from dojo.neural.model_io import ModelIO, ModelTaskMismatchError
from wam import dream
from wam.model import WorldActionModel

RENDERS = ("anchored", "decoded", "none")
DIVERGENCE_MARGIN = 0.5  # rad (or m for slides) beyond a joint's range


class NeuralEnv(Env):
  """A Dojo env dreamed by a world action model (see the module docstring)."""

  def __init__(self, model: WorldActionModel, io: ModelIO, task, *, flow_steps: int = 1,
               render: str = "anchored", max_chunks: int = 16):
    """Args:

    model: the trained model (its parameters are constants of the env).
    io: ``ModelIO.create(model, metadata, task)``.
    task: the MJX task whose reset, reward and success functions the dream uses.
    flow_steps: Euler steps per dreamed chunk (1 is fastest).
    render: ``"anchored"`` (first real frame plus the decoded change of latents) or
      ``"decoded"`` (the decoder's output), as in ``wam.dream.dream``; ``"none"``: the
      fast dynamics path for planners and RL that score joints and task state only:
      the frame decoder never runs and ``obs["pixels/*"]`` stay the first real frame
      (the dream itself still advances in latent space).
    max_chunks: chunks per dream before the episode ends.
    """
    if render not in RENDERS:
      raise ValueError(f"Unknown render {render!r}; choose from {RENDERS}.")
    if flow_steps < 1:
      raise ValueError(f"flow_steps must be positive, got {flow_steps}.")
    if max_chunks < 1:
      raise ValueError(f"max_chunks must be positive, got {max_chunks}.")
    self.window = model.dims.num_frames   # blocks per training window
    if self.window < 2:
      raise ValueError("The model was trained on 1-frame windows: it never predicted "
                       "from an observation block, so it cannot be a simulator.")
    if io.env_action_size != task.action_size:
      raise ModelTaskMismatchError(f"ModelIO was built for {io.env_action_size} actions, "
                                   f"the task has {task.action_size}.")
    self.model, self.io, self.task = model, io, task
    self.flow_steps, self.render, self.max_chunks = flow_steps, render, max_chunks
    self.chunk = model.dims.action_chunk
    # A dreamed joint beyond its range by more than this (or non-finite) ends the dream.
    lo, hi = task.robot_joint_ranges()
    self._joint_lo = jnp.asarray(lo - DIVERGENCE_MARGIN, jnp.float32)
    self._joint_hi = jnp.asarray(hi + DIVERGENCE_MARGIN, jnp.float32)

  # ---------------------------------------------------------------- contract

  @property
  def action_size(self) -> int:
    return self.chunk * self.task.action_size

  @property
  def max_plan_steps(self) -> int:
    """Chunks a planner may dream from a real state: one training window's worth."""
    return self.window - 1

  @property
  def dt(self) -> float:
    return self.chunk * self.task.dt

  @property
  def observation_size(self) -> dict[str, tuple[int, ...]]:
    obs = jax.eval_shape(self.reset, jax.random.key(0)).obs
    return {k: tuple(v.shape) for k, v in obs.items()}

  def reset(self, rng: jax.Array) -> State:
    real = self.task.reset(rng)
    return self.start(real)

  def start(self, real: State) -> State:
    """A dream starting from a real (physics) task state, e.g. mid-episode."""
    io, model = self.io, self.model
    obs = io.observation(real.obs)
    prefix = io.start(model, *io.instruction(real.info["instruction"]))
    b = lambda x: x[None]
    z = model.latents(obs["frames"][None, None])[:, 0]
    state, state_mask = model.state_of({k: b(b(obs[k])) for k in
                                        ("joints", "joints_mask", "proprio", "proprio_mask")})
    state, state_mask = state[:, 0], state_mask[:, 0]
    cache = dream.observe(model, prefix, 0, z, state, state_mask, b(obs["camera_mask"]),
                          b(obs["embodiment"]), b(obs["frames"]))
    anchor = obs["frames"].astype(jnp.float32) / 255.0
    data = {"cache": cache, "prefix": prefix, "block": jnp.zeros((), jnp.int32),
            "chunks": jnp.zeros((), jnp.int32), "latents": z[0],
            "state": (state * state_mask)[0], "state_mask": state_mask[0],
            "anchor": anchor, "base": dream.decode_latents(model, z)[0],
            "physics": real.data}
    info = {**real.info, "dream_rng": jax.random.fold_in(real.info["rng"], 1)}
    metrics = {**real.metrics, "dream_end": jnp.zeros(()), "dream_diverged": jnp.zeros(())}
    return State(data, self._obs(obs["frames"], real.obs), real.reward, real.done,
                 metrics, info)

  def step(self, state: State, action: jax.Array) -> State:
    action, invalid = sanitize_action(
        action, self.action_size,
        f"NeuralEnv.step (a chunk of {self.chunk} x {self.task.action_size} actions)")
    action = action.reshape(self.chunk, self.task.action_size)
    model, io, d = self.model, self.io, state.data
    cam = jnp.ones((1, len(io.cameras)), bool)
    emb = jnp.full((1,), io.embodiment_id, jnp.int32)
    rng = jax.random.fold_in(state.info["dream_rng"], d["chunks"])
    out = dream.predict(model, d["cache"], d["block"], dream.block_noise(model, rng, 1),
                        last_latents=d["latents"][None], last_state=d["state"][None],
                        camera_mask=cam, embodiment=emb,
                        actions=io.actions_to_model(action)[None],
                        flow_steps=self.flow_steps)
    # A diverged dream (non-finite, or joints far outside their ranges) ends this episode
    # with a flag and continues from its last good state; other envs of a batch go on.
    new_state = out.state[0] * d["state_mask"]
    joints, _ = io.state_to_env(new_state)
    diverged = ~(jnp.all(jnp.isfinite(new_state)) & jnp.all(jnp.isfinite(out.frames))
                 & jnp.all((joints >= self._joint_lo) & (joints <= self._joint_hi)))
    new_state = jnp.where(diverged, d["state"], new_state)
    latents = jnp.where(diverged, d["latents"], out.frames[0])
    # A full window starts over from the dreamed observation (prefix kept).
    base, block = io.restart(d["cache"], d["prefix"], d["block"] + 1)
    cache = dream.observe(model, base, block, latents[None], new_state[None],
                          d["state_mask"][None], cam, emb)
    chunks = d["chunks"] + 1
    if self.render == "none":
      frame = d["anchor"]
    else:
      frame = dream.decode_latents(model, latents[None])[0]
      if self.render == "anchored":
        frame = d["anchor"] + frame - d["base"]
    frames = jnp.clip(jnp.round(frame * 255.0), 0, 255).astype(jnp.uint8)
    joints, proprio = io.state_to_env(new_state)
    physics_state = self.task.kinematic_state(d["physics"], joints, proprio)
    reward, terms, success = self.task.score(physics_state, state.info, action[-1])
    end = chunks >= self.max_chunks
    terminate = self.task.config.terminate_on_success
    done = invalid | diverged | end | (success & terminate)
    data = {**d, "cache": cache, "block": block, "chunks": chunks, "latents": latents,
            "state": new_state, "physics": physics_state}
    metrics = {**state.metrics, **terms, "success": success.astype(jnp.float32),
               "invalid_action": invalid.astype(jnp.float32),
               "dream_diverged": diverged.astype(jnp.float32),
               "dream_end": end.astype(jnp.float32)}
    info = {**state.info, "step": state.info["step"] + self.chunk}
    obs = self._obs(frames, {"joints": joints, "proprio": proprio,
                             "privileged": self.task.privileged(physics_state, info)})
    return state.replace(data=data, obs=obs, reward=jnp.where(invalid | diverged, 0.0, reward),
                         done=done.astype(jnp.float32), metrics=metrics, info=info)

  # ---------------------------------------------------------------- helpers

  def _obs(self, frames: jax.Array, real_obs: Mapping[str, Any]) -> dict[str, jax.Array]:
    obs = {f"pixels/{cam}": frames[v] for v, cam in enumerate(self.io.cameras)}
    for key in ("joints", "proprio", "privileged"):
      obs[key] = jnp.asarray(real_obs[key], jnp.float32)
    return obs
