"""Synthetic egocentric human video: a kinematic hand doing tabletop tasks, head camera.

Each episode draws a scene (:mod:`egoscale.scenes`: objects, colours, table, lighting,
the subject's hand size) and a task from ``reach, grasp, move, push, pour, fold``; the
hand, the object and the head camera move as :mod:`egoscale.motion` scripts the task,
and :mod:`egoscale.scenes`' geoms are rendered by the Dojo's ray caster.

Everything is batched JAX: ``vmap`` over episodes and a ``lax.scan`` over time (the
render of one time step for the whole batch per scan step); episode ``e`` of seed ``s``
depends only on ``(s, e)``. :func:`episodes` yields episodes in the schema of
``wam.data.schema`` (``source="human"``, embodiment ``human_hand``, no joints):

  observation/image_ego        uint8[N,H,W,3]
  observation/proprio          f32[N,18]  slots camera_pose(9): the camera in the table
                                          frame, wrist_pose(9): the wrist in the camera
                                          frame (position + 6D rotation each)
  observation/hand_keypoints   f32[N,21,3] in the camera frame (MediaPipe order)
  action                       f32[N,72]  egoscale.actions: wrist_motion(9) +
                                          hand_keypoints(63); absent with actions="none"

Camera frame: MuJoCo's (x right, y up, looking along -z).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Callable, Iterator, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from egoscale import actions as actions_lib
from egoscale import hand
from egoscale import scenes
from egoscale.motion import Trajectory, to_camera, trajectory
from egoscale.scenes import TASKS
from wam.data.layout import Layout
from wam.data.schema import EpisodeSpec

EMBODIMENT = "human_hand"
PROPRIO_LAYOUT = Layout.of([("camera_pose", 9), ("wrist_pose", 9)])
ACTIONS = ("human", "none")


class SyntheticDataError(ValueError):
  """Generated or handed-in streams that cannot form an episode."""


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
  """What the generator makes; episode ``e`` is a function of ``(seed, e)`` and this."""

  image_size: tuple[int, int] = (32, 32)
  fps: float = 10.0
  episode_length: int = 64            # steps per episode
  tasks: tuple[str, ...] = TASKS      # episode e does tasks[e % len(tasks)]
  actions: str = "human"              # human: wrist motion + keypoints; none: unlabeled
  seed: int = 0
  batch_size: int = 32                # episodes rendered at once
  # The camera's name in the dataset: name it after the robot's head camera (the Dojo
  # hand's "head") so that human and robot video share one camera slot of the model.
  camera: str = scenes.CAMERA

  def __post_init__(self):
    unknown = [t for t in self.tasks if t not in TASKS]
    if unknown or not self.tasks:
      raise ValueError(f"Unknown tasks {unknown or list(self.tasks)}; choose from {TASKS}.")
    if self.actions not in ACTIONS:
      raise ValueError(f"actions must be one of {ACTIONS}, got {self.actions!r}.")
    if self.episode_length < 2 or self.fps <= 0 or self.batch_size < 1:
      raise ValueError("episode_length must be >= 2, fps > 0 and batch_size >= 1, got "
                       f"{self.episode_length}, {self.fps}, {self.batch_size}.")
    if len(self.image_size) != 2 or min(self.image_size) < 1:
      raise ValueError(f"image_size must be (height, width), got {self.image_size}.")


def num_episodes(hours: float, fps: float, episode_length: int) -> int:
  """Episodes in ``hours`` of video: ``hours * 3600 * fps / episode_length`` (>= 1)."""
  if hours <= 0:
    raise ValueError(f"hours must be positive, got {hours}.")
  return max(1, int(round(hours * 3600.0 * fps / episode_length)))


def episode_spec(config: GeneratorConfig) -> EpisodeSpec:
  """The episode spec of the generated dataset."""
  return EpisodeSpec(
      embodiment=EMBODIMENT, source="human", cameras=(config.camera,),
      image_size=tuple(config.image_size), proprio=PROPRIO_LAYOUT,
      action=actions_lib.ACTION_LAYOUT if config.actions == "human" else Layout(),
      hand_keypoints=True, fps=float(config.fps))


def project(points_camera: jax.Array, height: int, width: int,
            fovy: float = scenes.FOVY) -> jax.Array:
  """Pixel coordinates ``(row, col)`` f32[..., 2] of camera-frame points (the inverse of
  ``CameraSpec.ray_directions``)."""
  half = np.tan(np.deg2rad(fovy) / 2)
  depth = -points_camera[..., 2]
  x = points_camera[..., 0] / depth / half * (height / 2)
  y = points_camera[..., 1] / depth / half * (height / 2)
  return jnp.stack([height / 2 - y, width / 2 + x], axis=-1)


class _Geoms(NamedTuple):
  """What the Dojo renderer reads of MJX ``Data``."""

  geom_xpos: jax.Array
  geom_xmat: jax.Array


def render_frame(scene: scenes.Scene, traj_t: Trajectory, height: int, width: int,
                 with_segmentation: bool = False):
  """One frame uint8[H, W, 3] (and geom ids int32[H, W]) of one time step."""
  xpos, xmat = scenes.geom_poses(scene, traj_t.keypoints, traj_t.wrist_pose,
                                 traj_t.target_pos, traj_t.target_rot, traj_t.fold)
  image = scenes.renderer().render_pose(_Geoms(xpos, xmat), traj_t.camera_pos,
                                        traj_t.camera_rot, scenes.camera(height, width),
                                        scenes.geom_rgba(scene))
  return (image.rgb, image.segmentation) if with_segmentation else image.rgb


# ---------------------------------------------------------------------------- batches
def episode_key(seed: int, episode: int) -> jax.Array:
  """The random key of episode ``episode`` of seed ``seed``."""
  return jax.random.fold_in(jax.random.PRNGKey(seed), episode)


@functools.lru_cache(maxsize=8)
def _generator(num_steps: int, fps: float, height: int, width: int) -> Callable:
  """A jitted function: (keys [B], task ids [B]) -> a batch of episodes."""

  def one(key, task):
    scene_key, motion_key = jax.random.split(key)
    scene = scenes.sample_scene(scene_key, task)
    return scene, trajectory(scene, motion_key, num_steps, fps)

  def generate(keys, tasks):
    scene, traj = jax.vmap(one)(keys, tasks)
    # Time-major for the scan: one render of the whole batch per time step.
    traj_t = jax.tree.map(lambda x: jnp.moveaxis(x, 1, 0), traj)
    render = jax.vmap(functools.partial(render_frame, height=height, width=width,
                                        with_segmentation=True))
    _, (frames, segmentation) = jax.lax.scan(lambda c, x: (c, render(scene, x)), None,
                                             traj_t)
    frames = jnp.moveaxis(frames, 0, 1)
    # Geom ids (-1: sky) fit int8; returned always so that one compile serves all uses.
    segmentation = jnp.moveaxis(segmentation, 0, 1).astype(jnp.int8)
    camera_pose, wrist, kp = to_camera(traj)
    world_actions = actions_lib.human_actions(traj.wrist_pose, traj.keypoints)
    return {"scene": scene, "frames": frames, "segmentation": segmentation,
            "camera_pose": camera_pose,
            "wrist_pose": wrist, "hand_keypoints": kp, "articulation": traj.articulation,
            "action": world_actions[0], "action_mask": world_actions[1],
            "trajectory": traj}

  return jax.jit(generate)


def generate(config: GeneratorConfig, episode_ids: Sequence[int]) -> dict:
  """Episodes ``episode_ids`` as one batch of host arrays (leading axis = episode).

  Keys: ``frames`` uint8[B,N,H,W,3], ``segmentation`` int8[B,N,H,W] (the geom of each
  pixel, ``scenes.GEOM_NAMES`` order, -1 for none),
  ``camera_pose``, ``wrist_pose`` f32[B,N,9], ``hand_keypoints`` f32[B,N,21,3],
  ``articulation`` f32[B,N,20], ``action`` f32[B,N,72], ``action_mask`` bool[B,N],
  ``scene`` (a batched :class:`~egoscale.scenes.Scene`), ``trajectory`` (world frame),
  ``tasks`` and ``instructions`` (lists of str).
  """
  ids = [int(e) for e in episode_ids]
  if not ids:
    raise ValueError("generate: no episode ids.")
  if min(ids) < 0:
    raise ValueError(f"generate: episode ids must be >= 0, got {min(ids)}.")
  fn = _generator(config.episode_length, float(config.fps), *config.image_size)
  task_ids = np.array([TASKS.index(config.tasks[e % len(config.tasks)]) for e in ids],
                      np.int32)
  keys = jnp.stack([episode_key(config.seed, e) for e in ids])
  out = jax.device_get(fn(keys, jnp.asarray(task_ids)))
  out["tasks"] = [TASKS[int(t)] for t in task_ids]
  out["instructions"] = [scenes.instruction(out["scene"], i) for i in range(len(ids))]
  return out


def make_episode(frames, camera_pose, wrist_pose, hand_keypoints, *, instruction: str,
                 task: str, fps: float, action=None, action_mask=None,
                 articulation=None, where: str = "episode",
                 camera: str = scenes.CAMERA) -> dict:
  """One episode in the schema of ``wam.data.schema`` from per-step streams.

  Args:
    frames: uint8[N,H,W,3] from the head camera.
    camera_pose: f32[N,9] the camera in the table frame.
    wrist_pose: f32[N,9], hand_keypoints: f32[N,21,3] in the camera frame.
    instruction, task, fps: metadata.
    action, action_mask: f32[N,72] and bool[N] (``egoscale.actions``), or None for
      unlabeled video.
    articulation: f32[N,20] joint angles, checked against the hand's joint limits.
    where: names the episode in errors.
  Raises:
    SyntheticDataError (or hand.HandPoseError) naming ``where``: streams of different
    lengths, a keypoint array of the wrong shape, a hand outside its joint limits.
  """
  frames = np.asarray(frames)
  if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
    raise SyntheticDataError(f"{where}: frames must be uint8[N,H,W,3], got "
                             f"{frames.dtype}{list(frames.shape)}.")
  kp = hand.check_keypoints(hand_keypoints, where=f"{where} hand_keypoints")
  if kp.ndim != 3:
    raise SyntheticDataError(f"{where}: hand_keypoints must be f32[N,21,3], got "
                             f"{kp.shape}.")
  streams = {"frames": len(frames), "hand_keypoints": len(kp)}
  vectors = {"camera_pose": camera_pose, "wrist_pose": wrist_pose}
  for name, value in vectors.items():
    value = np.asarray(value, np.float32)
    if value.ndim != 2 or value.shape[1] != 9:
      raise SyntheticDataError(f"{where}: {name} must be f32[N,9] (position + 6D rotation), "
                               f"got {value.shape}.")
    vectors[name] = value
    streams[name] = len(value)
  if articulation is not None:
    articulation = hand.check_pose(articulation, where=where)
    streams["articulation"] = len(articulation)
  if action is not None:
    action = np.asarray(action, np.float32)
    if action.ndim != 2 or action.shape[1] != actions_lib.ACTION_DIM:
      raise SyntheticDataError(f"{where}: action must be f32[N,{actions_lib.ACTION_DIM}], "
                               f"got {action.shape}.")
    streams["action"] = len(action)
  if len(set(streams.values())) != 1:
    raise SyntheticDataError(f"{where}: video and pose streams have different lengths "
                             f"{streams}; every stream needs one entry per frame.")
  n = len(frames)
  observation = {f"image_{camera}": frames,
                 "proprio": np.concatenate([vectors["camera_pose"], vectors["wrist_pose"]],
                                           axis=1),
                 "hand_keypoints": kp}
  steps = {"observation": observation}
  if action is not None:
    steps["action"] = action
    steps["action_mask"] = (np.arange(n) < n - 1 if action_mask is None
                            else np.asarray(action_mask, bool))
  return {"steps": steps,
          "metadata": {"embodiment": EMBODIMENT, "source": "human", "task": task,
                       "instruction": instruction, "fps": float(fps), "success": True}}


def episodes(config: GeneratorConfig, start: int, stop: int,
             progress: Optional[Callable[[int, int, float], None]] = None
             ) -> Iterator[dict]:
  """Episodes ``start .. stop - 1``, generated ``config.batch_size`` at a time.

  ``progress(done, total, frames_per_second)`` is called after each batch; by default
  runs of more than four batches log a progress line (absl, INFO).
  """
  total = stop - start
  if total <= 0:
    return
  batch = config.batch_size
  num_batches = math.ceil(total / batch)
  if progress is None and num_batches > 4:
    progress = _log_progress
  began, frames = time.perf_counter(), 0
  for first in range(start, stop, batch):
    ids = list(range(first, min(first + batch, stop)))
    # Pad the last batch to the compiled size (one compile per config).
    out = generate(config, ids + [ids[-1]] * (batch - len(ids)))
    for i, e in enumerate(ids):
      yield make_episode(
          out["frames"][i], out["camera_pose"][i], out["wrist_pose"][i],
          out["hand_keypoints"][i], instruction=out["instructions"][i],
          task=out["tasks"][i], fps=config.fps,
          action=out["action"][i] if config.actions == "human" else None,
          action_mask=out["action_mask"][i], articulation=out["articulation"][i],
          where=f"egocentric_human episode {e}", camera=config.camera)
    frames += len(ids) * config.episode_length
    if progress is not None:
      progress(ids[-1] + 1 - start, total, frames / (time.perf_counter() - began))


def _log_progress(done: int, total: int, fps: float) -> None:
  # Logged, not printed: a launcher's console shows it with a time and an ETA, and keeps it
  # in the log file.
  logging.info("[egoscale.synthetic] %d/%d episodes, %.0f frames/s", done, total, fps)


def benchmark(hours: float = 1.0, config: Optional[GeneratorConfig] = None) -> dict:
  """Generates ``hours`` of video (discarding it) and returns timings.

  Returns ``{"episodes", "frames", "seconds", "frames_per_second", "compile_seconds"}``
  (compilation measured apart on the first batch).
  """
  config = config or GeneratorConfig()
  n = num_episodes(hours, config.fps, config.episode_length)
  began = time.perf_counter()
  generate(config, range(config.batch_size))
  compile_seconds = time.perf_counter() - began
  began = time.perf_counter()
  for _ in episodes(config, 0, n):
    pass
  seconds = time.perf_counter() - began
  frames = n * config.episode_length
  return {"episodes": n, "frames": frames, "seconds": seconds,
          "frames_per_second": frames / seconds, "compile_seconds": compile_seconds}


def contact_sheet(config: GeneratorConfig, frames_per_episode: int = 8,
                  episodes_per_task: int = 1) -> np.ndarray:
  """A grid uint8[rows*H, frames_per_episode*W, 3] of frames: one row per episode, the
  first ``episodes_per_task`` episodes of each of ``config.tasks``, frames evenly spaced
  over the episode (for docs and eyeballing)."""
  num_tasks = len(config.tasks)
  ids = [i * num_tasks + t for t in range(num_tasks) for i in range(episodes_per_task)]
  out = generate(dataclasses.replace(config, batch_size=len(ids)), ids)
  steps = np.linspace(0, config.episode_length - 1, frames_per_episode).round().astype(int)
  rows = [np.concatenate(list(out["frames"][i, steps]), axis=1) for i in range(len(ids))]
  return np.concatenate(rows, axis=0)
