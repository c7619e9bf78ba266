"""Runs N episodes over the sub-envs of a ``gymnasium.vector`` env (or one plain env).

The driver is shared by recording and evaluation: an :class:`Agent` is told when an
episode begins in a sub-env ("slot"), asked for the actions of the slots that are in an
episode, told each transition, and told when the episode ends. All three autoreset modes
of Gymnasium's vector envs work:

- ``DISABLED`` (what the command lines build, and how a plain env is wrapped): finished
  sub-envs are reset explicitly, so episode ``k`` always starts from ``reset(seed=seed +
  k)``, however many sub-envs there are;
- ``NEXT_STEP`` (Gymnasium's default): sub-env ``i`` starts from ``seed + i``, later
  episodes continue its random stream; the step after an episode ends is the reset;
- ``SAME_STEP``: as ``NEXT_STEP``; the last observation and info come from
  ``final_obs`` / ``final_info``.

Sub-envs without an episode to run (near the end) keep stepping with a neutral action
(zeros inside the action space); nothing is recorded for them.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Protocol, Sequence

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv
from gymnasium.vector.utils import concatenate, create_empty_array


class Agent(Protocol):
  """What :func:`run_episodes` drives (a recorder, an evaluator)."""

  def begin(self, slot: int, episode: int, seed: Optional[int], obs: Any,
            info: Mapping[str, Any]) -> None:
    """Episode ``episode`` starts in sub-env ``slot`` from ``obs``."""

  def act(self, slots: Sequence[int], obs: Sequence[Any]) -> Sequence[Any]:
    """One action per slot in ``slots`` (each sub-env's own observation)."""

  def step(self, slot: int, action: Any, reward: float, obs: Any, info: Mapping[str, Any],
           terminated: bool, truncated: bool) -> None:
    """One transition of the episode in ``slot``; the last one has ``terminated`` or
    ``truncated`` set, and ``end`` follows."""

  def end(self, slot: int) -> None:
    """The episode in ``slot`` is over."""


def as_vector_env(env: gym.Env | VectorEnv) -> VectorEnv:
  """``env`` if it is a vector env, else a one-env ``SyncVectorEnv`` (autoreset disabled)."""
  if isinstance(env, VectorEnv):
    return env
  return SyncVectorEnv([lambda: env], autoreset_mode=AutoresetMode.DISABLED)


def autoreset_mode(env: VectorEnv) -> AutoresetMode:
  """The vector env's autoreset mode (Gymnasium's default when it does not say)."""
  return AutoresetMode(env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP))


def env_id(env: VectorEnv) -> str:
  """The Gymnasium id of the sub-envs ("gym_env" for envs made without one)."""
  spec = env.get_attr("spec")[0]
  return spec.id if spec is not None else "gym_env"


def sub_env_metadata(env: VectorEnv) -> dict[str, Any]:
  """The first sub-env's ``metadata`` (e.g. ``render_fps``)."""
  return dict(env.get_attr("metadata")[0] or {})


def index(tree: Any, i: int) -> Any:
  """Sub-env ``i``'s part of a batched observation (dicts and tuples of arrays)."""
  if isinstance(tree, Mapping):
    return {k: index(v, i) for k, v in tree.items()}
  if isinstance(tree, tuple):
    return tuple(index(v, i) for v in tree)
  return tree[i]


def info_at(info: Mapping[str, Any], i: int) -> dict[str, Any]:
  """Sub-env ``i``'s info from a vector env's info (``key`` with its ``_key`` mask)."""
  out = {}
  for key, value in info.items():
    if key.startswith("_"):
      continue
    mask = info.get("_" + key)
    if mask is not None and not mask[i]:
      continue
    out[key] = info_at(value, i) if isinstance(value, Mapping) else value[i]
  return out


def neutral_action(space: gym.Space) -> Any:
  """An action for a sub-env that is not in an episode: zeros clipped into the space."""
  if isinstance(space, gym.spaces.Box):
    return np.clip(np.zeros(space.shape, space.dtype), space.low, space.high)
  if isinstance(space, gym.spaces.Discrete):
    return space.start
  return space.sample()


def run_episodes(env: gym.Env | VectorEnv, agent: Agent, episodes: int, *, seed: int = 0
                 ) -> None:
  """Runs ``episodes`` episodes of ``agent`` on ``env``'s sub-envs (see the module doc).

  The env must end every episode (a time limit: ``gym.make(..., max_episode_steps=N)``).
  """
  if episodes <= 0:
    raise ValueError(f"episodes must be positive, got {episodes}.")
  vec = as_vector_env(env)
  mode, n = autoreset_mode(vec), vec.num_envs
  slot_episode: list[Optional[int]] = [None] * n
  next_episode = 0

  def begin(slots: Sequence[int], seeds: Sequence[Optional[int]], obs: Any, info: Mapping
            ) -> None:
    nonlocal next_episode
    for i in slots:
      if next_episode < episodes:
        slot_episode[i] = next_episode
        agent.begin(i, next_episode, seeds[i], index(obs, i), info_at(info, i))
        next_episode += 1

  def episode_seeds(slots: Sequence[int]) -> list[Optional[int]]:
    """DISABLED: the seeds of the episodes ``slots`` will run next (None: no episode)."""
    seeds: list[Optional[int]] = [None] * n
    for j, i in enumerate(slots):
      if next_episode + j < episodes:
        seeds[i] = seed + next_episode + j
    return seeds

  if mode == AutoresetMode.DISABLED:
    seeds = episode_seeds(range(n))
  else:
    seeds = [seed + i for i in range(n)]
  obs, info = vec.reset(seed=seeds)
  begin(range(n), seeds, obs, info)
  neutral = neutral_action(vec.single_action_space)
  pending_reset = np.zeros(n, bool)   # NEXT_STEP: this step resets these sub-envs
  finished = 0
  while finished < episodes:
    active = [i for i in range(n) if slot_episode[i] is not None and not pending_reset[i]]
    chosen = dict(zip(active, agent.act(active, [index(obs, i) for i in active])))
    actions = [chosen.get(i, neutral) for i in range(n)]
    batch = concatenate(vec.single_action_space, actions,
                        create_empty_array(vec.single_action_space, n))
    resetting = np.flatnonzero(pending_reset)
    obs, reward, terminated, truncated, info = vec.step(batch)
    done = np.logical_or(terminated, truncated)
    for i in active:
      if mode == AutoresetMode.SAME_STEP and done[i]:
        last_obs, last_info = info["final_obs"][i], info_at(info["final_info"], i)
      else:
        last_obs, last_info = index(obs, i), info_at(info, i)
      agent.step(i, actions[i], float(reward[i]), last_obs, last_info, bool(terminated[i]),
                 bool(truncated[i]))
      if done[i]:
        agent.end(i)
        slot_episode[i] = None
        finished += 1
    if mode == AutoresetMode.NEXT_STEP:
      begin(resetting, [None] * n, obs, info)
      pending_reset = done
    elif mode == AutoresetMode.SAME_STEP:
      begin([i for i in active if done[i]], [None] * n, obs, info)
    elif done.any():   # DISABLED: reset every finished sub-env, busy or not
      slots = np.flatnonzero(done)
      seeds = episode_seeds(slots)
      obs, info = vec.reset(seed=seeds, options={"reset_mask": done})
      begin(slots, seeds, obs, info)
