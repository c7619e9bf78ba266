"""Meta-World tasks as seeded Gymnasium envs, for ``wam-gym-record`` and ``wam-gym-evaluate``.

Runs in Meta-World's own venv (``experiments.metaworld.venv``), imported by Gymnasium
through ``--env=experiments.metaworld.sim:WamMetaWorld/<task>``. Importing it registers
one env id per task of :data:`~experiments.metaworld.tasks.TASKS`.

Meta-World's goal-observable envs draw their scene (object and goal positions) once, at
construction, and ignore ``reset(seed=...)``. :class:`SeededTask` makes every reset draw a
new scene from its seed instead, so episode ``k`` of a run is ``reset(seed=seed + k)``
and demonstrations and evaluations use disjoint seeds (held-out scenes). It also ends an
episode at success (Meta-World's own evaluation does, with ``terminate_on_success``), and
can perturb the executed action while the recorded one stays the expert's (DART-style
demonstrations that show recoveries).
"""

from __future__ import annotations

from typing import Any, Optional

import gymnasium as gym
import numpy as np

from experiments.metaworld import tasks as tasks_lib

# Meta-World's max_path_length: its envs refuse a step beyond it.
MAX_EPISODE_STEPS = 500


class SeededTask(gym.Wrapper):
  """A Meta-World env whose scene is drawn from reset's seed; ends at success.

  Args:
    env: a Meta-World env (``env.unwrapped.seed(seed)`` seeds the scene draw).
    action_noise: std of Gaussian noise added to the executed action (action units,
      clipped to the action space); 0 executes the action as given.
    end_on_success: terminate the episode at the first step with ``info["success"]``.
  """

  def __init__(self, env: gym.Env, *, action_noise: float = 0.0, end_on_success: bool = True):
    super().__init__(env)
    if action_noise < 0:
      raise ValueError(f"action_noise must be >= 0, got {action_noise}.")
    self.action_noise, self.end_on_success = float(action_noise), bool(end_on_success)
    self._noise = np.random.default_rng(0)

  def reset(self, *, seed: Optional[int] = None,
            options: Optional[dict[str, Any]] = None) -> tuple[Any, dict[str, Any]]:
    if seed is not None:
      self.env.unwrapped.seed(int(seed))
      self._noise = np.random.default_rng([int(seed), 1])
    return self.env.reset(options=options)

  def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
    action = np.asarray(action, np.float32)
    if self.action_noise:
      space = self.action_space
      noisy = action + self._noise.normal(0.0, self.action_noise, action.shape)
      action = np.clip(noisy, space.low, space.high).astype(np.float32)
    obs, reward, terminated, truncated, info = self.env.step(action)
    if self.end_on_success and bool(info.get("success", False)):
      terminated = True
    return obs, reward, terminated, truncated, info


def fast_rendering(model: Any) -> None:
  """No shadows and no multisampling: 5x faster offscreen rendering on a CPU (Mesa's
  software EGL spends most of a 32x32 frame on the 4096-pixel shadow maps of the scene's
  three lights). Recording and evaluation both use it, so the frames agree."""
  model.light_castshadow[:] = 0
  model.vis.quality.offsamples = 0


def make_task(task: str, action_noise: float = 0.0, end_on_success: bool = True,
              fast_render: bool = True, render_mode: Optional[str] = None) -> gym.Env:
  """One seeded Meta-World task (goal observable, as its scripted policies need).

  ``fast_render`` applies :func:`fast_rendering` (before the client makes its cameras).
  """
  tasks_lib.check(task)
  # Imported here, not at the top: this module's wrapper and task table are imported by
  # the project's venv (tests, the pipeline), where Meta-World cannot be installed.
  from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE  # pylint: disable=import-outside-toplevel
  env = ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[f"{task}-goal-observable"](
      seed=0, render_mode=render_mode)
  # The goal-observable constructor freezes its one scene; unfreeze it so that each
  # reset draws a scene from env.np_random, which SeededTask seeds.
  env._freeze_rand_vec = False  # pylint: disable=protected-access
  env.seeded_rand_vec = True
  if fast_render:
    fast_rendering(env.model)
  return SeededTask(env, action_noise=action_noise, end_on_success=end_on_success)


def register() -> None:
  """Registers ``WamMetaWorld/<task>`` for every known task (idempotent)."""
  for task in tasks_lib.TASKS:
    env_id = tasks_lib.env_id(task)
    if env_id not in gym.registry:
      gym.register(env_id, entry_point=make_task, kwargs={"task": task},
                   max_episode_steps=MAX_EPISODE_STEPS)


register()
