"""Randomised tabletop scenes for synthetic egocentric video, drawn with the Dojo camera.

The scene reuses the look of the Dojo's ``dex_lift`` task (``dojo/assets/hand.xml``):
the same table, the same 5x5x10 cm block and 10 cm can in the same colours, so that
human video and robot video share a visual domain. A human hand is drawn as a palm box,
a forearm and 15 finger-bone capsules between the 21 keypoints; a flat cloth (two
halves, for folding) completes the props.

Every geom is a static world geom of one MJCF model (:func:`scene_xml`): nothing is
simulated, so instead of running MuJoCo kinematics each frame :func:`geom_poses` writes
the geoms' world poses straight from the hand keypoints and the object states, and the
Dojo ray-cast :class:`~dojo.render.Renderer` draws them (it reads only ``geom_xpos`` and
``geom_xmat``). Geoms a scene does not use are parked under the table, where the table
hides them.

:class:`Scene` holds one episode's random draws (a pytree of arrays, so a batch of
scenes is one ``jax.vmap`` of :func:`sample_scene`).
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from dojo.render import CameraSpec, Renderer
from egoscale import hand

TASKS = ("reach", "grasp", "move", "push", "pour", "fold")
# dex_lift's palette (dojo/tasks/dex_lift.py COLOURS), kept literal so that this module
# does not pull in the MJX task machinery.
COLOURS = {
    "red": (0.85, 0.15, 0.15),
    "green": (0.15, 0.7, 0.2),
    "blue": (0.15, 0.3, 0.85),
    "yellow": (0.92, 0.8, 0.1),
}
COLOUR_NAMES = tuple(COLOURS)
OBJECT_TYPES = ("block", "can", "cloth")
TABLE_RGB = (0.72, 0.6, 0.45)       # hand.xml's table
SLEEVE_RGB = (0.35, 0.38, 0.45)     # hand.xml's forearm
SKIN_LIGHT, SKIN_DARK = (0.95, 0.8, 0.68), (0.42, 0.28, 0.2)
BLOCK_HALF = (0.025, 0.025, 0.05)   # hand.xml's block
CAN_RADIUS, CAN_HALF_HEIGHT = 0.027, 0.05
CLOTH_HALF = (0.035, 0.06, 0.003)   # one half of the cloth: 7 x 12 cm, folded along y
DIRECTIONS = {"left": (0.0, 1.0), "right": (0.0, -1.0), "forward": (1.0, 0.0),
              "back": (-1.0, 0.0)}  # the camera looks along +x: +y is its left
DIRECTION_NAMES = tuple(DIRECTIONS)
PUSH_DIRECTIONS = 3                 # push left, right or forward (not toward oneself)
CAMERA = "ego"
FOVY = 55.0
_HIDDEN = (0.0, 0.0, -1.0)          # under the table: every ray hits the table first

# The finger bones drawn as capsules: every bone but the wrist-to-base ones (the palm box
# covers those).
DRAWN_BONES = tuple(b for b in hand.BONES if b[0] != hand.WRIST)
# Geom order of the model: fixed, so poses and colours are plain arrays.
GEOM_NAMES = (("table", "palm", "forearm")
              + tuple(f"bone_{a}_{b}" for a, b in DRAWN_BONES)
              + ("target_block", "target_can", "other_block", "other_can",
                 "cloth_near", "cloth_far"))
GEOM = {name: i for i, name in enumerate(GEOM_NAMES)}
_PALM_CENTRE = (0.048, -0.002, 0.0)  # wrist frame, average hand
_PALM_HALF = (0.046, 0.045, 0.013)
_FOREARM = ((-0.02, 0.0, 0.004), (-0.11, -0.01, 0.025))  # wrist frame, from -> to
_FOREARM_RADIUS = 0.021


def scene_xml() -> str:
  """The MJCF of the scene: static geoms in :data:`GEOM_NAMES` order."""
  lengths = {b: float(hand.BONE_LENGTHS[i]) for i, b in enumerate(hand.BONES)}
  geoms = [f'<geom name="table" type="plane" size="0.6 0.6 0.02" rgba="{_rgb(TABLE_RGB)} 1"/>',
           f'<geom name="palm" type="box" size="{_vec(_PALM_HALF)}" rgba="{_rgb(SKIN_LIGHT)} 1"'
           ' pos="0 0 -1"/>',
           f'<geom name="forearm" type="capsule" size="{_FOREARM_RADIUS} '
           f'{_forearm_half_length():.4f}" rgba="{_rgb(SLEEVE_RGB)} 1" pos="0 0 -1"/>']
  for a, b in DRAWN_BONES:
    radius = 0.0095 if a < 5 else (0.0075 if a >= 17 else 0.0085)
    geoms.append(f'<geom name="bone_{a}_{b}" type="capsule" size="{radius} '
                 f'{0.5 * lengths[(a, b)]:.4f}" rgba="{_rgb(SKIN_LIGHT)} 1" pos="0 0 -1"/>')
  for slot in ("target", "other"):
    geoms.append(f'<geom name="{slot}_block" type="box" size="{_vec(BLOCK_HALF)}" '
                 'rgba="0.85 0.15 0.15 1" pos="0 0 -1"/>')
    geoms.append(f'<geom name="{slot}_can" type="cylinder" size="{CAN_RADIUS} '
                 f'{CAN_HALF_HEIGHT}" rgba="0.15 0.3 0.85 1" pos="0 0 -1"/>')
  for half in ("near", "far"):
    geoms.append(f'<geom name="cloth_{half}" type="box" size="{_vec(CLOTH_HALF)}" '
                 'rgba="0.15 0.7 0.2 1" pos="0 0 -1"/>')
  body = "\n    ".join(geoms)
  return f"""<mujoco model="egoscale_tabletop">
  <asset><material name="default" rgba="1 1 1 1"/></asset>
  <worldbody>
    {body}
  </worldbody>
</mujoco>"""


def _rgb(c) -> str:
  return " ".join(f"{v:.3f}" for v in c)


def _vec(v) -> str:
  return " ".join(f"{x:.4f}" for x in v)


def _forearm_half_length() -> float:
  a, b = np.asarray(_FOREARM[0]), np.asarray(_FOREARM[1])
  return 0.5 * float(np.linalg.norm(b - a))


@functools.lru_cache(maxsize=None)
def model() -> mujoco.MjModel:
  """The scene's MuJoCo model (built once per process)."""
  m = mujoco.MjModel.from_xml_string(scene_xml())
  names = tuple(mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, i) for i in range(m.ngeom))
  if names != GEOM_NAMES:  # geom_poses writes poses by position
    raise RuntimeError(f"Scene geoms {names} do not follow GEOM_NAMES {GEOM_NAMES}.")
  return m


@functools.lru_cache(maxsize=None)
def renderer() -> Renderer:
  """The Dojo ray-cast renderer of the scene."""
  return Renderer(model(), far=3.0)


def camera(height: int, width: int) -> CameraSpec:
  """The head-mounted camera ``ego`` (a free camera posed every frame)."""
  return CameraSpec(CAMERA, height, width, FOVY)


# ---------------------------------------------------------------------------- draws
class Scene(NamedTuple):
  """One episode's random scene (int32 / f32 arrays; a leading batch axis when batched)."""

  task: jax.Array          # index into TASKS
  target_type: jax.Array   # index into OBJECT_TYPES (block, can or cloth)
  target_colour: jax.Array  # index into COLOUR_NAMES
  other_type: jax.Array    # block or can
  other_colour: jax.Array
  direction: jax.Array     # index into DIRECTION_NAMES (move, push)
  target_xy: jax.Array     # f32[2] where the target (or the cloth's centre) rests
  target_yaw: jax.Array
  other_xy: jax.Array
  other_yaw: jax.Array
  distance: jax.Array      # how far move / push take the object (m)
  table_rgb: jax.Array     # f32[3]
  skin_rgb: jax.Array
  sleeve_rgb: jax.Array
  light: jax.Array         # f32[3]: brightness and tint multiplying every colour
  hand_scale: jax.Array    # the subject's hand size, a factor on hand.BONE_LENGTHS


def sample_scene(key: jax.Array, task: jax.Array) -> Scene:
  """Draws a scene for task index ``task`` (pure JAX; vmap it for a batch)."""
  k = jax.random.split(key, 17)
  task = jnp.asarray(task, jnp.int32)
  uniform = lambda i, lo, hi, shape=(): jax.random.uniform(k[i], shape, minval=lo, maxval=hi)
  n_col = len(COLOURS)
  target_colour = jax.random.randint(k[0], (), 0, n_col)
  other_colour = (target_colour + jax.random.randint(k[1], (), 1, n_col)) % n_col
  # Pour holds a cup (the can); fold handles the cloth; the rest any object.
  any_object = jax.random.randint(k[2], (), 0, 2)
  target_type = jnp.where(task == TASKS.index("pour"), 1,
                          jnp.where(task == TASKS.index("fold"), 2, any_object))
  other_type = jax.random.randint(k[3], (), 0, 2)
  direction = jnp.where(task == TASKS.index("push"),
                        jax.random.randint(k[4], (), 0, PUSH_DIRECTIONS),
                        jax.random.randint(k[4], (), 0, len(DIRECTIONS)))
  target_xy = uniform(5, jnp.array([0.0, -0.07]), jnp.array([0.1, 0.07]), (2,))
  # The other object 17-22 cm to one side (as in dex_lift), away from the table's edge.
  side = jnp.where(target_xy[1] >= 0, -1.0, 1.0)
  offset = uniform(6, jnp.array([-0.04, 0.17]), jnp.array([0.06, 0.22]), (2,))
  other_xy = jnp.stack([target_xy[0] + offset[0], target_xy[1] + side * offset[1]])
  base_table = jnp.asarray(TABLE_RGB)
  table_rgb = jnp.clip(base_table * uniform(7, 0.75, 1.2) + uniform(8, -0.06, 0.06, (3,)),
                       0.05, 0.95)
  skin = uniform(9, 0.0, 0.75)
  skin_rgb = (1 - skin) * jnp.asarray(SKIN_LIGHT) + skin * jnp.asarray(SKIN_DARK)
  sleeve_rgb = jnp.clip(jnp.asarray(SLEEVE_RGB) + uniform(10, -0.15, 0.3, (3,)), 0.05, 0.95)
  light = uniform(11, 0.8, 1.15) * uniform(12, 0.94, 1.06, (3,))
  return Scene(
      task=task, target_type=target_type.astype(jnp.int32),
      target_colour=target_colour.astype(jnp.int32), other_type=other_type.astype(jnp.int32),
      other_colour=other_colour.astype(jnp.int32), direction=direction.astype(jnp.int32),
      target_xy=target_xy, target_yaw=uniform(13, -0.6, 0.6), other_xy=other_xy,
      other_yaw=uniform(14, -np.pi, np.pi), distance=uniform(15, 0.07, 0.12),
      table_rgb=table_rgb, skin_rgb=skin_rgb, sleeve_rgb=sleeve_rgb, light=light,
      hand_scale=uniform(16, *hand.SCALE_RANGE))


def half_height(object_type: jax.Array) -> jax.Array:
  """Resting centre height of a block, a can or the cloth."""
  return jnp.asarray([BLOCK_HALF[2], CAN_HALF_HEIGHT, CLOTH_HALF[2]])[object_type]


def instruction(scene: Scene, index: Optional[int] = None) -> str:
  """The instruction of a (host, numpy) scene, e.g. "push the blue block left"."""
  s = jax.tree.map(lambda x: np.asarray(x) if index is None else np.asarray(x)[index], scene)
  task = TASKS[int(s.task)]
  colour = COLOUR_NAMES[int(s.target_colour)]
  obj = OBJECT_TYPES[int(s.target_type)]
  direction = DIRECTION_NAMES[int(s.direction)]
  if task == "reach":
    return f"reach for the {colour} {obj}"
  if task == "grasp":
    return f"grasp the {colour} {obj}"
  if task == "move":
    return f"move the {colour} {obj} {direction}"
  if task == "push":
    return f"push the {colour} {obj} {direction}"
  if task == "pour":
    return f"pour the {colour} cup"
  return f"fold the {colour} cloth"


# ---------------------------------------------------------------------------- poses
def _basis_z(direction: jax.Array) -> jax.Array:
  """A rotation whose local z axis is ``direction`` (capsules lie along z)."""
  z = direction / jnp.maximum(jnp.linalg.norm(direction), 1e-9)
  helper = jnp.where(jnp.abs(z[0]) < 0.9, jnp.array([1.0, 0.0, 0.0]),
                     jnp.array([0.0, 1.0, 0.0]))
  x = jnp.cross(helper, z)
  x = x / jnp.linalg.norm(x)
  return jnp.stack([x, jnp.cross(z, x), z], axis=1)


def _yaw(angle: jax.Array) -> jax.Array:
  return hand.euler_to_matrix(angle, jnp.float32(0.0), jnp.float32(0.0))


def geom_poses(scene: Scene, keypoints: jax.Array, wrist_pose: jax.Array,
               target_pos: jax.Array, target_rot: jax.Array, fold: jax.Array
               ) -> tuple[jax.Array, jax.Array]:
  """World poses ``(geom_xpos f32[G,3], geom_xmat f32[G,3,3])`` of one frame.

  Args:
    scene: the (unbatched) scene.
    keypoints: f32[21, 3] world keypoints; wrist_pose: f32[9] the world wrist pose.
    target_pos, target_rot: the target object's centre and orientation.
    fold: the cloth's fold angle (0 flat, pi folded over).
  """
  pos, rot = hand.split_pose(wrist_pose)
  xpos, xmat = [jnp.zeros(3)], [jnp.eye(3)]                 # table
  xpos.append(pos + rot @ (jnp.asarray(_PALM_CENTRE) * scene.hand_scale))
  xmat.append(rot)
  a, b = (pos + rot @ jnp.asarray(p) for p in _FOREARM)
  xpos.append(0.5 * (a + b))
  xmat.append(_basis_z(b - a))
  for i, j in DRAWN_BONES:
    xpos.append(0.5 * (keypoints[i] + keypoints[j]))
    xmat.append(_basis_z(keypoints[j] - keypoints[i]))
  hidden = jnp.asarray(_HIDDEN)
  for type_index in (0, 1):                                  # target block, can
    shown = scene.target_type == type_index
    xpos.append(jnp.where(shown, target_pos, hidden))
    xmat.append(target_rot)
  for type_index in (0, 1):                                  # other block, can
    centre = jnp.concatenate([scene.other_xy, half_height(jnp.int32(type_index))[None]])
    xpos.append(jnp.where(scene.other_type == type_index, centre, hidden))
    xmat.append(_yaw(scene.other_yaw))
  cloth = scene.target_type == 2
  hinge = cloth_hinge(scene)
  near = hinge + jnp.array([-CLOTH_HALF[0], 0.0, 0.0])
  far_rot = hand.euler_to_matrix(jnp.float32(0.0), -fold, jnp.float32(0.0))
  far = cloth_far_hinge(hinge, fold) + far_rot @ jnp.array([CLOTH_HALF[0], 0.0, 0.0])
  xpos += [jnp.where(cloth, near, hidden), jnp.where(cloth, far, hidden)]
  xmat += [jnp.eye(3), far_rot]
  return jnp.stack(xpos), jnp.stack(xmat)


def cloth_hinge(scene: Scene) -> jax.Array:
  """The centre of the cloth's fold line (its near half lies on the -x side)."""
  return jnp.concatenate([scene.target_xy, jnp.array([CLOTH_HALF[2]])])


def cloth_far_hinge(hinge: jax.Array, fold: jax.Array) -> jax.Array:
  """The far half turns about a line that rises by a cloth thickness as it folds (so the
  folded half lies on top of the near half instead of inside it)."""
  return hinge + jnp.array([0.0, 0.0, 2.0 * CLOTH_HALF[2]]) * jnp.clip(fold / np.pi, 0, 1)


def geom_rgba(scene: Scene) -> jax.Array:
  """Per-geom colours f32[G, 4] of a scene, lighting applied."""
  colours = jnp.asarray(np.array(list(COLOURS.values()), np.float32))
  rgb = [scene.table_rgb, scene.skin_rgb, scene.sleeve_rgb]
  rgb += [scene.skin_rgb] * len(DRAWN_BONES)
  rgb += [colours[scene.target_colour]] * 2 + [colours[scene.other_colour]] * 2
  rgb += [colours[scene.target_colour], 0.85 * colours[scene.target_colour]]
  rgb = jnp.stack(rgb) * scene.light
  return jnp.concatenate([jnp.clip(rgb, 0.0, 1.0), jnp.ones((len(rgb), 1))], axis=1)
