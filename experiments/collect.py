r"""Collects episodes from a Dojo task into a work directory.

  python -m experiments.collect --config=experiments/configs/collect.py:runlocal \
      --workdir=workdir/collect

Episodes are written as ``episodes/*.npz`` and then, with ``config.tfds`` (the default),
as the ``dojo_robot`` TFDS dataset under ``tfds/`` that ``wam.data`` pipelines read.
Re-running the same command resumes: finished batches are not collected again.
"""

from __future__ import annotations

import json
import os

import imageio.v2 as imageio
from absl import app, flags, logging
from ml_collections import config_flags
from tensorboardX import SummaryWriter

import dojo
from dojo import collect as collect_lib
from dojo.datasets import dojo_robot
from experiments.lib import stages
from wam import visualize
from wam.data.pipeline import DatasetRef, Pipeline
from wam.data.reader import EpisodeDataset
from wam.data.window import WindowConfig

# Keys that decide which episodes are drawn: resuming with other values would mix data
# (the other keys, such as num_episodes, may change between runs).
DATA_KEYS = ("task", "policy", "noise", "seed", "batch_size", "num_steps", "env",
             "val_fraction")

_CONFIG = config_flags.DEFINE_config_file("config", None, "Collection config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory.")
flags.mark_flags_as_required(["config", "workdir"])


def run(config, workdir: str) -> dict:
  """Collects ``config.num_episodes`` episodes into ``workdir``; returns the summary."""
  stages.check_workdir_config(config, workdir, keys=DATA_KEYS)
  env = dojo.load(config.task, **config.env.to_dict())
  num_steps = config.num_steps if config.num_steps > 0 else env.config.episode_length
  episode_dir = os.path.join(workdir, "episodes")

  writer = SummaryWriter(os.path.join(workdir, "tensorboard"))

  def progress(stats):
    writer.add_scalar("collect/success_rate", stats.success_rate, stats.total)
    writer.add_scalar("collect/steps_per_second", stats.steps / max(stats.seconds, 1e-9),
                      stats.total)
    writer.flush()
    logging.info("[collect %s] %d/%d episodes, %d steps, success %.2f, %.1f steps/s",
                 config.task, stats.total, config.num_episodes, stats.steps,
                 stats.success_rate, stats.steps / max(stats.seconds, 1e-9))
    with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
      f.write(json.dumps({"episodes": stats.total, "success_rate": stats.success_rate,
                          "steps_per_second": stats.steps / max(stats.seconds, 1e-9)}) + "\n")

  def write_video(index, episode):
    if index < config.videos:
      cams = sorted(k for k in episode["steps"]["observation"] if k.startswith("image_"))
      frames = visualize.tile([episode["steps"]["observation"][c] for c in cams])
      visualize.write_video(os.path.join(workdir, "videos", f"episode_{index:05d}.gif"),
                        frames, fps=episode["metadata"]["fps"])

  collect_lib.collect_to_dir(
      env, episode_dir, num_episodes=config.num_episodes, batch_size=config.batch_size,
      on_episode=write_video, task_name=config.task, num_steps=num_steps,
      policy=config.policy, noise=config.noise, seed=config.seed, progress=progress)
  writer.close()
  successes = [collect_lib.read_metadata(collect_lib.episode_path(episode_dir, i))["success"]
               for i in range(config.num_episodes)]
  summary = {"task": config.task, "episodes": len(successes),
             "success_rate": sum(successes) / max(len(successes), 1),
             "policy": config.policy, "noise": config.noise}
  if config.tfds:
    summary["dataset_dir"] = build_dataset(config, episode_dir, os.path.join(workdir, "tfds"))
    summary["windows_plot"] = plot_windows(config, summary["dataset_dir"], workdir)
  with open(os.path.join(workdir, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
  logging.info("Collected %s", summary)
  return summary


def build_dataset(config, episode_dir: str, data_dir: str) -> str:
  """Writes the collected episodes as the ``dojo_robot`` TFDS dataset; returns its dir.

  The builder config is named ``<task>_collected``. A dataset already built there is reused
  if it holds ``num_episodes`` episodes, and rebuilt if more were collected since.
  """
  env = config.env
  path = dojo_robot.build(
      data_dir, config.task, num_episodes=config.num_episodes, cameras=tuple(env.cameras),
      image_size=(env.image_height, env.image_width), policy=config.policy,
      noise=config.noise, seed=config.seed, num_steps=config.num_steps,
      batch_size=config.batch_size, val_fraction=config.val_fraction, impl=env.impl,
      name=f"{config.task}_collected", episodes_dir=episode_dir,
      description=f"experiments.collect: {config.num_episodes} {config.task} episodes.")
  logging.info("TFDS dataset: %s", path)
  return path


def plot_windows(config, dataset_dir: str, workdir: str) -> str:
  """Reads one batch of training windows back through the wam.data pipeline and saves
  it as a PNG grid: a row per window and camera, 4 frames up to 4 steps apart (fewer
  for short episodes)."""
  env = config.env
  longest = int(EpisodeDataset(dataset_dir).episode_lengths.max())
  chunk = max(1, min(4, longest // 4))
  window = WindowConfig(num_frames=min(4, longest // chunk), num_context=1,
                        action_chunk=chunk,
                        cameras=tuple(env.cameras), image_size=(env.image_height,
                                                                env.image_width))
  pipeline = Pipeline([DatasetRef(dataset_dir)], window, batch_size=4, seed=config.seed,
                      shard_index=0, shard_count=1, normalization="none", read_threads=1)
  frames = next(iter(pipeline))["frames"]  # [B, T, V, H, W, 3]
  b, t, v = frames.shape[:3]
  rows = frames.transpose(0, 2, 1, 3, 4, 5).reshape(b * v * t, *frames.shape[3:])
  path = os.path.join(workdir, "plots", "training_windows.png")
  os.makedirs(os.path.dirname(path), exist_ok=True)
  imageio.imwrite(path, visualize.grid(rows, columns=t))
  return path


def main(argv):
  del argv
  run(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
