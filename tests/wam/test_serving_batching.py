"""Batching acts of different sessions: ``Policy.act_batch`` and the server's batcher."""

import concurrent.futures
import re
import threading

import jax
import numpy as np
import pytest

from benchmarks import serve as serve_benchmark
from wam.policy import BATCH_TOLERANCE, Policy
from wam.serving import batching, protocol
from wam.serving.client import PolicyClient, PolicyServerError
from wam.serving.runner import BackgroundServer
# The same episodes and in-process reference as the serving tests.
from tests.wam.serving_fixtures import inprocess_actions, random_episode, wait_for

MAX_BATCH = 4   # compiles sizes 2 and 4 only: the tests' CPU is slow to compile


@pytest.fixture(scope="module")
def policy():
  policy = Policy(*serve_benchmark.random_model("tiny"))
  policy.warmup(batching.batch_sizes(MAX_BATCH))
  return policy


def _close_to(got, expected, exact: bool) -> None:
  """Equal to ``Policy.act``'s actions: bit for bit, or within ``BATCH_TOLERANCE``."""
  tol = 0.0 if exact else BATCH_TOLERANCE
  np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=tol, atol=tol)


# ----------------------------------------------------------------------------- policy


def test_act_batch_matches_act_one_compile_per_padded_size(policy):
  # Sessions at different window positions, one about to start its context over.
  sessions = [policy.new_session(f"task {i}", seed=i) for i in range(4)]
  for i, obs in enumerate(random_episode(policy, 1, policy.window)):
    sessions[i + 1:] = [policy.act(s, obs)[0] for s in sessions[i + 1:]]
  assert [s.block for s in sessions] == [0, 1, 2, policy.window]
  observations = random_episode(policy, 2, len(sessions))
  alone = [policy.act(s, o) for s, o in zip(sessions, observations)]
  traces = policy.batch_traces
  for n, size in ((4, 4), (3, 4), (2, None), (3, None)):
    batched = policy.act_batch(sessions[:n], observations[:n], size=size)
    assert len(batched) == n
    for (s_alone, a_alone), (s_batch, a_batch) in zip(alone, batched):
      assert a_batch.shape == a_alone.shape and a_batch.dtype == np.float32
      _close_to(a_batch, a_alone, exact=False)
      assert (s_batch.block, s_batch.step) == (s_alone.block, s_alone.step)
      for x, y in zip(jax.tree.leaves(s_batch.cache), jax.tree.leaves(s_alone.cache)):
        np.testing.assert_allclose(x, y, rtol=BATCH_TOLERANCE, atol=BATCH_TOLERANCE)
  assert policy.batch_traces == traces   # 2 and 4 were compiled by warmup
  with pytest.raises(ValueError, match="smaller than the batch"):
    policy.act_batch(sessions[:3], observations[:3], size=2)


# ----------------------------------------------------------------------------- batcher


class _Recorder:
  """A stand-in policy: a session is a number, ``act`` adds one; records the calls."""

  def __init__(self, fail: bool = False):
    self.calls, self.fail = [], fail

  def act(self, session, observation):
    self.calls.append([session])
    return session + 1, observation

  def act_batch(self, sessions, observations, size):
    self.calls.append(list(sessions))
    if self.fail:
      raise RuntimeError("device lost")
    assert size >= len(sessions)
    return [(s + 1, o) for s, o in zip(sessions, observations)]


def test_padded_sizes_are_powers_of_two_up_to_max_batch():
  assert [batching.padded_size(n, 8) for n in range(1, 9)] == [1, 2, 4, 4, 8, 8, 8, 8]
  assert [batching.padded_size(n, 6) for n in range(1, 7)] == [1, 2, 4, 4, 6, 6]
  assert batching.batch_sizes(8) == [2, 4, 8] and batching.batch_sizes(1) == []
  with pytest.raises(ValueError, match="max_batch must be a positive integer"):
    batching.ActBatcher(_Recorder(), 0)


def test_a_batch_never_holds_two_acts_of_one_session_and_keeps_their_order():
  recorder = _Recorder()
  batcher = batching.ActBatcher(recorder, max_batch=3)
  futures = [batcher.submit(key, session, f"obs {i}") for i, (key, session) in enumerate(
      [("a", 10), ("a", 20), ("b", 30), ("c", 40), ("d", 50)])]
  batcher.run_pending()   # a, b, c: the second act of a waits, d does not fit
  assert recorder.calls == [[10, 30, 40]] and batcher.waiting == 2
  batcher.run_pending()   # the second act of a, then d
  batcher.run_pending()   # nothing left: a no-op
  assert recorder.calls == [[10, 30, 40], [20, 50]] and batcher.waiting == 0
  results = [f.result(timeout=1) for f in futures]
  assert [r.session for r in results] == [11, 21, 31, 41, 51]
  assert [r.actions for r in results] == [f"obs {i}" for i in range(5)]
  assert [r.batch_size for r in results] == [3, 2, 3, 3, 2]
  assert batcher.stats.summary() == {"max_batch": 3, "batches": 2, "acts": 5, "mean": 2.5,
                                     "histogram": {"2": 1, "3": 1}}


def test_a_failed_batch_answers_each_of_its_acts_and_cancelled_ones_are_skipped():
  batcher = batching.ActBatcher(_Recorder(fail=True), max_batch=4)
  gone = batcher.submit("a", 1, None)
  assert gone.cancel()   # its client left before the model thread took it
  futures = [batcher.submit(key, 2, None) for key in "bc"]
  batcher.run_pending()
  assert batcher.policy.calls == [[2, 2]]
  for f in futures:
    with pytest.raises(RuntimeError, match="device lost"):
      f.result(timeout=1)
  assert batcher.stats.summary()["batches"] == 0


# ----------------------------------------------------------------------------- server


class _Held:
  """A policy whose first model call waits for ``release``: the acts sent meanwhile
  wait together for the model thread, as a busy server's do."""

  def __init__(self, policy):
    self.policy = policy
    self.entered, self.release = threading.Event(), threading.Event()
    self.calls = 0

  def __getattr__(self, name):
    return getattr(self.policy, name)

  def _hold(self):
    self.calls += 1
    if self.calls == 1:
      self.entered.set()
      self.release.wait(60)

  def act(self, session, observation):
    self._hold()
    return self.policy.act(session, observation)

  def act_batch(self, sessions, observations, **kwargs):
    self._hold()
    return self.policy.act_batch(sessions, observations, **kwargs)


@pytest.mark.parametrize("max_batch", [MAX_BATCH, 1])
def test_concurrent_clients_get_what_the_in_process_policy_gives(policy, max_batch):
  """Four clients over real sockets: while the first act holds the model thread the
  other three queue and run as one batch (none with ``max_batch`` 1); then they all
  go on at once, batched as they come. Each chunk is what ``Policy.act`` gives: within
  ``BATCH_TOLERANCE`` when batched, bit for bit when every act runs alone."""
  steps = policy.window + 2   # across a restart of the context
  seeds = [21, 22, 23, 24]
  episodes = {s: random_episode(policy, s, steps) for s in seeds}
  expected = {s: inprocess_actions(policy, f"task {s}", s, episodes[s]) for s in seeds}
  held = _Held(policy)
  got = {s: [] for s in seeds}
  with BackgroundServer(held, max_batch=max_batch) as background:
    clients = {s: PolicyClient(background.url) for s in seeds}
    for s, c in clients.items():
      c.reset(f"task {s}", seed=s)
    with concurrent.futures.ThreadPoolExecutor(len(seeds)) as pool:
      def run(s):
        for obs in episodes[s]:
          got[s].append(clients[s].act(obs))
        return clients[s].last_reply["step"]
      first = pool.submit(run, seeds[0])
      assert held.entered.wait(60)
      others = [pool.submit(run, s) for s in seeds[1:]]
      wait_for(lambda: background.server._batcher.waiting == 3)  # pylint: disable=protected-access
      held.release.set()
      assert [f.result(timeout=120) for f in [first] + others] == [steps] * len(seeds)
    metrics = clients[seeds[0]].metrics()["batch_size"]
    for c in clients.values():
      c.close()
  for s in seeds:
    _close_to(got[s], expected[s], exact=max_batch == 1)
  assert metrics["acts"] == steps * len(seeds) and metrics["max_batch"] == max_batch
  if max_batch == 1:
    assert metrics["histogram"] == {"1": steps * len(seeds)}
  else:
    # The three held back ran together (the first's next act might just have joined).
    assert max(int(size) for size in metrics["histogram"]) >= 3 and metrics["mean"] > 1


def test_a_bad_observation_is_refused_alone_and_its_batch_is_unharmed(policy):
  """While the model thread is held, two good acts queue and three bad ones of another
  session are answered at once: they never join the batch, which runs the two."""
  seeds = [31, 32, 33, 34]
  episodes = {s: random_episode(policy, s, 2) for s in seeds}
  expected = {s: inprocess_actions(policy, f"task {s}", s, episodes[s]) for s in seeds}
  good = episodes[seeds[3]][0]
  bad = [({**good, "joints": np.array([np.nan, 0, 0], np.float32)}, "joints has non-finite"),
         ({**good, "image_front": good["image_front"][:15]}, "does not rescale"),
         ({**good, "joints": np.zeros(4, np.float32)}, "joints must be f32[3]")]
  held = _Held(policy)
  with BackgroundServer(held, max_batch=MAX_BATCH) as background:
    batcher = background.server._batcher  # pylint: disable=protected-access
    clients = {s: PolicyClient(background.url) for s in seeds}
    for s, c in clients.items():
      c.reset(f"task {s}", seed=s)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
      first = pool.submit(clients[seeds[0]].act, episodes[seeds[0]][0])
      assert held.entered.wait(60)
      queued = [pool.submit(clients[s].act, episodes[s][0]) for s in seeds[1:3]]
      wait_for(lambda: batcher.waiting == 2)
      for observation, match in bad:   # answered while the model thread is still held
        with pytest.raises(PolicyServerError, match=re.escape(match)) as info:
          clients[seeds[3]].request({"type": "act", "observation": observation})
        assert info.value.type == protocol.OBSERVATION
      assert batcher.waiting == 2 and not first.done()
      held.release.set()
      got = {seeds[0]: [first.result(timeout=60)]}
      got.update({s: [f.result(timeout=60)] for s, f in zip(seeds[1:3], queued)})
    got[seeds[3]] = [clients[seeds[3]].act(good)]   # the bad session goes on unharmed
    assert clients[seeds[3]].last_reply["step"] == 1
    for s in seeds:   # and everyone's next step, alone or together
      got[s].append(clients[s].act(episodes[s][1]))
    metrics = clients[seeds[0]].metrics()
    for c in clients.values():
      c.close()
  for s in seeds:
    _close_to(got[s], expected[s], exact=False)
  assert metrics["batch_size"]["histogram"]["2"] >= 1
  assert metrics["batch_size"]["acts"] == 8 and metrics["errors"][protocol.OBSERVATION] == 3
