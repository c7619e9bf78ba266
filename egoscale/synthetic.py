"""Synthetic egocentric human video: a kinematic hand doing tabletop tasks, head camera.

Each episode draws a scene (:mod:`egoscale.scenes`: objects, colours, table, lighting,
the subject's hand size) and a task from ``reach, grasp, move, push, pour, fold``. A task
is a script of seven keyframes for the hand's *tool point* (the centre of a power grasp,
the thumb-index pinch or the fingertips), its orientation and its grip; segment
durations are drawn per episode (the subject's speed), the motion between keyframes is
smooth (smoothstep) with a small tremor, and the wrist follows from the tool point and
the hand's size. Objects are kinematic: a grasped object rides with the hand, a pushed
object moves with the fingertips, a poured cup tilts with the wrist, and the cloth's
far half turns about its middle to follow the pinch. A head-mounted camera sways a
little and looks at a point between the workspace and the hand.

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

from dojo.render import look_at
from egoscale import actions as actions_lib
from egoscale import hand
from egoscale import scenes
from egoscale.scenes import TASKS
from wam.data.layout import Layout
from wam.data.schema import EpisodeSpec

EMBODIMENT = "human_hand"
PROPRIO_LAYOUT = Layout.of([("camera_pose", 9), ("wrist_pose", 9)])
ACTIONS = ("human", "none")
NUM_KEYFRAMES = 7


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


# ---------------------------------------------------------------------------- grips
def _grip(thumb: Sequence[float], mcp, abd, pip, dip) -> np.ndarray:
  """Joint angles in hand.JOINT_NAMES order; finger values are scalars or 4-tuples."""
  per = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v,) * 4
  fingers = zip(per(mcp), per(abd), per(pip), per(dip))
  return np.array(list(thumb) + [x for f in fingers for x in f], np.float32)


GRIPS = {
    "open": _grip((0.1, 0.4, 0.1, 0.1), 0.25, (0.08, 0.0, -0.05, -0.12), 0.25, 0.15),
    "power": _grip((0.8, 1.0, 0.5, 0.5), 1.2, (-0.05, 0.0, 0.03, 0.08), 1.3, 0.8),
    "pinch": _grip((0.7, 0.9, 0.45, 0.35), (0.95, 1.3, 1.35, 1.4), 0.0,
                   (0.75, 1.5, 1.6, 1.6), (0.35, 1.0, 1.0, 1.0)),
    "flat": _grip((0.2, 0.2, 0.0, 0.0), 0.05, (0.05, 0.0, -0.03, -0.06), 0.05, 0.05),
}
# Which keypoints make each grip's tool point.
TOOL_KEYPOINTS = {"power": hand.TIPS + hand.MCPS[1:], "pinch": (4, 8), "flat": (8, 12, 16)}
# The closed grip of each task (reach only half closes its power grip).
TASK_GRIP = {"reach": "power", "grasp": "power", "move": "power", "push": "flat",
             "pour": "power", "fold": "pinch"}
for _g in GRIPS.values():
  hand.check_pose(_g, where="egoscale.synthetic.GRIPS")


@functools.lru_cache(maxsize=None)
def tool_points() -> np.ndarray:
  """f32[len(TASKS), 3]: each task's tool point in the wrist frame of the average hand
  (keypoints scale linearly with a uniform bone scale, so a hand of scale ``s`` has
  ``s`` times these)."""
  with jax.ensure_compile_time_eval():
    identity = hand.make_pose(jnp.zeros(3), jnp.eye(3))
    points = []
    for task in TASKS:
      grip = TASK_GRIP[task]
      kp = np.asarray(hand.keypoints(identity, jnp.asarray(GRIPS[grip])))
      points.append(kp[list(TOOL_KEYPOINTS[grip])].mean(axis=0))
  return np.stack(points).astype(np.float32)


# ---------------------------------------------------------------------------- plans
class Plan(NamedTuple):
  """A task script: NUM_KEYFRAMES keyframes and NUM_KEYFRAMES - 1 segments."""

  tool: jax.Array      # f32[K, 3] the tool point in the table frame
  euler: jax.Array     # f32[K, 3] hand yaw, pitch, roll
  grip: jax.Array      # f32[K] 0 open .. 1 the task's closed grip
  attach: jax.Array    # f32[K-1] the target rides with the hand during the segment
  push: jax.Array      # f32[K-1] the target moves with the tool during the segment
  seconds: jax.Array   # f32[K-1] nominal segment durations


def _plans(scene: scenes.Scene, key: jax.Array) -> list[Plan]:
  """The script of every task for this scene (the task's one is picked later)."""
  k = jax.random.split(key, 4)
  up = jnp.array([0.0, 0.0, 1.0])
  start = jnp.array([-0.06, -0.02, 0.2]) + jax.random.uniform(
      k[0], (3,), minval=-1.0, maxval=1.0) * jnp.array([0.03, 0.07, 0.03])
  height = scenes.half_height(scene.target_type)
  centre = jnp.concatenate([scene.target_xy, height[None]])
  grasp = centre + 0.02 * up
  hover = grasp + 0.09 * up
  direction = jnp.asarray(np.array(list(scenes.DIRECTIONS.values()), np.float32))[
      scene.direction]
  d3 = jnp.concatenate([direction, jnp.zeros(1)])
  yaw0 = jax.random.uniform(k[1], (), minval=-0.2, maxval=0.2)
  yaw = jnp.clip(scene.target_yaw, -0.5, 0.5)

  def euler(*rows):
    return jnp.stack([jnp.stack([jnp.float32(y), jnp.float32(p), jnp.float32(r)])
                      for y, p, r in rows])

  def plan(tool, eul, grip, attach, push, seconds):
    return Plan(jnp.stack(tool), eul, jnp.asarray(grip, jnp.float32),
                jnp.asarray(attach, jnp.float32), jnp.asarray(push, jnp.float32),
                jnp.asarray(seconds, jnp.float32))

  down = (yaw, 0.45, 0.0)
  near = grasp + jnp.array([-0.035, 0.0, 0.05])
  reach = plan([start, hover, near, near, near, near, near],
               euler((yaw0, 0.3, 0.0), down, down, down, down, down, down),
               [0, 0.1, 0.35, 0.35, 0.35, 0.35, 0.35], [0] * 6, [0] * 6,
               [1.0, 0.7, 0.3, 0.3, 0.3, 0.3])
  lift = grasp + 0.08 * up
  grasp_plan = plan([start, hover, grasp, grasp, lift, lift, lift],
                    euler((yaw0, 0.3, 0.0), down, down, down, down, down, down),
                    [0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1], [0] * 6,
                    [1.0, 0.6, 0.5, 0.8, 0.3, 0.3])
  shift = scene.distance * d3
  move = plan([start, hover, grasp, grasp, grasp + 0.5 * shift + 0.06 * up, grasp + shift,
               grasp + shift + 0.08 * up],
              euler((yaw0, 0.3, 0.0), down, down, down, down, down, down),
              [0, 0, 0, 1, 1, 1, 0], [0, 0, 0, 1, 1, 0], [0] * 6,
              [1.0, 0.6, 0.5, 0.7, 0.6, 0.5])
  # Push with the fingertips, the fingers turned toward the push direction.
  push_yaw = 0.8 * jnp.arctan2(direction[1], direction[0])
  contact = jnp.concatenate([scene.target_xy - direction * 0.04, jnp.array([0.03])])
  flat = (push_yaw, 0.9, 0.0)
  push = plan([start, contact - 0.03 * d3 + 0.06 * up, contact - 0.02 * d3, contact,
               contact + shift, contact + shift - 0.03 * d3 + 0.07 * up,
               contact + shift - 0.03 * d3 + 0.07 * up],
              euler((yaw0, 0.3, 0.0), flat, flat, flat, flat, flat, flat),
              [0, 0.6, 1, 1, 1, 0.6, 0.6], [0] * 6, [0, 0, 0, 1, 0, 0],
              [1.0, 0.6, 0.4, 1.0, 0.6, 0.3])
  # Pour: grasp the cup, carry it beside the other object and tilt it toward it.
  side = jnp.sign(scene.other_xy[1] - scene.target_xy[1])
  above = jnp.concatenate([scene.other_xy - jnp.array([0.0, 0.07]) * side,
                           jnp.array([0.2])])
  tilt = jax.random.uniform(k[2], (), minval=1.2, maxval=1.8) * side
  pour = plan([start, hover, grasp, grasp, above, above, above],
              euler((yaw0, 0.3, 0.0), (0.0, 0.45, 0.0), (0.0, 0.45, 0.0), (0.0, 0.45, 0.0),
                    (0.0, 0.3, 0.0), (0.0, 0.3, tilt), (0.0, 0.3, 0.0)),
              [0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1], [0] * 6,
              [1.0, 0.6, 0.5, 0.9, 0.8, 0.7])
  # Fold: pinch the far edge and carry it over the middle onto the near half.
  hinge = scenes.cloth_hinge(scene)
  length = 2 * scenes.CLOTH_HALF[0]
  edge = hinge + jnp.array([length, 0.0, 0.006])
  pinch = (0.0, 0.7, 0.0)
  fold = plan([start, edge + 0.06 * up, edge, edge, hinge + (length + 0.006) * up,
               hinge + jnp.array([-length, 0.0, 0.014]),
               hinge + jnp.array([-length, 0.0, 0.07])],
              euler((yaw0, 0.3, 0.0), pinch, pinch, pinch, pinch, pinch, pinch),
              [0, 0.3, 0.3, 1, 1, 1, 0], [0, 0, 0, 1, 1, 0], [0] * 6,
              [1.0, 0.6, 0.5, 0.7, 0.7, 0.5])
  return [reach, grasp_plan, move, push, pour, fold]


def _smoothstep(u: jax.Array) -> jax.Array:
  u = jnp.clip(u, 0.0, 1.0)
  return u * u * (3 - 2 * u)


# ---------------------------------------------------------------------------- one episode
class Trajectory(NamedTuple):
  """Per-step world-frame streams of one episode (leading time axis N)."""

  wrist_pose: jax.Array     # f32[N, 9]
  articulation: jax.Array   # f32[N, 20]
  keypoints: jax.Array      # f32[N, 21, 3]
  target_pos: jax.Array     # f32[N, 3]
  target_rot: jax.Array     # f32[N, 3, 3]
  fold: jax.Array           # f32[N]
  camera_pos: jax.Array     # f32[N, 3]
  camera_rot: jax.Array     # f32[N, 3, 3] columns = camera x, y, z in the table frame


def trajectory(scene: scenes.Scene, key: jax.Array, num_steps: int, fps: float
               ) -> Trajectory:
  """The hand, object and camera motion of one episode (pure JAX, vmappable)."""
  keys = jax.random.split(key, 7)
  plans = _plans(scene, keys[0])
  plan = jax.tree.map(lambda *xs: jnp.stack(xs)[scene.task], *plans)
  grip_names = [TASK_GRIP[t] for t in TASKS]
  bones = hand.bone_lengths(scene.hand_scale)
  tool_local = jnp.asarray(tool_points())[scene.task] * scene.hand_scale
  closed = jnp.asarray(np.stack([GRIPS[g] for g in grip_names]))[scene.task]
  open_ = jnp.asarray(GRIPS["open"])

  # Keyframe times (steps): the subject's speed scales every segment; a long script is
  # squeezed into 95% of the episode.
  speed = jax.random.uniform(keys[1], (), minval=0.75, maxval=1.3)
  jitter = jax.random.uniform(keys[2], plan.seconds.shape, minval=0.8, maxval=1.25)
  seconds = plan.seconds * jitter / speed
  delay = jax.random.uniform(keys[3], (), minval=0.0, maxval=0.3)
  span = (num_steps - 1) / fps
  squeeze = jnp.minimum(1.0, 0.95 * span / (delay + seconds.sum()))
  times = jnp.concatenate([jnp.zeros(1), jnp.cumsum(seconds)]) + delay
  times = times * squeeze * fps                                   # [K] in steps
  t = jnp.arange(num_steps, dtype=jnp.float32)
  phase = jax.random.uniform(keys[4], (2, 3), minval=0.0, maxval=2 * np.pi)
  offset = jax.random.uniform(keys[5], (hand.NUM_JOINTS,), minval=-0.06, maxval=0.06)

  def hand_at(tt):
    """The hand at (fractional) steps ``tt``: tool point, wrist pose, joints, keypoints."""
    seg = jnp.clip(jnp.searchsorted(times, tt, side="right") - 1, 0, NUM_KEYFRAMES - 2)
    u = _smoothstep((tt - times[seg]) / jnp.maximum(times[seg + 1] - times[seg], 1e-3))

    def interp(values):
      a, b = values[seg], values[seg + 1]
      return a + u.reshape(u.shape + (1,) * (a.ndim - 1)) * (b - a)

    # A slow tremor (a few mm) keeps the hand from moving in straight, perfect lines.
    secs = tt[:, None] / fps
    tremor = 0.002 * (jnp.sin(2 * np.pi * 0.7 * secs + phase[0])
                      + jnp.sin(2 * np.pi * 1.9 * secs + phase[1]))
    tool = interp(plan.tool)
    euler = interp(plan.euler)
    rot = jax.vmap(lambda e: hand.euler_to_matrix(e[0], e[1], e[2]))(euler)
    wrist = hand.make_pose(tool + tremor - jnp.einsum("nij,j->ni", rot, tool_local), rot)
    articulation = hand.clip_to_limits(open_ + interp(plan.grip)[:, None] * (closed - open_)
                                       + offset)
    return tool, wrist, articulation, hand.keypoints(wrist, articulation, bones)

  # Objects are kinematic and exact: during the contact window [t0, t1] (the segments
  # where the hand holds or pushes the target) the target keeps its pose relative to the
  # hand at t0; outside it, it stays where the window left it. So the hand is evaluated
  # at t, at t clamped into the window, and at t0.
  contact = jnp.maximum(plan.attach, plan.push) > 0.5
  i0 = jnp.argmax(contact)
  i1 = NUM_KEYFRAMES - 2 - jnp.argmax(contact[::-1])
  t0, t1 = times[i0], times[i1 + 1]
  held = jnp.clip(t, t0, t1)
  tools, poses, joints, kps = hand_at(jnp.concatenate([t, held, t0[None]]))
  n = num_steps
  tool, wrist_pose, articulation, kp = tools[:n], poses[:n], joints[:n], kps[:n]
  hold_pose, hold_kp = poses[n:2 * n], kps[n:2 * n]
  grab_pose, grab_kp = poses[2 * n], kps[2 * n]

  height = scenes.half_height(scene.target_type)
  pos0 = jnp.concatenate([scene.target_xy, height[None]])
  rot0 = hand.euler_to_matrix(scene.target_yaw, jnp.float32(0.0), jnp.float32(0.0))
  is_cloth = scene.target_type == 2
  attached = (plan.attach.max() > 0.5) & ~is_cloth
  pushed = (plan.push.max() > 0.5) & ~is_cloth
  # Held: the pose relative to the wrist at t0, carried by the wrist.
  g_pos, g_rot = hand.split_pose(grab_pose)
  h_pos, h_rot = hand.split_pose(hold_pose)
  rel_pos, rel_rot = g_rot.T @ (pos0 - g_pos), g_rot.T @ rot0
  held_pos = h_pos + jnp.einsum("nij,j->ni", h_rot, rel_pos)
  held_rot = h_rot @ rel_rot
  # Pushed: slides along the table with the fingertips.
  tips = lambda k: k[..., jnp.asarray(TOOL_KEYPOINTS["flat"]), :].mean(axis=-2)
  slid = pos0 + (tips(hold_kp) - tips(grab_kp)) * jnp.array([1.0, 1.0, 0.0])
  target_pos = jnp.where(attached, held_pos, jnp.where(pushed, slid, pos0))
  target_rot = jnp.where(attached, held_rot, jnp.broadcast_to(rot0, held_rot.shape))
  # The cloth's far half turns about the fold line to follow the pinch (never unfolds).
  rel = 0.5 * (hold_kp[:, 4] + hold_kp[:, 8]) - scenes.cloth_hinge(scene)
  angle = jnp.where(t >= t0, jnp.clip(jnp.arctan2(rel[:, 2], rel[:, 0]), 0.0, np.pi), 0.0)
  fold = jnp.where(is_cloth & (plan.attach.max() > 0.5), jax.lax.cummax(angle), 0.0)
  secs = t / fps

  # Head camera: behind and above the hand, a small sway, looking between the workspace
  # and the hand (people look at what they handle).
  ck = jax.random.split(keys[6], 4)
  eye0 = jnp.array([-0.2, 0.06, 0.44]) + jax.random.uniform(
      ck[0], (3,), minval=-1.0, maxval=1.0) * jnp.array([0.04, 0.05, 0.04])
  freq = jax.random.uniform(ck[1], (3,), minval=0.1, maxval=0.4)
  cphase = jax.random.uniform(ck[2], (3,), minval=0.0, maxval=2 * np.pi)
  eye = eye0 + 0.015 * jnp.sin(2 * np.pi * freq * secs[:, None] + cphase)
  workspace = jnp.array([0.04, 0.0, 0.02]) + jax.random.uniform(
      ck[3], (3,), minval=-1.0, maxval=1.0) * jnp.array([0.03, 0.03, 0.01])
  look = 0.6 * workspace + 0.4 * tool * jnp.array([1.0, 1.0, 0.3])
  camera_rot = jax.vmap(look_at)(eye, look)
  return Trajectory(wrist_pose, articulation, kp, target_pos, target_rot, fold, eye,
                    camera_rot)


def to_camera(traj: Trajectory) -> tuple[jax.Array, jax.Array, jax.Array]:
  """``(camera_pose f32[...,N,9] (table frame), wrist_pose f32[...,N,9] and keypoints
  f32[...,N,21,3] in the camera frame)``."""
  cam_pos, cam_rot = traj.camera_pos, traj.camera_rot
  w_pos, w_rot = hand.split_pose(traj.wrist_pose)
  rot_t = jnp.swapaxes(cam_rot, -1, -2)
  wrist = hand.make_pose(jnp.einsum("...ij,...j->...i", rot_t, w_pos - cam_pos),
                         rot_t @ w_rot)
  kp = jnp.einsum("...kj,...ji->...ki", traj.keypoints - cam_pos[..., None, :], cam_rot)
  return hand.make_pose(cam_pos, cam_rot), wrist, kp


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
