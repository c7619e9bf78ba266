"""Gymnasium envs as the command lines build them, and each episode's instruction.

``make_env_fn`` makes one env by id (``gym.make``; ``"module:EnvId"`` imports the module
that registers it) wrapped in :class:`~wam_gym_client.observation.RobotObservation`;
``make_vector_env`` runs several in ``gymnasium.vector`` with autoreset disabled, so that
episode ``k`` always starts from ``reset(seed=seed + k)`` (:mod:`wam_gym_client.rollout`).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence, Union

import gymnasium as gym
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv

from wam_gym_client import cameras as cameras_lib
from wam_gym_client import fields as fields_lib
from wam_gym_client.observation import RobotObservation

VECTORIZATION = ("sync", "async")
# A fixed instruction, or one read from the reset info of each episode.
Instruction = Union[str, Callable[[Mapping[str, Any]], str]]


def make_env_fn(env_id: str, *, cameras: Mapping[str, cameras_lib.Camera],
                image_size: Sequence[int], joints: Optional[Sequence[fields_lib.Field]] = None,
                proprio: Optional[Sequence[fields_lib.Field]] = None,
                max_episode_steps: Optional[int] = None,
                env_kwargs: Optional[Mapping[str, Any]] = None) -> Callable[[], gym.Env]:
  """A function making one wrapped env (``render_mode="rgb_array"`` when a camera is
  ``"render"``)."""
  kwargs = dict(env_kwargs or {})
  if any(isinstance(c, str) and c == cameras_lib.RENDER for c in cameras.values()):
    kwargs.setdefault("render_mode", "rgb_array")
  if max_episode_steps:
    kwargs["max_episode_steps"] = int(max_episode_steps)

  def make() -> gym.Env:
    return RobotObservation(gym.make(env_id, **kwargs), cameras, image_size=image_size,
                            joints=joints or None, proprio=proprio or None)

  return make


def make_vector_env(make: Callable[[], gym.Env], num_envs: int = 1,
                    vectorization: str = "sync") -> VectorEnv:
  """``num_envs`` envs in a sync (one process) or async (one process each) vector env."""
  if vectorization not in VECTORIZATION:
    raise ValueError(f"vectorization is one of {VECTORIZATION}, got {vectorization!r}.")
  cls = SyncVectorEnv if vectorization == "sync" else AsyncVectorEnv
  return cls([make] * int(num_envs), autoreset_mode=AutoresetMode.DISABLED)


def instruction_for(instruction: Instruction, info: Mapping[str, Any]) -> str:
  """The instruction of an episode that reset with ``info``."""
  return str(instruction(info)) if callable(instruction) else str(instruction)


def info_instruction(key: str) -> Callable[[Mapping[str, Any]], str]:
  """An instruction read from the reset info's ``key`` (an error names the keys there)."""
  def read(info: Mapping[str, Any]) -> str:
    if key not in info:
      raise KeyError(f"The reset info has no instruction key {key!r}; it has {sorted(info)}.")
    return str(info[key])
  return read
