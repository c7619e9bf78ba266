r"""Closed-loop evaluation of a served world action model on any Gymnasium env.

  python -m wam_gym_client.evaluate --url=ws://127.0.0.1:8765 --env=HalfCheetah-v5 \
      --cameras=front:track,wrist:-1 --joints='data.qpos[:3]' --proprio='data.qvel[:2]' \
      --instruction="run forward" --episodes=20 --num_envs=4 --max_episode_steps=200 \
      --out=eval/cheetah

One policy-server session per episode (``reset`` with the instruction and the episode's
seed), one connection per sub-env, acts of all sub-envs sent together (the server
batches them). Each observation carries the model's cameras, resized to the server's
``image_size`` (``--cameras`` maps each model camera to an env camera), ``joints`` and
``proprio``; the returned chunk f32 [chunk, A] is executed (``--execute`` actions of it,
default all, clipped to the action space unless ``--no_clip``), then the next
observation is sent. Success is read from ``info[--success_key]`` (at any step).

Writes ``OUT/summary.json`` (success rate with its 95% Wilson interval, returns,
lengths, latencies, per-episode results) and ``OUT/episode_NNNNN.gif`` (the cameras side
by side, at ``--render_size``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import sys
import time
from typing import Any, Mapping, Optional, Sequence

import gymnasium as gym
import numpy as np

from wam_gym_client import cli, envs, gif, images, jsonfile, progress, rollout
from wam_gym_client.observation import IMAGE_PREFIX, JOINTS, PROPRIO
from wam_gym_client.serving.client import PolicyClient, PolicyServerError

SUMMARY_FILE = "summary.json"


def policy_spec(url: str, timeout: Optional[float] = 60.0) -> dict[str, Any]:
  """What the served policy expects (``Policy.describe()``: cameras, image_size, joints,
  proprio, action, action_chunk, instruction_length ...), without opening a session."""
  with PolicyClient(url, timeout=timeout) as client:
    return dict(client.metrics()["policy"])


def check_env(vec: gym.vector.VectorEnv, spec: Mapping[str, Any]) -> None:
  """Raises ValueError, saying what to change, if the env cannot feed the policy."""
  space = vec.single_observation_space
  keys = list(getattr(space, "spaces", {}))
  missing = [IMAGE_PREFIX + c for c in spec["cameras"] if IMAGE_PREFIX + c not in keys]
  if missing:
    raise ValueError(f"{rollout.env_id(vec)}: the policy reads cameras {spec['cameras']}; "
                     f"the env observation lacks {missing} (it has "
                     f"{[k for k in keys if k.startswith(IMAGE_PREFIX)]}): map each model "
                     "camera to an env camera (--cameras=model_name:env_camera,...).")
  for key in (JOINTS, PROPRIO):
    if key == PROPRIO and key not in keys:
      continue   # optional: padded and masked by the policy
    have = space[key].shape[0] if key in keys else None
    if have != spec[key]:
      raise ValueError(f"The policy reads {key} f32[{spec[key]}]; the env gives "
                       f"{'none' if have is None else f'f32[{have}]'} (--{key}=...).")
  action = vec.single_action_space
  if not isinstance(action, gym.spaces.Box) or int(np.prod(action.shape)) != spec["action"]:
    raise ValueError(f"The policy's actions are f32[{spec['action']}]; the env's action "
                     f"space is {action}.")


class Evaluator:
  """The :class:`~wam_gym_client.rollout.Agent` that acts through the policy server."""

  def __init__(self, url: str, spec: Mapping[str, Any], action_space: gym.spaces.Box, *,
               num_envs: int, instruction: envs.Instruction, success_key: str,
               execute: Optional[int], clip: bool, gif_dir: Optional[str],
               max_gifs: Optional[int], gif_fps: float, timeout: Optional[float],
               show: Optional[progress.Progress]):
    self.url, self.spec, self.action_space = url, dict(spec), action_space
    self.instruction, self.success_key = instruction, success_key
    self.execute, self.clip = execute, clip
    self.gif_dir, self.max_gifs, self.gif_fps = gif_dir, max_gifs, gif_fps
    self.timeout, self.show = timeout, show
    self.image_size = tuple(spec["image_size"])
    self.clients: dict[int, PolicyClient] = {}
    self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=num_envs)
    self.episodes: dict[int, dict[str, Any]] = {}
    self.results: list[dict[str, Any]] = []
    self.round_trip_ms: list[float] = []
    self.server_ms: list[float] = []
    self.steps = 0

  # ---------------------------------------------------------------------- the agent
  def begin(self, slot: int, episode: int, seed: Optional[int], obs: Any,
            info: Mapping[str, Any]) -> None:
    if slot not in self.clients:
      self.clients[slot] = PolicyClient(self.url, timeout=self.timeout)
    text = envs.instruction_for(self.instruction, info)
    session = self.clients[slot].reset(text, seed=episode if seed is None else seed)
    keep_frames = self.gif_dir is not None and (self.max_gifs is None or
                                                episode < self.max_gifs)
    self.episodes[slot] = {"episode": episode, "seed": seed, "instruction": text,
                           "session": session, "queue": [], "success": False,
                           "return": 0.0, "length": 0, "acts": 0,
                           "frames": [self._frame(obs)] if keep_frames else None}

  def act(self, slots: Sequence[int], obs: Sequence[Any]) -> list[np.ndarray]:
    asking = [(s, o) for s, o in zip(slots, obs) if not self.episodes[s]["queue"]]
    for slot, chunk in zip([s for s, _ in asking],
                           self.pool.map(lambda so: self._ask(*so), asking)):
      self.episodes[slot]["queue"] = list(chunk[:self.execute])
      self.episodes[slot]["acts"] += 1
    return [self._action(self.episodes[s]["queue"].pop(0)) for s in slots]

  def step(self, slot: int, action: Any, reward: float, obs: Any, info: Mapping[str, Any],
           terminated: bool, truncated: bool) -> None:
    del action, terminated, truncated
    state = self.episodes[slot]
    state["success"] |= progress.succeeded(info, self.success_key)
    state["return"] += reward
    state["length"] += 1
    if state["frames"] is not None:
      state["frames"].append(self._frame(obs))
    self.steps += 1

  def end(self, slot: int) -> None:
    state = self.episodes.pop(slot)
    self.clients[slot].close_session(state["session"])   # frees its cache on the server
    path = None
    if state["frames"] is not None:
      path = gif.write_gif(os.path.join(self.gif_dir, f"episode_{state['episode']:05d}.gif"),
                           state["frames"], fps=self.gif_fps)
    self.results.append({"episode": state["episode"], "seed": state["seed"],
                         "instruction": state["instruction"], "success": state["success"],
                         "return": state["return"], "length": state["length"],
                         "acts": state["acts"], "gif": path and os.path.basename(path)})
    if self.show is not None:
      self.show.update(len(self.results), sum(r["success"] for r in self.results), self.steps)

  # ---------------------------------------------------------------------- helpers
  def _ask(self, slot: int, obs: Mapping[str, Any]) -> np.ndarray:
    """One act of ``slot``'s session: the chunk f32 [chunk, A] after ``obs``."""
    observation = {IMAGE_PREFIX + c: images.resize(obs[IMAGE_PREFIX + c], self.image_size)
                   for c in self.spec["cameras"]}
    observation[JOINTS] = np.asarray(obs[JOINTS], np.float32)
    if PROPRIO in obs:
      observation[PROPRIO] = np.asarray(obs[PROPRIO], np.float32)
    client = self.clients[slot]
    start = time.perf_counter()
    chunk = np.asarray(client.act(observation, session_id=self.episodes[slot]["session"]))
    self.round_trip_ms.append(1e3 * (time.perf_counter() - start))
    self.server_ms.append(float(client.last_reply.get("latency_ms", np.nan)))
    if chunk.ndim != 2 or chunk.shape[1] != self.spec["action"] or not len(chunk):
      raise ValueError(f"The server sent actions of shape {chunk.shape}; expected "
                       f"[chunk, {self.spec['action']}].")
    return chunk

  def _action(self, action: np.ndarray) -> np.ndarray:
    """One action of a chunk in the env's action shape and dtype (clipped if asked)."""
    space = self.action_space
    action = np.asarray(action, np.float64).reshape(space.shape)
    if self.clip:
      action = np.clip(action, space.low, space.high)
    return action.astype(space.dtype)

  def _frame(self, obs: Mapping[str, Any]) -> np.ndarray:
    """The model's cameras side by side, as the env rendered them."""
    return np.concatenate([images.as_rgb(obs[IMAGE_PREFIX + c]) for c in self.spec["cameras"]],
                          axis=1)

  def close(self) -> None:
    self.pool.shutdown()
    for client in self.clients.values():
      client.close()


def _latency(ms: Sequence[float]) -> dict[str, float]:
  ms = np.asarray([m for m in ms if np.isfinite(m)], np.float64)
  if not ms.size:
    return {"count": 0}
  return {"count": int(ms.size), "median_ms": float(np.median(ms)),
          "p90_ms": float(np.percentile(ms, 90)), "max_ms": float(ms.max())}


def evaluate(env: gym.Env | gym.vector.VectorEnv, url: str, *, episodes: int, seed: int = 0,
             instruction: envs.Instruction = "", success_key: str = "success",
             out_dir: Optional[str] = None, execute: Optional[int] = None,
             clip_actions: bool = True, max_gifs: Optional[int] = None,
             gif_fps: Optional[float] = None, timeout: Optional[float] = 60.0,
             spec: Optional[Mapping[str, Any]] = None, show_progress: bool = True
             ) -> dict[str, Any]:
  """Evaluates the policy served at ``url`` on ``env`` for ``episodes`` episodes.

  Args:
    env: a Gymnasium env or vector env whose (sub-)envs are wrapped in
      :class:`~wam_gym_client.observation.RobotObservation` with an image per model camera
      (any size: resized to the server's), ``joints`` and optionally ``proprio``.
    url: ``ws://host:port`` of ``python -m experiments.serve``.
    episodes: how many; episode ``k`` resets with ``seed + k`` (autoreset disabled) and
      its session with the same seed.
    instruction: the text of every episode, or a function of its reset info.
    success_key: the info key that says success (at any step).
    out_dir: where ``summary.json`` and the GIFs go (None: nothing written).
    execute: actions of each chunk to execute before asking again (None: all).
    clip_actions: clip actions to the action space's bounds.
    max_gifs: GIFs of the first N episodes only (None: all).
    gif_fps: GIF frame rate (default: the env's ``render_fps``, else 10).
    timeout: seconds to wait for each reply.
    spec: the policy's description, if already fetched (:func:`policy_spec`).
    show_progress: print a progress line on stderr.

  Returns:
    The summary (also ``out_dir/summary.json``).

  Raises:
    ValueError: an env that does not fit the policy (cameras, vector sizes, actions).
    wam_gym_client.serving.client.PolicyServerError: the server refused a request.
  """
  vec = rollout.as_vector_env(env)
  spec = dict(spec or policy_spec(url, timeout))
  check_env(vec, spec)
  name = rollout.env_id(vec)
  gif_fps = gif_fps or rollout.sub_env_metadata(vec).get("render_fps") or 10.0
  show = progress.Progress(episodes, f"evaluate {name}") if show_progress else None
  agent = Evaluator(url, spec, vec.single_action_space, num_envs=vec.num_envs,
                    instruction=instruction, success_key=success_key, execute=execute,
                    clip=clip_actions, gif_dir=out_dir, max_gifs=max_gifs, gif_fps=gif_fps,
                    timeout=timeout, show=show)
  start = time.monotonic()
  try:
    rollout.run_episodes(vec, agent, episodes, seed=seed)
  finally:
    agent.close()
    if show is not None:
      show.close()
  results = sorted(agent.results, key=lambda r: r["episode"])
  successes = sum(r["success"] for r in results)
  summary = {
      "env": name, "url": url, "episodes": len(results), "successes": successes,
      "success_rate": successes / len(results),
      "ci95": list(progress.wilson_interval(successes, len(results))),
      "mean_return": float(np.mean([r["return"] for r in results])),
      "mean_length": float(np.mean([r["length"] for r in results])),
      "steps": agent.steps, "acts": len(agent.round_trip_ms),
      "seconds": time.monotonic() - start, "success_key": success_key,
      "execute": execute, "clip_actions": clip_actions, "num_envs": vec.num_envs,
      "latency": {"round_trip": _latency(agent.round_trip_ms),
                  "server": _latency(agent.server_ms)},
      "policy": spec, "results": results}
  if out_dir is not None:
    jsonfile.write_json(os.path.join(out_dir, SUMMARY_FILE), summary)
  return summary


def main(argv: Optional[Sequence[str]] = None) -> None:
  parser = argparse.ArgumentParser(prog="python -m wam_gym_client.evaluate",
                                   description=__doc__.split("\n\n")[0].strip())
  parser.add_argument("--url", required=True, help="ws://host:port of the policy server.")
  cli.add_env_flags(parser)
  parser.add_argument("--cameras", default=None,
                      help="model_camera:env_camera,... (env camera: 'render', a MuJoCo name "
                           "or id, -1 free); default: 'render' for a one-camera model.")
  parser.add_argument("--render_size", type=cli.parse_size, default=None,
                      help="height,width the env renders (and the GIFs show); default: the "
                           "server's image_size. Images are resized to it before sending.")
  parser.add_argument("--execute", type=int, default=None,
                      help="Actions of each chunk executed before the next act (default all).")
  parser.add_argument("--no_clip", action="store_true",
                      help="Do not clip actions to the action space.")
  parser.add_argument("--max_gifs", type=int, default=None, help="GIFs of the first N episodes.")
  parser.add_argument("--gif_fps", type=float, default=None)
  parser.add_argument("--timeout", type=float, default=60.0, help="Seconds per reply.")
  args = parser.parse_args(argv)
  spec = policy_spec(args.url, args.timeout)
  cameras = cli.parse_cameras(args.cameras)
  if not cameras:
    if len(spec["cameras"]) != 1:
      parser.error(f"The policy reads cameras {spec['cameras']}: give --cameras=" +
                   ",".join(f"{c}:ENV_CAMERA" for c in spec["cameras"]) + ".")
    cameras = {spec["cameras"][0]: "render"}
  make = cli.env_fn(args, cameras, args.render_size or tuple(spec["image_size"]))
  vec = envs.make_vector_env(make, args.num_envs, args.vectorization)
  try:
    summary = evaluate(vec, args.url, episodes=args.episodes, seed=args.seed,
                       instruction=cli.instruction(args), success_key=args.success_key,
                       out_dir=args.out, execute=args.execute, clip_actions=not args.no_clip,
                       max_gifs=args.max_gifs, gif_fps=args.gif_fps, timeout=args.timeout,
                       spec=spec)
  except (ValueError, PolicyServerError) as e:   # a mismatch the message explains
    sys.exit(f"error: {e}")
  finally:
    vec.close()
  lo, hi = summary["ci95"]
  print(f"{summary['env']}: {summary['successes']}/{summary['episodes']} succeeded "
        f"({summary['success_rate']:.0%}, 95% CI {lo:.0%}-{hi:.0%}); "
        f"{os.path.join(args.out, SUMMARY_FILE)}", file=sys.stdout)


if __name__ == "__main__":
  main()
