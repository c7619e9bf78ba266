"""State-only behaviour cloning: an MLP from privileged state to the next action chunk.

The rung of the controller ladder between the scripted expert and pixel BC: it sees what
the expert sees (``obs["privileged"]``, the low-dimensional robot and task state) but
has to learn the expert's mapping from demonstrations. If it fails where the expert
succeeds, the demonstrations (or their number) are the problem; if it succeeds where a
pixel policy fails, perception is.

- ``load_episodes`` turns episode ``.npz`` files (``dojo.collect.write_npz``) into
  (state at step t, actions t..t+K-1) pairs;
- ``train`` fits an MLP to them (standardised inputs and outputs, MSE, Adam, one
  jitted ``lax.scan`` over minibatches drawn from a fixed key, so it is deterministic);
- ``StateBC`` is a controller (``dojo.controllers`` protocol) for
  ``dojo.closed_loop.run_episodes``, saved to and loaded from one ``.npz``.

Example::

  obs, chunks = state_bc.load_episodes(["workdir/reach/episodes"], chunk=4)
  policy = state_bc.train(obs, chunks, state_bc.StateBCConfig(chunk=4))
  policy.save("workdir/reach/state_bc.npz")
  closed_loop.run_episodes(env, policy, jax.random.key(0), num_episodes=64, num_chunks=25)
"""

from __future__ import annotations

import dataclasses
import glob
import json
import logging
import os
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dojo import collect
from dojo.env import State

Params = tuple[tuple[jax.Array, jax.Array], ...]  # ((w, b) per layer)


@dataclasses.dataclass(frozen=True)
class StateBCConfig:
  """Architecture and optimisation of a state BC policy."""

  hidden: tuple[int, ...] = (256, 256)
  learning_rate: float = 1e-3   # peak; decayed to 0 by a cosine over ``steps``
  steps: int = 2000
  batch_size: int = 256
  seed: int = 0
  chunk: int = 4                # actions predicted (and executed) per observation
  # Standardisation floor: constant features (e.g. a fixed goal) would divide by 0.
  std_floor: float = 1e-2

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), sort_keys=True)

  @classmethod
  def from_json(cls, text: str) -> StateBCConfig:
    values = json.loads(text)
    values["hidden"] = tuple(values["hidden"])
    return cls(**values)


# ----------------------------------------------------------------------------------
# Data.
# ----------------------------------------------------------------------------------


def load_episodes(episode_dirs: Sequence[str] | str, chunk: int
                  ) -> tuple[np.ndarray, np.ndarray]:
  """(privileged state, next action chunk) pairs from ``episode_*.npz`` files.

  Args:
    episode_dirs: directories written by ``dojo.collect.collect_to_dir``.
    chunk: actions per pair (K); step t contributes a pair only if actions
      t..t+K-1 are all real (``steps/action_mask``).

  Returns:
    ``obs`` f32[N, D] and ``chunks`` f32[N, K * A] (actions t..t+K-1, flattened).

  Raises:
    ValueError: a directory without episodes or without ``privileged`` observations,
      episodes that disagree in D or A, or no episode long enough for one chunk.
  """
  if isinstance(episode_dirs, str):
    episode_dirs = [episode_dirs]
  if chunk < 1:
    raise ValueError(f"chunk must be positive, got {chunk}.")
  obs, chunks = [], []
  dims = None  # (D, A) of the first episode, and where it came from
  for directory in episode_dirs:
    paths = sorted(glob.glob(os.path.join(directory, "episode_*.npz")))
    if not paths:
      raise ValueError(f"No episode_*.npz files in {directory!r}.")
    for path in paths:
      steps = collect.read_npz(path)["steps"]
      if "privileged" not in steps.get("observation", {}):
        raise ValueError(
            f"Episodes in {directory!r} have no 'privileged' observation ({path!r} has "
            f"{sorted(steps.get('observation', {}))}); state BC needs it.")
      state = np.asarray(steps["observation"]["privileged"], np.float32)
      action = np.asarray(steps["action"], np.float32)
      mask = np.asarray(steps["action_mask"], bool)
      if dims is None:
        dims = (state.shape[-1], action.shape[-1], path)
      elif (state.shape[-1], action.shape[-1]) != dims[:2]:
        raise ValueError(
            f"Episodes disagree: {path!r} (in {directory!r}) has privileged dim "
            f"{state.shape[-1]} and action dim {action.shape[-1]}, {dims[2]!r} has "
            f"{dims[0]} and {dims[1]}.")
      if mask.shape[0] < chunk:  # (np.convolve would swap its arguments)
        continue
      # Pair t is valid when actions t..t+K-1 are all real: a window sum over the mask.
      real = np.convolve(mask.astype(np.int32), np.ones(chunk, np.int32), "valid") == chunk
      starts = np.nonzero(real)[0]
      windows = np.stack([action[starts + j] for j in range(chunk)], axis=1)
      obs.append(state[starts])
      chunks.append(windows.reshape(len(starts), chunk * action.shape[-1]))
  if not obs or not sum(len(o) for o in obs):
    raise ValueError(f"No episode in {list(episode_dirs)} has {chunk} real actions in a row.")
  return np.concatenate(obs), np.concatenate(chunks)


# ----------------------------------------------------------------------------------
# Model.
# ----------------------------------------------------------------------------------


def _init_params(rng: jax.Array, sizes: Sequence[int]) -> Params:
  layers = []
  keys = jax.random.split(rng, len(sizes) - 1)
  for i, (key, n_in, n_out) in enumerate(zip(keys, sizes[:-1], sizes[1:])):
    last = i == len(sizes) - 2
    # The output layer starts at zero: the first prediction is the mean chunk, so
    # training starts from the mean-action baseline.
    w = (jnp.zeros((n_in, n_out)) if last else
         jax.random.normal(key, (n_in, n_out)) * jnp.sqrt(2.0 / n_in))
    layers.append((w.astype(jnp.float32), jnp.zeros((n_out,), jnp.float32)))
  return tuple(layers)


def _mlp(params: Params, x: jax.Array) -> jax.Array:
  for w, b in params[:-1]:
    x = jax.nn.gelu(x @ w + b)
  w, b = params[-1]
  return x @ w + b


@dataclasses.dataclass(frozen=True)
class StateBC:
  """A state BC policy: a controller (see ``dojo.controllers``) over one env state.

  Reads ``state.obs["privileged"]`` and returns the next ``chunk`` actions in [-1, 1].
  It is deterministic (``rng`` is unused) and keeps no memory between chunks.
  """

  params: Params
  obs_mean: jax.Array   # [D]
  obs_std: jax.Array    # [D]
  act_mean: jax.Array   # [K * A]
  act_std: jax.Array    # [K * A]
  config: StateBCConfig

  @property
  def chunk(self) -> int:
    return self.config.chunk

  @property
  def obs_size(self) -> int:
    return int(self.obs_mean.shape[0])

  @property
  def action_size(self) -> int:
    return int(self.act_mean.shape[0]) // self.chunk

  def predict(self, obs: jax.Array) -> jax.Array:
    """Unclipped flat chunks f32[..., K * A] for privileged states f32[..., D]."""
    if obs.shape[-1] != self.obs_size:
      raise ValueError(f"StateBC was trained on privileged states of size {self.obs_size}, "
                       f"got shape {obs.shape}.")
    x = (obs.astype(jnp.float32) - self.obs_mean) / self.obs_std
    return _mlp(self.params, x) * self.act_std + self.act_mean

  def init(self, state: State) -> jax.Array:
    del state
    return jnp.zeros(())

  def act(self, carry: jax.Array, state: State, rng: jax.Array
          ) -> tuple[jax.Array, jax.Array]:
    del rng
    if "privileged" not in state.obs:
      raise ValueError(f"StateBC needs obs['privileged']; the env gives {sorted(state.obs)}.")
    actions = self.predict(state.obs["privileged"]).reshape(self.chunk, self.action_size)
    return jnp.clip(actions, -1.0, 1.0), carry

  def save(self, path: str) -> str:
    """Writes parameters, normalisation and config to one ``.npz`` (atomically)."""
    arrays = {"obs_mean": self.obs_mean, "obs_std": self.obs_std,
              "act_mean": self.act_mean, "act_std": self.act_std}
    for i, (w, b) in enumerate(self.params):
      arrays[f"layer_{i}/w"], arrays[f"layer_{i}/b"] = w, b
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    arrays["config"] = np.array(self.config.to_json())
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
      np.savez(f, **arrays)
    os.replace(tmp, path)  # a reader never sees half a file
    return path

  @classmethod
  def load(cls, path: str) -> StateBC:
    """The policy saved by ``save``."""
    with np.load(path, allow_pickle=False) as f:
      arrays = {k: f[k] for k in f.files}
    config = StateBCConfig.from_json(str(arrays["config"]))
    params = tuple((jnp.asarray(arrays[f"layer_{i}/w"]), jnp.asarray(arrays[f"layer_{i}/b"]))
                   for i in range(len(config.hidden) + 1))
    return cls(params, *(jnp.asarray(arrays[k])
                         for k in ("obs_mean", "obs_std", "act_mean", "act_std")), config)


# ----------------------------------------------------------------------------------
# Training.
# ----------------------------------------------------------------------------------


def mse(policy: StateBC, obs: np.ndarray, chunks: np.ndarray) -> float:
  """Mean squared error of the policy's chunks (action units, before clipping)."""
  return float(jnp.mean((policy.predict(jnp.asarray(obs)) - jnp.asarray(chunks)) ** 2))


def train(obs: np.ndarray, chunks: np.ndarray, config: StateBCConfig) -> StateBC:
  """Fits a state BC policy to (state, action chunk) pairs from ``load_episodes``.

  Args:
    obs: f32[N, D] privileged states.
    chunks: f32[N, K * A] the action chunks that followed (K = ``config.chunk``).
    config: architecture and optimisation.

  Returns:
    The trained policy (normalisation statistics from ``obs`` and ``chunks``).
  """
  obs, chunks = np.asarray(obs, np.float32), np.asarray(chunks, np.float32)
  if obs.ndim != 2 or chunks.ndim != 2 or obs.shape[0] != chunks.shape[0] or not len(obs):
    raise ValueError(f"Need obs [N, D] and chunks [N, K * A] with N > 0, got {obs.shape} "
                     f"and {chunks.shape}.")
  if chunks.shape[1] % config.chunk:
    raise ValueError(f"chunks has {chunks.shape[1]} columns, not a multiple of "
                     f"config.chunk={config.chunk}.")

  stats = {"obs_mean": obs.mean(0), "obs_std": np.maximum(obs.std(0), config.std_floor),
           "act_mean": chunks.mean(0),
           "act_std": np.maximum(chunks.std(0), config.std_floor)}
  x = jnp.asarray((obs - stats["obs_mean"]) / stats["obs_std"])
  y = jnp.asarray((chunks - stats["act_mean"]) / stats["act_std"])

  key_init, key_batches = jax.random.split(jax.random.key(config.seed))
  params = _init_params(key_init, (obs.shape[1], *config.hidden, chunks.shape[1]))
  optimizer = optax.adam(optax.cosine_decay_schedule(config.learning_rate, config.steps))

  def loss_fn(p, xb, yb):
    return jnp.mean((_mlp(p, xb) - yb) ** 2)

  @jax.jit
  def run(p, x, y, keys):
    # The data are arguments, not closed-over constants, so XLA does not embed them.
    def step(carry, key):
      p, opt_state = carry
      index = jax.random.randint(key, (config.batch_size,), 0, x.shape[0])
      loss, grads = jax.value_and_grad(loss_fn)(p, x[index], y[index])
      updates, opt_state = optimizer.update(grads, opt_state, p)
      return (optax.apply_updates(p, updates), opt_state), loss

    (p, _), losses = jax.lax.scan(step, (p, optimizer.init(p)), keys)
    return p, losses

  params, losses = run(params, x, y, jax.random.split(key_batches, config.steps))
  losses = np.asarray(losses)
  if not np.all(np.isfinite(losses)):
    raise FloatingPointError(f"State BC training diverged (first non-finite loss at step "
                             f"{int(np.argmin(np.isfinite(losses)))}); lower the learning rate.")
  tail = max(1, len(losses) // 10)
  logging.info("State BC: %d pairs, standardised loss %.4f -> %.4f over %d steps.",
               len(obs), losses[:tail].mean(), losses[-tail:].mean(), config.steps)
  return StateBC(params, *(jnp.asarray(stats[k])
                           for k in ("obs_mean", "obs_std", "act_mean", "act_std")), config)

