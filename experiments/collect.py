r"""Collects episodes from a Dojo task into a work directory.

  python -m experiments.collect --config=experiments/configs/collect.py:runlocal \
      --workdir=workdir/collect

Re-running the same command resumes: finished batches are not collected again.
"""

from __future__ import annotations

import json
import os

from absl import app, flags, logging
from ml_collections import config_flags

from dojo import collect as collect_lib

_CONFIG = config_flags.DEFINE_config_file("config", None, "Collection config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory.")
flags.mark_flags_as_required(["config", "workdir"])


def run(config, workdir: str) -> dict:
  """Collects ``config.num_episodes`` episodes into ``workdir``; returns the summary."""
  import dojo  # pylint: disable=import-outside-toplevel
  from dojo import video  # pylint: disable=import-outside-toplevel

  os.makedirs(workdir, exist_ok=True)
  config_path = os.path.join(workdir, "config.json")
  if os.path.exists(config_path):
    _check_same_data_config(json.load(open(config_path)), json.loads(config.to_json()),
                            config_path)
  with open(config_path, "w") as f:
    f.write(config.to_json_best_effort(indent=2))
  env = dojo.load(config.task, **config.env.to_dict())
  num_steps = config.num_steps if config.num_steps > 0 else env.config.episode_length
  episode_dir = os.path.join(workdir, "episodes")
  done = 0  # episodes 0..done-1 are all on disk
  while os.path.exists(os.path.join(episode_dir, f"episode_{done:05d}.npz")):
    done += 1
  skip = min(done, config.num_episodes) // config.batch_size
  if done >= config.num_episodes:
    skip = -(-config.num_episodes // config.batch_size)
  if skip:
    logging.info("Resuming: %d episodes already on disk, skipping %d batches.", done, skip)

  from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel
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

  episodes = collect_lib.collect(
      env, task_name=config.task, num_episodes=config.num_episodes, num_steps=num_steps,
      batch_size=config.batch_size, policy=config.policy, noise=config.noise,
      seed=config.seed, skip_batches=skip, progress=progress)
  index = skip * config.batch_size
  for episode in episodes:
    path = os.path.join(episode_dir, f"episode_{index:05d}.npz")
    collect_lib.write_npz(episode, path)
    if index < config.videos:
      cams = sorted(k for k in episode["steps"]["observation"] if k.startswith("image_"))
      frames = video.tile([episode["steps"]["observation"][c] for c in cams])
      video.write_video(os.path.join(workdir, "videos", f"episode_{index:05d}.gif"),
                        frames, fps=episode["metadata"]["fps"])
    index += 1
  writer.close()
  successes = [collect_lib.read_metadata(os.path.join(episode_dir, f"episode_{i:05d}.npz"))
               ["success"] for i in range(config.num_episodes)]
  summary = {"task": config.task, "episodes": len(successes),
             "success_rate": sum(successes) / max(len(successes), 1),
             "policy": config.policy, "noise": config.noise}
  with open(os.path.join(workdir, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
  logging.info("Collected %s", summary)
  return summary


# Keys that decide which episodes are drawn: resuming with other values would mix data.
_DATA_KEYS = ("task", "policy", "noise", "seed", "batch_size", "num_steps", "env")


def _check_same_data_config(old: dict, new: dict, path: str) -> None:
  changed = [k for k in _DATA_KEYS if old.get(k) != new.get(k)]
  if changed:
    raise ValueError(f"{path} was written with other values of {changed}; resuming would "
                     "mix episodes drawn differently. Use a new --workdir.")


def main(argv):
  del argv
  run(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
