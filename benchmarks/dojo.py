r"""Dream Dojo throughput, measured side by side in one run.

  python -m benchmarks.dojo --out=benchmarks/dojo_cpu.json [--task=reach] [--batch=256]

Every implementation is measured at ``--compare_batch`` (the batch at which they are
compared side by side, ``"<impl>_over_<impl>"`` in ``comparisons``); on a CPU the JAX
implementation (~100x slower there) only at that batch, the others at ``--batch`` too.
On an accelerator every implementation is also measured at ``--batch``. The task's
current control step (``substeps`` physics steps) is read from its config and recorded.

Per physics implementation (jax, warp) and batch:
- ``env_step_ratio``: physics steps/s through the Dojo env and its training wrappers
  (no cameras) over steps/s of raw ``jax.jit(jax.vmap(mjx.step))`` on the same model and
  batch (target >= 0.9);
- ``vs_c_ratio``: Dojo physics steps/s over C MuJoCo's ``mujoco.rollout`` with the same
  number of threads as this machine has cores;
- ``render_fps_64``: 64x64 RGB frames/s of the JAX camera on a batch of states;
- compile times.
Numbers are ratios of measurements taken in the same process minutes apart: this
machine is shared and noisy, so compare ratios, not absolute times, across runs.
"""

from __future__ import annotations

import json
import os
import time

from absl import app, flags

from benchmarks import results as results_lib

_OUT = flags.DEFINE_string("out", "benchmarks/dojo.json", "Where to write the JSON results.")
_TASK = flags.DEFINE_string("task", "reach", "Dojo task to measure.")
_BATCH = flags.DEFINE_integer("batch", 256, "Number of parallel envs.")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed control steps per measurement.")
_COMPARE_BATCH = flags.DEFINE_integer(
    "compare_batch", 32, "Batch at which every implementation is measured and compared.")
_IMPLS = flags.DEFINE_list("impls", ["warp", "jax"], "Physics implementations to measure.")


def measure(task: str, impl: str, batch: int, steps: int) -> dict:
  """All measurements for one implementation."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import mujoco  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from mujoco import mjx, rollout  # pylint: disable=import-outside-toplevel

  import dojo  # pylint: disable=import-outside-toplevel
  from dojo import wrappers  # pylint: disable=import-outside-toplevel

  env = dojo.load(task, impl=impl, cameras=())
  n_sub = env.n_substeps
  wrapped = wrappers.wrap_for_training(env, episode_length=10_000)
  keys = jax.random.split(jax.random.key(0), batch)

  t0 = time.perf_counter()
  state = jax.jit(wrapped.reset)(keys)
  jax.block_until_ready(state)
  actions = jnp.zeros((batch, env.action_size))

  @jax.jit
  def env_steps(state):
    return jax.lax.scan(lambda s, _: (wrapped.step(s, actions), None), state, None,
                        length=steps)[0]

  jax.block_until_ready(env_steps(state))
  env_compile = time.perf_counter() - t0
  env_time = results_lib.best_time(env_steps, state)
  env_sps = batch * steps * n_sub / env_time

  model = env.mjx_model
  data = state.data
  ctrl = jax.vmap(env.action_to_ctrl)(data, actions)

  @jax.jit
  def raw_steps(data):
    step = jax.vmap(lambda d, c: mjx.step(model, d.replace(ctrl=c)))
    return jax.lax.scan(lambda d, _: (step(d, ctrl), None), data, None,
                        length=steps * n_sub)[0]

  t0 = time.perf_counter()
  jax.block_until_ready(raw_steps(data))
  raw_compile = time.perf_counter() - t0
  raw_time = results_lib.best_time(raw_steps, data)
  raw_sps = batch * steps * n_sub / raw_time

  # C MuJoCo on the same model and batch, one thread per core.
  mj_model = env.mj_model
  mj_data = [mujoco.MjData(mj_model) for _ in range(os.cpu_count() or 1)]
  qpos, qvel = np.asarray(data.qpos), np.asarray(data.qvel)
  state0 = np.stack([_full_state(mj_model, qpos[i], qvel[i]) for i in range(batch)])
  c_ctrl = np.repeat(np.asarray(ctrl)[:, None], steps * n_sub, axis=1)
  with rollout.Rollout(nthread=len(mj_data)) as r:
    r.rollout([mj_model] * batch, mj_data, state0, c_ctrl)
    c_time = float("inf")
    for _ in range(3):  # best of 3, like the JAX timings
      start = time.perf_counter()
      r.rollout([mj_model] * batch, mj_data, state0, c_ctrl)
      c_time = min(c_time, time.perf_counter() - start)
  c_sps = batch * steps * n_sub / c_time

  # The JAX camera: one 64x64 view per env of the batch.
  cam_env = dojo.load(task, impl=impl, cameras=("front",), image_height=64, image_width=64)
  render = jax.jit(jax.vmap(lambda d, i: cam_env.render(d, i)["pixels/front"]))
  info = {"geom_rgba": jnp.broadcast_to(jnp.asarray(env.mj_model.geom_rgba),
                                        (batch,) + env.mj_model.geom_rgba.shape)}
  t0 = time.perf_counter()
  jax.block_until_ready(render(data, info))
  render_compile = time.perf_counter() - t0
  render_fps = batch / results_lib.best_time(render, data, info)

  return {
      "task": task, "impl": impl, "batch": batch, "substeps": n_sub, "control_steps": steps,
      "ctrl_dt": float(env.config.ctrl_dt), "sim_dt": float(env.config.sim_dt),
      "env_physics_steps_per_s": env_sps, "raw_mjx_steps_per_s": raw_sps,
      "c_mujoco_steps_per_s": c_sps, "c_threads": len(mj_data),
      "env_step_ratio": env_sps / raw_sps, "vs_c_ratio": env_sps / c_sps,
      "render_fps_64": render_fps,
      "compile_s": {"env": env_compile, "raw": raw_compile, "render": render_compile},
  }


def _full_state(model, qpos, qvel) -> "np.ndarray":
  import mujoco  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  d = mujoco.MjData(model)
  d.qpos[:] = qpos
  d.qvel[:] = qvel
  spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
  out = np.empty(mujoco.mj_stateSize(model, spec))
  mujoco.mj_getState(model, d, out, spec)
  return out


def batches(impl: str, backend: str, batch: int, compare_batch: int) -> list[int]:
  """The batches ``impl`` is measured at: ``compare_batch`` always, and ``batch`` unless
  it is the JAX implementation on a CPU (~100x slower there)."""
  out = [compare_batch]
  if batch != compare_batch and (impl != "jax" or backend != "cpu"):
    out.append(batch)
  return sorted(out)


def comparisons(runs: list[dict]) -> dict[str, dict]:
  """Ratios of env physics steps/s between implementations measured at the same batch."""
  out = {}
  for a in runs:
    for b in runs:
      if a["impl"] != b["impl"] and a["batch"] == b["batch"]:
        out[f"{a['impl']}_over_{b['impl']}"] = {
            "batch": a["batch"],
            "env_steps_ratio": a["env_physics_steps_per_s"] / b["env_physics_steps_per_s"],
            "raw_steps_ratio": a["raw_mjx_steps_per_s"] / b["raw_mjx_steps_per_s"]}
  return out


def main(argv):
  del argv
  import jax  # pylint: disable=import-outside-toplevel
  results = {"machine": {"backend": jax.default_backend(), "devices": str(jax.devices()),
                         "cpu_count": os.cpu_count()}, "runs": []}
  for impl in _IMPLS.value:
    for batch in batches(impl, jax.default_backend(), _BATCH.value, _COMPARE_BATCH.value):
      # Fewer timed steps for the slow JAX implementation on a CPU (a rate per step).
      slow = impl == "jax" and jax.default_backend() == "cpu"
      steps = max(2, _STEPS.value // 4) if slow else _STEPS.value
      print(f"[benchmarks.dojo] measuring {_TASK.value} impl={impl} batch={batch} "
            f"({steps} control steps)", flush=True)
      run = measure(_TASK.value, impl, batch, steps)
      print(json.dumps(run, indent=2), flush=True)
      results["runs"].append(run)
  results["comparisons"] = comparisons(results["runs"])
  print(json.dumps(results["comparisons"], indent=2), flush=True)
  results_lib.write_json(_OUT.value, results)


if __name__ == "__main__":
  app.run(main)
