"""The motion of one synthetic episode: the hand, the object it handles, the head camera.

A task (``reach, grasp, move, push, pour, fold``) is a script of :data:`NUM_KEYFRAMES`
keyframes for the hand's *tool point* (the centre of a power grasp, the thumb-index
pinch or the fingertips), its orientation and its grip (:data:`GRIPS`). Segment
durations are drawn per episode (the subject's speed), the motion between keyframes is
smooth (smoothstep) with a small tremor, and the wrist follows from the tool point and
the hand's size. Objects are kinematic: a grasped object rides with the hand, a pushed
object moves with the fingertips, a poured cup tilts with the wrist, and the cloth's
far half turns about its middle to follow the pinch. A head-mounted camera sways a
little and looks at a point between the workspace and the hand.

:func:`trajectory` is pure JAX (vmappable over episodes); :mod:`egoscale.synthetic`
renders it into episodes.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dojo.render import look_at
from egoscale import hand
from egoscale import scenes
from egoscale.scenes import TASKS

NUM_KEYFRAMES = 7


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
  hand.check_pose(_g, where="egoscale.motion.GRIPS")


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
