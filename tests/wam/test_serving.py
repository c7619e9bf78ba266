"""The policy server: real WebSocket server on loopback, real clients, a tiny model."""

import math
import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.sync.server import serve

from benchmarks import serve as serve_benchmark
from benchmarks import serve_fuzz
from wam.policy import BATCH_TOLERANCE, Policy
from wam.serving import protocol
from wam.serving.client import PolicyClient, PolicyServerError
from wam.serving.runner import BackgroundServer
from tests.wam.serving_fixtures import inprocess_actions, random_episode, wait_for
from tests.wam.test_policy import write_run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def built():
  return serve_benchmark.random_model("tiny")


@pytest.fixture(scope="module")
def policy(built):
  policy = Policy(*built)
  policy.warmup()
  return policy


@pytest.fixture(scope="module")
def server(policy):
  with BackgroundServer(policy, log_every=5) as server:
    yield server


def test_protocol_round_trips_arrays_and_refuses_objects():
  message = {"type": "act", "observation": {
      "image_front": np.arange(48, dtype=np.uint8).reshape(4, 4, 3),
      "joints": np.array([1.5, -2.0], np.float32), "big": np.arange(6.0).reshape(2, 3)[:, ::2],
      "flag": np.bool_(True)}, "seed": np.int64(3)}
  back = protocol.decode(protocol.encode(message))
  for key, value in message["observation"].items():
    np.testing.assert_array_equal(back["observation"][key], value)
    assert np.asarray(back["observation"][key]).dtype == np.asarray(value).dtype
  assert back["seed"] == 3 and back["type"] == "act"
  with pytest.raises(TypeError, match="dtype object"):
    protocol.encode({"x": np.array([{"a": 1}], dtype=object)})
  bad = {"__ndarray__": True, "dtype": "|O", "shape": [1], "data": b"12345678"}
  with pytest.raises(protocol.ProtocolError, match="refused"):
    protocol.decode(protocol.encode({"x": bad}))
  short = {"__ndarray__": True, "dtype": "<f4", "shape": [3], "data": b"1234"}
  with pytest.raises(protocol.ProtocolError, match="needs 12"):
    protocol.decode(protocol.encode({"x": short}))
  with pytest.raises(protocol.ProtocolError, match="map"):
    protocol.decode(b"\x93\x01\x02\x03")   # the msgpack array [1, 2, 3]
  # A declared shape whose size overflows int64 (to 0 bytes here) is still refused.
  wraps = {"__ndarray__": True, "dtype": "<f4", "shape": [2**62, 4], "data": b""}
  with pytest.raises(protocol.ProtocolError, match=f"needs {2**66}"):
    protocol.decode(protocol.encode({"x": wraps}))


def test_concurrent_clients_match_the_in_process_policy(policy, server):
  """Three clients at once, each with its own session: the actions Policy.act gives."""
  steps = policy.window + 2   # across a restart of the context
  specs = [("open the drawer", 1), ("close the drawer", 2), ("wave", 3)]
  expected = {s: inprocess_actions(policy, i, s, random_episode(policy, s, steps)) for i, s in specs}
  got, failures = {}, []
  start = threading.Barrier(len(specs))

  def client(instruction, seed):
    try:
      with PolicyClient(server.url) as c:
        c.reset(instruction, seed=seed)
        start.wait()
        got[seed] = [c.act(obs) for obs in random_episode(policy, seed, steps)]
        assert c.last_reply["step"] == steps
    except BaseException as e:  # pylint: disable=broad-except
      failures.append(e)
  threads = [threading.Thread(target=client, args=spec) for spec in specs]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  if failures:  # re-raised here, with the thread's traceback
    raise failures[0]
  for _, seed in specs:
    for a, b in zip(got[seed], expected[seed]):
      assert a.dtype == np.float32 and a.shape == (policy.action_chunk, 4)
      # Acts that arrive together run as one batch: equal up to float rounding.
      np.testing.assert_allclose(a, b, rtol=BATCH_TOLERANCE, atol=BATCH_TOLERANCE)


def test_one_connection_interleaves_sessions(policy, server):
  obs_a, obs_b = random_episode(policy, 4, 2), random_episode(policy, 5, 2)
  with PolicyClient(server.url) as c:
    a = c.reset("pick", seed=4)
    b = c.reset("place", seed=5)
    got_a, got_b = [], []
    for i in range(2):
      got_a.append(c.act(obs_a[i], session_id=a))
      got_b.append(c.act(obs_b[i], session_id=b))
    assert c.close_session(a) == [a]
    with pytest.raises(PolicyServerError, match="unknown_session"):
      c.act(obs_a[0], session_id=a)
  np.testing.assert_allclose(got_a, inprocess_actions(policy, "pick", 4, obs_a), atol=1e-6)
  np.testing.assert_allclose(got_b, inprocess_actions(policy, "place", 5, obs_b), atol=1e-6)


def _bad_requests(policy):
  good = random_episode(policy, 6, 1)[0]
  return [
      (b"\xc1 not msgpack", protocol.MALFORMED, "Not a msgpack message"),
      (protocol.encode({"type": "fly"}), protocol.UNKNOWN_TYPE, "Unknown message type 'fly'"),
      (protocol.encode({"instruction": "x"}), protocol.UNKNOWN_TYPE, "None"),
      (protocol.encode({"type": "reset"}), protocol.MISSING_FIELD, "instruction"),
      (protocol.encode({"type": "reset", "instruction": "x", "encoding": "t5"}),
       protocol.INSTRUCTION, "encoding 't5' is unknown"),
      (protocol.encode({"type": "reset", "instruction": "x" * 25}),
       protocol.INSTRUCTION, "25 utf-8 bytes"),
      (protocol.encode({"type": "reset", "instruction": "x", "seed": "one"}),
       protocol.INVALID_FIELD, "seed must be a 32-bit integer"),
      (protocol.encode({"type": "reset", "instruction": "x", "seed": 2**40}),
       protocol.INVALID_FIELD, "seed must be a 32-bit integer"),
      (protocol.encode({"type": "act", "observation": good}), protocol.UNKNOWN_SESSION,
       "send 'reset' first"),
      (protocol.encode({"type": "reset", "instruction": "ok"}), None, None),
      (protocol.encode({"type": "act"}), protocol.MISSING_FIELD, "observation"),
      (protocol.encode({"type": "act", "observation": {
          **good, "image_front": good["image_front"][:15, :15]}}),
       protocol.OBSERVATION, "15x15 does not rescale"),
      (protocol.encode({"type": "act", "observation": {
          **good, "image_front": good["image_front"].astype(np.float32)}}),
       protocol.OBSERVATION, "must be uint8"),
      (protocol.encode({"type": "act", "observation": {
          **good, "image_top": good["image_front"]}}),
       protocol.OBSERVATION, "Unknown camera 'top'"),
      (protocol.encode({"type": "act", "observation": good, "session_id": "nope"}),
       protocol.UNKNOWN_SESSION, "'nope'"),
      (protocol.encode({"type": "act", "observation": good}), None, None),
  ]


def test_bad_messages_get_error_replies_and_others_keep_being_served(policy, server):
  observations = random_episode(policy, 7, policy.window + 1)
  expected = inprocess_actions(policy, "steady", 7, observations)
  with PolicyClient(server.url) as good, PolicyClient(server.url) as bad:
    good.reset("steady", seed=7)
    for i, (data, kind, match) in enumerate(_bad_requests(policy)):
      if kind is None:  # a valid request between bad ones: the connection still works
        assert "error" not in bad.request_bytes(data)
      else:
        with pytest.raises(PolicyServerError) as info:
          bad.request_bytes(data)
        assert info.value.type == kind and match in info.value.message, info.value
      if i < len(observations):  # the other client, interleaved, is unaffected
        np.testing.assert_allclose(good.act(observations[i]), expected[i], atol=1e-6)
    # A text frame is refused the same way.
    bad._ws.send("hello")  # pylint: disable=protected-access
    reply = protocol.decode(bad._ws.recv(timeout=30))  # pylint: disable=protected-access
    assert reply["error"]["type"] == protocol.MALFORMED
    metrics = bad.metrics()
  assert metrics["errors"][protocol.OBSERVATION] >= 3
  assert metrics["errors"][protocol.MALFORMED] >= 2


def test_metrics_report_latencies(policy, server):
  with PolicyClient(server.url) as c:
    c.reset("measure me")
    for obs in random_episode(policy, 8, 3):
      c.act(obs)
      assert c.last_reply["latency_ms"] > 0
    metrics = c.metrics()
  act = metrics["act"]
  assert act["count"] >= 3
  assert 0 < act["median_ms"] <= act["p99_ms"] and math.isfinite(act["p99_ms"])
  assert 0 < metrics["model"]["median_ms"] <= act["p99_ms"]
  assert metrics["policy"]["cameras"] == ["front", "wrist"]
  assert metrics["requests"] >= 5 and metrics["connections"] >= 1
  assert metrics["batch_size"]["acts"] >= 3 and metrics["batch_size"]["mean"] >= 1
  assert metrics["memory"]["rss_mib"] > 50      # a process with JAX and a model loaded
  assert metrics["memory"]["python"] is None    # traced only when asked (--trace_memory)


def test_clean_shutdown_closes_clients(policy):
  background = BackgroundServer(policy)
  url = background.start()
  client = PolicyClient(url)
  client.reset("bye")
  with connect(url) as raw:
    background.stop()
    with pytest.raises(ConnectionClosed):
      raw.recv(timeout=10)
  with pytest.raises(ConnectionClosed):
    client.act(random_episode(policy, 9, 1)[0])
  assert not background._thread.is_alive()  # pylint: disable=protected-access
  with pytest.raises(OSError):
    PolicyClient(url, timeout=5)


def test_server_trims_the_heap_periodically_and_stops_cleanly(policy):
  """``trim_every_s``: malloc_trim runs off the event loop while clients are served, and
  the server keeps answering and stops cleanly."""
  with pytest.raises(ValueError, match="trim_every_s"):
    BackgroundServer(policy, trim_every_s=-1)
  with BackgroundServer(policy, trim_every_s=0.05) as background:
    with PolicyClient(background.url) as c:
      c.reset("trim")
      c.act(random_episode(policy, 11, 1)[0])
      deadline = time.monotonic() + 30
      while c.metrics()["memory"]["trims"] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
      assert c.metrics()["memory"]["trims"] >= 2
      assert np.all(np.isfinite(c.act(random_episode(policy, 11, 2)[1])))   # still serving


def test_benchmark_logic_at_tiny_size(policy):
  results = serve_benchmark.run(policy, clients=(1, 2), requests=3, rounds=2,
                                batch_clients=3, max_batch=4, model_name="tiny")
  for n in ("1", "2"):
    s = results["served"][n]
    assert s["count"] == 3 * int(n) and 0 < s["median_ms"] <= s["p90_ms"] <= s["p99_ms"]
    assert s["actions_per_s"] == pytest.approx(s["chunks_per_s"] * policy.action_chunk)
    assert s["server_act"]["count"] == 3 * int(n) + int(n)   # + one warm-up act each
  assert results["inprocess"]["count"] == 3
  assert results["serve_over_inprocess_latency"] > 0
  batching = results["batching"]
  assert batching["clients"] == 3 and batching["max_batch"] == 4
  assert batching["unbatched"]["server_batch_size"]["histogram"] == {"1": 3 * 3 + 3}
  assert batching["batched"]["server_batch_size"]["max_batch"] == 4
  for key in ("median_ratio", "p90_ratio", "throughput_ratio"):
    assert batching[key] > 0


def test_command_line_serves_a_run_until_sigterm(built, policy, tmp_path):
  """``python -m experiments.serve --workdir=...`` serves what ``Policy.act`` computes."""
  write_run(*built, str(tmp_path))
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
  proc = subprocess.Popen(
      [sys.executable, "-m", "experiments.serve", f"--workdir={tmp_path}", "--port=0"],
      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  try:
    line = proc.stdout.readline()   # blocks until the server is up (or has died)
    match = re.search(r"at (ws://\S+)", line)
    assert match, (line, proc.stderr.read()[-3000:] if proc.poll() is not None else "")
    observations = random_episode(policy, 10, 2)
    with PolicyClient(match.group(1)) as c:
      c.reset("served", seed=10)
      got = [c.act(obs) for obs in observations]
    np.testing.assert_allclose(got, inprocess_actions(policy, "served", 10, observations), atol=1e-6)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-3000:]
    assert "Policy server stopped" in stderr
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.communicate()


class _SlowPolicy:
  """A policy whose ``act`` takes ``delay`` seconds and records how many overlap."""

  def __init__(self, policy, delay):
    self.policy, self.delay = policy, delay
    self.running = self.most_at_once = 0
    self.lock = threading.Lock()

  def __getattr__(self, name):
    return getattr(self.policy, name)

  def act(self, session, observation):
    with self.lock:
      self.running += 1
      self.most_at_once = max(self.most_at_once, self.running)
    time.sleep(self.delay)
    with self.lock:
      self.running -= 1
    return self.policy.act(session, observation)


def _thread(target, *args, errors: list) -> threading.Thread:
  """A thread running ``target(*args)`` that appends what it raises to ``errors`` (a
  thread's exception would otherwise only be printed, and the test would pass)."""
  def run():
    try:
      target(*args)
    except BaseException as e:  # pylint: disable=broad-except
      errors.append(e)
  return threading.Thread(target=run)


def test_model_calls_are_serialised_and_the_loop_stays_responsive(policy):
  slow = _SlowPolicy(policy, delay=0.4)
  obs = random_episode(policy, 11, 1)[0]
  errors = []
  # max_batch 1: the three acts must not run as one batch (test_serving_batching does).
  with BackgroundServer(slow, max_batch=1) as server:
    clients = [PolicyClient(server.url) for _ in range(3)]
    for c in clients:
      c.reset("slow")
    threads = [_thread(c.act, obs, errors=errors) for c in clients]
    started = time.perf_counter()
    for t in threads:
      t.start()
    time.sleep(0.1)   # the acts are queued behind one another in the model thread
    with PolicyClient(server.url) as watcher:
      metrics = watcher.metrics()
    answered = time.perf_counter() - started
    for t in threads:
      t.join()
    finished = time.perf_counter() - started
    for c in clients:
      c.close()
  if errors:
    raise errors[0]
  # Answered while the model thread was still busy with the queued acts.
  assert answered < finished - slow.delay, (answered, finished)
  assert slow.most_at_once == 1 and finished >= 3 * slow.delay
  assert metrics["sessions"] == 3


class _FirstActSlow:
  """A policy whose first ``act`` takes ``delay`` seconds (then the model's speed)."""

  def __init__(self, policy, delay):
    self.policy, self.delay, self.acts = policy, delay, 0

  def __getattr__(self, name):
    return getattr(self.policy, name)

  def act(self, session, observation):
    self.acts += 1
    if self.acts == 1:
      time.sleep(self.delay)
    return self.policy.act(session, observation)


def test_a_timed_out_reply_is_discarded_not_returned_by_the_next_act(policy, caplog):
  """The late chunk of observation 0 must not come back as the answer to observation 1."""
  observations = random_episode(policy, 12, 2)
  expected = inprocess_actions(policy, "late", 12, observations)   # the server ran both acts
  with BackgroundServer(_FirstActSlow(policy, delay=1.5)) as server:
    with PolicyClient(server.url) as c:
      c.reset("late", seed=12)
      c.timeout = 0.5
      with pytest.raises(TimeoutError, match=r"No reply .* 'act' request"):
        c.act(observations[0])
      c.timeout = 60   # the next reply queues behind the late one
      got = c.act(observations[1])
      assert c.last_reply["step"] == 2
  np.testing.assert_allclose(got, expected[1], atol=1e-6)
  assert not np.allclose(got, expected[0], atol=1e-3)
  assert "Discarding a reply to a timed-out 'act' request" in caplog.text


def _fake_server(echo_ids: bool, first_delay: float, wrong_ids: bool = False):
  """A policy server stand-in: ``act`` answers the observation's joints as actions,
  in order; the first reply after ``first_delay`` seconds."""
  def handle(ws):
    for n, data in enumerate(ws):
      message = protocol.decode(data)
      if n == 0:
        time.sleep(first_delay)
      reply = {"type": message["type"], "actions": message["observation"]["joints"]}
      if echo_ids:
        reply["id"] = "not-yours" if wrong_ids else message["id"]
      ws.send(protocol.encode(reply))
  server = serve(handle, "127.0.0.1", 0, compression=None)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  return server, f"ws://127.0.0.1:{server.socket.getsockname()[1]}"


@pytest.mark.parametrize("echo_ids", [True, False], ids=["echoes_ids", "old_server"])
def test_client_discards_the_late_reply_of_any_server(echo_ids, caplog):
  server, url = _fake_server(echo_ids, first_delay=1.5)
  try:
    with PolicyClient(url) as c:
      c.timeout = 0.3
      with pytest.raises(TimeoutError, match="will be discarded"):
        c.act({"joints": np.zeros(2, np.float32)})
      c.timeout = 10
      for i in range(1, 4):
        np.testing.assert_array_equal(c.act({"joints": np.full(2, i, np.float32)}),
                                      np.full(2, i, np.float32))
  finally:
    server.shutdown()
  assert caplog.text.count("Discarding a reply") == 1


def test_client_times_out_on_replies_to_other_requests(caplog):
  server, url = _fake_server(echo_ids=True, first_delay=0.0, wrong_ids=True)
  try:
    with PolicyClient(url) as c:
      c.timeout = 0.5
      with pytest.raises(TimeoutError, match=r"within 0.5 s"):
        c.act({"joints": np.zeros(2, np.float32)})
  finally:
    server.shutdown()
  assert "Discarding a reply to an unknown request (id 'not-yours')" in caplog.text


# ----------------------------------------------------------------------------- limits


def test_a_connection_over_max_connections_gets_an_error_then_is_closed(policy):
  with BackgroundServer(policy, max_connections=2) as background:
    a, b = PolicyClient(background.url), PolicyClient(background.url)
    a.reset("one")
    b.metrics()
    with connect(background.url) as raw:   # the third: an error, then the close
      reply = protocol.decode(raw.recv(timeout=30))
      assert reply["error"]["type"] == protocol.TOO_MANY_CONNECTIONS
      assert "max_connections=2" in reply["error"]["message"]
      with pytest.raises(ConnectionClosed) as closed:
        raw.recv(timeout=30)
      assert closed.value.rcvd.code == 1013   # try again later
    with PolicyClient(background.url) as c:
      with pytest.raises(PolicyServerError, match="max_connections=2") as info:
        c.metrics()
      assert info.value.type == protocol.TOO_MANY_CONNECTIONS
    a.close()   # frees its place
    wait_for(lambda: background.server.connections == 1)
    with PolicyClient(background.url) as c:
      assert c.metrics()["errors"][protocol.TOO_MANY_CONNECTIONS] == 2
    # c's close reaches the server asynchronously: wait for it before counting.
    wait_for(lambda: background.server.connections == 1)
    assert b.metrics()["connections"] == 1
    b.close()


def test_session_limits_per_connection_and_in_total_closing_frees_them(policy):
  obs = random_episode(policy, 13, 1)[0]
  with BackgroundServer(policy, max_sessions=3, max_sessions_per_connection=2) as background:
    a, b = PolicyClient(background.url), PolicyClient(background.url)
    first = a.reset("a1")
    a.reset("a2")
    with pytest.raises(PolicyServerError, match="max_sessions_per_connection=2") as info:
      a.reset("a3")
    assert info.value.type == protocol.TOO_MANY_SESSIONS
    b.reset("b1")
    with pytest.raises(PolicyServerError, match=r"max_sessions=3\)") as info:
      b.reset("b2")
    assert info.value.type == protocol.TOO_MANY_SESSIONS
    a.close_session(first)   # a closed session frees its place ...
    b.reset("b2")
    with pytest.raises(PolicyServerError, match=r"max_sessions=3\)"):
      a.reset("a3")
    a.close()                # ... and so does a closed connection
    wait_for(lambda: background.server.sessions == 2)
    with PolicyClient(background.url) as c:
      c.reset("c1")
      assert c.act(obs).shape == (policy.action_chunk, 4)
      assert c.metrics()["session_bytes"] > 0
    assert b.act(obs).shape == (policy.action_chunk, 4)
    b.close()


def test_max_message_bytes_closes_only_that_connection_and_the_queue_is_bounded(policy):
  obs = random_episode(policy, 14, 2)[0]
  limit = 2**16
  with BackgroundServer(policy, max_message_bytes=limit, max_queue=1) as background:
    with PolicyClient(background.url) as good, PolicyClient(background.url) as big:
      good.reset("steady", seed=14)
      big.reset("big")
      image = np.zeros((160, 160, 3), np.uint8)   # 75 KiB, rescales 10:1
      with pytest.raises(ConnectionClosed) as closed:
        big.act({**obs, "image_front": image})
      assert closed.value.rcvd.code == 1009   # message too big
      wait_for(lambda: background.server.errors["message_too_big"] == 1)
      assert good.act(obs).shape == (policy.action_chunk, 4)
      # websockets buffers max_queue frames per connection (not its default 16), then
      # stops reading: requests sent without waiting are still answered, in order.
      for conn in background.server._server.connections:  # pylint: disable=protected-access
        assert conn.recv_messages.high == 1 and conn.protocol.max_message_size == limit
      with connect(background.url) as raw:
        for i in range(6):
          raw.send(protocol.encode({"type": "metrics", "id": i}))
        assert [protocol.decode(raw.recv(timeout=30))["id"] for _ in range(6)] == list(range(6))
    assert background.server.metrics()["limits"]["max_queue"] == 1


class _CountingPolicy:
  """A policy that counts the ``act`` calls reaching the model thread."""

  def __init__(self, policy):
    self.policy, self.acts = policy, 0

  def __getattr__(self, name):
    return getattr(self.policy, name)

  def act(self, session, observation):
    self.acts += 1
    return self.policy.act(session, observation)


def test_bad_observations_are_refused_before_the_model_thread(policy):
  counting = _CountingPolicy(policy)
  observations = random_episode(policy, 15, 2)
  expected = inprocess_actions(policy, "careful", 15, observations)
  obs = observations[0]
  bad = [
      ({**obs, "joints": np.array([np.nan, 0, 0], np.float32)}, "joints has non-finite"),
      ({**obs, "proprio": np.array([np.inf, 0], np.float32)}, "proprio has non-finite"),
      ({**obs, "joints": np.full(3, 1e39)}, "joints has non-finite"),   # beyond f32
      ({**obs, "joints": [[1.0], [2.0, 3.0]]}, "joints is not an array"),
      ({**obs, "joints": np.zeros(4, np.float32)}, "joints must be f32[3]"),
      ({**obs, "joints": np.array(["a", "b", "c"])}, "joints must be f32[3]"),
      ({**obs, "image_wrist": np.zeros((0, 16, 3), np.uint8)}, "image_wrist is empty"),
      ({**obs, "image_front": np.zeros((16, 16), np.uint8)}, "image_front must be uint8"),
      ({**obs, "gripper": np.zeros(1)}, "Unknown observation field 'gripper'"),
      ({k: v for k, v in obs.items() if k != "joints"}, "Missing 'joints'"),
      ("not a map", "An observation is a mapping"),
  ]
  with BackgroundServer(counting) as background, PolicyClient(background.url) as c:
    c.reset("careful", seed=15)
    got = [c.act(obs)]
    for observation, match in bad:
      with pytest.raises(PolicyServerError, match=re.escape(match)) as info:
        c.request({"type": "act", "observation": observation})
      assert info.value.type == protocol.OBSERVATION
    assert counting.acts == 1   # none of them reached the model
    got.append(c.act(observations[1]))   # the session goes on unharmed
    assert c.last_reply["step"] == 2
  np.testing.assert_allclose(got, expected, atol=1e-6)


def test_fuzzed_frames_leave_the_server_serving_identical_actions(policy):
  """Garbage of every kind, then a well-behaved client gets the very same actions."""
  rng = np.random.default_rng(0)
  observations = random_episode(policy, 16, 3)
  obs = observations[0]
  limit = 2**16

  def episode(url):
    with PolicyClient(url) as c:
      c.reset("fuzz", seed=16)
      return [c.act(o) for o in observations]
  # Random bytes, truncated messages, msgpack bombs, absurd shapes, NaN fields.
  frames = [frame for _, frame in serve_fuzz.frames(obs, rng)]
  with BackgroundServer(policy, max_message_bytes=limit) as background:
    before = episode(background.url)
    with PolicyClient(background.url) as fuzzer:
      fuzzer.reset("fuzzer")
      for frame in frames:   # each gets one error reply; the connection stays usable
        with pytest.raises(PolicyServerError) as info:
          fuzzer.request_bytes(frame)
        assert info.value.type != protocol.INTERNAL, (frame[:40], info.value)
      assert fuzzer.act(obs).shape == (policy.action_chunk, 4)
    for frame in serve_fuzz.oversized(rng, limit):   # only that connection is closed
      with PolicyClient(background.url) as big, pytest.raises(ConnectionClosed):
        big.request_bytes(frame)
    after = episode(background.url)
    wait_for(lambda: background.server.connections == 0)
    assert background.server.sessions == 0
  for a, b in zip(before, after):
    np.testing.assert_array_equal(a, b)
