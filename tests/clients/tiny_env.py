"""A tiny Gymnasium env for the client tests: numpy only, rgb_array rendering.

A point in 3-D moves by half the first three action values per step (the fourth is a
"gripper" that does nothing) towards a target. The observation is ``[position(3),
target(3)]``; ``info["success"]`` says whether the point is within 0.15 of the target
(the episode then terminates). With ``success="seeded"`` success comes instead at step 2
of an episode reset with a seed divisible by 3, whatever the actions (to count
successes of a random policy). Frames are 24x20 (no whole factor of the 16x16 test
model: the client must resize them). Every action received is logged in ``actions``.
"""

from __future__ import annotations

from typing import Any, Optional

import gymnasium as gym
import numpy as np

ENV_ID = "TinyReach-v0"
MAX_STEPS = 6
FRAME = (24, 20)


class TinyReach(gym.Env):
  """See the module doc."""

  metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

  def __init__(self, render_mode: Optional[str] = None, success: str = "reach"):
    self.render_mode, self.success_mode = render_mode, success
    self.observation_space = gym.spaces.Box(-2.0, 2.0, (6,), np.float32)
    self.action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    self.actions: list[tuple[Optional[int], np.ndarray]] = []   # (episode seed, action)
    self.pos = np.zeros(3)
    self.target = np.zeros(3)
    self.t, self.seed_ = 0, None

  def _obs(self) -> np.ndarray:
    return np.concatenate([self.pos, self.target]).astype(np.float32)

  def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
    super().reset(seed=seed)
    self.seed_ = seed
    self.pos = self.np_random.uniform(-1, 1, 3)
    self.target = self.np_random.uniform(-1, 1, 3)
    self.t = 0
    return self._obs(), {"instruction": f"reach {self.target[0]:+.1f}", "t": 0}

  def step(self, action: Any):
    action = np.asarray(action)
    self.actions.append((self.seed_, action.copy()))
    self.pos = np.clip(self.pos + 0.5 * np.clip(action[:3], -1, 1), -2, 2)
    self.t += 1
    if self.success_mode == "seeded":
      success = self.seed_ is not None and self.seed_ % 3 == 0 and self.t == 2
    else:
      success = bool(np.linalg.norm(self.pos - self.target) < 0.15)
    reward = -float(np.linalg.norm(self.pos - self.target))
    return self._obs(), reward, success, False, {"success": success, "t": self.t}

  def render(self) -> np.ndarray:
    frame = np.full(FRAME + (3,), 60, np.uint8)
    for point, colour in ((self.target, (0, 255, 0)), (self.pos, (255, 0, 0))):
      r = int(np.clip((point[0] + 2) / 4 * FRAME[0], 0, FRAME[0] - 2))
      c = int(np.clip((point[1] + 2) / 4 * FRAME[1], 0, FRAME[1] - 2))
      frame[r:r + 2, c:c + 2] = colour
    return frame


def expert(obs: np.ndarray) -> np.ndarray:
  """The scripted expert: straight at the target, gripper closed."""
  step = np.clip(2.0 * (obs[3:6] - obs[0:3]), -1, 1)
  return np.concatenate([step, [-1.0]]).astype(np.float32)


def wrist_camera(env: gym.Env) -> np.ndarray:
  """A second camera: a float image in [0, 1] whose colour is the point's position."""
  pos = env.unwrapped.pos
  return np.broadcast_to(((pos + 2) / 4).astype(np.float32), (8, 8, 3))


if ENV_ID not in gym.registry:
  gym.register(ENV_ID, entry_point=TinyReach, max_episode_steps=MAX_STEPS)
