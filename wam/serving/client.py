"""A synchronous client of the policy server (``wam.serving.server``).

  with PolicyClient("ws://127.0.0.1:8765") as policy:
    policy.reset("put the red block in the bowl")
    while True:
      actions = policy.act({"image_front": frame, "joints": joints})  # f32 [chunk, A]

Imports only numpy, msgpack and websockets (no JAX), so it runs on a robot's computer.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np
from websockets.sync.client import connect

from wam.serving import protocol


class PolicyServerError(RuntimeError):
  """The server answered a request with an error; ``type`` is its error type."""

  def __init__(self, kind: str, message: str):
    super().__init__(f"{kind}: {message}")
    self.type = kind
    self.message = message


class PolicyClient:
  """One connection to a policy server; requests are answered in order."""

  def __init__(self, url: str, *, timeout: Optional[float] = 60.0,
               max_message_bytes: int = 64 * 2**20):
    """Connects to ``url`` (``ws://host:port``); ``timeout`` bounds each reply (s)."""
    self.url = url
    self.timeout = timeout
    self.session_id: Optional[str] = None
    self.last_reply: dict[str, Any] = {}   # e.g. latency_ms and step of the last act
    self._ws = connect(url, compression=None, max_size=max_message_bytes,
                       open_timeout=timeout)

  def request(self, message: Mapping[str, Any]) -> dict[str, Any]:
    """Sends one request and returns its reply.

    Raises:
      PolicyServerError: the server answered with an error.
      TimeoutError: no reply within ``timeout``.
    """
    return self.request_bytes(protocol.encode(message))

  def request_bytes(self, data: bytes) -> dict[str, Any]:
    """Sends one raw frame (for testing the server's defences) and returns its reply."""
    self._ws.send(data)
    reply = protocol.decode(self._ws.recv(timeout=self.timeout))
    if "error" in reply:
      raise PolicyServerError(str(reply["error"].get("type")), str(reply["error"].get("message")))
    self.last_reply = reply
    return reply

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
