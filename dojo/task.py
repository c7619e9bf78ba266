"""Base class for Dojo tasks: an MJCF scene plus a few pure functions.

A task subclass provides the scene (``xml_path``), the reset distribution, the reward,
the success predicate, the instruction space and a scripted expert. The base class does
the rest: physics with the implementation chosen per backend, observations (joint
angles, proprioception, privileged state, camera images), action checking, and the
handling of NaN actions (they end only that env's episode, flagged in ``metrics``).
"""

from __future__ import annotations

import abc
import os
from typing import Any, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from ml_collections import config_dict
from mujoco import mjx

from dojo import mjcf, physics
from dojo.config_utils import apply_overrides
from dojo.env import Env, State, sanitize_action
from dojo.instructions import InstructionSpace
from dojo.render.camera import CameraSpec
from dojo.render.renderer import Renderer

ASSETS_DIR = os.path.join(os.path.dirname(__file__), "assets")


def base_config() -> config_dict.ConfigDict:
  """Configuration keys shared by every MJX task."""
  return config_dict.ConfigDict(dict(
      impl="auto",            # "jax", "warp" or "auto" (warp on cpu/gpu, jax on tpu)
      ctrl_dt=0.04,           # control period (s)
      sim_dt=None,            # physics step (s); None: the MJCF's <option timestep>
      episode_length=100,     # control steps, used by the episode wrapper
      cameras=("front",),     # cameras rendered into obs["pixels/<name>"]
      image_height=64,
      image_width=64,
      render_depth=False,     # also obs["depth/<name>"]
      render_segmentation=False,  # also obs["segmentation/<name>"] (geom ids)
      instructions="all",     # "all", "seen" or "unseen" combinations
      terminate_on_success=False,
      randomize_colours=True,  # per-episode colour jitter, applied in reset
      naconmax=4096,          # warp: contact slots over all worlds
      njmax=128,              # warp: constraint rows per world
      max_qvel=1e4,           # |qvel| above this counts as a physics blow-up
  ))


class MjxTask(Env):
  """A Dojo task backed by MJX physics."""

  #: The MJCF (or URDF) file: a name under dojo/assets, an absolute path, or a file
  #: inside an installed package, ``"package:relative/path.xml"`` (``dojo.mjcf``).
  xml_path: str = ""
  #: Names of the robot's joints whose angles form ``obs["joints"]``.
  robot_joints: Sequence[str] = ()
  #: Actions map to actuator controls: "absolute" (a in [-1,1] spans ctrlrange).
  instruction_space: InstructionSpace
  #: The robot, as named in collected data; tasks on one robot share it.
  embodiment: str = "dojo_robot"
  #: Named slots (``(name, size)``) of the joints and action vectors in collected data,
  #: so several robots share one padded vector (wam.data.layout); () = one slot.
  joint_slots: Sequence[tuple[str, int]] = ()
  action_slots: Sequence[tuple[str, int]] = ()
  #: Free joints of the objects whose positions are observed as the proprio slot
  #: ``object_slot`` (3 numbers each), so that a world model trained on simulated data
  #: predicts them and a dream can score object rewards (``dojo.neural.env``).
  object_joints: Sequence[str] = ()
  object_slot: str = ""

  def __init__(self, **overrides: Any):
    self._config = apply_overrides(self.default_config(), overrides,
                                   where=type(self).__name__)
    self.impl = physics.resolve_impl(self._config.impl)
    self._mj_model = self._load_model()
    self._mjx_model = physics.put_model(self._mj_model, self.impl)
    self._n_substeps = max(1, int(round(self._config.ctrl_dt / self._config.sim_dt)))
    self._qpos_idx = np.array([self._mj_model.jnt_qposadr[self._joint_id(n)]
                               for n in self.robot_joints], np.int32)
    self._qvel_idx = np.array([self._mj_model.jnt_dofadr[self._joint_id(n)]
                               for n in self.robot_joints], np.int32)
    if bool(self.object_joints) != bool(self.object_slot):
      raise ValueError(f"{type(self).__name__}: object_joints and object_slot go together.")
    self._object_qpos = np.array([self._mj_model.jnt_qposadr[self._joint_id(n)]
                                  for n in self.object_joints], np.int32)
    ctrlrange = self._mj_model.actuator_ctrlrange.astype(np.float32)
    self._ctrl_mid = jnp.asarray(ctrlrange.mean(axis=1))
    self._ctrl_half = jnp.asarray((ctrlrange[:, 1] - ctrlrange[:, 0]) / 2)
    self._cameras = {name: CameraSpec.from_model(self._mj_model, name,
                                                 self._config.image_height,
                                                 self._config.image_width)
                     for name in self._config.cameras}
    self._renderer = Renderer(self._mj_model)
    self._zero_data = physics.make_data(self._mj_model, self.impl,
                                        naconmax=self._config.naconmax,
                                        njmax=self._config.njmax)

  # ---------------------------------------------------------------- configuration

  @classmethod
  def default_config(cls) -> config_dict.ConfigDict:
    """The task's configuration; subclasses extend ``base_config()``."""
    return base_config()

  @property
  def config(self) -> config_dict.ConfigDict:
    return self._config

  def _load_model(self) -> mujoco.MjModel:
    """Loads ``xml_path``, applies ``_edit_spec`` and checks the result for MJX.

    The physics step is the task config's ``sim_dt`` when it is set (a task's
    ``default_config()`` or an override), else the model's ``<option timestep>``; after
    loading, ``config.sim_dt`` holds the step in use either way.

    Raises:
      FileNotFoundError: the MJCF file or an asset it names (mesh, height field,
        texture) does not exist; the message names the file.
      ValueError: a malformed file (named), or options and elements that MJX cannot
        run with ``impl`` (all listed, each with what to use instead).
    """
    where = type(self).__name__
    try:
      path = mjcf.resolve_path(self.xml_path, ASSETS_DIR)
    except FileNotFoundError as e:
      raise FileNotFoundError(f"{where}: {e}") from e
    spec = self._load_spec(path)
    self._edit_spec(spec)
    physics.ensure_material(spec)
    model = mjcf.compile_spec(spec, path)
    if self._config.sim_dt is None:
      self._config.sim_dt = float(model.opt.timestep)
    model.opt.timestep = self._config.sim_dt
    mjcf.check_mjx(model, self.impl, where, path)
    return model

  def _load_spec(self, path: str) -> mujoco.MjSpec:
    """Hook: the scene of ``path`` (override to assemble one from several files)."""
    return mjcf.load_spec(path)

  def _edit_spec(self, spec: mujoco.MjSpec) -> None:
    """Hook to change the scene before compiling (sizes, counts)."""

  def _joint_id(self, name: str) -> int:
    jid = mujoco.mj_name2id(self._mj_model, mujoco.mjtObj.mjOBJ_JOINT, name)
    if jid < 0:
      raise ValueError(f"{type(self).__name__}: no joint named {name!r} in {self.xml_path}; "
                       f"its joints: {mjcf.names(self._mj_model, mujoco.mjtObj.mjOBJ_JOINT)}.")
    return jid

  def body_id(self, name: str) -> int:
    return self._name2id(mujoco.mjtObj.mjOBJ_BODY, name)

  def site_id(self, name: str) -> int:
    return self._name2id(mujoco.mjtObj.mjOBJ_SITE, name)

  def geom_id(self, name: str) -> int:
    return self._name2id(mujoco.mjtObj.mjOBJ_GEOM, name)

  def _name2id(self, kind: mujoco.mjtObj, name: str) -> int:
    i = mujoco.mj_name2id(self._mj_model, kind, name)
    if i < 0:
      raise ValueError(f"{type(self).__name__}: no {kind.name[6:].lower()} named {name!r}; "
                       f"the model's: {mjcf.names(self._mj_model, kind)}.")
    return i

  # ---------------------------------------------------------------- properties

  @property
  def mj_model(self) -> mujoco.MjModel:
    return self._mj_model

  @property
  def mjx_model(self) -> mjx.Model:
    return self._mjx_model

  @property
  def dt(self) -> float:
    return self._config.ctrl_dt

  @property
  def n_substeps(self) -> int:
    """Physics steps per control step (``ctrl_dt / sim_dt``)."""
    return self._n_substeps

  @property
  def action_size(self) -> int:
    return self._mj_model.nu

  def data_slots(self) -> dict[str, list[tuple[str, int]]]:
    """Named slots of ``joints``, ``proprio`` and ``action`` for the data schema."""
    sizes = {"joints": len(self.robot_joints), "action": self.action_size,
             "proprio": int(self.observation_size["proprio"][0])}
    objects = 3 * len(self.object_joints)
    slots = {"joints": list(self.joint_slots) or [(f"{self.embodiment}_joints",
                                                   sizes["joints"])],
             "action": list(self.action_slots) or [(f"{self.embodiment}_action",
                                                    sizes["action"])],
             "proprio": [(f"{self.embodiment}_proprio", sizes["proprio"] - objects)]
                        + ([(self.object_slot, objects)] if objects else [])}
    for name, size in sizes.items():
      if sum(n for _, n in slots[name]) != size:
        raise ValueError(f"{type(self).__name__}: {name} slots {slots[name]} do not add up "
                         f"to its size {size}.")
    return slots

  @property
  def cameras(self) -> Mapping[str, CameraSpec]:
    return self._cameras

  @property
  def observation_size(self) -> dict[str, tuple[int, ...]]:
    obs = jax.eval_shape(self.reset, jax.random.key(0)).obs
    return {k: tuple(v.shape) for k, v in obs.items()}

  def instruction(self, combination_id: int) -> str:
    """The text of an instruction id from ``state.info["instruction"]``."""
    return self.instruction_space.text(combination_id)

  # ---------------------------------------------------------------- subclass hooks

  @abc.abstractmethod
  def _reset_data(self, rng: jax.Array, data: mjx.Data,
                  info: dict[str, Any]) -> tuple[mjx.Data, dict[str, Any]]:
    """Sets the initial qpos/ctrl (etc.) and adds task entries to ``info``.

    ``info`` already holds ``instruction`` (a combination id) and ``geom_rgba``.
    """

  @abc.abstractmethod
  def _reward(self, data: mjx.Data, info: dict[str, Any],
              action: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Dense reward and its named terms (a fixed set of keys)."""

  @abc.abstractmethod
  def _success(self, data: mjx.Data, info: dict[str, Any]) -> jax.Array:
    """Boolean success predicate."""

  @abc.abstractmethod
  def _privileged(self, data: mjx.Data, info: dict[str, Any]) -> jax.Array:
    """Low-dimensional full task state (sufficient for control)."""

  def _proprio_extra(self, data: mjx.Data, info: dict[str, Any]) -> jax.Array:
    """Extra proprioception (e.g. end-effector position) beside joint velocities."""
    return jnp.zeros((0,), jnp.float32)

  @abc.abstractmethod
  def expert_action(self, state: State, rng: jax.Array, noise: float = 0.0) -> jax.Array:
    """A scripted expert's action for ``state``: pure, stateless and jit-able.

    ``noise`` scales Gaussian action noise (0 is the clean expert).
    """

  def action_to_ctrl(self, data: mjx.Data, action: jax.Array) -> jax.Array:
    """Maps an action in [-1, 1] to actuator controls (absolute by default)."""
    del data
    return self._ctrl_mid + jnp.clip(action, -1.0, 1.0) * self._ctrl_half

  def ctrl_to_action(self, ctrl: jax.Array, data: Optional[mjx.Data] = None) -> jax.Array:
    """The action whose ``action_to_ctrl(data, .)`` is ``ctrl``; used by experts.

    Tasks with relative actions override it and need ``data`` (the current controls).
    """
    del data
    return jnp.clip((ctrl - self._ctrl_mid) / self._ctrl_half, -1.0, 1.0)

  # ---------------------------------------------------------------- the contract

  def reset(self, rng: jax.Array) -> State:
    rng, rng_instr, rng_colour, rng_task = jax.random.split(rng, 4)
    instruction = self.instruction_space.sample(rng_instr, self._config.instructions)
    rgba = jnp.asarray(self._mj_model.geom_rgba)
    if self._config.randomize_colours:
      rgba = self._jitter_colours(rng_colour, rgba)
    info = {"rng": rng, "step": jnp.zeros((), jnp.int32), "instruction": instruction,
            "geom_rgba": rgba}
    data, info = self._reset_data(rng_task, self._zero_data, info)
    data = mjx.forward(self._mjx_model, data)
    reward, terms = self._reward(data, info, jnp.zeros(self.action_size))
    metrics = {"success": self._success(data, info).astype(jnp.float32),
               "invalid_action": jnp.zeros(()), "physics_unstable": jnp.zeros(()),
               **terms}
    obs = self._observe(data, info)
    return State(data, obs, jnp.zeros(()), jnp.zeros(()), metrics, info)

  def step(self, state: State, action: jax.Array) -> State:
    action, invalid = sanitize_action(action, self.action_size, f"{type(self).__name__}.step")
    ctrl = self.action_to_ctrl(state.data, action)
    data = physics.step(self._mjx_model, state.data, ctrl, self._n_substeps)
    # Non-finite state, or a near-blow-up that is still finite (|qvel| >= max_qvel).
    unstable = ~(jnp.all(jnp.isfinite(data.qpos)) & jnp.all(jnp.isfinite(data.qvel))
                 & jnp.all(jnp.abs(data.qvel) < self._config.max_qvel))
    # Keep the last finite physics state so that a blown-up env never emits NaN.
    data = physics.where(unstable, state.data, data)
    info = {**state.info, "step": state.info["step"] + 1}
    reward, terms = self._reward(data, info, action)
    success = self._success(data, info)
    bad = invalid | unstable
    reward = jnp.where(bad, 0.0, reward)
    done = bad | (success & self._config.terminate_on_success)
    metrics = {**state.metrics, "success": success.astype(jnp.float32),
               "invalid_action": invalid.astype(jnp.float32),
               "physics_unstable": unstable.astype(jnp.float32), **terms}
    obs = self._observe(data, info)
    return state.replace(data=data, obs=obs, reward=reward,
                         done=done.astype(jnp.float32), metrics=metrics, info=info)

  # ---------------------------------------------------------------- observations

  def _observe(self, data: mjx.Data, info: dict[str, Any]) -> dict[str, jax.Array]:
    obs = {
        "joints": data.qpos[self._qpos_idx],
        "proprio": jnp.concatenate([data.qvel[self._qvel_idx],
                                    self._proprio_extra(data, info),
                                    self.object_positions(data)]),
        "privileged": self._privileged(data, info),
    }
    obs.update(self.render(data, info))
    return obs

  def object_positions(self, data: mjx.Data) -> jax.Array:
    """Positions of the ``object_joints`` objects, flat ``[3 * n]`` (the object slot)."""
    return jnp.concatenate([data.qpos[a:a + 3] for a in self._object_qpos] or
                           [jnp.zeros((0,), data.qpos.dtype)])

  def with_object_positions(self, data: mjx.Data, positions: jax.Array) -> mjx.Data:
    """``data`` with the objects moved to ``positions`` [3 * n] (orientations kept)."""
    qpos = data.qpos
    for i, a in enumerate(self._object_qpos):
      qpos = qpos.at[a:a + 3].set(positions[3 * i:3 * i + 3])
    return data.replace(qpos=qpos)

  # ---------------------------------------------------------------- scoring other states

  def robot_joint_ranges(self) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper limits of the ``robot_joints`` (float64; -inf, inf if unlimited)."""
    ids = [self._joint_id(n) for n in self.robot_joints]
    limited = self._mj_model.jnt_limited[ids].astype(bool)
    ranges = self._mj_model.jnt_range[ids]
    return (np.where(limited, ranges[:, 0], -np.inf), np.where(limited, ranges[:, 1], np.inf))

  def kinematic_state(self, data: mjx.Data, joints: jax.Array, proprio: jax.Array
                      ) -> mjx.Data:
    """``data`` with the robot at ``joints`` and the joint velocities and object positions
    of a ``proprio`` observation, placed by forward kinematics: a state that another
    model (a dream) describes, for ``score`` and ``privileged``."""
    qpos = data.qpos.at[self._qpos_idx].set(joints)
    qvel = data.qvel.at[self._qvel_idx].set(proprio[:len(self._qvel_idx)])
    data = data.replace(qpos=qpos, qvel=qvel)
    objects = 3 * len(self.object_joints)
    if objects:   # the object slot ends proprio (``_observe``)
      data = self.with_object_positions(data, proprio[-objects:])
    # Kinematics only: rewards, success and the privileged observation read positions
    # and orientations, and a full forward pass (collisions, dynamics) costs 5x more
    # (16.7 against 3.2 ms for 32 arms on the 2-core CPU), most of a dream planner's time.
    return mjx.kinematics(self._mjx_model, data)

  def score(self, data: mjx.Data, info: dict[str, Any], action: jax.Array
            ) -> tuple[jax.Array, dict[str, jax.Array], jax.Array]:
    """The reward, its named terms and success of a state reached by ``action``."""
    reward, terms = self._reward(data, info, action)
    return reward, terms, self._success(data, info)

  def privileged(self, data: mjx.Data, info: dict[str, Any]) -> jax.Array:
    """The privileged observation (low-dimensional full task state) of a state."""
    return self._privileged(data, info)

  def check_buffers(self, data: mjx.Data) -> tuple[int, int]:
    """Checks that ``data`` (one state's or a batch's) fits MuJoCo Warp's contact and
    constraint buffers, ``config.naconmax`` and ``config.njmax``; raises ValueError
    naming the numbers to set where it does not (``physics.check_buffers``). Returns
    what the states need, ``(contacts over all worlds, constraint rows per world)``."""
    return physics.check_buffers(self._mj_model, data, self._config.naconmax,
                                 self._config.njmax, where=type(self).__name__)

  def render(self, data: mjx.Data, info: Mapping[str, Any],
             cameras: Optional[Mapping[str, CameraSpec]] = None) -> dict[str, jax.Array]:
    """Renders the configured (or given) cameras into obs entries."""
    out = {}
    for name, cam in (cameras or self._cameras).items():
      image = self._renderer.render(data, cam, info["geom_rgba"])
      out[f"pixels/{name}"] = image.rgb
      if self._config.render_depth:
        out[f"depth/{name}"] = image.depth
      if self._config.render_segmentation:
        out[f"segmentation/{name}"] = image.segmentation
    return out

  def _jitter_colours(self, rng: jax.Array, rgba: jax.Array) -> jax.Array:
    """Small brightness jitter on every geom; tasks override colours they ground."""
    scale = jax.random.uniform(rng, (rgba.shape[0], 1), minval=0.85, maxval=1.15)
    return rgba.at[:, :3].set(jnp.clip(rgba[:, :3] * scale, 0.0, 1.0))

  # ---------------------------------------------------------------- randomisation

  #: Bodies whose mass is randomised and geoms whose friction is randomised.
  randomized_bodies: Sequence[str] = ()

  def randomize_model(self, model: mjx.Model, rng: jax.Array
                      ) -> tuple[mjx.Model, mjx.Model]:
    """Domain randomisation of friction and mass for a batch of ``rng`` keys.

    Returns a batched model and the matching ``in_axes`` tree (as Playground's
    ``randomization_fn``); pose and colour randomisation happen in ``reset``.
    """
    body_ids = jnp.asarray([self.body_id(b) for b in self.randomized_bodies], jnp.int32)

    def one(key):
      k1, k2 = jax.random.split(key)
      friction = model.geom_friction.at[:, 0].multiply(
          jax.random.uniform(k1, (), minval=0.6, maxval=1.4))
      mass = model.body_mass
      if body_ids.size:
        mass = mass.at[body_ids].multiply(
            jax.random.uniform(k2, (body_ids.size,), minval=0.7, maxval=1.3))
      return friction, mass

    friction, mass = jax.vmap(one)(rng)
    batched = model.tree_replace({"geom_friction": friction, "body_mass": mass})
    in_axes = jax.tree.map(lambda _: None, model).tree_replace(
        {"geom_friction": 0, "body_mass": 0})
    return batched, in_axes
