r"""Serves a trained world action model as a policy over WebSocket.

  python -m experiments.serve --workdir=workdir/wam [--host=127.0.0.1 --port=8765 \
      --step=STEP --flow_steps=1 --max_connections=16 --max_sessions=64 \
      --max_sessions_per_connection=16 --max_message_mib=16 --max_queue=2 --max_batch=8 \
      --trim_every_s=30 --malloc_arenas=2 --trace_memory=0]

Loads the checkpoint (``wam.policy.Policy.from_workdir``), compiles the policy, prints
the URL and serves until Ctrl-C or SIGTERM (then closes every connection cleanly).
Clients: ``wam.serving.client.PolicyClient``; protocol, limits and figures:
``docs/serving.md``.
"""

from __future__ import annotations

import os

from absl import app, flags, logging

_WORKDIR = flags.DEFINE_string("workdir", None, "A trained WAM run (or its checkpoints/).")
_HOST = flags.DEFINE_string("host", "127.0.0.1", "Interface to listen on (0.0.0.0: all).")
_PORT = flags.DEFINE_integer("port", 8765, "TCP port (0: any free one).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
_FLOW_STEPS = flags.DEFINE_integer("flow_steps", 1, "Euler steps per action chunk.")
_DATASET = flags.DEFINE_string("dataset", None,
                               "Whose statistics normalise the robot's vectors "
                               "(default: the run's first dataset).")
# Limits (docs/serving.md): what clients can make the server hold, and batching. The
# defaults are wam.serving.server.MAX_* (repeated: the server module imports JAX).
_MAX_CONNECTIONS = flags.DEFINE_integer(
    "max_connections", 16, "Open connections at once; one more gets an error, then closed.")
_MAX_SESSIONS = flags.DEFINE_integer(
    "max_sessions", 64, "Sessions of all clients together (each a KV cache on the device).")
_MAX_SESSIONS_PER_CONNECTION = flags.DEFINE_integer(
    "max_sessions_per_connection", 16, "Sessions one connection may hold.")
_MAX_MESSAGE_MIB = flags.DEFINE_float(
    "max_message_mib", 16, "Largest message received (MiB); a larger one closes the "
    "connection.")
_MAX_QUEUE = flags.DEFINE_integer(
    "max_queue", 2, "Received frames buffered per connection before reading pauses.")
_MAX_BATCH = flags.DEFINE_integer(
    "max_batch", 8, "Most acts of different sessions run in one model call when they "
    "wait together (1: each alone).")
_TRIM_EVERY_S = flags.DEFINE_float(
    "trim_every_s", 30, "Return the C heap's freed pages to the system this often "
    "(malloc_trim; 0: never; docs/RELIABILITY.md).")
_MALLOC_ARENAS = flags.DEFINE_integer(
    "malloc_arenas", 2, "Cap glibc's malloc arenas (fewer arenas, less fragmentation; "
    "0: glibc's default; an explicit MALLOC_ARENA_MAX in the environment wins).")
_TRACE_MEMORY = flags.DEFINE_integer(
    "trace_memory", 0, "Diagnosis: trace Python allocations from the first client on and "
    "list this many of the largest source lines in the metrics (0: off; slows serving).")
flags.mark_flags_as_required(["workdir"])


def main(argv):
  del argv
  # pylint: disable=import-outside-toplevel  (flags parse before JAX starts)
  from wam.serving import memory
  if _MALLOC_ARENAS.value and "MALLOC_ARENA_MAX" not in os.environ:
    memory.limit_arenas(_MALLOC_ARENAS.value)   # before JAX's threads allocate
  from wam.policy import Policy
  from wam.serving import runner
  policy = Policy.from_workdir(_WORKDIR.value, _STEP.value, flow_steps=_FLOW_STEPS.value,
                               dataset=_DATASET.value)
  logging.info("Loaded %s: %s", _WORKDIR.value, policy.describe())
  policy.warmup()   # compile now, not on the first client's request
  if _TRACE_MEMORY.value:   # after loading and compiling: what serving itself holds
    memory.start_tracing()
  runner.serve_until_signalled(
      policy, host=_HOST.value, port=_PORT.value,
      on_ready=lambda url: print(f"Serving {_WORKDIR.value} at {url}", flush=True),
      max_connections=_MAX_CONNECTIONS.value, max_sessions=_MAX_SESSIONS.value,
      max_sessions_per_connection=_MAX_SESSIONS_PER_CONNECTION.value,
      max_message_bytes=int(_MAX_MESSAGE_MIB.value * 2**20), max_queue=_MAX_QUEUE.value,
      max_batch=_MAX_BATCH.value, trim_every_s=_TRIM_EVERY_S.value,
      memory_top=_TRACE_MEMORY.value)


if __name__ == "__main__":
  app.run(main)
