r"""Scripted-expert success rates per Dojo task (the bar is 0.9 over 100 episodes).

  python -m benchmarks.experts --out=benchmarks/experts.json [--tasks=reach,push] \
      [--episodes=100] [--noise=0.0,0.1]

Success is the task's predicate at the last step of an episode of `episode_length`
control steps; seed 0; the default physics implementation for this backend.
"""

from __future__ import annotations

import json
import time

from absl import app, flags

from benchmarks import results as results_lib

_OUT = flags.DEFINE_string("out", "benchmarks/experts.json", "JSON results file.")
_TASKS = flags.DEFINE_list("tasks", ["reach", "push", "pick_place", "dex_lift", "rope"],
                           "Tasks to evaluate.")
_EPISODES = flags.DEFINE_integer("episodes", 100, "Episodes per task and noise level.")
_NOISE = flags.DEFINE_list("noise", ["0.0", "0.1"], "Expert action-noise scales.")


def main(argv):
  del argv
  import dojo  # pylint: disable=import-outside-toplevel
  from dojo import rollout  # pylint: disable=import-outside-toplevel

  results = []
  for task in _TASKS.value:
    env = dojo.load(task, cameras=())
    for noise in map(float, _NOISE.value):
      start = time.time()
      rate = rollout.success_rate(env, rollout.expert_policy(env, noise),
                                  num_episodes=_EPISODES.value,
                                  num_steps=env.config.episode_length, seed=0)
      row = {"task": task, "noise": noise, "episodes": _EPISODES.value,
             "episode_steps": int(env.config.episode_length),
             "success_rate": rate, "impl": env.impl, "seconds": time.time() - start}
      print(json.dumps(row), flush=True)
      results.append(row)
  results_lib.write_json(_OUT.value, results)


if __name__ == "__main__":
  app.run(main)
