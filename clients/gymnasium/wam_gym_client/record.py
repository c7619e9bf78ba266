r"""Records episodes of any Gymnasium env under a given policy, for training.

  python -m wam_gym_client.record --env=HalfCheetah-v5 --policy=random --episodes=20 \
      --cameras=track,free:-1 --image_size=64,64 --joints='data.qpos' \
      --proprio='data.qvel' --instruction="run forward" --max_episode_steps=100 \
      --num_envs=4 --out=episodes/cheetah

writes ``episode_NNNNN.npz`` (the Dream Dojo's layout, :mod:`wam_gym_client.episodes`),
``mapping.json`` (the key mapping that imports them) and ``record.json`` (counts and
success rate). Then, in the project's environment::

  python -m wam.data.importers.npz --files='episodes/cheetah/episode_*.npz' \
      --mapping=episodes/cheetah/mapping.json --name=cheetah --data_dir=data

A policy maps the env's own observation to an action. ``--policy=random`` samples the
action space; ``--policy=module:name`` imports ``name`` from ``module``: a function, or
a class that is instantiated and whose ``get_action`` is used when it has one (as
Meta-World's scripted policies).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from typing import Any, Callable, Mapping, Optional, Sequence

import gymnasium as gym

from wam_gym_client import cli, envs, episodes as episodes_lib, jsonfile, progress, rollout
from wam_gym_client.observation import DEFAULT_IMAGE_SIZE, STATE

Policy = Callable[[Any], Any]   # the env's own observation -> one action
SUMMARY_FILE = "record.json"


class Recorder:
  """The :class:`~wam_gym_client.rollout.Agent` that records a policy's episodes."""

  def __init__(self, policy: Policy, out_dir: str, *, instruction: envs.Instruction,
               success_key: str, metadata: Mapping[str, Any],
               slots: Mapping[str, episodes_lib.Slots], show: Optional[progress.Progress]):
    self.policy, self.out_dir = policy, out_dir
    self.instruction, self.success_key = instruction, success_key
    self.metadata, self.slots, self.show = dict(metadata), dict(slots), show
    self.buffers: dict[int, episodes_lib.EpisodeBuffer] = {}
    self.episode_of: dict[int, int] = {}
    self.results: list[dict[str, Any]] = []
    self.mapping: Optional[dict[str, Any]] = None
    self.steps = 0

  def begin(self, slot: int, episode: int, seed: Optional[int], obs: Any,
            info: Mapping[str, Any]) -> None:
    buffer = episodes_lib.EpisodeBuffer(envs.instruction_for(self.instruction, info),
                                        dict(self.metadata, seed=seed, episode=episode))
    buffer.add_observation(obs)
    self.buffers[slot], self.episode_of[slot] = buffer, episode

  def act(self, slots: Sequence[int], obs: Sequence[Any]) -> list[Any]:
    return [self.policy(o[STATE]) for o in obs]

  def step(self, slot: int, action: Any, reward: float, obs: Any, info: Mapping[str, Any],
           terminated: bool, truncated: bool) -> None:
    del truncated
    self.buffers[slot].add_step(action, reward, obs, progress.succeeded(info, self.success_key),
                                terminated)
    self.steps += 1

  def end(self, slot: int) -> None:
    buffer, episode = self.buffers.pop(slot), self.episode_of.pop(slot)
    path = episodes_lib.write_episode(buffer, episodes_lib.episode_path(self.out_dir, episode))
    if self.mapping is None:
      self.mapping = episodes_lib.key_mapping(
          buffer.steps(), joints_slots=self.slots.get("joints"),
          proprio_slots=self.slots.get("proprio"), action_slots=self.slots.get("action"))
      episodes_lib.write_mapping(self.mapping, self.out_dir)
    self.results.append({"episode": episode, "seed": buffer.metadata["seed"],
                         "success": buffer.success, "length": len(buffer.actions),
                         "return": float(sum(buffer.rewards)), "file": os.path.basename(path)})
    if self.show is not None:
      self.show.update(len(self.results), sum(r["success"] for r in self.results), self.steps)


def record(env: gym.Env | gym.vector.VectorEnv, policy: Policy, out_dir: str, *,
           episodes: int, seed: int = 0, instruction: envs.Instruction = "",
           success_key: str = "success", embodiment: Optional[str] = None,
           task: Optional[str] = None, fps: Optional[float] = None,
           joints_slots: episodes_lib.Slots = None, proprio_slots: episodes_lib.Slots = None,
           action_slots: episodes_lib.Slots = None, policy_name: str = "",
           show_progress: bool = True) -> dict[str, Any]:
  """Records ``episodes`` episodes of ``policy`` on ``env`` into ``out_dir``.

  Args:
    env: a Gymnasium env or vector env whose (sub-)envs are wrapped in
      :class:`~wam_gym_client.observation.RobotObservation`.
    policy: the env's own observation -> one action.
    out_dir: where ``episode_NNNNN.npz``, ``mapping.json`` and ``record.json`` go.
    episodes: how many; episode ``k`` resets with ``seed + k`` (autoreset disabled).
    instruction: the text of every episode, or a function of its reset info.
    success_key: the info key that says success; an episode succeeded if it did at
      any step.
    embodiment, task, fps: episode metadata (default: from the env's id and metadata).
    joints_slots, proprio_slots, action_slots: slot names (and sizes) of the vectors in
      ``mapping.json``, e.g. ``[("arm_joints", 7), ("gripper", 2)]``.
    policy_name: recorded in the metadata.
    show_progress: print a progress line on stderr.

  Returns:
    The summary written to ``record.json``.
  """
  vec = rollout.as_vector_env(env)
  env_id = rollout.env_id(vec)
  fps = fps or rollout.sub_env_metadata(vec).get("render_fps") or 10.0
  metadata = {"embodiment": embodiment or re.sub(r"[^a-z0-9_]", "_", env_id.lower()),
              "source": "sim", "task": task or env_id, "fps": float(fps), "env_id": env_id,
              "policy": policy_name}
  show = progress.Progress(episodes, f"record {env_id}") if show_progress else None
  recorder = Recorder(policy, out_dir, instruction=instruction, success_key=success_key,
                      metadata=metadata, show=show,
                      slots={"joints": joints_slots, "proprio": proprio_slots,
                             "action": action_slots})
  rollout.run_episodes(vec, recorder, episodes, seed=seed)
  if show is not None:
    show.close()
  results = sorted(recorder.results, key=lambda r: r["episode"])
  successes = sum(r["success"] for r in results)
  summary = {"env": env_id, "episodes": len(results), "successes": successes,
             "success_rate": successes / len(results),
             "ci95": list(progress.wilson_interval(successes, len(results))),
             "steps": recorder.steps, "success_key": success_key, "metadata": metadata,
             "mapping": episodes_lib.MAPPING_FILE, "results": results}
  jsonfile.write_json(os.path.join(out_dir, SUMMARY_FILE), summary)
  return summary


def load_policy(name: str, action_space: gym.Space, seed: int = 0) -> Policy:
  """``"random"`` (seeded samples of ``action_space``) or ``"module:name"`` (see the module
  doc).

  Raises:
    ValueError: a name that is neither.
  """
  if name == "random":
    action_space.seed(seed)
    return lambda obs: action_space.sample()
  module, _, attr = name.partition(":")
  if not module or not attr:
    raise ValueError(f"--policy is 'random' or 'module:name', got {name!r}.")
  policy = getattr(importlib.import_module(module), attr)
  if isinstance(policy, type):
    policy = policy()
  return getattr(policy, "get_action", policy)


def main(argv: Optional[Sequence[str]] = None) -> None:
  parser = argparse.ArgumentParser(prog="python -m wam_gym_client.record",
                                   description=__doc__.split("\n\n")[0].strip())
  cli.add_env_flags(parser)
  parser.add_argument("--policy", default="random", help="'random' or 'module:name'.")
  parser.add_argument("--cameras", default="render",
                      help="Cameras to record: 'render' (env.render()), MuJoCo names or ids "
                           "(-1: free camera), 'name:camera' to rename.")
  parser.add_argument("--image_size", type=cli.parse_size,
                      default=DEFAULT_IMAGE_SIZE, help="height,width of every camera.")
  parser.add_argument("--joints_slots", type=cli.parse_slots, default=None,
                      help="Slot names of joints: 'arm_joints' or 'arm_joints:7,gripper:2'.")
  parser.add_argument("--proprio_slots", type=cli.parse_slots, default=None)
  parser.add_argument("--action_slots", type=cli.parse_slots, default=None)
  parser.add_argument("--embodiment", default=None)
  parser.add_argument("--fps", type=float, default=None)
  args = parser.parse_args(argv)
  make = cli.env_fn(args, cli.parse_cameras(args.cameras), args.image_size)
  vec = envs.make_vector_env(make, args.num_envs, args.vectorization)
  try:
    policy = load_policy(args.policy, vec.single_action_space, args.seed)
    summary = record(vec, policy, args.out, episodes=args.episodes, seed=args.seed,
                     instruction=cli.instruction(args), success_key=args.success_key,
                     embodiment=args.embodiment, fps=args.fps, policy_name=args.policy,
                     joints_slots=args.joints_slots, proprio_slots=args.proprio_slots,
                     action_slots=args.action_slots)
  except ValueError as e:   # a bad field, camera or slot: the message says which
    sys.exit(f"error: {e}")
  finally:
    vec.close()
  print(f"Recorded {summary['episodes']} episodes ({summary['successes']} succeeded) "
        f"in {args.out}", file=sys.stdout)


if __name__ == "__main__":
  main()
