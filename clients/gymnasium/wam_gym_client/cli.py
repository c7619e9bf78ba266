"""The command-line flags that ``record`` and ``evaluate`` share, and their parsing."""

from __future__ import annotations

import argparse
import json
from typing import Any, Optional

from wam_gym_client import envs


def split(text: Optional[str]) -> list[str]:
  """``"a,b"`` -> ``["a", "b"]``; empty or None -> ``[]``."""
  return [part.strip() for part in (text or "").split(",") if part.strip()]


def parse_size(text: Optional[str]) -> Optional[tuple[int, int]]:
  """``"96,128"`` (height, width) -> ``(96, 128)``."""
  if not text:
    return None
  parts = split(text)
  if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
    raise argparse.ArgumentTypeError(f"A size is 'height,width', got {text!r}.")
  return int(parts[0]), int(parts[1])


def parse_cameras(text: Optional[str]) -> dict[str, str]:
  """``"front:corner,wrist:2,render"`` -> ``{"front": "corner", "wrist": "2", "render":
  "render"}`` (stored/model name : env camera; a bare camera keeps its own name)."""
  out = {}
  for part in split(text):
    name, _, camera = part.partition(":")
    camera = camera or name
    name = {"-1": "free"}.get(name, f"camera{name}" if name.isdigit() else name)
    out[name] = camera
  return out


def parse_slots(text: Optional[str]) -> Optional[list[tuple[str, Optional[int]]]]:
  """``"arm_joints:7,gripper:2"`` -> ``[("arm_joints", 7), ("gripper", 2)]``;
  ``"arm_joints"`` -> ``[("arm_joints", None)]`` (one slot of any size)."""
  slots = []
  for part in split(text):
    name, _, size = part.partition(":")
    if size and not size.isdigit():
      raise argparse.ArgumentTypeError(f"A slot is 'name' or 'name:size', got {part!r}.")
    slots.append((name, int(size) if size else None))
  return slots or None


def add_env_flags(parser: argparse.ArgumentParser) -> None:
  """Flags of the env, the episodes and the observation."""
  parser.add_argument("--env", required=True,
                      help="Gymnasium id; 'module:EnvId' imports the module that registers it.")
  parser.add_argument("--env_kwargs", default="{}", type=json.loads,
                      help="JSON keyword arguments of gym.make.")
  parser.add_argument("--max_episode_steps", type=int, default=None,
                      help="Time limit per episode (default: the env's registered one).")
  parser.add_argument("--num_envs", type=int, default=1, help="Sub-envs run at once.")
  parser.add_argument("--vectorization", choices=envs.VECTORIZATION, default="sync",
                      help="sync: one process; async: one process per sub-env.")
  parser.add_argument("--episodes", type=int, default=10)
  parser.add_argument("--seed", type=int, default=0, help="Episode k resets with seed + k.")
  parser.add_argument("--out", required=True, help="Output directory.")
  parser.add_argument("--joints", default="",
                      help="Fields of the joint vector, e.g. 'data.qpos[:7]' or 'obs[0:3]' "
                           "(see wam_gym_client.fields).")
  parser.add_argument("--proprio", default="", help="Fields of the proprio vector.")
  parser.add_argument("--instruction", default="", help="The instruction of every episode.")
  parser.add_argument("--instruction_key", default=None,
                      help="Read each episode's instruction from this reset-info key instead.")
  parser.add_argument("--success_key", default="success",
                      help="The info key that says success (e.g. 'success', 'is_success').")


def instruction(args: argparse.Namespace) -> envs.Instruction:
  """``--instruction`` or, given, ``--instruction_key``."""
  return envs.info_instruction(args.instruction_key) if args.instruction_key else \
      args.instruction


def env_fn(args: argparse.Namespace, cameras: dict[str, Any], image_size: tuple[int, int]):
  """The env maker of the flags (see :func:`wam_gym_client.envs.make_env_fn`)."""
  return envs.make_env_fn(args.env, cameras=cameras, image_size=image_size,
                          joints=split(args.joints), proprio=split(args.proprio),
                          max_episode_steps=args.max_episode_steps, env_kwargs=args.env_kwargs)
