"""Wraps a MuJoCo Playground (or brax) environment as a Dojo env with cameras.

The wrapped env keeps its own physics, reward and termination; the adapter adds the
Dojo observation layout (``joints``, ``proprio``, ``privileged``, ``pixels/<camera>``),
the JAX camera, an instruction, NaN-action handling and the ``success`` metric, so the
whole pipeline (collection, datasets, world-model training) runs on tasks from there.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from dojo import physics
from dojo.env import Env, State, sanitize_action
from dojo.render import CameraSpec, Renderer, look_at


class PlaygroundEnv(Env):
  """A Playground ``MjxEnv`` (or brax ``PipelineEnv``) seen through the Dojo contract."""

  def __init__(self, env: Any, *, cameras: Sequence[str] = ("front",),
               image_height: int = 64, image_width: int = 64,
               instruction: Optional[str] = None,
               success_reward: Optional[float] = None):
    """Args:
      env: the environment to wrap; it must expose ``mj_model`` (Playground) or
        ``sys.mj_model`` (brax), ``reset``, ``step`` and ``action_size``.
      cameras: MJCF camera names of the model, or ``"front"``: a free camera that
        frames the whole model (used when the model has no camera of that name).
      instruction: the text instruction of every episode (default: the class name).
      success_reward: ``metrics["success"]`` is ``reward >= success_reward``; without it
        the env has no success predicate and the metric stays 0.
    """
    self.env = env
    self._mj_model: mujoco.MjModel = getattr(env, "mj_model", None) or env.sys.mj_model
    self._renderer = Renderer(self._mj_model)
    self._cameras = {}
    self._free_pose = {}
    for name in cameras:
      cam_id = mujoco.mj_name2id(self._mj_model, mujoco.mjtObj.mjOBJ_CAMERA, name)
      if cam_id >= 0:
        self._cameras[name] = CameraSpec.from_model(self._mj_model, name, image_height,
                                                    image_width)
      elif name == "front":
        self._cameras[name] = CameraSpec(name, image_height, image_width, fovy=45.0)
        center = np.asarray(self._mj_model.stat.center, np.float32)
        extent = float(self._mj_model.stat.extent)
        eye = center + np.array([0.0, -2.2, 0.8], np.float32) * extent
        self._free_pose[name] = (jnp.asarray(eye), look_at(jnp.asarray(eye),
                                                           jnp.asarray(center)))
      else:
        CameraSpec.from_model(self._mj_model, name)  # raises, listing the cameras
    self.instruction_text = instruction or type(env).__name__
    self._success_reward = success_reward

  @property
  def mj_model(self) -> mujoco.MjModel:
    return self._mj_model

  @property
  def mjx_model(self):
    return getattr(self.env, "mjx_model", None) or self.env.sys

  @property
  def action_size(self) -> int:
    return int(self.env.action_size)

  @property
  def dt(self) -> float:
    return float(self.env.dt)

  @property
  def observation_size(self) -> dict[str, tuple[int, ...]]:
    obs = jax.eval_shape(self.reset, jax.random.key(0)).obs
    return {k: tuple(v.shape) for k, v in obs.items()}

  def instruction(self, combination_id: int) -> str:
    del combination_id
    return self.instruction_text

  @staticmethod
  def _data(inner_state: Any) -> Any:
    data = getattr(inner_state, "data", None)
    return data if data is not None else inner_state.pipeline_state

  def _observe(self, inner_state: Any) -> dict[str, jax.Array]:
    data = self._data(inner_state)
    privileged = inner_state.obs
    if isinstance(privileged, dict):
      privileged = privileged.get("state", jnp.concatenate(
          [jnp.ravel(v) for v in jax.tree.leaves(privileged)]))
    obs = {"joints": data.qpos, "proprio": data.qvel,
           "privileged": jnp.ravel(privileged).astype(jnp.float32)}
    rgba = jnp.asarray(self._mj_model.geom_rgba)
    for name, cam in self._cameras.items():
      if name in self._free_pose:
        eye, xmat = self._free_pose[name]
        image = self._renderer.render_pose(data, eye, xmat, cam, rgba)
      else:
        image = self._renderer.render(data, cam, rgba)
      obs[f"pixels/{name}"] = image.rgb
    return obs

  def _metrics(self, reward, invalid) -> dict[str, jax.Array]:
    success = (reward >= self._success_reward) if self._success_reward is not None else (
        jnp.zeros((), bool))
    return {"success": success.astype(jnp.float32),
            "invalid_action": invalid.astype(jnp.float32),
            "physics_unstable": jnp.zeros((), jnp.float32)}

  def reset(self, rng: jax.Array) -> State:
    inner = self.env.reset(rng)
    info = {"inner": inner, "step": jnp.zeros((), jnp.int32),
            "instruction": jnp.zeros((), jnp.int32)}
    return State(self._data(inner), self._observe(inner), inner.reward, inner.done,
                 self._metrics(inner.reward, jnp.zeros((), bool)), info)

  def step(self, state: State, action: jax.Array) -> State:
    action, invalid = sanitize_action(action, self.action_size, type(self.env).__name__)
    prev = state.info["inner"]
    inner = self.env.step(prev, action)
    new_data = self._data(inner)
    unstable = ~(jnp.all(jnp.isfinite(new_data.qpos)) & jnp.all(jnp.isfinite(new_data.qvel)))
    # A NaN action or a physics blow-up keeps the last good state and ends the episode.
    bad = invalid | unstable
    inner = physics.where(bad, prev, inner)
    reward = jnp.where(bad, 0.0, inner.reward)
    done = jnp.maximum(inner.done, bad.astype(inner.done.dtype))
    info = {**state.info, "inner": inner, "step": state.info["step"] + 1}
    metrics = {**state.metrics, **self._metrics(reward, invalid),
               "physics_unstable": unstable.astype(jnp.float32)}
    return state.replace(data=self._data(inner), obs=self._observe(inner), reward=reward,
                         done=done, metrics=metrics, info=info)


def load_playground(name: str, *, config_overrides: Optional[dict] = None,
                    **adapter_kwargs: Any) -> PlaygroundEnv:
  """Loads Playground env ``name`` (e.g. ``"CartpoleBalance"``) as a Dojo env.

  Only environments whose assets ship inside the ``playground`` package (its DM
  Control suite ports) work offline; the others fetch a model repository at run time.
  """
  from mujoco_playground import registry  # pylint: disable=import-outside-toplevel
  if name not in registry.ALL_ENVS:
    raise KeyError(f"Unknown Playground env {name!r}; known: {sorted(registry.ALL_ENVS)}.")
  adapter_kwargs.setdefault("instruction", name)
  return PlaygroundEnv(registry.load(name, config_overrides=config_overrides),
                       **adapter_kwargs)
