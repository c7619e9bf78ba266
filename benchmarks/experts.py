r"""Scripted-expert success rates per Dojo task, and the MuJoCo Warp buffers they need.

  python -m benchmarks.experts --out=benchmarks/experts.json [--tasks=reach,push] \
      [--episodes=100] [--noise=0.0,0.1]

Tasks: every registered one by default (`dojo.names()`: the built-in tasks and those of
`$DOJO_TASK_MODULES`), so a new task file is measured without editing this one.
Success is the task's predicate at the last step of an episode of `episode_length`
control steps; seed 0; the default physics implementation for this backend; the bar is
0.9 over 100 episodes.

Every state of every episode is also recounted by MuJoCo's own collision and constraint
code (`dojo.physics.state_needs`): the most contacts one world had and the most
constraint rows, against the task's `naconmax` (contact slots over all the worlds of a
batch) and `njmax` (rows per world), and from those the largest batch whose worlds all
fit `naconmax` at their worst step (`batch_fits`; an audit of the tasks' buffer sizes).
"""

from __future__ import annotations

import json
import time

import jax
import numpy as np
from absl import app, flags

import dojo
from benchmarks import results as results_lib
from dojo import physics, rollout

_OUT = flags.DEFINE_string("out", "benchmarks/experts.json", "JSON results file.")
_TASKS = flags.DEFINE_list("tasks", [], "Tasks to evaluate (default: every registered one).")
_EPISODES = flags.DEFINE_integer("episodes", 100, "Episodes per task and noise level.")
_NOISE = flags.DEFINE_list("noise", ["0.0", "0.1"], "Expert action-noise scales.")


def measure(env, noise: float, episodes: int) -> dict:
  """Success rate of ``env``'s expert at ``noise`` over ``episodes`` episodes (seed 0),
  and the contacts and constraint rows its states needed."""
  task = env.unwrapped
  keep = lambda s: {"success": s.metrics["success"], "qpos": s.data.qpos,
                    "qvel": s.data.qvel, "mocap_pos": s.data.mocap_pos,
                    "mocap_quat": s.data.mocap_quat}
  run = rollout.make_rollout(env, rollout.expert_policy(env, noise),
                             int(env.config.episode_length), keep=keep)
  first, records, _ = jax.device_get(run(jax.random.key(0), episodes))
  # Every state of the episodes, the reset state first: leading axes [steps, envs].
  states = {k: np.concatenate([first[k][None], records[k]]) for k in first if k != "success"}
  contacts, rows = physics.state_needs(task.mj_model, states["qpos"], states["qvel"],
                                       states["mocap_pos"], states["mocap_quat"])
  return {"success_rate": float(np.mean(records["success"][-1])),
          **physics.buffer_audit(contacts, rows, env.config.naconmax, env.config.njmax)}


def main(argv):
  del argv
  results = []
  for task in _TASKS.value or dojo.names():
    env = dojo.load(task, cameras=())
    for noise in map(float, _NOISE.value):
      start = time.time()
      row = {"task": task, "noise": noise, "episodes": _EPISODES.value,
             "episode_steps": int(env.config.episode_length), "impl": env.impl,
             **measure(env, noise, _EPISODES.value), "seconds": time.time() - start}
      print(json.dumps(row), flush=True)
      results.append(row)
  results_lib.write_json(_OUT.value, results)


if __name__ == "__main__":
  app.run(main)
