"""Batched collection of episodes in the episode schema (``wam.data.schema``, docs/data.md).

Many envs run at once (``vmap`` + ``scan``) under an expert, noisy-expert or random
policy, every step is rendered, and each env's trajectory is cut into an episode:
``steps`` in RLDS layout (step t holds observation t, the action taken after it and the
reward that followed; a final step holds the last observation with ``is_last``) plus
metadata. :func:`collect_to_dir` writes them as ``.npz`` files and resumes an interrupted
run; the ``dojo_robot`` TFDS builder (dojo/datasets) turns them into a training dataset.
"""

from __future__ import annotations

import dataclasses
import json
import os
import logging
import time
from typing import Callable, Iterator, Optional

import jax
import numpy as np

from dojo import play, rollout
from dojo.env import Env

#: Collection policies: the scripted expert (clean or with Gaussian noise ``noise``),
#: uniform random actions, and the play policies of ``dojo.play`` (``noise`` is their
#: ``scale`` in action units).
POLICIES = ("expert", "noisy_expert", "random") + play.PLAY_POLICIES
Episode = dict  # {"steps": {...arrays with leading time axis...}, "metadata": {...}}


@dataclasses.dataclass
class CollectStats:
  """Counts over the episodes collected by this call (not those resumed past)."""

  episodes: int = 0
  steps: int = 0
  successes: int = 0
  seconds: float = 0.0
  resumed: int = 0  # episodes skipped because an earlier run collected them

  @property
  def success_rate(self) -> float:
    return self.successes / max(self.episodes, 1)

  @property
  def total(self) -> int:
    return self.resumed + self.episodes


def make_policy(env: Env, policy: str, noise: float) -> rollout.Policy:
  """The named collection policy (one of ``POLICIES``; see its comment)."""
  if policy in play.PLAY_POLICIES:
    return play.make_play_policy(env, policy, play.PlayConfig(scale=noise))
  if policy == "expert":
    return rollout.expert_policy(env, 0.0)
  if policy == "noisy_expert":
    return rollout.expert_policy(env, noise)
  if policy == "random":
    return rollout.random_policy(env)
  raise ValueError(f"Unknown collection policy {policy!r}; choose one of {POLICIES}.")


def collect(env: Env, *, task_name: str, num_episodes: int, num_steps: int,
            batch_size: int = 16, policy: str = "expert", noise: float = 0.1,
            seed: int = 0, embodiment: Optional[str] = None, skip_batches: int = 0,
            progress: Optional[Callable[[CollectStats], None]] = None
            ) -> Iterator[Episode]:
  """Yields ``num_episodes`` episodes, ``batch_size`` envs at a time.

  Envs whose episode ends early (e.g. a NaN action) are cut at that step. Batch ``b``
  always holds episodes ``[b * batch_size, (b + 1) * batch_size)`` drawn with the same
  keys, so ``skip_batches`` resumes an interrupted collection exactly.
  """
  if num_episodes <= 0 or batch_size <= 0 or num_steps <= 0:
    raise ValueError("num_episodes, batch_size and num_steps must be positive.")
  task = env.unwrapped
  # MuJoCo Warp drops the contacts that do not fit its buffers: the first batch's states
  # are recounted by MuJoCo itself and a warning names the sizes to set.
  keep_physics = getattr(task, "impl", "") == "warp" and hasattr(task, "mj_model")
  check = keep_physics

  def keep(s):
    out = {"obs": s.obs, "reward": s.reward, "done": s.done,
           "success": s.metrics["success"], "instruction": s.info["instruction"]}
    if keep_physics:
      out["physics"] = {"qpos": s.data.qpos, "qvel": s.data.qvel,
                        "mocap_pos": s.data.mocap_pos, "mocap_quat": s.data.mocap_quat}
    return out

  run = rollout.make_rollout(env, make_policy(env, policy, noise), num_steps, keep=keep)
  stats = CollectStats(resumed=min(skip_batches * batch_size, num_episodes))
  start = time.time()
  rng = jax.random.key(seed)
  batch_index = skip_batches
  while stats.total < num_episodes:
    n = min(batch_size, num_episodes - stats.total)
    # Fixed batch shape so the rollout compiles once; extra envs are dropped.
    first, records, actions = run(jax.random.fold_in(rng, batch_index), batch_size)
    batch_index += 1
    # The physics states leave the device for the first batch's check only.
    physics = records.pop("physics", None)
    first, records, actions = jax.device_get((first, records, actions))
    if check:
      check = False
      warn_buffers(task, jax.device_get(physics))
    for i in range(n):
      episode = _episode(task, first, records, actions, i, task_name=task_name,
                         embodiment=embodiment or getattr(task, "embodiment", task_name),
                         policy=policy,
                         noise=0.0 if policy in ("expert", "random") else noise)
      stats.episodes += 1
      stats.steps += len(episode["steps"]["reward"]) - 1
      stats.successes += int(episode["metadata"]["success"])
      yield episode
    stats.seconds = time.time() - start
    if progress is not None:
      progress(stats)


def warn_buffers(task, states: dict) -> Optional[str]:
  """Logs (and returns) a warning when ``states`` ({qpos, qvel, mocap_pos, mocap_quat},
  leading axes [steps, envs]) needed more MuJoCo Warp buffer than ``task`` has: contacts
  of all envs at a step against ``config.naconmax``, constraint rows of an env against
  ``config.njmax`` (``dojo.physics.buffer_problem`` names what to set)."""
  from dojo import physics  # pylint: disable=import-outside-toplevel
  contacts, rows = physics.state_needs(task.mj_model, states["qpos"], states["qvel"],
                                       states["mocap_pos"], states["mocap_quat"])
  audit = physics.buffer_audit(contacts, rows, task.config.naconmax, task.config.njmax)
  problem = physics.buffer_problem(audit["contacts_all_worlds_max"],
                                   audit["rows_per_world_max"], task.config.naconmax,
                                   task.config.njmax, type(task).__name__)
  if problem:
    logging.warning("%s", problem)
  return problem


def episode_path(episode_dir: str, index: int) -> str:
  return os.path.join(episode_dir, f"episode_{index:05d}.npz")


def collect_to_dir(env: Env, episode_dir: str, *, num_episodes: int, batch_size: int,
                   on_episode: Optional[Callable[[int, Episode], None]] = None,
                   **kwargs) -> CollectStats:
  """Collects episodes into ``episode_dir/episode_NNNNN.npz``, resuming a partial run.

  Episodes already on disk (a prefix ``0..n-1``) are not collected again: whole batches
  are skipped, as :func:`collect` draws batch ``b`` with the same keys every time. The
  caller must pass the same ``kwargs`` (task, policy, noise, seed...) as the first run.
  ``on_episode(index, episode)`` is called for every newly collected episode.
  """
  done = 0  # episodes 0..done-1 are all on disk
  while os.path.exists(episode_path(episode_dir, done)):
    done += 1
  skip = min(done, num_episodes) // batch_size
  if done >= num_episodes:
    skip = -(-num_episodes // batch_size)
  if done:
    logging.info("Resuming: %d episodes already in %s, skipping %d batches.", done,
                 episode_dir, skip)
  latest = [CollectStats(resumed=min(skip * batch_size, num_episodes))]
  if latest[0].resumed >= num_episodes:
    return latest[0]
  user_progress = kwargs.pop("progress", None)

  def progress(stats: CollectStats) -> None:
    latest[0] = stats
    if user_progress is not None:
      user_progress(stats)

  episodes = collect(env, num_episodes=num_episodes, batch_size=batch_size,
                     skip_batches=skip, progress=progress, **kwargs)
  index = skip * batch_size
  for episode in episodes:
    write_npz(episode, episode_path(episode_dir, index))
    if on_episode is not None:
      on_episode(index, episode)
    index += 1
  return latest[0]


def _episode(task, first, records, actions, i, *, task_name, embodiment, policy, noise):
  obs0 = {k: np.asarray(v[i]) for k, v in first["obs"].items()}
  obs = {k: np.asarray(v[:, i]) for k, v in records["obs"].items()}
  done = np.asarray(records["done"][:, i]) > 0
  ended_by_env = bool(done.any())
  length = int(np.argmax(done)) + 1 if ended_by_env else done.shape[0]
  observation = {}
  for key, value in obs.items():
    name = "image_" + key.split("/", 1)[1] if key.startswith("pixels/") else key
    observation[name] = np.concatenate([obs0[key][None], value[:length]], axis=0)
  act = np.asarray(actions[:length, i], np.float32)
  action_dim = act.shape[-1]
  t = length + 1
  reward = np.concatenate([np.asarray(records["reward"][:length, i], np.float32),
                           np.zeros(1, np.float32)])
  success = bool(np.asarray(records["success"])[length - 1, i] > 0)
  instruction = task.instruction(int(np.asarray(first["instruction"])[i]))
  is_last = np.zeros(t, bool)
  is_last[-1] = True
  steps = {
      "observation": observation,
      "action": np.concatenate([act, np.zeros((1, action_dim), np.float32)]),
      "action_mask": np.arange(t) < length,  # the last step's action is padding
      "reward": reward,
      "discount": np.ones(t, np.float32),
      "is_first": np.arange(t) == 0,
      "is_last": is_last,
      # Terminal only when the env itself ended the episode in success (e.g. with
      # terminate_on_success); a time limit is a truncation, not a terminal state.
      "is_terminal": is_last & success & ended_by_env,
      "language_instruction": np.array([instruction] * t),
  }
  fps = 1.0 / task.dt
  metadata = {"embodiment": embodiment, "source": "sim", "task": task_name,
              "instruction": instruction, "fps": fps, "success": success,
              "policy": policy, "noise": noise}
  return {"steps": steps, "metadata": metadata}


def _flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
  flat = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      flat.update(_flatten(v, f"{prefix}{k}/"))
    else:
      flat[prefix + k] = np.asarray(v)
  return flat


def write_npz(episode: Episode, path: str) -> str:
  """Writes one episode as a compressed ``.npz`` (steps flattened with ``/`` keys)."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  arrays = {"steps/" + k: v for k, v in _flatten(episode["steps"]).items()}
  arrays["metadata"] = np.array(json.dumps(episode["metadata"]))
  tmp = path + ".partial"  # not matched by "episode_*.npz" if a crash leaves it behind
  with open(tmp, "wb") as f:
    np.savez_compressed(f, **arrays)
  os.replace(tmp, path)  # never leave a half-written episode behind
  return path


def read_metadata(path: str) -> dict:
  """An episode's metadata, without decompressing its steps."""
  try:
    with np.load(path, allow_pickle=False) as f:
      metadata = str(f["metadata"]) if "metadata" in f.files else None
  except Exception as e:  # zipfile.BadZipFile, ValueError, EOFError, OSError...
    raise ValueError(f"Episode file {path!r} is unreadable or truncated: {e}") from e
  if metadata is None:
    raise ValueError(f"Episode file {path!r} has no metadata entry.")
  return json.loads(metadata)


def read_npz(path: str) -> Episode:
  """Reads an episode written by ``write_npz``; a damaged file names itself."""
  try:
    with np.load(path, allow_pickle=False) as f:
      arrays = {k: f[k] for k in f.files}
  except Exception as e:  # zipfile.BadZipFile, ValueError, EOFError, OSError...
    raise ValueError(f"Episode file {path!r} is unreadable or truncated: {e}") from e
  if "metadata" not in arrays:
    raise ValueError(f"Episode file {path!r} has no metadata entry.")
  steps: dict = {}
  for key, value in arrays.items():
    if not key.startswith("steps/"):
      continue
    node = steps
    *parents, leaf = key[len("steps/"):].split("/")
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = value
  return {"steps": steps, "metadata": json.loads(str(arrays["metadata"]))}
