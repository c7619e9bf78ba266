r"""Does a trained policy read its action off the future frames? (``wam.policy_shortcut``)

  python -m benchmarks.policy_shortcut \
      --workdirs=workdir/metaworld/train_wam,workdir/metaworld/train_bc \
      [--step=2000 --split=val --windows=32 --out=benchmarks/policy_shortcut_metaworld_cpu.json]

For each run (its latest checkpoint), on ``--windows`` windows of ``--split``: the action
error with the action chunk at pure noise, as a rollout starts, while the frames and
joints are at flow time ``tau_video`` (0 = pure noise, what a one-step rollout shows;
1 = the clean next frame). A policy that chooses its action from the context scores
about the same in every column; one that learned to read the action off the next frame
scores far better at ``tau_video`` = 1 than at 0, and only the 0 column is what it has
when acting. A BC run (no video loss) is the control: its frames are never trained, so
its columns show how much the frame inputs alone move the error.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
from absl import app, flags
from ml_collections import config_dict

from benchmarks import results as results_lib
from wam import loading, policy_shortcut, trainer
from wam.data import pipeline

_WORKDIRS = flags.DEFINE_list("workdirs", None, "Trained runs (training workdirs).",
                              required=True)
_SPLIT = flags.DEFINE_string("split", "val", "The split the windows come from.")
_WINDOWS = flags.DEFINE_integer("windows", 32, "Windows (spread over the split's episodes).")
_STEP = flags.DEFINE_integer("step", None, "The checkpoint step (default: each run's latest).")
_DRAWS = flags.DEFINE_integer("draws", 8, "Noise draws per video time.")
_OUT = flags.DEFINE_string("out", "", "JSON results file ('' = print only).")


def measure(workdir: str) -> dict:
  """The action error per video flow time of ``workdir``'s checkpoint ``--step``."""
  steps = sorted(int(d) for d in os.listdir(os.path.join(workdir, "checkpoints")) if d.isdigit())
  step = _STEP.value if _STEP.value is not None else steps[-1]
  model, metadata = loading.load(workdir, step)
  config = config_dict.ConfigDict(metadata.config)
  config.eval.batch_size, config.eval.split = _WINDOWS.value, _SPLIT.value
  windows, found = trainer.eval_batch(config, pipeline.from_config(config.data))
  batch = {k: jnp.asarray(v) for k, v in windows.items()}
  errors = jax.jit(lambda b, k: policy_shortcut.action_error_by_video_time(
      model, b, k, draws=_DRAWS.value))(batch, jax.random.key(0))
  return {"workdir": workdir, "step": step, "split_found": found,
          "given_action_prob": config.model.given_action_prob,
          "video_times": list(policy_shortcut.VIDEO_TIMES),
          "action_mse": [float(e) for e in errors]}


def main(argv):
  del argv
  runs = []
  for workdir in _WORKDIRS.value:
    r = measure(workdir)
    runs.append(r)
    cells = ", ".join(f"{t:g}: {e:.4f}" for t, e in zip(r["video_times"], r["action_mse"]))
    print(f"[benchmarks.policy_shortcut] {workdir} (step {r['step']}, "
          f"{_SPLIT.value if r['split_found'] else 'train'} windows): action MSE by "
          f"tau_video {{{cells}}}; ratio 0/1 {r['action_mse'][0] / r['action_mse'][-1]:.2f}",
          flush=True)
  results_lib.write_json(_OUT.value, {"split": _SPLIT.value, "windows": _WINDOWS.value,
                                      "draws": _DRAWS.value, "runs": runs})


if __name__ == "__main__":
  app.run(main)
