r"""Round-trip latency of the policy server against the in-process policy, one run.

  python -m benchmarks.serve --out=benchmarks/serve_cpu.json [--workdir=workdir/wam]

Measured in one process, the settings in turn, ``--rounds`` times over, each keeping
its best round (the machine is shared and noisy: compare ratios, not absolute times,
across runs):
- ``inprocess``: ``Policy.act`` called directly (host checks, the jitted model call,
  actions back on the host): median and p99 latency;
- ``served/<n>``: ``n`` ``PolicyClient``s on loopback, each in its own thread with its
  own session, sending ``--requests`` acts one after another: round-trip median and p99
  latency, action chunks and actions per second over all clients, and the server's own
  view (arrival to reply, and the model call alone);
- ``serve_over_inprocess_latency``: served median round trip (1 client) over the
  in-process median: what the WebSocket, msgpack and the event loop add;
- ``batching``: ``--batch_clients`` concurrent clients against a server that runs every
  act alone (``max_batch`` 1, the server before batching) and one that batches the acts
  waiting together (``--max_batch``), side by side in the same rounds: median, p90 and
  p99 round trip of each, the batch sizes the server ran, and ``median_ratio`` /
  ``p90_ratio`` (unbatched over batched latency: above 1, batching helps) and
  ``throughput_ratio`` (batched over unbatched chunks/s).

``served`` runs the server with its defaults (so batching is on, ``max_batch`` 8).

Without ``--workdir`` the model is a random one built like the tests' (``--size``:
``toy``, the runlocal size, or ``tiny``, the tests' size); speed does not depend on the
weights, and the output says which model was used.
"""

from __future__ import annotations

import os
import platform
import threading
import time
from typing import Any

import numpy as np
from absl import app, flags

from benchmarks import results as results_lib

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The command-line flags, defined only when run as a program: tests import this
  module beside other launchers (absl flags are process-global)."""
  flags.DEFINE_string("out", "benchmarks/serve.json", "Where to write the JSON results.")
  flags.DEFINE_string("workdir", "", "A trained WAM run (default: a random model).")
  flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
  flags.DEFINE_integer("flow_steps", 1, "Euler steps per action chunk.")
  flags.DEFINE_enum("size", "toy", ["toy", "tiny"], "Random model size (no workdir).")
  flags.DEFINE_list("clients", ["1", "8"], "Concurrent client counts to measure.")
  flags.DEFINE_integer("requests", 50, "Timed acts per client (and in process).")
  flags.DEFINE_integer("rounds", 3, "Rounds over all settings (best kept each).")
  flags.DEFINE_integer("batch_clients", 8, "Concurrent clients of the batching comparison "
                       "(0: skip it).")
  flags.DEFINE_integer("max_batch", 8, "The server's max_batch in the batching comparison.")


# ----------------------------------------------------------------------------- model


def random_model(size: str = "tiny", seed: int = 0):
  """A random model and metadata shaped like a trained run's (one robot, two cameras).

  ``tiny`` is the tests' size (compiles in seconds); ``toy`` is the runlocal size of
  ``wam.config``. The statistics are not the identity, so normalisation is exercised.
  """
  import jax  # pylint: disable=import-outside-toplevel
  from flax import nnx  # pylint: disable=import-outside-toplevel
  from wam import config as wam_config  # pylint: disable=import-outside-toplevel
  from wam import model as wam_model  # pylint: disable=import-outside-toplevel
  from wam.run_metadata import RunMetadata  # pylint: disable=import-outside-toplevel

  if size not in ("tiny", "toy"):
    raise ValueError(f"Unknown size {size!r}; use 'tiny' or 'toy'.")
  tiny = size == "tiny"
  layouts = {"joints": [["arm", 3]], "proprio": [["grip", 2]],
             "action": [["arm", 3], ["gripper", 1]]}
  image = 16 if tiny else 32
  dims = wam_model.Dims(num_frames=3 if tiny else 4, num_cameras=2, image_size=(image, image),
                        joints=3, proprio=2, action=4, action_chunk=2 if tiny else 4,
                        instruction_length=24 if tiny else 32)
  cfg = wam_config.model_config("toy")
  if tiny:
    cfg.width, cfg.depth, cfg.num_heads = 32, 1, 2
    cfg.tokenizer.channels, cfg.tokenizer.latent_channels = (8, 8), 4
    cfg.text_encoder.kwargs.update(hidden=16, depth=1, num_heads=2)
    cfg.max_blocks = 6
  model = wam_model.WorldActionModel(cfg, dims, rngs=nnx.Rngs(seed))
  # Heads start at zero; make the actions depend on the inputs.
  for i, head in enumerate((model.action_head, model.frame_head, model.state_head)):
    head.kernel[...] = 0.3 * jax.random.normal(jax.random.key(100 * seed + i), head.kernel.shape)

  def stats(mean, std):
    mean, std = np.asarray(mean, float), np.asarray(std, float)
    return {"mean": mean.tolist(), "std": std.tolist(), "min": (mean - 3 * std).tolist(),
            "max": (mean + 3 * std).tolist(), "q01": (mean - 2 * std).tolist(),
            "q99": (mean + 2 * std).tolist(), "count": 100}
  metadata = RunMetadata(
      config={"data": {"cameras": ["front", "wrist"], "image_size": [image, image],
                       "normalization": "mean_std"}},
      statistics={"robot": {"joints": stats([0.1, -0.2, 0.3], [0.5, 1.0, 2.0]),
                            "proprio": stats([0.0, 0.5], [1.0, 0.25]),
                            "action": stats([0.0, 0.1, -0.1, 0.5], [0.5, 0.5, 1.0, 0.2])}},
      example_batch={},
      extra={"embodiments": ["toy_arm"], "datasets": ["robot"], "layouts": layouts})
  return model, metadata


def random_observation(policy, rng: np.random.Generator, scale: int = 2) -> dict:
  """An observation at ``scale`` times the model's image size (resized by the policy)."""
  h, w = policy.image_size
  obs = {f"image_{c}": rng.integers(0, 256, (h * scale, w * scale, 3), dtype=np.uint8)
         for c in policy.cameras}
  obs["joints"] = rng.normal(size=policy.joints.dim).astype(np.float32)
  obs["proprio"] = rng.normal(size=policy.proprio.dim).astype(np.float32)
  return obs


# ----------------------------------------------------------------------------- timing


def _summary(latencies_s: list[float]) -> dict[str, float]:
  ms = 1e3 * np.asarray(latencies_s)
  return {"count": int(ms.size), "median_ms": float(np.median(ms)),
          "p90_ms": float(np.percentile(ms, 90)), "p99_ms": float(np.percentile(ms, 99)),
          "mean_ms": float(ms.mean())}


def time_inprocess(policy, requests: int, seed: int = 0) -> dict[str, float]:
  """Latency of ``policy.act`` called directly on one session (after a warm-up act)."""
  rng = np.random.default_rng(seed)
  observation = random_observation(policy, rng)
  session = policy.new_session("pick up the cube")
  session, _ = policy.act(session, observation)
  latencies = []
  for _ in range(requests):
    start = time.perf_counter()
    session, actions = policy.act(session, observation)   # actions are on the host
    latencies.append(time.perf_counter() - start)
  del actions
  return _summary(latencies)


def time_served(policy, url: str, clients: int, requests: int) -> dict[str, Any]:
  """Round trips of ``clients`` concurrent clients, ``requests`` acts each."""
  from wam.serving.client import PolicyClient  # pylint: disable=import-outside-toplevel
  barrier = threading.Barrier(clients + 1)
  latencies: list[list[float]] = [[] for _ in range(clients)]
  failures: list[BaseException] = []

  def client(i: int) -> None:
    try:
      rng = np.random.default_rng(i)
      observation = random_observation(policy, rng)
      with PolicyClient(url) as c:
        c.reset("pick up the cube", seed=i)
        c.act(observation)   # warm: connection and session ready
        barrier.wait()
        for _ in range(requests):
          start = time.perf_counter()
          c.act(observation)
          latencies[i].append(time.perf_counter() - start)
    except BaseException as e:  # pylint: disable=broad-except  (reported below)
      failures.append(e)
      barrier.abort()
  threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
  for t in threads:
    t.start()
  try:
    barrier.wait()
  except threading.BrokenBarrierError:
    pass
  start = time.perf_counter()
  for t in threads:
    t.join()
  wall = time.perf_counter() - start
  if failures:
    raise RuntimeError(f"A benchmark client failed: {failures[0]!r}") from failures[0]
  chunks = clients * requests
  return {"clients": clients, **_summary([x for l in latencies for x in l]),
          "wall_s": wall, "chunks_per_s": chunks / wall,
          "actions_per_s": chunks * policy.action_chunk / wall}


def _time_server(policy, clients: int, requests: int, **server_options) -> dict[str, Any]:
  """``time_served`` against a fresh server (so its statistics are of this run alone),
  with the server's own view of it."""
  from wam.serving.runner import BackgroundServer  # pylint: disable=import-outside-toplevel
  with BackgroundServer(policy, log_every=0, **server_options) as server:
    measured = time_served(policy, server.url, clients, requests)
    metrics = server.server.metrics()
  measured["server_act"], measured["server_model"] = metrics["act"], metrics["model"]
  measured["server_batch_size"] = metrics["batch_size"]
  return measured


def _keep_best(best: dict[str, Any], key: str, measured: dict[str, Any]) -> None:
  if key not in best or measured["median_ms"] < best[key]["median_ms"]:
    best[key] = measured


def run(policy, *, clients: tuple[int, ...] = (1, 8), requests: int = 50, rounds: int = 3,
        batch_clients: int = 8, max_batch: int = 8, model_name: str = "") -> dict[str, Any]:
  """All measurements on ``policy`` (see module docstring); returns the results.

  The settings are measured in turn, ``rounds`` times over, and each keeps its round with
  the lowest median: on a shared machine the load drifts, and taking every setting's
  best round compares them under the same (least) interference.
  """
  import jax  # pylint: disable=import-outside-toplevel
  from wam.serving import batching  # pylint: disable=import-outside-toplevel
  # Every batch size compiled before any timing (each server's start is then a no-op).
  policy.warmup(batching.batch_sizes(max_batch))
  inprocess, served, compared = None, {}, {}
  for _ in range(rounds):
    measured = time_inprocess(policy, requests)
    if inprocess is None or measured["median_ms"] < inprocess["median_ms"]:
      inprocess = measured
    for n in clients:
      _keep_best(served, str(n), _time_server(policy, n, requests))
    if batch_clients:   # the two servers back to back, under the same load
      for key, size in (("unbatched", 1), ("batched", max_batch)):
        _keep_best(compared, key, _time_server(policy, batch_clients, requests,
                                               max_batch=size))
  first = served[str(clients[0])]
  results = {
      "model": model_name, "policy": policy.describe(),
      "machine": {"backend": jax.default_backend(), "devices": jax.device_count(),
                  "cpu_count": os.cpu_count(), "platform": platform.platform()},
      "requests_per_client": requests, "rounds": rounds, "inprocess": inprocess,
      "served": served,
      "serve_over_inprocess_latency": first["median_ms"] / inprocess["median_ms"],
  }
  if batch_clients:
    off, on = compared["unbatched"], compared["batched"]
    results["batching"] = {
        "clients": batch_clients, "max_batch": max_batch, **compared,
        "median_ratio": off["median_ms"] / on["median_ms"],
        "p90_ratio": off["p90_ms"] / on["p90_ms"],
        "throughput_ratio": on["chunks_per_s"] / off["chunks_per_s"]}
  return results


def _print(results: dict[str, Any]) -> None:
  inp = results["inprocess"]
  print(f"model: {results['model']}")
  print(f"in-process Policy.act: median {inp['median_ms']:.2f} ms, p99 {inp['p99_ms']:.2f} ms")
  for n, s in results["served"].items():
    print(f"served, {n} client(s): round trip median {s['median_ms']:.2f} ms, p99 "
          f"{s['p99_ms']:.2f} ms, {s['actions_per_s']:.0f} actions/s "
          f"({s['chunks_per_s']:.1f} chunks/s); server model call median "
          f"{s['server_model']['median_ms']:.2f} ms")
  print(f"serve_over_inprocess_latency: {results['serve_over_inprocess_latency']:.2f}")
  if "batching" in results:
    b = results["batching"]
    for key, size in (("unbatched", 1), ("batched", b["max_batch"])):
      s = b[key]
      print(f"{b['clients']} clients, max_batch={size}: round trip median "
            f"{s['median_ms']:.2f} ms, p90 {s['p90_ms']:.2f} ms, p99 {s['p99_ms']:.2f} ms, "
            f"{s['chunks_per_s']:.1f} chunks/s; mean batch "
            f"{s['server_batch_size']['mean']:.2f}")
    print(f"batching (max_batch=1 over max_batch={b['max_batch']}): median ratio "
          f"{b['median_ratio']:.2f}, p90 ratio {b['p90_ratio']:.2f}; throughput ratio "
          f"{b['throughput_ratio']:.2f}")


def main(argv):
  del argv
  from wam.policy import Policy  # pylint: disable=import-outside-toplevel
  if FLAGS.workdir:
    policy = Policy.from_workdir(FLAGS.workdir, FLAGS.step, flow_steps=FLAGS.flow_steps)
    name = f"trained: {FLAGS.workdir}"
  else:
    model, metadata = random_model(FLAGS.size)
    policy = Policy(model, metadata, flow_steps=FLAGS.flow_steps)
    name = f"random {FLAGS.size} model (no --workdir given; speed does not need weights)"
    print(f"No --workdir: using a {name}.", flush=True)
  results = run(policy, clients=tuple(int(c) for c in FLAGS.clients),
                requests=FLAGS.requests, rounds=FLAGS.rounds,
                batch_clients=FLAGS.batch_clients, max_batch=FLAGS.max_batch,
                model_name=name)
  _print(results)
  results_lib.write_json(FLAGS.out, results)


if __name__ == "__main__":
  define_flags()
  app.run(main)
