"""One host of the two-process pipeline test: ``python -m tests.wam.data.multihost_reader
PORT PROCESS_ID DATASET_DIR STATS_DIR OUT_JSON``."""

import json
import sys

import jax


def main(port: str, process_id: str, dataset: str, stats: str, out: str) -> None:
  jax.config.update("jax_platforms", "cpu")
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=int(process_id))
  from wam.data.pipeline import DatasetRef, Pipeline  # pylint: disable=import-outside-toplevel
  from wam.data.window import WindowConfig  # pylint: disable=import-outside-toplevel
  # No shard arguments: the pipeline takes this process's slice from jax.
  pipeline = Pipeline([DatasetRef(dataset)], WindowConfig(num_frames=2, action_chunk=3,
                                                          image_size=(16, 16)),
                      batch_size=4, num_epochs=1, drop_remainder=False,
                      statistics_dir=stats, read_threads=1)
  windows = [[int(e), int(s)] for b in pipeline for e, s in zip(b["episode"], b["start"])]
  with open(out, "w") as f:
    json.dump({"shard": [pipeline.shard_index, pipeline.shard_count],
               "batch_size": pipeline.batch_size, "windows": windows}, f)
  jax.distributed.shutdown()


if __name__ == "__main__":
  main(*sys.argv[1:])
