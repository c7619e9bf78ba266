"""The Gymnasium client (clients/gymnasium): record -> import, and closed-loop evaluation
against a real policy server (``python -m experiments.serve``) over a real socket."""

import contextlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

from benchmarks import serve as serve_benchmark
from benchmarks.toy_runs import write_policy_run
from dojo.closed_loop import success_interval
from tests.clients import tiny_env
from tests.clients.conftest import CLIENT, ROOT
from tests.wam.serving_fixtures import inprocess_actions
from wam.data import images as wam_images
from wam.data.importers import KeyMapping, npz
from wam.data.reader import EpisodeDataset
from wam.policy import BATCH_TOLERANCE, Policy
from wam_gym_client import envs, fields, gif, images, rollout
from wam_gym_client import evaluate as evaluate_module
from wam_gym_client.evaluate import check_env, evaluate
from wam_gym_client.observation import RobotObservation
from wam_gym_client.record import record

CAMERAS = {"front": "render", "wrist": tiny_env.wrist_camera}
SUBPROCESS_ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, CLIENT]),
                      JAX_PLATFORMS="cpu")


def _make(image_size=(16, 16), **kwargs):
  return envs.make_env_fn(tiny_env.ENV_ID, cameras=CAMERAS, image_size=image_size,
                          joints=["obs[0:3]"], proprio=["obs[3:5]"], **kwargs)


# ----------------------------------------------------------------------------- pieces
def test_resize_matches_the_server_at_whole_factors_and_handles_any_size():
  rng = np.random.default_rng(0)
  frame = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
  for target in ((16, 16), (24, 32), (96, 128), (48, 16)):
    plan = wam_images.resize_plan(frame.shape[:2], target)
    server = wam_images.to_uint8(wam_images.resize(frame, plan))
    assert np.abs(images.resize(frame, target).astype(int) - server).max() <= 1, target
  odd = images.resize(frame, (20, 18))   # no whole factor: area weights, mean kept
  assert odd.shape == (20, 18, 3)
  assert abs(odd.mean() - frame.mean()) < 1.0
  assert images.as_rgb(np.ones((4, 4), np.float32)).tolist() == np.full((4, 4, 3), 255).tolist()


def test_gif_decodes_to_the_quantised_frames(tmp_path):
  """Pillow reads back exactly the palette colours (random frames fill LZW's table)."""
  rng = np.random.default_rng(1)
  frames = [rng.integers(0, 256, (40, 50, 3), dtype=np.uint8) for _ in range(3)]
  frames.append(np.zeros((40, 50, 3), np.uint8))
  path = gif.write_gif(str(tmp_path / "x.gif"), frames, fps=5)
  with Image.open(path) as im:
    assert im.n_frames == len(frames) and im.info["loop"] == 0
    assert im.info["duration"] == 200
    for i, frame in enumerate(frames):
      im.seek(i)
      np.testing.assert_array_equal(np.asarray(im.convert("RGB")),
                                    gif.palette()[gif.quantize(frame)])


def test_fields_read_obs_info_and_attributes():
  env = gym.make(tiny_env.ENV_ID)
  obs, info = env.reset(seed=0)
  read = fields.compile_vector(["obs[3:5]", "info.t", "attr.pos[::2]"])
  np.testing.assert_allclose(read(env, obs, info),
                             [obs[3], obs[4], 0.0, env.unwrapped.pos[0], env.unwrapped.pos[2]],
                             rtol=1e-6)
  with pytest.raises(ValueError, match="Bad field"):
    fields.compile_field("qpos[:3]")
  with pytest.raises(KeyError, match="no key 'nope'"):
    fields.compile_field("info.nope")(env, obs, info)


class _Checker:
  """An agent that checks the driver's bookkeeping against the env's own step counter."""

  def __init__(self):
    self.begun, self.ended, self.seeds, self.lengths, self.live = [], [], {}, {}, {}

  def begin(self, slot, episode, seed, obs, info):
    assert slot not in self.live and info["t"] == 0
    self.live[slot] = episode
    self.begun.append(episode)
    self.seeds[episode] = seed
    self.lengths[episode] = 0

  def act(self, slots, obs):
    return [tiny_env.expert(o["state"]) * 0.3 for o in obs]   # slow: some time out

  def step(self, slot, action, reward, obs, info, terminated, truncated):
    episode = self.live[slot]
    self.lengths[episode] += 1
    assert info["t"] == self.lengths[episode]
    assert (terminated or truncated) == (terminated or info["t"] == tiny_env.MAX_STEPS)

  def end(self, slot):
    self.ended.append(self.live.pop(slot))


@pytest.mark.parametrize("mode", list(gym.vector.AutoresetMode))
def test_episodes_over_sub_envs_in_every_autoreset_mode(mode):
  vec = gym.vector.SyncVectorEnv([_make()] * 3, autoreset_mode=mode)
  checker = _Checker()
  rollout.run_episodes(vec, checker, 7, seed=10)
  assert sorted(checker.begun) == sorted(checker.ended) == list(range(7))
  assert all(1 <= n <= tiny_env.MAX_STEPS for n in checker.lengths.values())
  if mode == gym.vector.AutoresetMode.DISABLED:   # episode k from seed + k, always
    assert checker.seeds == {k: 10 + k for k in range(7)}
  vec.close()


# ----------------------------------------------------------------------------- record
def test_record_then_import_reads_back(tmp_path):
  vec = envs.make_vector_env(_make(), num_envs=2)
  summary = record(vec, tiny_env.expert, str(tmp_path / "episodes"), episodes=5, seed=3,
                   instruction=envs.info_instruction("instruction"), policy_name="expert",
                   joints_slots=[("arm_joints", None)],
                   action_slots=[("arm_joint_targets", 3), ("gripper", 1)],
                   show_progress=False)
  vec.close()
  assert summary["episodes"] == 5 and summary["successes"] == 5   # the expert reaches
  lengths = [r["length"] for r in summary["results"]]
  raw = np.load(tmp_path / "episodes" / "episode_00002.npz")
  assert raw["steps/observation/image_front"].shape == (lengths[2] + 1, 16, 16, 3)
  assert raw["steps/action"].shape == (lengths[2] + 1, 4)
  assert not raw["steps/action_mask"][-1] and raw["steps/is_terminal"][-1]

  path = npz.import_npz(str(tmp_path / "episodes" / "episode_*.npz"),
                        KeyMapping.from_json(json.loads(
                            (tmp_path / "episodes" / "mapping.json").read_text())),
                        name="tiny_reach", data_dir=str(tmp_path / "data"),
                        splits={"train": 0.6, "val": 0.4})
  train = EpisodeDataset(path, "train")
  assert train.spec.cameras == ("front", "wrist") and train.spec.image_size == (16, 16)
  assert train.spec.joints.to_json() == [["arm_joints", 3]]
  assert train.spec.proprio.to_json() == [["proprio", 2]]
  assert train.spec.action.to_json() == [["arm_joint_targets", 3], ["gripper", 1]]
  assert train.spec.embodiment == "tinyreach_v0" and train.spec.fps == 10.0
  assert train.episode_lengths.tolist() == [n + 1 for n in lengths[:3]]
  assert train.successes.all()
  expected = [_metadata(tmp_path / "episodes", k)["instruction"] for k in range(5)]
  assert len(set(expected)) > 1   # read from each episode's reset info
  assert train.instructions == expected[:3]
  assert EpisodeDataset(path, "val").instructions == expected[3:]
  steps = train.read_steps(2, range(int(train.episode_lengths[2])))
  np.testing.assert_array_equal(steps["observation/image_front"],
                                raw["steps/observation/image_front"])
  np.testing.assert_allclose(steps["observation/joints"], raw["steps/observation/joints"])
  assert list(steps["language_instruction"]) == [expected[2]] * len(steps["step_index"])


def _metadata(directory, episode):
  with np.load(directory / f"episode_{episode:05d}.npz") as f:
    return json.loads(str(f["metadata"]))


_BLOCK_JAX = textwrap.dedent("""
    import sys
    class _NoJax:
      def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("jax", "jaxlib", "flax", "optax", "orbax"):
          raise ImportError(f"{name} is blocked: the Gymnasium client must not need it")
        return None
    sys.meta_path.insert(0, _NoJax())
    """)


def test_client_package_and_record_command_run_without_jax(tmp_path):
  """Everything of the package imports, and ``record`` runs, with JAX unimportable."""
  out = tmp_path / "episodes"
  script = _BLOCK_JAX + textwrap.dedent(f"""
      import importlib, pkgutil, wam_gym_client
      for m in pkgutil.iter_modules(wam_gym_client.__path__, "wam_gym_client."):
        importlib.import_module(m.name)
      import wam_gym_client.serving.client as client, wam_gym_client.serving.protocol
      assert client.protocol.__name__ == "wam_gym_client.serving.protocol"
      assert not [m for m in sys.modules if m.split(".")[0] in ("jax", "flax", "wam")]
      from wam_gym_client import record
      record.main(["--env=tests.clients.tiny_env:TinyReach-v0", "--episodes=3",
                   "--policy=tests.clients.tiny_env:expert", "--cameras=front:render",
                   "--image_size=12,10", "--joints=obs[0:3]", "--instruction=reach it",
                   "--num_envs=2", "--out={out}"])
      assert not [m for m in sys.modules if m.split(".")[0] in ("jax", "flax")]
      """)
  run = subprocess.run([sys.executable, "-c", script], cwd=str(tmp_path), env=SUBPROCESS_ENV,
                       capture_output=True, text=True, timeout=120)
  assert run.returncode == 0, run.stderr[-3000:]
  assert "Recorded 3 episodes (3 succeeded)" in run.stdout
  assert "record TinyReach-v0 3/3 episodes | 3 succeeded (100%" in run.stderr
  with np.load(out / "episode_00001.npz") as f:
    assert f["steps/observation/image_front"].shape[1:] == (12, 10, 3)
    assert set(f["steps/language_instruction"]) == {"reach it"}
  # Jax really is blocked there (the test can fail).
  blocked = subprocess.run([sys.executable, "-c", _BLOCK_JAX + "import jax"],
                           env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=60)
  assert blocked.returncode != 0 and "is blocked" in blocked.stderr


def test_the_shipped_wire_modules_are_the_servers():
  for name in ("client.py", "protocol.py"):
    shipped = os.path.join(CLIENT, "wam_gym_client", "serving", name)
    with open(shipped, "rb") as a, open(os.path.join(ROOT, "wam", "serving", name), "rb") as b:
      assert a.read() == b.read(), f"{shipped} differs from wam/serving/{name}"


_MUJOCO_PROBE = "import mujoco; mujoco.GLContext(8, 8).make_current(); print('ok')"


def test_record_a_registered_mujoco_env_with_named_cameras(tmp_path):
  env = dict(SUBPROCESS_ENV, MUJOCO_GL="egl")
  probe = subprocess.run([sys.executable, "-c", _MUJOCO_PROBE], env=env,
                         capture_output=True, text=True, timeout=120)
  if probe.returncode != 0:
    pytest.skip(f"No headless OpenGL (MUJOCO_GL=egl) here: {probe.stderr[-300:]}")
  out = tmp_path / "cheetah"
  run = subprocess.run(
      [sys.executable, "-m", "wam_gym_client.record", "--env=HalfCheetah-v5",
       "--policy=random", "--episodes=2", "--max_episode_steps=4", "--cameras=track,free:-1",
       "--image_size=24,32", "--joints=data.qpos", "--proprio=data.qvel",
       "--instruction=run", f"--out={out}"],
      env=env, capture_output=True, text=True, timeout=180)
  assert run.returncode == 0, run.stderr[-3000:]
  with np.load(out / "episode_00000.npz") as f:
    track = f["steps/observation/image_track"]
    assert track.shape == (5, 24, 32, 3) and track.std() > 0   # rendered, not blank
    assert f["steps/observation/image_free"].shape == (5, 24, 32, 3)
    assert f["steps/observation/joints"].shape == (5, 9)      # HalfCheetah: nq = nv = 9
    assert f["steps/observation/proprio"].shape == (5, 9)
    assert f["steps/action"].shape == (5, 6)


# ----------------------------------------------------------------------------- evaluate
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  """The serving tests' tiny random model (2 cameras at 16x16, joints 3, proprio 2,
  actions 4, chunks of 2), written as a training run."""
  workdir = str(tmp_path_factory.mktemp("run"))
  write_policy_run(*serve_benchmark.random_model("tiny"), workdir)
  return workdir


@contextlib.contextmanager
def _serve(workdir, *flags):
  """``python -m experiments.serve`` on ``workdir``; yields its URL."""
  proc = subprocess.Popen(
      [sys.executable, "-m", "experiments.serve", f"--workdir={workdir}", "--port=0", *flags],
      cwd=ROOT, env=SUBPROCESS_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  try:
    line = proc.stdout.readline()   # blocks until the server is up (or has died)
    match = re.search(r"at (ws://\S+)", line)
    assert match, (line, proc.stderr.read()[-3000:] if proc.poll() is not None else "")
    yield match.group(1)
  finally:
    proc.send_signal(signal.SIGTERM)
    try:
      proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
      proc.kill()
      proc.communicate()


@pytest.fixture(scope="module")
def run_policy(run_dir):
  """The run's policy in this process, built as ``experiments.serve`` builds it."""
  return Policy.from_workdir(run_dir)


@pytest.fixture(scope="module")
def server(run_dir):
  """The served model with the default batching (up to 8 acts per model call)."""
  with _serve(run_dir) as url:
    yield url


def test_evaluate_runs_episodes_through_the_served_model(server, tmp_path):
  make = _make(image_size=tiny_env.FRAME, env_kwargs={"success": "seeded"})
  vec = envs.make_vector_env(make, num_envs=2)
  summary = evaluate(vec, server, episodes=5, seed=0, instruction="reach the target",
                     out_dir=str(tmp_path), show_progress=False)
  sub_envs = [e.unwrapped for e in vec.envs]
  vec.close()
  spec = summary["policy"]
  assert spec["image_size"] == [16, 16] and spec["action_chunk"] == 2
  # Success from info: seeds 0 and 3 succeed at step 2 (terminated), others run to 6.
  assert [r["success"] for r in summary["results"]] == [True, False, False, True, False]
  assert [r["length"] for r in summary["results"]] == [2, 6, 6, 2, 6]
  assert summary["successes"] == 2 and summary["success_rate"] == 0.4
  assert summary["ci95"] == pytest.approx(list(success_interval(2, 5)))
  # One act per chunk of 2 actions, each action as the env's space wants it.
  assert [r["acts"] for r in summary["results"]] == [1, 3, 3, 1, 3]
  assert summary["acts"] == 11 and summary["latency"]["round_trip"]["count"] == 11
  received = [(seed, a) for e in sub_envs for seed, a in e.actions if seed is not None]
  assert sorted({seed for seed, _ in received}) == [0, 1, 2, 3, 4]
  assert len(received) == sum(r["length"] for r in summary["results"])
  for _, action in received:
    assert action.shape == (4,) and action.dtype == np.float32
    assert np.all(np.abs(action) <= 1.0)
  assert np.std([a for _, a in received]) > 0   # the model's, not a constant
  # GIFs: both cameras side by side, the first observation and one frame per step.
  for r in summary["results"]:
    with Image.open(tmp_path / r["gif"]) as im:
      assert im.size == (2 * tiny_env.FRAME[1], tiny_env.FRAME[0])
      assert im.n_frames == r["length"] + 1
  assert (tmp_path / "summary.json").exists()


def test_evaluate_command_executes_one_action_per_act(server, tmp_path):
  run = subprocess.run(
      [sys.executable, "-m", "wam_gym_client.evaluate", f"--url={server}",
       "--env=tests.clients.tiny_env:TinyReach-v0", '--env_kwargs={"success": "seeded"}',
       "--cameras=front:render,wrist:render", "--joints=obs[0:3]", "--proprio=obs[3:5]",
       "--instruction=reach", "--episodes=2", "--seed=3", "--execute=1", "--max_gifs=1",
       f"--out={tmp_path}"],
      cwd=ROOT, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=120)
  assert run.returncode == 0, run.stderr[-3000:]
  assert "TinyReach-v0: 1/2 succeeded (50%, 95% CI 9%-91%)" in run.stdout
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert [r["acts"] for r in summary["results"]] == [2, 6]   # one act per step
  assert [r["gif"] for r in summary["results"]] == ["episode_00000.gif", None]
  assert math.isfinite(summary["latency"]["server"]["median_ms"])


def test_an_env_that_does_not_fit_the_policy_is_refused_before_any_episode():
  spec = {"cameras": ["front", "wrist"], "image_size": [16, 16], "joints": 3, "proprio": 2,
          "action": 4}
  vec = envs.make_vector_env(_make(), 1)
  check_env(vec, spec)
  with pytest.raises(ValueError, match="joints f32\\[7\\]; the env gives f32\\[3\\]"):
    check_env(vec, dict(spec, joints=7))
  with pytest.raises(ValueError, match=r"TinyReach-v0: .* lacks \['image_side'\] .*"
                                       "--cameras=model_name:env_camera"):
    check_env(vec, dict(spec, cameras=["front", "side"]))
  with pytest.raises(ValueError, match="actions are f32\\[6\\]"):
    check_env(vec, dict(spec, action=6))
  vec.close()
  with pytest.raises(ValueError, match="render_mode='rgb_array'"):
    RobotObservation(gym.make(tiny_env.ENV_ID), ["render"])


# ----------------------------------------------------------------------------- identity
def _recording_client(log):
  """A PolicyClient that logs, per session, its reset and every observation sent and
  chunk received (copies: what went over the wire)."""

  class Recording(evaluate_module.PolicyClient):

    def reset(self, instruction, *, seed=0, encoding=None):
      session = super().reset(instruction, seed=seed, encoding=encoding)
      log[session] = {"instruction": instruction, "seed": seed, "sent": [], "chunks": []}
      return session

    def act(self, observation, session_id=None):
      chunk = super().act(observation, session_id=session_id)
      log[session_id]["sent"].append({k: np.array(v) for k, v in observation.items()})
      log[session_id]["chunks"].append(np.array(chunk))
      return chunk

  return Recording


def _evaluate_recorded(url, monkeypatch, *, episodes, execute):
  """Evaluates on two TinyReach envs; returns ``(sessions, env actions by seed)``."""
  log = {}
  monkeypatch.setattr(evaluate_module, "PolicyClient", _recording_client(log))
  vec = envs.make_vector_env(_make(image_size=tiny_env.FRAME,
                                   env_kwargs={"success": "seeded"}), num_envs=2)
  evaluate(vec, url, episodes=episodes, seed=0, instruction=lambda info: info["instruction"],
           execute=execute, show_progress=False)
  received = {}
  for e in vec.envs:
    for seed, action in e.unwrapped.actions:
      received.setdefault(seed, []).append(action)
  vec.close()
  assert sorted(s["seed"] for s in log.values()) == list(range(episodes))
  return list(log.values()), received


@pytest.mark.parametrize("batching", ["max_batch=1", "default"])
def test_client_server_and_in_process_act_give_identical_actions(run_dir, run_policy, server,
                                                                 batching, monkeypatch):
  """Every chunk the evaluation client got from ``experiments.serve`` is what
  ``Policy.act`` computes in process on the same observations, session by session: bit
  for bit with ``--max_batch=1``, within ``BATCH_TOLERANCE`` when acts of the two envs
  run as one batch; and the env executes exactly those chunk values, in order."""
  # With all of each chunk executed (max_batch=1) and with its first step only (batched).
  execute = None if batching == "max_batch=1" else 1
  with contextlib.ExitStack() as stack:
    url = (stack.enter_context(_serve(run_dir, "--max_batch=1"))
           if batching == "max_batch=1" else server)
    sessions, received = _evaluate_recorded(url, monkeypatch, episodes=4, execute=execute)
  policy, spec = run_policy, run_policy.describe()
  for s in sessions:
    assert s["sent"], s
    for obs in s["sent"]:   # what the client sent: the model's cameras at its size
      assert sorted(obs) == sorted(["image_front", "image_wrist", "joints", "proprio"])
      assert obs["image_front"].shape == (*spec["image_size"], 3)
    expected = inprocess_actions(policy, s["instruction"], s["seed"], s["sent"])
    for got, want in zip(s["chunks"], expected, strict=True):
      if batching == "max_batch=1":
        np.testing.assert_array_equal(got, want)
      else:
        np.testing.assert_allclose(got, want, rtol=BATCH_TOLERANCE, atol=BATCH_TOLERANCE)
    # The env's actions are the chunks' values (steps 0..K-1 of each, clipped to the
    # action space [-1, 1] as the client does by default), float32, in order.
    executed = np.clip(np.concatenate([c[:execute] for c in s["chunks"]]), -1.0, 1.0)
    actions = np.stack(received[s["seed"]])
    assert actions.dtype == np.float32 and len(actions) <= len(executed)
    np.testing.assert_array_equal(actions, executed[:len(actions)])
    assert len(executed) - len(actions) < (execute or spec["action_chunk"])
