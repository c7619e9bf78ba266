r"""How precisely does a policy reproduce the expert's joint targets on the expert's states?

  python -m benchmarks.policy_precision --workdir=/tmp/runs/wam_2cam --task=reach \
      --cameras=front,head [--state_bc=/tmp/runs/eval_2cam/state_bc.npz] \
      [--joint_actions=relative] [--out=benchmarks/policy_precision_cpu.json]

The scripted expert drives each episode (so every policy is asked about the same,
on-distribution states); at every chunk the WAM in policy mode (``controllers.WamPolicy``,
real observations re-injected as in closed loop) and optionally a state BC policy
propose their chunk, and each is compared with the expert's clean chunk. The error is
the RMS of the seven arm joint targets in radians; beside it "hold": the actions that keep
the current controls, i.e. a policy that knows where the arm is and nothing else. A
policy whose error is close to hold's has not learned where to go; closed loop
compounds the rest (docs/RESULTS.md).

For a model with predict-only state slots (``model.predict_only``, e.g. reach's target
position, never read, only predicted), it also reports how well the WAM perceives them:
R^2 of its predicted values against the true ones over all chunks (1 for perfect
perception, 0 for "guess the mean") and the RMS distance in the env's units (metres
for a position) beside that of guessing the mean.
"""

from __future__ import annotations

import json

import jax
import numpy as np
from absl import app, flags

import dojo
from benchmarks import results as results_lib
from dojo import state_bc
from dojo.neural import controllers
from dojo.neural.model_io import ModelIO
from experiments.lib import train as train_lib
from wam import loading

_WORKDIR = flags.DEFINE_string("workdir", None, "A trained WAM run.", required=True)
_TASK = flags.DEFINE_string("task", "reach", "An arm task.")
_CAMERAS = flags.DEFINE_list("cameras", ["front"], "Cameras the env renders (the WAM's).")
_IMAGE = flags.DEFINE_integer("image_size", 64, "Rendered resolution (as collected).")
_JOINT_ACTIONS = flags.DEFINE_string("joint_actions", "", "As the WAM's data ('' = default).")
_STATE_BC = flags.DEFINE_string("state_bc", "", "A saved state BC policy (.npz) to compare.")
_EPISODES = flags.DEFINE_integer("episodes", 8, "Expert episodes.")
_CHUNKS = flags.DEFINE_integer("chunks", 12, "Chunks per episode.")
_OUT = flags.DEFINE_string("out", "", "JSON results file ('' = print only).")


def main(argv):
  del argv
  model, metadata = loading.load(_WORKDIR.value)
  overrides = {"joint_actions": _JOINT_ACTIONS.value} if _JOINT_ACTIONS.value else {}
  # The model's data may have had reach's target slot: the env must report it too.
  overrides = {**train_lib.task_overrides_of_model(_TASK.value, (metadata.extra or {}).get(
      "layouts")), **overrides}
  task = dojo.load(_TASK.value, cameras=tuple(_CAMERAS.value), image_height=_IMAGE.value,
                   image_width=_IMAGE.value, instructions="seen", **overrides)
  arm = task.unwrapped
  policy = controllers.WamPolicy(model, ModelIO.create(model, metadata, task))
  chunk = policy.chunk

  def expert_chunk_from(state, key):
    """The clean expert's next ``chunk`` actions, planned on a copy of the physics."""
    def one(s, k):
      action = arm.expert_action(s, k, 0.0)
      return task.step(s, action), action
    return jax.lax.scan(one, state, jax.random.split(key, chunk))[1]

  bc = state_bc.StateBC.load(_STATE_BC.value) if _STATE_BC.value else None
  # Action units -> radians of the seven joint targets.
  scale = (np.full(7, arm.config.joint_step) if arm.config.joint_actions == "relative"
           else np.diff(arm.mj_model.actuator_ctrlrange[:7], axis=1)[:, 0] / 2)

  def episode(key):
    state = task.reset(key)

    def step(carry, k):
      state, memory = carry
      wam_chunk, memory = policy.act(memory, state, k)
      expert_chunk = expert_chunk_from(state, k)
      hold = arm.ctrl_to_action(state.data.ctrl, state.data)[None]
      bc_chunk = bc.act(None, state, k)[0] if bc is not None else expert_chunk
      state = jax.lax.scan(lambda s, a: (task.step(s, a), None), state, expert_chunk)[0]
      errors = [x[:, :7] - expert_chunk[:, :7] for x in (wam_chunk, hold, bc_chunk)]
      # What it believed of the scene before the chunk against the state after it.
      predicted = policy.io.state_to_env(memory["predicted_state"])[1]
      return (state, memory), (errors, predicted, state.obs["proprio"])

    return jax.lax.scan(step, (state, policy.init(state)),
                        jax.random.split(key, _CHUNKS.value))[1]

  errors, predicted, truth = jax.jit(jax.vmap(episode))(
      jax.random.split(jax.random.key(0), _EPISODES.value))
  rms = [float(np.sqrt(np.mean((np.asarray(e) * scale) ** 2))) for e in errors]
  row = {"workdir": _WORKDIR.value, "task": _TASK.value, "cameras": _CAMERAS.value,
         **overrides, "episodes": _EPISODES.value, "chunks": _CHUNKS.value,
         "rms_rad": {"wam_policy": rms[0], "hold": rms[1]}}
  if bc is not None:
    row["rms_rad"]["state_bc"] = rms[2]
  for name in (metadata.config["model"].get("predict_only") or ()):
    start, size = _slot(arm.data_slots()["proprio"], name)
    p, t = (np.asarray(x)[..., start:start + size].reshape(-1, size)
            for x in (predicted, truth))
    row.setdefault("predict_only", {})[name] = {
        "r2": float(1.0 - ((p - t) ** 2).sum() / ((t - t.mean(0)) ** 2).sum()),
        "rms": float(np.sqrt(((p - t) ** 2).sum(-1).mean())),       # env units (m)
        "rms_of_the_mean": float(np.sqrt(((t - t.mean(0)) ** 2).sum(-1).mean()))}
  print(json.dumps(row), flush=True)
  if _OUT.value:
    results_lib.write_json(_OUT.value, row)


def _slot(layout, name: str) -> tuple[int, int]:
  """Offset and size of slot ``name`` in a task's ``data_slots()`` layout."""
  start = 0
  for slot, size in layout:
    if slot == name:
      return start, size
    start += size
  raise ValueError(f"The task has no proprio slot {name!r}; it has {[s for s, _ in layout]}.")


if __name__ == "__main__":
  app.run(main)
