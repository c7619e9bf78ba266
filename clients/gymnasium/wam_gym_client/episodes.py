"""Recorded episodes as ``.npz`` files in the Dream Dojo's layout, plus their key mapping.

One file per episode, ``episode_NNNNN.npz``, as ``dojo.collect.write_npz`` writes
them: the steps flattened with ``/`` keys in RLDS layout (step ``t`` holds observation
``t``, the action taken after it and the reward that followed; a last step holds the
final observation and a padding action, masked)::

  steps/observation/image_<camera>  uint8 [N, H, W, 3]
  steps/observation/joints          f32 [N, J]      (when recorded)
  steps/observation/proprio         f32 [N, P]      (when recorded)
  steps/observation/state[/<key>]   f32 [N, ...]    the env's own observation
  steps/action                      f32 [N, A]      steps/action_mask bool [N]
  steps/reward, discount, is_first, is_last, is_terminal, success, language_instruction
  metadata                          JSON: embodiment, source, task, instruction, fps,
                                    success, env_id, seed, policy, length, return

``mapping.json`` beside them is the ``KeyMapping`` (``wam.data.importers``) that imports
exactly what was written, slot names included::

  python -m wam.data.importers.npz --files='DIR/episode_*.npz' --mapping=DIR/mapping.json \\
      --name=NAME --data_dir=data
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from wam_gym_client import jsonfile
from wam_gym_client import observation as observation_lib

MAPPING_FILE = "mapping.json"
Slots = Optional[Sequence[tuple[str, Optional[int]]]]   # ((name, size or None), ...)


def episode_path(directory: str, episode: int) -> str:
  return os.path.join(directory, f"episode_{episode:05d}.npz")


def _state_arrays(states: Sequence[Any]) -> dict[str, np.ndarray]:
  """The env's own observations as f32 arrays: ``state`` or ``state/<key>`` per numeric
  leaf of a dict observation (others are left out)."""
  first = states[0]
  if isinstance(first, Mapping):
    out = {}
    for key in first:
      for sub, value in _state_arrays([s[key] for s in states]).items():
        out[f"{key}/{sub}" if sub != "state" else str(key)] = value
    return {f"state/{k}": v for k, v in out.items()} if out else {}
  try:
    values = np.asarray(states)
  except ValueError:
    return {}
  if values.dtype.kind not in "biuf":
    return {}
  return {"state": values.astype(np.float32)}


class EpisodeBuffer:
  """One episode's steps, in memory until written."""

  def __init__(self, instruction: str, metadata: Mapping[str, Any]):
    self.instruction = instruction
    self.metadata = dict(metadata)
    self.observations: list[dict[str, Any]] = []
    self.actions: list[np.ndarray] = []
    self.rewards: list[float] = []
    self.successes: list[bool] = []
    self.terminated = False

  def add_observation(self, obs: Mapping[str, Any]) -> None:
    """The first observation (a :class:`RobotObservation` dict)."""
    self.observations.append(dict(obs))

  def add_step(self, action: Any, reward: float, obs: Mapping[str, Any], success: bool,
               terminated: bool) -> None:
    """The action after the latest observation, what followed, and the next observation."""
    self.actions.append(np.asarray(action, np.float32).reshape(-1))
    self.rewards.append(float(reward))
    self.successes.append(bool(success))
    self.observations.append(dict(obs))
    self.terminated = bool(terminated)

  @property
  def success(self) -> bool:
    """Whether the episode succeeded at any step."""
    return any(self.successes)

  def steps(self) -> dict[str, np.ndarray]:
    """The episode's steps, flattened with ``/`` keys (RLDS layout, see the module doc)."""
    t = len(self.observations)
    observation = {}
    for key in self.observations[0]:
      values = [o[key] for o in self.observations]
      if key == observation_lib.STATE:
        observation.update(_state_arrays(values))
      elif key.startswith(observation_lib.IMAGE_PREFIX):
        observation[key] = np.stack(values).astype(np.uint8)
      else:
        observation[key] = np.stack(values).astype(np.float32)
    actions = np.stack(self.actions) if self.actions else np.zeros((0, 0), np.float32)
    pad = np.zeros((1, actions.shape[1]), np.float32)
    is_last = np.arange(t) == t - 1
    steps = {"observation/" + k: v for k, v in observation.items()}
    steps.update({
        "action": np.concatenate([actions, pad]),
        "action_mask": np.arange(t) < t - 1,   # the last step's action is padding
        "reward": np.asarray(self.rewards + [0.0], np.float32),
        "discount": np.ones(t, np.float32),
        "is_first": np.arange(t) == 0,
        "is_last": is_last,
        # Terminal only when the env ended the episode (a time limit is a truncation).
        "is_terminal": is_last & self.terminated,
        "success": np.asarray([False] + self.successes),
        "language_instruction": np.asarray([self.instruction] * t),
    })
    return steps


def write_episode(buffer: EpisodeBuffer, path: str) -> str:
  """Writes one episode as a compressed ``.npz`` (never half-written); returns ``path``."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  arrays = {"steps/" + k: v for k, v in buffer.steps().items()}
  metadata = dict(buffer.metadata, instruction=buffer.instruction, success=buffer.success,
                  length=len(buffer.actions), **{"return": float(sum(buffer.rewards))})
  arrays["metadata"] = np.asarray(json.dumps(metadata))
  tmp = path + ".partial"   # not matched by "episode_*.npz" if a crash leaves it behind
  with open(tmp, "wb") as f:
    np.savez_compressed(f, **arrays)
  os.replace(tmp, path)
  return path


def _vector_key(key: str, slots: Slots, dim: int, what: str) -> dict[str, Any]:
  """A ``VectorKey`` as JSON: one slot named after ``what`` or the given slots."""
  slots = list(slots or [(what, None)])
  if len(slots) == 1 and slots[0][1] in (None, dim):
    return {"key": key, "name": slots[0][0], "slots": [], "next_step": False}
  if any(size is None for _, size in slots) or sum(s for _, s in slots) != dim:
    raise ValueError(f"{what} slots {slots} must give sizes that sum to its {dim} values.")
  return {"key": key, "name": None, "slots": [[n, int(s)] for n, s in slots],
          "next_step": False}


def key_mapping(steps: Mapping[str, np.ndarray], *, joints_slots: Slots = None,
                proprio_slots: Slots = None, action_slots: Slots = None) -> dict[str, Any]:
  """The ``KeyMapping`` JSON that imports episodes with ``steps``' keys (one episode's).

  Raises:
    ValueError: slot sizes that do not add up to a vector's size.
  """
  obs = "observation/"
  images = {k[len(obs + observation_lib.IMAGE_PREFIX):]: "steps/" + k for k in steps
            if k.startswith(obs + observation_lib.IMAGE_PREFIX)}
  vectors = {}
  for field, slots in ((observation_lib.JOINTS, joints_slots),
                       (observation_lib.PROPRIO, proprio_slots)):
    if obs + field in steps:
      vectors[field] = [_vector_key(f"steps/{obs}{field}", slots, steps[obs + field].shape[1],
                                    field)]
  action = _vector_key("steps/action", action_slots, steps["action"].shape[1], "action")
  privileged = sorted("steps/" + k for k in steps if k.startswith(obs + observation_lib.STATE))
  return {"images": images, "joints": vectors.get(observation_lib.JOINTS, []),
          "proprio": vectors.get(observation_lib.PROPRIO, []), "action": [action],
          "hand_keypoints": None, "privileged": privileged,
          "instruction": "steps/language_instruction", "default_instruction": "",
          "reward": "steps/reward", "is_terminal": "steps/is_terminal",
          "action_mask": "steps/action_mask", "mask_last_action": True,
          "metadata_json": "metadata", "sim_flag": None, "optional": []}


def write_mapping(mapping: Mapping[str, Any], directory: str) -> str:
  """Writes ``mapping.json`` into ``directory``; returns its path."""
  return jsonfile.write_json(os.path.join(directory, MAPPING_FILE), mapping)
