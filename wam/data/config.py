"""The ``data`` part of an experiment config (an ``ml_collections.ConfigDict``).

    config.data = wam.data.config.default_config()
    config.data.datasets.robot = dataset_config("workdir/collect/tfds/...", weight=0.01)

Each entry of ``datasets`` is one dataset of the mixture; override single values with
``--config.data.datasets.robot.weight=0.5``.
"""

from __future__ import annotations

from ml_collections import config_dict


def dataset_config(path: str, weight: float = 1.0, split: str = "train",
                   max_episodes: int = 0, imitate: bool = True) -> config_dict.ConfigDict:
  """One dataset of a mixture: a built dataset directory, its weight and split.

  ``max_episodes`` > 0 trains on the split's first ``max_episodes`` episodes only
  (windows and normalisation statistics; for data-scaling sweeps); 0: all of them.
  ``imitate=False`` marks actions that only condition the world model (play data):
  they are always given, never policy-mode targets.
  """
  return config_dict.ConfigDict(dict(path=path, weight=float(weight), split=split,
                                     max_episodes=int(max_episodes), imitate=bool(imitate)))


def default_config() -> config_dict.ConfigDict:
  """Defaults sized for the toy world model on a 2-core CPU."""
  c = config_dict.ConfigDict()
  c.datasets = config_dict.ConfigDict()  # name -> dataset_config(...)
  # Window: T frames K steps apart, each with the K-action chunk that follows it.
  c.num_frames = 4
  c.num_context = 1
  c.action_chunk = 4
  c.cameras = ("front",)
  c.image_size = (64, 64)
  c.max_instruction_length = 64
  c.window_stride = 1
  c.hand_keypoints = False
  # Batching and order.
  c.batch_size = 32          # global; each host gets batch_size / process_count
  c.seed = 0
  c.shuffle = True
  c.num_epochs = -1          # -1: repeat forever
  # Normalisation statistics, cached under a hash of the dataset and the transform.
  c.normalization = "mean_std"  # mean_std | bounds | none
  c.statistics_dir = ""      # "" = ~/.cache/wam/statistics
  c.compute_statistics = True
  # Reading.
  c.worker_count = 0         # worker processes (0: read in this process's threads)
  c.read_threads = 4
  c.prefetch_buffer_size = 64
  c.on_corrupt = "raise"     # raise | skip (skips are counted in batch["skipped"])
  return c
