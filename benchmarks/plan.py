r"""Control rates of the world action model and dream-vs-physics throughput, one run.

  python -m benchmarks.plan --out=benchmarks/plan_cpu.json [--workdir=workdir/wam]

Measured on one env (control) and on a batch (throughput), side by side in one process:
- ``policy_hz``: policy-mode decisions per second (``controllers.WamPolicy.act``: observe
  the real frame, denoise one action chunk); each decision is ``chunk`` control steps, so
  the robot-side rate is ``policy_steps_hz`` (target: >= 10 Hz);
- ``cem_hz``: decisions per second of CEM inside the neural simulator with the default
  runlocal settings of ``experiments/configs/evaluate.py`` (horizon 3 chunks, 32 samples,
  4 elites, 3 iterations) on the fast dynamics path the evaluation plans with
  (``NeuralEnv(render="none")``: no frame decoding), and ``cem_steps_hz``; beside it
  ``cem_hz_rendered`` (every dreamed frame decoded) and their ratio
  ``cem_fast_over_rendered``;
- ``dream_over_physics_ratio``: control steps per second imagined by the neural simulator
  (``NeuralEnv.step``, chunks of ``chunk`` steps, frames decoded at the model's image
  size) over control steps per second of the MJX env rendering the same cameras at the
  same size (``cameras``, ``image_size``: what both produce), on the same batch.

Without ``--workdir`` the model is an untrained runlocal-size one (speed does not depend
on the weights).
"""

from __future__ import annotations

import os
import platform
import time

from absl import app, flags

from benchmarks import results as results_lib

_OUT = flags.DEFINE_string("out", "benchmarks/plan.json", "Where to write the JSON results.")
_WORKDIR = flags.DEFINE_string("workdir", "", "A trained WAM run (default: untrained toy).")
_TASK = flags.DEFINE_string("task", "reach", "Dojo task.")
_BATCH = flags.DEFINE_integer("batch", 64, "Envs for the throughput comparison.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls per measurement (best kept).")


def _model(task):
  """A trained model (``--workdir``) or an untrained one of the runlocal size."""
  from flax import nnx  # pylint: disable=import-outside-toplevel
  from dojo.neural.model_io import ModelIO  # pylint: disable=import-outside-toplevel
  from wam import config as wam_config, loading, model as wam_model  # pylint: disable=import-outside-toplevel
  if _WORKDIR.value:
    model, metadata = loading.load(_WORKDIR.value)
    return model, ModelIO.create(model, metadata, task), "trained"
  slots = task.data_slots()
  size = lambda k: sum(n for _, n in slots[k])
  dims = wam_model.Dims(num_frames=4, num_cameras=1, image_size=(32, 32),
                        joints=size("joints"), proprio=size("proprio"),
                        action=size("action"), action_chunk=4, instruction_length=32)
  model = wam_model.WorldActionModel(wam_config.model_config("toy"), dims, rngs=nnx.Rngs(0))
  return model, ModelIO.untrained(model, task, ("front",)), "untrained toy"


def main(argv):
  del argv
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel

  import dojo  # pylint: disable=import-outside-toplevel
  from dojo import planners, wrappers  # pylint: disable=import-outside-toplevel
  from dojo.neural import controllers  # pylint: disable=import-outside-toplevel
  from dojo.neural.env import NeuralEnv  # pylint: disable=import-outside-toplevel
  from wam.model import count_parameters  # pylint: disable=import-outside-toplevel

  start_all = time.time()
  task = dojo.load(_TASK.value, cameras=("front",), image_height=64, image_width=64)
  model, io, kind = _model(task)
  k = model.dims.action_chunk
  state = jax.jit(task.reset)(jax.random.key(0))
  print(f"[benchmarks.plan] {kind} model, chunk {k}, task {_TASK.value}", flush=True)

  # Policy mode on one env.
  policy = controllers.WamPolicy(model, io)
  act = jax.jit(policy.act)
  carry = jax.jit(policy.init)(state)
  policy_s = results_lib.best_time(lambda: act(carry, state, jax.random.key(1))[0],
                        repeats=_REPEATS.value)

  # CEM inside the neural simulator on one env (the runlocal evaluation settings), on the
  # fast dynamics path and with every frame decoded.
  config = planners.PlannerConfig(method="cem", horizon=3, chunk=1, num_samples=32,
                                  num_elites=4, iterations=3)
  cem_seconds = {}
  for render in ("none", "anchored"):
    cem = controllers.dream_planner(planners.make_planner(
        NeuralEnv(model, io, task, render=render), config, planners.task_reward_cost()))
    cem_act = jax.jit(cem.act)
    plan0 = cem.init(state)
    cem_seconds[render] = results_lib.best_time(
        lambda act=cem_act, plan=plan0: act(plan, state, jax.random.key(2))[0],
        repeats=max(2, _REPEATS.value // 2))
  cem_s = cem_seconds["none"]
  neural = NeuralEnv(model, io, task)

  # Throughput on a batch: dreamed chunks vs physics steps with the same camera.
  b = _BATCH.value
  batched_neural = wrappers.VmapWrapper(neural, batch_size=b)
  # The physics env renders what the dream renders: the model's cameras at its size.
  height, width = io.image_size
  frame_task = dojo.load(_TASK.value, cameras=tuple(io.cameras), image_height=height,
                         image_width=width)
  batched_physics = wrappers.VmapWrapper(frame_task, batch_size=b)
  ns = jax.jit(batched_neural.reset)(jax.random.key(3))
  ps = jax.jit(batched_physics.reset)(jax.random.key(3))
  neural_step = jax.jit(batched_neural.step)
  physics_step = jax.jit(batched_physics.step)
  chunk_actions = jnp.zeros((b, neural.action_size))
  step_actions = jnp.zeros((b, frame_task.action_size))
  dream_s = results_lib.best_time(lambda: neural_step(ns, chunk_actions).obs["joints"],
                       repeats=_REPEATS.value)
  physics_s = results_lib.best_time(lambda: physics_step(ps, step_actions).obs["joints"],
                         repeats=_REPEATS.value)
  dream_steps = b * k / dream_s
  physics_steps = b / physics_s
  results = {
      "policy_hz": 1.0 / policy_s, "policy_steps_hz": k / policy_s,
      "cem_hz": 1.0 / cem_s, "cem_steps_hz": k / cem_s,
      "cem_hz_rendered": 1.0 / cem_seconds["anchored"],
      "cem_fast_over_rendered": cem_seconds["anchored"] / cem_s,
      "dream_steps_per_second": dream_steps, "physics_steps_per_second": physics_steps,
      "dream_over_physics_ratio": dream_steps / physics_steps,
      "model": kind, "params": count_parameters(model),
      "chunk": k, "batch": b, "task": _TASK.value,
      "cameras": list(io.cameras), "image_size": list(io.image_size),
      "dream_render": neural.render,
      "cem": {"horizon": 3, "num_samples": 32, "num_elites": 4, "iterations": 3},
      "machine": {"backend": jax.default_backend(), "devices": jax.device_count(),
                  "cpu_count": os.cpu_count(), "platform": platform.platform()},
      "seconds": time.time() - start_all,
  }
  for key in ("policy_hz", "policy_steps_hz", "cem_hz", "cem_steps_hz", "cem_hz_rendered",
              "cem_fast_over_rendered", "dream_over_physics_ratio"):
    print(f"[benchmarks.plan] {key}: {results[key]:.2f}", flush=True)
  results_lib.write_json(_OUT.value, results)


if __name__ == "__main__":
  app.run(main)
