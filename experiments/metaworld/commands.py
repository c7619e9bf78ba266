"""The command lines the Meta-World job runs, built from its config (pure: easy to test).

Recording and evaluation run ``wam-gym-record`` / ``wam-gym-evaluate`` in Meta-World's
venv, on the seeded tasks of :mod:`experiments.metaworld.sim`; import, training and
serving run the project's own commands with the project's Python.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from typing import Mapping, Optional, Sequence

from ml_collections import config_dict

from experiments.metaworld import tasks as tasks_lib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG_FILE = os.path.join(REPO, "experiments", "configs", "metaworld.py")
SIM_MODULE = "experiments.metaworld.sim"
# Seconds the client waits for one reply: generous, as a paused or busy 2-core machine
# can hold the server for a long time without anything being wrong.
REPLY_TIMEOUT_S = 600


def sim_env(venv_dir: str, base: Optional[Mapping[str, str]] = None) -> dict[str, str]:
  """The environment of commands in Meta-World's venv: this repository importable (for
  :mod:`experiments.metaworld.sim`), the venv's scripts first, headless MuJoCo (EGL)
  unless ``MUJOCO_GL`` is set."""
  env = dict(os.environ if base is None else base)
  env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH", "")) if p)
  env["PATH"] = os.pathsep.join(p for p in (os.path.join(venv_dir, "bin"), env.get("PATH", ""))
                                if p)
  env.setdefault("MUJOCO_GL", "egl")
  env.pop("VIRTUAL_ENV", None)
  return env


def _size(size: Sequence[int]) -> str:
  return ",".join(str(int(s)) for s in size)


def _observation_flags(job: config_dict.ConfigDict, task: str) -> list[str]:
  """Flags that record and evaluate share: the env, its cameras and vectors."""
  return [f"--env={SIM_MODULE}:{tasks_lib.env_id(task)}",
          f"--cameras={job.cameras}", f"--joints={job.joints}", f"--proprio={job.proprio}",
          f"--instruction={tasks_lib.TASKS[task].instruction}"]


def record(venv_dir: str, job: config_dict.ConfigDict, task: str, out: str) -> list[str]:
  """``wam-gym-record``: the task's scripted expert, seeds ``0..demos_per_task-1``."""
  return [os.path.join(venv_dir, "bin", "wam-gym-record"), *_observation_flags(job, task),
          f"--env_kwargs={json.dumps({'action_noise': float(job.demo_noise)})}",
          f"--policy=metaworld.policies:{tasks_lib.TASKS[task].policy}",
          f"--episodes={job.demos_per_task}", "--seed=0",
          f"--max_episode_steps={job.demo_max_steps}", f"--num_envs={job.record_envs}",
          f"--image_size={_size(job.record_size)}", f"--joints_slots={job.joints_slots}",
          f"--proprio_slots={job.proprio_slots}", f"--action_slots={job.action_slots}",
          f"--embodiment={job.embodiment}", f"--out={out}"]


def evaluate(venv_dir: str, job: config_dict.ConfigDict, task: str, url: str, seed: int,
             out: str) -> list[str]:
  """``wam-gym-evaluate``: the served model on ``eval_episodes`` held-out seeds from
  ``seed`` on (one of the job's ``eval_seeds``)."""
  return [os.path.join(venv_dir, "bin", "wam-gym-evaluate"), *_observation_flags(job, task),
          f"--url={url}", f"--episodes={job.eval_episodes}", f"--seed={int(seed)}",
          f"--max_episode_steps={job.eval_max_steps}", f"--num_envs={job.num_envs}",
          f"--render_size={_size(job.record_size)}", f"--max_gifs={job.max_gifs}",
          f"--timeout={REPLY_TIMEOUT_S}", f"--out={out}"]


def import_npz(files: str, mapping: str, data_dir: str, val_fraction: float,
               name: str) -> list[str]:
  """The project's npz importer: every task's episodes in one dataset."""
  return [sys.executable, "-m", "wam.data.importers.npz", f"--files={files}",
          f"--mapping={mapping}", f"--name={name}", f"--data_dir={data_dir}",
          f"--splits=train={1 - val_fraction:g},val={val_fraction:g}"]


def train(size: str, bc: bool, workdir: str, dataset: str, extra_flags: str = ""
          ) -> list[str]:
  """``experiments.train`` on the config file (resumes from ``workdir``).

  ``extra_flags`` (the job's ``train_flags.wam`` or ``.bc``) are split as a shell would
  and must all be ``--config.KEY=VALUE`` overrides.
  """
  extra = shlex.split(extra_flags)
  bad = [f for f in extra if not f.startswith("--config.") or "=" not in f]
  if bad:
    raise ValueError(f"train_flags.{'bc' if bc else 'wam'}: {bad} are not --config.KEY=VALUE "
                     "overrides of experiments/configs/metaworld.py.")
  arg = size + (",bc" if bc else "")
  return [sys.executable, "-m", "experiments.train", f"--config={CONFIG_FILE}:{arg}",
          f"--workdir={workdir}", *extra, f"--config.data.datasets.metaworld.path={dataset}"]


def serve(train_dir: str, flow_steps: int) -> list[str]:
  """``experiments.serve`` on any free port (it prints the URL)."""
  return [sys.executable, "-m", "experiments.serve", f"--workdir={train_dir}", "--port=0",
          f"--flow_steps={flow_steps}"]
