r"""Input pipeline throughput against training-step consumption, side by side in one run.

  python -m benchmarks.data --out=benchmarks/data_cpu.json [--dataset=dojo_robot/reach_small]
  python -m benchmarks.data --quick --dataset=synthetic --out=/tmp/x.json --data_dir=/tmp/d

The data is real rendered Dojo data by default (``dojo_robot/reach_small``: 32 episodes,
front+wrist cameras at 64x64, built into ``--data_dir`` the first time, about a minute,
and reused); ``--dataset=synthetic`` writes a small synthetic dataset of the same shape
instead (fast: the smoke test uses it); a path to a built dataset directory also works.
The pipeline is ``wam.data.pipeline.from_config`` on the data config of
``experiments/configs/wam.py:runlocal`` (one 32x32 camera, 4 frames x 4-action chunks,
batch 8) and the consumer is the world action model's real training step
(``wam.trainer.make_train_step``, toy model) on that data, as ``experiments.train`` runs it.

Keys of the JSON:
- ``loader_windows_per_s``: windows/s the pipeline delivers (default config, threads in
  this process, ``worker_count=0``), after warm-up batches;
- ``loader_windows_per_s_workers2``: the same with ``worker_count=2`` worker processes;
- ``train_windows_per_s``: windows/s of the training step alone on one fixed batch already
  on the device, after compiling (mean of two runs bracketing the next measurement);
- ``loader_over_train_ratio``: ``loader_windows_per_s / train_windows_per_s`` (target >= 2);
- ``train_with_loader_over_train_alone``: windows/s of the step fed straight from the
  pipeline iterator (default config), over ``train_windows_per_s``; 1.0 means input never
  stalls training (on a 2-core CPU the loader's threads also take compute from the step);
- ``train_with_loader_workers2_over_train_alone``: the same, fed by 2 worker processes;
- ``peak_rss_mb``: max of ``ru_maxrss`` of this process and of its (finished) children;
- ``dataset``: path, episodes, steps and on-disk MB of the train split;
- ``config``: the data config; ``machine``: cpu count, platform, jax backend;
- ``train_step``: what the step is; ``seconds``: wall time of the whole run;
- ``details``: the runs behind the means, peak RSS of self and children, compile time.
This machine is shared and noisy: compare ratios, not absolute rates, across runs.
"""

from __future__ import annotations

import os
import platform
import resource
import time
from typing import Any, Iterator

from absl import app, flags

from benchmarks import results as results_lib

_OUT = flags.DEFINE_string("out", "benchmarks/data.json", "Where to write the JSON results.")
_DATASET = flags.DEFINE_string(
    "dataset", "dojo_robot/reach_small",
    "dojo_robot/<config> (built under --data_dir if missing), 'synthetic', or the path "
    "of a built episode dataset.")
_DATA_DIR = flags.DEFINE_string("data_dir", "workdir/benchmark_data",
                                "Where datasets and normalisation statistics are kept.")
_BATCHES = flags.DEFINE_integer("batches", 100, "Timed loader batches per measurement.")
_STEPS = flags.DEFINE_integer("steps", 30, "Timed training steps per measurement.")
_WARMUP = flags.DEFINE_integer("warmup", 4, "Untimed batches/steps before each timing.")
_QUICK = flags.DEFINE_bool("quick", False, "A few batches and steps (smoke test).")


def _log(message: str) -> None:
  print(f"[benchmarks.data] {message}", flush=True)


def _synthetic_dataset(data_dir: str, quick: bool) -> str:
  """A dataset shaped like ``dojo_robot/reach_small`` (front+wrist 64x64, joints 9,
  proprio 14, action 8), written once into ``data_dir``."""
  from wam.data import builder, synthetic  # pylint: disable=import-outside-toplevel
  from wam.data.layout import Layout  # pylint: disable=import-outside-toplevel
  from wam.data.schema import EpisodeSpec  # pylint: disable=import-outside-toplevel
  spec = EpisodeSpec(
      embodiment="bench_arm", source="sim", cameras=("front", "wrist"), image_size=(64, 64),
      joints=Layout.of([("arm_joints", 7), ("gripper_fingers", 2)]),
      proprio=Layout.of([("bench_arm_proprio", 14)]),
      action=Layout.of([("arm_joint_targets", 7), ("gripper", 1)]), fps=25.0)
  # Quick: few episodes so that writing takes a second or two.
  episodes, length = (4, 30) if quick else (32, 50)
  name = "bench_synthetic_quick" if quick else "bench_synthetic"
  return builder.write_dataset(
      name, spec, {"train": lambda: synthetic.synthetic_episodes(spec, episodes, length)},
      data_dir)


def _dataset_path(dataset: str, data_dir: str, quick: bool) -> str:
  if dataset == "synthetic":
    return _synthetic_dataset(data_dir, quick)
  if os.path.exists(os.path.join(dataset, "dataset_info.json")):
    return dataset
  name, _, config = dataset.partition("/")
  if name != "dojo_robot" or not config:
    raise app.UsageError(f"--dataset={dataset!r}: want dojo_robot/<config>, synthetic, or "
                         "a built dataset directory.")
  from dojo.datasets.dojo_robot import Builder  # pylint: disable=import-outside-toplevel
  builder = Builder(config=config, data_dir=data_dir)
  builder.download_and_prepare()  # a no-op once built
  return os.fspath(builder.data_dir)


def _describe_dataset(path: str) -> dict[str, Any]:
  from wam.data.reader import EpisodeDataset  # pylint: disable=import-outside-toplevel
  ds = EpisodeDataset(path, "train")
  size = sum(os.path.getsize(os.path.join(root, f))
             for root, _, files in os.walk(path) for f in files)
  return {"path": path, "split": "train", "episodes": len(ds), "steps": ds.num_steps,
          "on_disk_mb": size / 2**20, "spec": ds.spec.to_json()}


def _loader_rate(iterator: Iterator, batch_size: int, batches: int, warmup: int) -> float:
  """Windows/s that ``iterator`` delivers over ``batches`` batches after ``warmup``."""
  for _ in range(warmup):
    next(iterator)
  start = time.perf_counter()
  for _ in range(batches):
    next(iterator)
  return batch_size * batches / (time.perf_counter() - start)


def _peak_rss_mb() -> tuple[float, float]:
  """``(this process, largest finished child)`` peak RSS in MB (Linux: ru_maxrss is KiB)."""
  return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
          resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


def main(argv):
  del argv
  import jax  # pylint: disable=import-outside-toplevel
  from experiments.configs import wam as wam_configs  # pylint: disable=import-outside-toplevel
  from flax import nnx  # pylint: disable=import-outside-toplevel
  from wam import train_state, trainer  # pylint: disable=import-outside-toplevel
  from wam.model import count_parameters  # pylint: disable=import-outside-toplevel
  from wam.optimizer import make_optimizer  # pylint: disable=import-outside-toplevel
  from wam.data import config as config_lib  # pylint: disable=import-outside-toplevel
  from wam.data import pipeline as pipeline_lib  # pylint: disable=import-outside-toplevel

  t_start = time.perf_counter()
  quick = _QUICK.value
  batches, steps, warmup = (3, 2, 1) if quick else (_BATCHES.value, _STEPS.value,
                                                      _WARMUP.value)
  data_dir = os.path.abspath(_DATA_DIR.value)
  os.makedirs(data_dir, exist_ok=True)

  _log(f"dataset {_DATASET.value} under {data_dir}")
  path = _dataset_path(_DATASET.value, data_dir, quick)
  dataset = _describe_dataset(path)
  _log(f"  {path}: {dataset['episodes']} episodes, {dataset['steps']} steps, "
       f"{dataset['on_disk_mb']:.1f} MB")

  train_config = wam_configs.get_config("runlocal")
  config = train_config.data
  config.datasets.robot = config_lib.dataset_config(path)
  config.statistics_dir = os.path.join(data_dir, "statistics")
  config2 = config.copy_and_resolve_references()
  config2.worker_count = 2
  bsz = config.batch_size

  # 1. Loader alone, threads in this process (the default), then 2 worker processes.
  _log(f"loader, worker_count=0: {warmup} warm-up + {batches} timed batches of {bsz}")
  pipeline = pipeline_lib.from_config(config, shard_index=0, shard_count=1)
  iterator = iter(pipeline)
  loader_rate = _loader_rate(iterator, bsz, batches, warmup)
  _log(f"  {loader_rate:.1f} windows/s")
  _log(f"loader, worker_count=2: {warmup + 2} warm-up + {batches} timed batches")
  pipeline2 = pipeline_lib.from_config(config2, shard_index=0, shard_count=1)
  iterator2 = iter(pipeline2)
  # Two extra warm-up batches: worker processes start (spawn, imports) on the first.
  loader_rate2 = _loader_rate(iterator2, bsz, batches, warmup + 2)
  _log(f"  {loader_rate2:.1f} windows/s")

  # 2. The training step alone on one batch already on the device.
  example = next(iterator)
  optimizer = make_optimizer(train_config.optimizer, train_config.num_steps)
  model = train_state.build_model(train_config, example)
  state = train_state.initial_state(model, optimizer, jax.random.key(0))
  graphdef, _ = nnx.split(model)
  step = jax.jit(trainer.make_train_step(graphdef, optimizer), donate_argnums=(0,))
  params, opt_state = state, None  # the loops below thread the train state through

  def train_step(state, unused_opt_state, batch):
    state, metrics = step(state, batch)
    return state, None, metrics
  batch = jax.device_put(example)
  t0 = time.perf_counter()
  params, opt_state, metrics = train_step(params, opt_state, batch)
  jax.block_until_ready(metrics)
  compile_s = time.perf_counter() - t0
  _log(f"train step compiled in {compile_s:.1f}s; {warmup} warm-up + {steps} timed steps")

  def train_alone():
    nonlocal params, opt_state, metrics
    for _ in range(warmup):
      params, opt_state, metrics = train_step(params, opt_state, batch)
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(steps):
      params, opt_state, metrics = train_step(params, opt_state, batch)
    jax.block_until_ready(metrics)
    return bsz * steps / (time.perf_counter() - start)

  def train_with(it):
    """The step consuming batches straight from ``it`` (host numpy, as training will)."""
    nonlocal params, opt_state, metrics
    for _ in range(warmup):
      params, opt_state, metrics = train_step(params, opt_state, next(it))
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(steps):
      params, opt_state, metrics = train_step(params, opt_state, next(it))
    jax.block_until_ready(metrics)
    return bsz * steps / (time.perf_counter() - start)

  train_a = train_alone()
  _log(f"  train alone: {train_a:.1f} windows/s")
  _log(f"train step fed by the loader (worker_count=0): {warmup} + {steps} steps")
  with_loader = train_with(iterator)
  _log(f"  {with_loader:.1f} windows/s")
  _log(f"train step fed by the loader (worker_count=2): {warmup} + {steps} steps")
  with_loader2 = train_with(iterator2)
  _log(f"  {with_loader2:.1f} windows/s")
  train_b = train_alone()
  _log(f"  train alone again: {train_b:.1f} windows/s")
  # The mean of two runs bracketing the fed runs: the machine's load drifts.
  train_rate = (train_a + train_b) / 2
  # Close (and join) the workers so that RUSAGE_CHILDREN counts them.
  iterator2.close()
  rss_self, rss_children = _peak_rss_mb()

  results = {
      "loader_windows_per_s": loader_rate,
      "loader_windows_per_s_workers2": loader_rate2,
      "train_windows_per_s": train_rate,
      "loader_over_train_ratio": loader_rate / train_rate,
      "train_with_loader_over_train_alone": with_loader / train_rate,
      "train_with_loader_workers2_over_train_alone": with_loader2 / train_rate,
      "peak_rss_mb": max(rss_self, rss_children),
      "dataset": dataset,
      "config": config.to_dict(),
      "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                  "processor": platform.processor(), "backend": jax.default_backend(),
                  "devices": str(jax.devices())},
      "train_step": (f"wam.trainer.make_train_step, {train_config.model.variant} model "
                     f"({count_parameters(model):,} parameters), runlocal data"),
      "details": {
          "train_windows_per_s_runs": [train_a, train_b],
          "train_with_loader_windows_per_s": with_loader,
          "train_with_loader_workers2_windows_per_s": with_loader2,
          "peak_rss_mb_self": rss_self, "peak_rss_mb_children": rss_children,
          "compile_s": compile_s, "final_loss": float(metrics["loss"]),
          "quick": quick, "batches": batches, "steps": steps, "warmup": warmup,
      },
      "seconds": time.perf_counter() - t_start,
  }
  results_lib.write_json(_OUT.value, results)
  print(f"loader {loader_rate:.0f} windows/s (workers=2: {loader_rate2:.0f}), wam "
        f"train {train_rate:.0f} windows/s, ratio {results['loader_over_train_ratio']:.2f} "
        f"(target >= 2), fed/alone {results['train_with_loader_over_train_alone']:.2f} "
        f"(workers=2: {results['train_with_loader_workers2_over_train_alone']:.2f}), peak "
        f"RSS {results['peak_rss_mb']:.0f} MB, {results['seconds']:.0f}s", flush=True)


if __name__ == "__main__":
  app.run(main)
