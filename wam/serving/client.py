"""A synchronous client of the policy server (``wam.serving.server``).

  with PolicyClient("ws://127.0.0.1:8765") as policy:
    policy.reset("put the red block in the bowl")
    while True:
      actions = policy.act({"image_front": frame, "joints": joints})  # f32 [chunk, A]

Imports only numpy, msgpack and websockets (no JAX), so it runs on a robot's computer.

Every request carries an ``id`` that the server echoes. After a timeout the late reply
is still on its way; the client remembers the id and discards that reply (with a
warning) when it comes, so a later ``act`` never returns the chunk computed for an
earlier observation. A reply without an id (a server that does not echo them) is
taken as the answer to the oldest timed-out request while any is pending, since such a
server answers in order, and as the answer to the current request otherwise.
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any, Mapping, NoReturn, Optional

import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

# Relative, so that this module and protocol.py also work installed under another package
# name without the rest of wam (clients/gymnasium ships them as wam_gym_client.serving).
from . import protocol

log = logging.getLogger(__name__)


class PolicyServerError(RuntimeError):
  """The server answered a request with an error; ``type`` is its error type."""

  def __init__(self, kind: str, message: str):
    super().__init__(f"{kind}: {message}")
    self.type = kind
    self.message = message


class PolicyClient:
  """One connection to a policy server; each reply is matched to its request by id."""

  def __init__(self, url: str, *, timeout: Optional[float] = 60.0,
               max_message_bytes: int = 64 * 2**20):
    """Connects to ``url`` (``ws://host:port``); ``timeout`` bounds each reply (s)."""
    self.url = url
    self.timeout = timeout
    self.session_id: Optional[str] = None
    self.last_reply: dict[str, Any] = {}   # e.g. latency_ms and step of the last act
    self._ids = itertools.count(1)
    # Requests that timed out, id -> type, oldest first: their replies are discarded.
    self._late: dict[Any, str] = {}
    self._server_echoes_ids = False   # seen a reply with an id on this connection
    self._ws = connect(url, compression=None, max_size=max_message_bytes,
                       open_timeout=timeout)

  def request(self, message: Mapping[str, Any]) -> dict[str, Any]:
    """Sends one request (given a fresh ``id`` unless it has one) and returns its reply.

    Raises:
      PolicyServerError: the server answered with an error.
      TimeoutError: no reply within ``timeout``; the connection stays usable and the
        late reply, should it come, is discarded.
    """
    message = dict(message)
    message.setdefault("id", next(self._ids))
    return self._exchange(protocol.encode(message), message["id"],
                          str(message.get("type")))

  def request_bytes(self, data: bytes) -> dict[str, Any]:
    """Sends one raw frame (for testing the server's defences) and returns its reply.

    The reply is matched by the frame's own ``id``, if it is a map that has one.
    """
    try:
      message = protocol.decode(data)
      request_id, kind = message.get("id"), str(message.get("type"))
    except protocol.ProtocolError:
      request_id, kind = None, "raw"
    return self._exchange(data, request_id, kind)

  def _exchange(self, data: bytes, request_id: Any, kind: str) -> dict[str, Any]:
    try:
      self._ws.send(data)
    except ConnectionClosed as e:
      self._raise_parting_error(e)
    deadline = None if self.timeout is None else time.monotonic() + self.timeout
    while True:
      remaining = None if deadline is None else deadline - time.monotonic()
      try:
        reply = protocol.decode(self._ws.recv(timeout=remaining))
      except ConnectionClosed as e:
        self._raise_parting_error(e)
      except TimeoutError:
        if request_id is not None:
          self._late[request_id] = kind
        raise TimeoutError(
            f"No reply from {self.url} to the {kind!r} request (id {request_id!r}) within "
            f"{self.timeout} s; its reply will be discarded if it comes later.") from None
      if self._answers(reply, request_id):
        break
    if "error" in reply:
      raise PolicyServerError(str(reply["error"].get("type")), str(reply["error"].get("message")))
    self.last_reply = reply
    return reply

  def _raise_parting_error(self, closed: ConnectionClosed) -> NoReturn:
    """Raises the error the server sent before closing the connection (e.g.
    ``too_many_connections``) as ``PolicyServerError``, else ``closed``."""
    while True:
      try:   # frames received before the close are still readable
        reply = protocol.decode(self._ws.recv(timeout=0))
      except (ConnectionClosed, TimeoutError, protocol.ProtocolError):
        raise closed from None
      if "error" in reply and "id" not in reply:
        raise PolicyServerError(str(reply["error"].get("type")),
                                str(reply["error"].get("message"))) from closed

  def _answers(self, reply: Mapping[str, Any], request_id: Any) -> bool:
    """Whether ``reply`` answers request ``request_id``; logs and forgets a stale one."""
    reply_id = reply.get("id")
    if reply_id is not None:
      self._server_echoes_ids = True
      if reply_id == request_id:
        return True
      kind = self._late.pop(reply_id, None)
      log.warning("Discarding a reply to %s (id %r) from %s while waiting for id %r.",
                  f"a timed-out {kind!r} request" if kind else "an unknown request",
                  reply_id, self.url, request_id)
      return False
    # No id. A server that echoes ids sends none only to a frame it could not read
    # (ours, then); one that never echoes answers in order, so while requests are late
    # this is the reply to the oldest of them.
    if self._late and not self._server_echoes_ids:
      late_id, kind = next(iter(self._late.items()))
      del self._late[late_id]
      log.warning("Discarding a reply without id from %s: taken as the late reply to the "
                  "timed-out %r request (id %r); the server does not echo ids.",
                  self.url, kind, late_id)
      return False
    return True

  def reset(self, instruction: str, *, seed: int = 0,
            encoding: Optional[str] = None) -> str:
    """Starts a session following ``instruction``; later ``act`` calls use it.

    Returns:
      The session id (pass it to ``act`` to interleave several sessions).
    """
    message = {"type": protocol.RESET, "instruction": instruction, "seed": seed}
    if encoding is not None:
      message["encoding"] = encoding
    self.session_id = self.request(message)["session_id"]
    return self.session_id

  def act(self, observation: Mapping[str, Any], session_id: Optional[str] = None
          ) -> np.ndarray:
    """The next action chunk f32 [chunk, A] (robot units) after ``observation``."""
    message = {"type": protocol.ACT, "observation": dict(observation)}
    if session_id is not None or self.session_id is not None:
      message["session_id"] = session_id or self.session_id
    return self.request(message)["actions"]

  def metrics(self) -> dict[str, Any]:
    """The server's metrics (request counts, errors, act latency median/p99)."""
    return self.request({"type": protocol.METRICS})["metrics"]

  def close_session(self, session_id: Optional[str] = None) -> list[str]:
    """Drops one session (default: all of this connection's); returns the ids dropped."""
    message = {"type": protocol.CLOSE}
    if session_id is not None:
      message["session_id"] = session_id
    closed = self.request(message)["closed"]
    if self.session_id in closed:
      self.session_id = None
    return closed

  def close(self) -> None:
    """Closes the connection (the server drops its sessions)."""
    self._ws.close()

  def __enter__(self) -> "PolicyClient":
    return self

  def __exit__(self, *exc) -> None:
    self.close()
