"""Observations, in-process reference actions and polling shared by the serving tests
(tests/wam/test_serving*.py, tests/clients/test_gymnasium_client.py)."""

import time

import numpy as np

from benchmarks import serve as serve_benchmark


def random_episode(policy, seed: int, steps: int) -> list:
  """``steps`` random observations that fit ``policy`` (seeded; odd seeds are larger)."""
  rng = np.random.default_rng(seed)
  return [serve_benchmark.random_observation(policy, rng, scale=1 + seed % 2)
          for _ in range(steps)]


def inprocess_actions(policy, instruction: str, seed: int, observations) -> list:
  """The actions ``policy`` returns in this process: the reference for served ones."""
  session = policy.new_session(instruction, seed=seed)
  out = []
  for obs in observations:
    session, actions = policy.act(session, obs)
    out.append(actions)
  return out


def wait_for(condition, timeout: float = 30.0) -> None:
  """Polls ``condition()`` (server-side state that changes after a client leaves)."""
  deadline = time.monotonic() + timeout
  while not condition():
    assert time.monotonic() < deadline, "timed out"
    time.sleep(0.02)
