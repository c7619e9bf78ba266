"""An asyncio WebSocket server that serves a ``wam.policy.Policy`` to many clients.

Each connection owns its sessions (``reset`` opens one, ``close`` or the end of the
connection drops them), so clients never see each other's state. JAX calls are not
async: every model call runs in one worker thread, serialised (one device, one model),
while the event loop keeps reading and answering other connections and a checking
thread validates observations, so the model thread only ever sees arrays that fit.
Acts of different sessions waiting for the model thread together run as one batch of
up to ``max_batch`` (``wam.serving.batching``). A
bad message gets an error reply (``wam.serving.protocol``) and nothing else changes; an
unexpected exception is logged and answered ``internal``.

Everything a client can make the server hold is bounded: connections
(``max_connections``; one more is answered ``too_many_connections`` and closed),
sessions, each a KV cache on the device (``max_sessions`` in all,
``max_sessions_per_connection``; a ``reset`` beyond either is answered
``too_many_sessions``), and memory per connection: a message over
``max_message_bytes`` closes the connection (code 1009), and at most ``max_queue``
received frames wait unread before the server stops reading from that client.

Latency is measured per ``act`` from the message's arrival to its reply being ready
(queueing behind other clients included) and, separately, the model call alone; the
``metrics`` message returns their median and p99 and the sizes of the batches run
(``batch_size``), and they are logged every ``log_every`` requests.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import functools
import logging
import time
import uuid
from typing import Any, Optional

import jax
import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from wam.policy import InstructionError, ObservationError, Policy
from wam.serving import batching, memory, protocol

log = logging.getLogger(__name__)

# Counted in ``metrics()["errors"]``; not a reply: websockets closes the connection.
MESSAGE_TOO_BIG = "message_too_big"

# Defaults of the limits (docs/serving.md). Host memory for messages is about
# max_connections * max_message_bytes * (max_queue + 1): 768 MiB with these.
MAX_CONNECTIONS = 16
MAX_SESSIONS = 64                # KV caches on the device, all connections together
MAX_SESSIONS_PER_CONNECTION = 16
MAX_MESSAGE_BYTES = 16 * 2**20   # two 1080p RGB frames, or many smaller ones
MAX_QUEUE = 2                    # received frames waiting per connection
MAX_BATCH = 8                    # acts of different sessions in one model call
TRIM_EVERY_S = 30.0              # malloc_trim period (seconds; 0: never)


class LatencyStats:
  """A window of recent latencies (ms) and their count, median and p99."""

  def __init__(self, window: int = 10_000):
    self._recent: collections.deque = collections.deque(maxlen=window)
    self.count = 0

  def add(self, ms: float) -> None:
    self._recent.append(ms)
    self.count += 1

  def summary(self) -> dict[str, float]:
    """``{count, median_ms, p99_ms, mean_ms}`` (percentiles over the recent window)."""
    if not self._recent:
      return {"count": self.count, "median_ms": float("nan"), "p99_ms": float("nan"),
              "mean_ms": float("nan")}
    x = np.asarray(self._recent)
    return {"count": self.count, "median_ms": float(np.median(x)),
            "p99_ms": float(np.percentile(x, 99)), "mean_ms": float(x.mean())}


class _Connection:
  """One client's sessions; requests of a connection are handled in arrival order."""

  def __init__(self):
    self.sessions: dict[str, Any] = {}
    self.latest: Optional[str] = None


class PolicyServer:
  """Serves ``policy`` over WebSocket (see module docstring).

  Use ``async with PolicyServer(...) as server`` (or ``await start()``/``await stop()``)
  inside an event loop, or ``wam.serving.runner`` from synchronous code.
  """

  def __init__(self, policy: Policy, *, host: str = "127.0.0.1", port: int = 0,
               max_connections: int = MAX_CONNECTIONS, max_sessions: int = MAX_SESSIONS,
               max_sessions_per_connection: int = MAX_SESSIONS_PER_CONNECTION,
               max_message_bytes: int = MAX_MESSAGE_BYTES, max_queue: int = MAX_QUEUE,
               max_batch: int = MAX_BATCH, log_every: int = 1000,
               trim_every_s: float = TRIM_EVERY_S, memory_top: int = 0):
    """Configures the server (nothing is bound before ``start``).

    Args:
      policy: what to serve.
      host, port: where to listen (port 0: any free one).
      max_connections: open connections at once; one more gets an error and is closed.
      max_sessions: sessions (KV caches on the device) of all connections together.
      max_sessions_per_connection: sessions one connection may hold.
      max_message_bytes: the largest message received; a larger one closes its
        connection (WebSocket code 1009).
      max_queue: received frames buffered per connection before reading pauses.
      max_batch: the most acts (of different sessions) one model call serves; 1 runs
        every act alone.
      log_every: log the metrics every this many requests (0: never).
      trim_every_s: return the C heap's freed pages to the system this often
        (``malloc_trim``, off the event loop; 0: never). Without it RSS keeps the
        heap's high-water mark and creeps as freed chunks fragment
        (docs/RELIABILITY.md, "Where the memory goes").
      memory_top: with Python allocations traced (``memory.start_tracing``), the
        metrics list this many of the largest source lines held (0: none; a snapshot
        costs about a second on a served model: for diagnosis).
    """
    self.limits = {"max_connections": max_connections, "max_sessions": max_sessions,
                   "max_sessions_per_connection": max_sessions_per_connection,
                   "max_message_bytes": max_message_bytes, "max_queue": max_queue}
    for name, value in self.limits.items():
      if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    self.policy = policy
    self.host, self.port = host, port
    self.max_connections = max_connections
    self.max_sessions = max_sessions
    self.max_sessions_per_connection = max_sessions_per_connection
    self.max_message_bytes = max_message_bytes
    self.max_queue = max_queue
    self.log_every = log_every
    self.memory_top = memory_top
    if trim_every_s < 0:
      raise ValueError(f"trim_every_s must be >= 0, got {trim_every_s!r}.")
    self.trim_every_s = trim_every_s
    self.trims = 0
    self._trimmer: Optional[asyncio.Task] = None
    self._batcher = batching.ActBatcher(policy, max_batch)   # raises on a bad max_batch
    self.latency = LatencyStats()        # arrival -> reply ready, act requests
    self.model_latency = LatencyStats()  # the model call alone
    self.errors: collections.Counter = collections.Counter()
    self.requests = 0
    self.connections = 0
    self.sessions = 0     # held or being created (reserved before the model call)
    self.session_bytes: Optional[int] = None   # device bytes of one session, about
    self._started = time.monotonic()
    self._server = None
    self._worker: Optional[concurrent.futures.ThreadPoolExecutor] = None
    self._checker: Optional[concurrent.futures.ThreadPoolExecutor] = None

  # ------------------------------------------------------------------ lifecycle

  @property
  def url(self) -> str:
    if self._server is None:
      raise RuntimeError("The server is not started.")
    port = self._server.sockets[0].getsockname()[1]
    host = f"[{self.host}]" if ":" in self.host else self.host
    return f"ws://{host}:{port}"

  async def start(self) -> str:
    """Compiles the batch sizes, binds and starts accepting connections; returns the URL
    (``ws://host:port``)."""
    self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="policy")
    # Each batch size compiles once (a no-op when compiled before): now rather than in
    # the middle of serving, where it would stall every client for seconds.
    await self._in_worker(self.policy.warmup, batching.batch_sizes(self._batcher.max_batch))
    # Observations are checked (and resized) off the event loop, which keeps answering,
    # and off the model thread, which only ever gets arrays that fit.
    self._checker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="check")
    self._started = time.monotonic()
    # No compression: frames are mostly images and vectors, deflate costs more than it
    # saves on a LAN. Keepalive pings stay on so dead clients free their sessions.
    # websockets' default queue (16 frames of max_size each) would let one client park
    # a gigabyte here; past max_queue frames the server stops reading from it (TCP
    # backpressure) until it has answered.
    self._server = await serve(self._handle, self.host, self.port, compression=None,
                               max_size=self.max_message_bytes, max_queue=self.max_queue)
    if self.trim_every_s:
      self._trimmer = asyncio.create_task(self._trim_periodically())
    log.info("Serving the policy at %s (%s).", self.url, self.policy.describe())
    return self.url

  async def stop(self) -> None:
    """Closes every connection, stops listening and waits for the model worker."""
    if self._trimmer is not None:
      self._trimmer.cancel()
    if self._server is not None:
      self._server.close()
      await self._server.wait_closed()
    for executor in (self._checker, self._worker):
      if executor is not None:
        executor.shutdown(wait=True)
    log.info("Policy server stopped: %s", self.metrics())

  async def __aenter__(self) -> "PolicyServer":
    await self.start()
    return self

  async def __aexit__(self, *exc) -> None:
    await self.stop()

  async def serve_until(self, stop: asyncio.Event) -> None:
    """Starts, serves until ``stop`` is set, then stops cleanly."""
    async with self:
      await stop.wait()

  async def _trim_periodically(self) -> None:
    """``memory.trim`` every ``trim_every_s`` in the checking thread (it locks the
    allocator's arenas for a few milliseconds; the event loop keeps answering)."""
    loop = asyncio.get_running_loop()
    while True:
      await asyncio.sleep(self.trim_every_s)
      await loop.run_in_executor(self._checker, memory.trim)
      self.trims += 1

  # ------------------------------------------------------------------ metrics

  def metrics(self) -> dict[str, Any]:
    """Request counts, errors by type, act latencies, batch sizes, limits and the
    process's memory (``wam.serving.memory.usage``; JSON-friendly)."""
    return {"requests": self.requests, "errors": dict(self.errors),
            "connections": self.connections, "sessions": self.sessions,
            "session_bytes": self.session_bytes, "limits": dict(self.limits),
            "uptime_s": time.monotonic() - self._started,
            "act": self.latency.summary(), "model": self.model_latency.summary(),
            "batch_size": self._batcher.stats.summary(), "policy": self.policy.describe(),
            "memory": {**memory.usage(self.memory_top), "trims": self.trims}}

  # ------------------------------------------------------------------ handling

  async def _handle(self, ws: ServerConnection) -> None:
    if self.connections >= self.max_connections:
      await self._refuse(ws)
      return
    conn = _Connection()
    self.connections += 1   # no await since the check: no other handler in between
    log.info("Client %s connected.", ws.remote_address)
    try:
      async for data in ws:
        arrived = time.perf_counter()
        reply = await self._reply(conn, data, arrived)
        try:
          await ws.send(protocol.encode(reply))
        except TypeError as e:   # a bug: our own reply did not encode
          log.exception("Reply did not encode.")
          await ws.send(protocol.encode(protocol.error(protocol.INTERNAL, str(e))))
    except ConnectionClosed as e:
      if e.sent is not None and e.sent.code == CloseCode.MESSAGE_TOO_BIG:
        self.errors[MESSAGE_TOO_BIG] += 1
        log.warning("Client %s sent a message over max_message_bytes=%d; closed it.",
                    ws.remote_address, self.max_message_bytes)
    finally:
      self.connections -= 1
      self.sessions -= len(conn.sessions)
      log.info("Client %s left (%d sessions dropped).", ws.remote_address,
               len(conn.sessions))

  async def _refuse(self, ws: ServerConnection) -> None:
    """Answers a connection over ``max_connections`` with an error, then closes it."""
    message = (f"The server holds {self.connections} connections, the limit "
               f"(max_connections={self.max_connections}); try again later.")
    self.errors[protocol.TOO_MANY_CONNECTIONS] += 1
    log.warning("Refused client %s: %s", ws.remote_address, message)
    try:
      await ws.send(protocol.encode(protocol.error(protocol.TOO_MANY_CONNECTIONS, message)))
      await ws.close(CloseCode.TRY_AGAIN_LATER,
                     f"too many connections (max_connections={self.max_connections})")
    except ConnectionClosed:
      pass

  async def _reply(self, conn: _Connection, data: Any, arrived: float) -> dict[str, Any]:
    """The reply to one frame; never raises."""
    self.requests += 1
    request_id = None
    try:
      message = protocol.decode(data)
      request_id = message.get("id")
      kind = protocol.check_request(message)
      if kind == protocol.RESET:
        reply = await self._reset(conn, message)
      elif kind == protocol.ACT:
        reply = await self._act(conn, message, arrived)
      elif kind == protocol.METRICS:
        reply = {"metrics": self.metrics()}
      else:
        reply = self._close(conn, message)
      reply = {"type": kind, **reply}
    except protocol.ProtocolError as e:
      reply = self._error(e.kind, str(e))
    except ObservationError as e:
      reply = self._error(protocol.OBSERVATION, str(e))
    except InstructionError as e:
      reply = self._error(protocol.INSTRUCTION, str(e))
    except Exception as e:  # pylint: disable=broad-except  (one request must not end the server)
      log.exception("Internal error while serving a request.")
      reply = self._error(protocol.INTERNAL, f"{type(e).__name__}: {e}")
    if request_id is not None:
      reply["id"] = request_id
    if self.log_every and self.requests % self.log_every == 0:
      log.info("%d requests; act latency %s; batch sizes %s; errors %s.", self.requests,
               self.latency.summary(), self._batcher.stats.summary(), dict(self.errors))
    return reply

  def _error(self, kind: str, message: str) -> dict[str, Any]:
    self.errors[kind] += 1
    return protocol.error(kind, message)

  async def _in_worker(self, fn, *args):
    """Runs ``fn(*args)`` in the model thread (serialised with every other model call)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(self._worker, functools.partial(fn, *args))

  def _session_id(self, conn: _Connection, message: dict) -> str:
    session_id = message.get("session_id", conn.latest)
    if session_id is None:
      raise protocol.ProtocolError(protocol.UNKNOWN_SESSION,
                                   "No session: send 'reset' first (or give session_id).")
    if not isinstance(session_id, str) or session_id not in conn.sessions:
      raise protocol.ProtocolError(protocol.UNKNOWN_SESSION,
                                   f"Unknown session_id {session_id!r} on this connection.")
    return session_id

  async def _reset(self, conn: _Connection, message: dict) -> dict[str, Any]:
    seed = message.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or not -2**31 <= seed < 2**31:
      raise protocol.ProtocolError(protocol.INVALID_FIELD,
                                   f"seed must be a 32-bit integer, got {seed!r}.")
    encoding = message.get("encoding")
    if encoding is not None and not isinstance(encoding, str):
      raise protocol.ProtocolError(protocol.INVALID_FIELD,
                                   f"encoding must be a string, got {encoding!r}.")
    if len(conn.sessions) >= self.max_sessions_per_connection:
      raise protocol.ProtocolError(
          protocol.TOO_MANY_SESSIONS,
          f"This connection holds {len(conn.sessions)} sessions, the limit "
          f"(max_sessions_per_connection={self.max_sessions_per_connection}); close some "
          "first.")
    if self.sessions >= self.max_sessions:
      raise protocol.ProtocolError(
          protocol.TOO_MANY_SESSIONS,
          f"The server holds {self.sessions} sessions, the limit "
          f"(max_sessions={self.max_sessions}); close some or try again later.")
    # Checked here too so that a bad instruction never occupies the model thread.
    self.policy.encode_instruction(message["instruction"], encoding)
    # Reserved before the model call, during which other connections' resets run.
    self.sessions += 1
    try:
      session = await self._in_worker(
          functools.partial(self.policy.new_session, seed=seed, encoding=encoding),
          message["instruction"])
    except BaseException:
      self.sessions -= 1
      raise
    if self.session_bytes is None:
      self.session_bytes = _session_bytes(session)
    session_id = uuid.uuid4().hex
    conn.sessions[session_id] = session
    conn.latest = session_id
    return {"session_id": session_id, "policy": self.policy.describe()}

  async def _act(self, conn: _Connection, message: dict, arrived: float) -> dict[str, Any]:
    session_id = self._session_id(conn, message)
    loop = asyncio.get_running_loop()
    observation = await loop.run_in_executor(self._checker, self.policy.check_observation,
                                             message["observation"])
    # Only a checked observation is queued: a bad one never joins (or breaks) a batch.
    future = self._batcher.submit(session_id, conn.sessions[session_id], observation)
    # One model-thread turn per act, queued behind any reset already there. A turn runs
    # the acts waiting when it starts: an earlier turn may have taken this one already.
    self._worker.submit(self._batcher.run_pending)
    result = await asyncio.wrap_future(future)
    session = result.session
    if session_id in conn.sessions:   # unless closed meanwhile
      conn.sessions[session_id] = session
    latency_ms = 1e3 * (time.perf_counter() - arrived)
    self.latency.add(latency_ms)
    self.model_latency.add(1e3 * result.model_s)
    return {"actions": result.actions, "latency_ms": latency_ms, "step": session.step,
            "session_id": session_id}

  def _close(self, conn: _Connection, message: dict) -> dict[str, Any]:
    if "session_id" in message:
      closed = [self._session_id(conn, message)]
    else:
      closed = list(conn.sessions)
    for session_id in closed:
      del conn.sessions[session_id]
    if conn.latest in closed:
      conn.latest = None
    self.sessions -= len(closed)
    return {"closed": closed}


def _session_bytes(session) -> int:
  """Device bytes a session holds once it has acted: the prefix and a window's cache
  (both of the full window's size)."""
  return 2 * sum(int(x.nbytes) for x in jax.tree.leaves(getattr(session, "prefix", ())))
