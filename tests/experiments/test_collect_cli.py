"""`python -m experiments.collect`: files, progress, resume by re-running."""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from dojo import collect as collect_lib
from experiments import collect
from experiments.configs import collect as collect_config


def _small_config():
  config = collect_config.get_config("reach,runlocal")
  config.num_episodes = 4
  config.batch_size = 2
  config.num_steps = 4
  config.videos = 1
  config.env.image_height = 16
  config.env.image_width = 16
  return config


def test_collect_writes_and_resumes(tmp_path):
  workdir = str(tmp_path / "w")
  summary = collect.run(_small_config(), workdir)
  files = sorted(glob.glob(os.path.join(workdir, "episodes", "*.npz")))
  assert len(files) == 4 and summary["episodes"] == 4
  assert os.path.exists(os.path.join(workdir, "videos", "episode_00000.gif"))
  assert glob.glob(os.path.join(workdir, "tensorboard", "events.out.tfevents.*"))
  assert json.load(open(os.path.join(workdir, "config.json")))["task"] == "reach"
  # The TFDS dataset holds the same episodes (train, then val).
  from wam.data.reader import EpisodeDataset  # pylint: disable=import-outside-toplevel
  train = EpisodeDataset(summary["dataset_dir"], "train")
  val = EpisodeDataset(summary["dataset_dir"], "val")
  assert (len(train), len(val)) == (3, 1)
  assert os.path.exists(summary["windows_plot"])
  first = collect_lib.read_npz(files[0])
  np.testing.assert_array_equal(train.episode(0)["steps"]["observation"]["image_front"],
                                first["steps"]["observation"]["image_front"])
  # Lose the last batch, re-run: only it is collected again, identically.
  before = collect_lib.read_npz(files[-1])
  os.remove(files[-1])
  os.remove(files[-2])
  # A crash mid-write leaves only a ".partial" file, which must not count as done.
  open(files[-2] + ".partial", "wb").write(b"truncated")
  lines_before = len(open(os.path.join(workdir, "metrics.jsonl")).readlines())
  collect.run(_small_config(), workdir)
  after = collect_lib.read_npz(files[-1])
  assert after["metadata"] == before["metadata"]
  np.testing.assert_array_equal(after["steps"]["action"], before["steps"]["action"])
  assert len(open(os.path.join(workdir, "metrics.jsonl")).readlines()) == lines_before + 1


def test_resume_refuses_a_changed_config(tmp_path):
  workdir = str(tmp_path / "w")
  config = _small_config()
  config.num_episodes = 2
  collect.run(config, workdir)
  config.seed = 1
  with pytest.raises(ValueError, match=r"other values of \['seed'\].*new --workdir"):
    collect.run(config, workdir)


def test_config_argument_errors():
  with pytest.raises(ValueError, match="Unknown collect config argument.*'rech'"):
    collect_config.get_config("rech")
  assert collect_config.get_config("push").task == "push"


def test_cli_rejects_typo_in_override(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.collect",
       "--config=experiments/configs/collect.py:runlocal", f"--workdir={tmp_path}",
       "--config.num_episode=3"], capture_output=True, text=True, timeout=120,
      cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
  assert proc.returncode != 0
  assert "num_episode" in proc.stderr
