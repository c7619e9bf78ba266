"""Windows, normalisation statistics, mixtures, resume, sharding and worker processes."""

import dataclasses
import glob
import os
import shutil

import numpy as np
import pytest

from wam.data import builder, statistics, synthetic, text
from wam.data.pipeline import DatasetRef, Pipeline
from wam.data.reader import CorruptDataError, EpisodeDataset
from wam.data.window import WindowConfig, WindowSource

from tests.wam.data.conftest import ROBOT_LENGTHS, ROBOT_SPEC

WINDOW = WindowConfig(num_frames=2, num_context=1, action_chunk=3, cameras=("front", "head"),
                      image_size=(16, 16), hand_keypoints=True)


def test_window_values_match_the_episode(robot_dir):
  ds = EpisodeDataset(robot_dir)
  source = WindowSource(ds, WINDOW, normalization="none")
  # Episode e has length - span + 1 windows.
  assert len(source) == sum(n - WINDOW.span + 1 for n in ROBOT_LENGTHS)
  for index in (0, 7, len(source) - 1):
    window = source[index]
    e, t0 = int(window["episode"]), int(window["start"])
    assert source.locate(index) == (e, t0)
    steps, _ = ROBOT_SPEC.validate(synthetic.synthetic_episode(ROBOT_SPEC, ROBOT_LENGTHS[e], e))
    frames = t0 + np.arange(2) * 3
    np.testing.assert_array_equal(window["frames"][:, 0], steps["observation/image_front"][frames])
    assert window["camera_mask"].tolist() == [True, False] and not window["frames"][:, 1].any()
    np.testing.assert_array_equal(window["joints"], steps["observation/joints"][frames])
    np.testing.assert_array_equal(window["actions"].reshape(6, 3),
                                  steps["action"][t0:t0 + 6])
    np.testing.assert_array_equal(window["action_mask"].reshape(6, 3)[:, 0],
                                  steps["action_mask"][t0:t0 + 6])
    assert text.decode(window["instruction"]) == steps["language_instruction"][0]
    assert not window["hand_keypoints_mask"].any() and window["skipped"] == 0


def test_window_longer_than_every_episode(robot_dir):
  with pytest.raises(ValueError, match=r"15 steps is longer than every episode .*longest 14"):
    WindowSource(EpisodeDataset(robot_dir), WindowConfig(num_frames=5, action_chunk=3))


def test_statistics_are_cached_under_a_hash(robot_dir, tmp_path, monkeypatch):
  ds = EpisodeDataset(robot_dir)
  with pytest.raises(statistics.MissingStatisticsError, match="No normalisation statistics"):
    statistics.load_or_compute(ds, str(tmp_path), compute_if_missing=False)
  stats = statistics.load_or_compute(ds, str(tmp_path))
  assert set(stats) == {"joints", "proprio", "action"}
  assert len(glob.glob(str(tmp_path / "toy_robot-train-*.json"))) == 1
  # The second call reads the cache instead of computing.
  monkeypatch.setattr(statistics, "compute", lambda *a, **k: 1 / 0)
  cached = statistics.load_or_compute(ds, str(tmp_path))
  np.testing.assert_allclose(cached["action"].mean, stats["action"].mean)
  # Another transform is another key.
  other = statistics.cache_key(ds, max_steps=10, seed=0)
  assert other != statistics.cache_key(ds, max_steps=100_000, seed=0)
  # Statistics only count masked-in steps: the padded last action is excluded.
  assert stats["action"].count == sum(n - 1 for n in ROBOT_LENGTHS)
  # Normalised actions over the dataset have zero mean and unit std.
  steps = [ds.read_steps(e, range(n), images=False) for e, n in enumerate(ROBOT_LENGTHS)]
  actions = np.concatenate([s["action"][s["action_mask"]] for s in steps])
  normalised = stats["action"].normalize(actions, "mean_std")
  np.testing.assert_allclose(normalised.mean(0), 0, atol=1e-5)
  np.testing.assert_allclose(normalised.std(0), 1, atol=1e-4)
  np.testing.assert_allclose(stats["action"].denormalize(normalised, "mean_std"), actions,
                             atol=1e-5)


def _pipeline(refs, tmp_path, **kwargs):
  kwargs.setdefault("batch_size", 8)
  kwargs.setdefault("shard_index", 0)
  kwargs.setdefault("shard_count", 1)
  return Pipeline(refs, WINDOW, statistics_dir=str(tmp_path / "stats"), read_threads=2,
                  prefetch_buffer_size=8, **kwargs)


def _take(iterator, n):
  return [next(iterator) for _ in range(n)]


def _assert_same_batches(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert set(x) == set(y)
    for k in x:
      np.testing.assert_array_equal(x[k], y[k], err_msg=k)


ROPE_LONGEST = "straighten the yellow rope toward the right"   # 43 bytes: rope's longest


def _instruction_episodes(instructions, length=12):
  """Synthetic episodes, one per entry: a str, or a per-step list of them."""
  for e, instruction in enumerate(instructions):
    per_step = [instruction] * length if isinstance(instruction, str) else instruction
    episode = synthetic.synthetic_episode(ROBOT_SPEC, length, e, instruction=per_step[0])
    episode["steps"]["language_instruction"] = np.array(per_step, dtype=object)
    yield episode


def test_an_instruction_longer_than_the_limit_fails_the_pipeline_build(robot_dir, tmp_path):
  rope = builder.write_dataset(
      "toy_rope", ROBOT_SPEC,
      {"train": lambda: _instruction_episodes(["straighten the red rope toward the left",
                                               ROPE_LONGEST])}, str(tmp_path / "data"))
  refs = [DatasetRef(robot_dir), DatasetRef(rope, name="rope")]
  short = dataclasses.replace(WINDOW, max_instruction_length=32)
  with pytest.raises(ValueError) as info:
    Pipeline(refs, short, batch_size=2, shard_index=0, shard_count=1,
             statistics_dir=str(tmp_path / "stats"))
  message = str(info.value)
  assert "Dataset 'rope'" in message and rope in message
  assert f"{ROPE_LONGEST!r} is 43 utf-8 bytes" in message
  assert "max_instruction_length=32" in message
  assert not os.path.exists(tmp_path / "stats")   # failed before the statistics pass
  with pytest.raises(ValueError, match="'toy_rope'.* is 43 utf-8 bytes"):
    WindowSource(EpisodeDataset(rope), short, normalization="none")
  # A limit that fits: the whole instruction reaches the model.
  pipeline = Pipeline(refs, dataclasses.replace(WINDOW, max_instruction_length=43),
                      batch_size=2, shard_index=0, shard_count=1,
                      statistics_dir=str(tmp_path / "stats"))
  source = pipeline.sources[1]
  last = source[len(source) - 1]
  assert int(last["episode"]) == 1 and text.decode(last["instruction"]) == ROPE_LONGEST


def test_a_long_instruction_after_the_first_step_fails_its_read(tmp_path):
  """The episode index holds first-step instructions; a later long one fails when read."""
  path = builder.write_dataset(
      "toy_switch", ROBOT_SPEC,
      {"train": lambda: _instruction_episodes([["go"] * 5 + [ROPE_LONGEST] * 7])},
      str(tmp_path))
  source = WindowSource(EpisodeDataset(path), dataclasses.replace(
      WINDOW, max_instruction_length=32), normalization="none")
  assert text.decode(source[0]["instruction"]) == "go"
  assert source.locate(5) == (0, 5)
  with pytest.raises(ValueError, match="episode 0 step 5: .* is 43 utf-8 bytes"):
    source[5]


def test_mixture_proportions_and_padding(robot_dir, human_dir, tmp_path):
  pipeline = _pipeline([DatasetRef(robot_dir, 0.2), DatasetRef(human_dir, 0.8)], tmp_path,
                       batch_size=10)
  assert pipeline.layouts.action.names == ("arm_joints", "wrist_pose")
  assert pipeline.embodiments == ["human_hand", "toy_arm"]
  batches = _take(iter(pipeline), 30)
  from_robot = np.concatenate([b["dataset"] for b in batches]) == 0
  # 300 draws at p=0.2: std 0.023; grain interleaves deterministically, so it is exact.
  assert abs(from_robot.mean() - 0.2) < 3 * np.sqrt(0.2 * 0.8 / 300)
  b = batches[0]
  assert b["frames"].shape == (10, 2, 2, 16, 16, 3)
  assert b["actions"].shape == (10, 2, 3, 12)
  robot = b["dataset"] == 0
  # Robot windows: arm slots set, wrist_pose padded; human windows: the reverse.
  assert b["action_mask"][robot][..., :3].any() and not b["action_mask"][robot][..., 3:].any()
  assert not b["action_mask"][~robot][..., :3].any()
  assert b["hand_keypoints_mask"][~robot].all() and not b["hand_keypoints_mask"][robot].any()
  assert (b["camera_mask"][robot] == [True, False]).all()
  assert (b["camera_mask"][~robot] == [False, True]).all()  # 32x32 head frames, resized
  assert not b["joints_mask"][~robot].any()


def test_resume_mid_epoch_gives_the_same_batches(robot_dir, human_dir, tmp_path):
  refs = [DatasetRef(robot_dir, 0.5), DatasetRef(human_dir, 0.5)]
  uninterrupted = _take(iter(_pipeline(refs, tmp_path, seed=3)), 12)
  first = iter(_pipeline(refs, tmp_path, seed=3))
  _take(first, 5)
  state = first.get_state()
  restored = iter(_pipeline(refs, tmp_path, seed=3))  # a fresh process would do this
  restored.set_state(state)
  _assert_same_batches(_take(restored, 7), uninterrupted[5:])
  different = _take(iter(_pipeline(refs, tmp_path, seed=4)), 1)
  assert not np.array_equal(different[0]["episode"], uninterrupted[0]["episode"])


def test_hosts_read_disjoint_slices(robot_dir, tmp_path):
  refs = [DatasetRef(robot_dir)]
  seen = []
  for host in range(2):
    pipeline = _pipeline(refs, tmp_path, batch_size=4, shard_index=host, shard_count=2,
                         num_epochs=1, drop_remainder=False)
    assert pipeline.batch_size == 2
    seen.append({(int(e), int(s)) for b in pipeline for e, s in zip(b["episode"], b["start"])})
  total = len(pipeline.sources[0])
  assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == total
  with pytest.raises(ValueError, match="does not split evenly over 2 hosts"):
    _pipeline(refs, tmp_path, batch_size=5, shard_index=0, shard_count=2)


def test_hosts_together_read_the_single_host_batches(robot_dir, human_dir, tmp_path):
  # Global batch k is the same whatever the number of hosts: host h holds its block of rows.
  refs = [DatasetRef(robot_dir, weight=0.5), DatasetRef(human_dir, weight=0.5)]
  single = _take(iter(_pipeline(refs, tmp_path, batch_size=8)), 3)
  hosts = [_take(iter(_pipeline(refs, tmp_path, batch_size=8, shard_index=h, shard_count=2)),
                 3) for h in range(2)]
  joined = [{k: np.concatenate([h0[k], h1[k]]) for k in h0} for h0, h1 in zip(*hosts)]
  _assert_same_batches(single, joined)


def test_max_episodes_limits_windows_and_statistics(robot_dir, tmp_path):
  full = _pipeline([DatasetRef(robot_dir)], tmp_path, num_epochs=1, drop_remainder=False)
  few = _pipeline([DatasetRef(robot_dir, max_episodes=2)], tmp_path, num_epochs=1,
                  drop_remainder=False)
  episodes = {int(e) for b in few for e in b["episode"]}
  assert episodes == {0, 1}
  assert len(few.sources[0]) == sum(n - WINDOW.span + 1 for n in ROBOT_LENGTHS[:2])
  # Statistics of the used episodes only (their own cache entry), not of the whole split.
  expected = statistics.compute(EpisodeDataset(robot_dir), max_steps=10**9)
  assert few.statistics[few.names[0]]["joints"].count == sum(
      ROBOT_LENGTHS[:2])
  assert full.statistics[full.names[0]]["joints"].count == expected["joints"].count
  assert len(glob.glob(str(tmp_path / "stats" / "toy_robot-train-*.json"))) == 2
  with pytest.raises(ValueError, match="max_episodes must be >= 0"):
    _pipeline([DatasetRef(robot_dir, max_episodes=-1)], tmp_path)
  from wam.data import config as data_config  # pylint: disable=import-outside-toplevel
  from wam.data.pipeline import from_config  # pylint: disable=import-outside-toplevel
  c = data_config.default_config()
  c.datasets.robot = data_config.dataset_config(robot_dir, max_episodes=3)
  c.update(num_frames=2, action_chunk=3, cameras=("front",), image_size=(16, 16),
           batch_size=2, statistics_dir=str(tmp_path / "stats"), read_threads=1)
  assert len(from_config(c, shard_index=0, shard_count=1).sources[0].dataset) == 3


def test_worker_processes_are_deterministic_and_resume(robot_dir, tmp_path):
  # Each worker process reads its own slice of the windows and batches it, so the order
  # differs from in-process reading, but is a function of the seed and the position.
  refs = [DatasetRef(robot_dir)]
  expected = _take(iter(_pipeline(refs, tmp_path, seed=1, worker_count=2)), 6)
  iterator = iter(_pipeline(refs, tmp_path, seed=1, worker_count=2))
  _assert_same_batches(_take(iterator, 3), expected[:3])
  state = iterator.get_state()
  resumed = iter(_pipeline(refs, tmp_path, seed=1, worker_count=2))
  resumed.set_state(state)
  _assert_same_batches(_take(resumed, 3), expected[3:])


def test_mixture_field_disagreement_names_the_field(robot_dir, tmp_path, data_root):
  from wam.data import builder  # pylint: disable=import-outside-toplevel
  from wam.data.layout import Layout  # pylint: disable=import-outside-toplevel
  from wam.data.schema import EpisodeSpec  # pylint: disable=import-outside-toplevel
  spec = EpisodeSpec(embodiment="big_arm", source="robot", cameras=("front",),
                     image_size=(16, 16), joints=Layout.of([("arm_joints", 7)]),
                     action=Layout.of([("arm_joints", 7)]))
  other = builder.write_dataset("big_arm", spec,
                                {"train": lambda: synthetic.synthetic_episodes(spec, 2)},
                                str(tmp_path))
  with pytest.raises(ValueError, match="joints slot 'arm_joints' has size 3 .* and 7"):
    _pipeline([DatasetRef(robot_dir), DatasetRef(other)], tmp_path)
  odd = EpisodeSpec(embodiment="odd", source="robot", cameras=("front",), image_size=(12, 12),
                    action=Layout.of([("a", 1)]))
  odd_dir = builder.write_dataset("odd_images", odd,
                                  {"train": lambda: synthetic.synthetic_episodes(odd, 2)},
                                  str(tmp_path))
  with pytest.raises(ValueError, match=r"image_size: .* has \(12, 12\) images"):
    _pipeline([DatasetRef(robot_dir), DatasetRef(odd_dir)], tmp_path)


def test_damaged_data_raises_or_is_skipped_and_counted(robot_dir, tmp_path):
  target = tmp_path / "damaged"
  shutil.copytree(robot_dir, target)
  shard = glob.glob(str(target / "*.array_record-*"))[0]
  data = bytearray(open(shard, "rb").read())
  data[len(data) // 40:len(data) // 40 + 32] = b"\xa5" * 32
  open(shard, "wb").write(bytes(data))
  refs = [DatasetRef(str(target))]
  kwargs = dict(normalization="none", shuffle=False, num_epochs=1, drop_remainder=False)
  with pytest.raises(CorruptDataError, match=os.path.basename(shard)):
    list(_pipeline(refs, tmp_path, **kwargs))
  batches = list(_pipeline(refs, tmp_path, on_corrupt="skip", **kwargs))
  skipped = sum(int(b["skipped"].sum()) for b in batches)
  assert skipped > 0
  assert sum(len(b["episode"]) for b in batches) == len(
      WindowSource(EpisodeDataset(robot_dir), WINDOW))


def test_two_processes_read_their_own_slices(robot_dir, tmp_path):
  import json  # pylint: disable=import-outside-toplevel
  import socket  # pylint: disable=import-outside-toplevel
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  with socket.socket() as s:
    s.bind(("localhost", 0))
    port = s.getsockname()[1]
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__)))))
  env = dict(os.environ, PYTHONPATH=root, JAX_PLATFORMS="cpu")
  outs = [str(tmp_path / f"host{i}.json") for i in range(2)]
  procs = [subprocess.Popen([sys.executable, "-m", "tests.wam.data.multihost_reader",
                             str(port), str(i), robot_dir, str(tmp_path / "stats"), outs[i]],
                            cwd=root, env=env, stderr=subprocess.PIPE, text=True)
           for i in range(2)]
  for p in procs:
    _, err = p.communicate(timeout=240)
    assert p.returncode == 0, err[-3000:]
  hosts = [json.load(open(o)) for o in outs]
  assert [h["shard"] for h in hosts] == [[0, 2], [1, 2]]
  assert all(h["batch_size"] == 2 for h in hosts)
  seen = [{tuple(w) for w in h["windows"]} for h in hosts]
  assert not seen[0] & seen[1]
  assert len(seen[0] | seen[1]) == len(WindowSource(EpisodeDataset(robot_dir), WINDOW))


def test_datasets_of_one_embodiment_share_pooled_statistics(robot_dir, human_dir, data_root,
                                                             tmp_path):
  play_dir = builder.write_dataset(
      "toy_robot_play", ROBOT_SPEC,
      {"train": lambda: synthetic.synthetic_episodes(ROBOT_SPEC, 5, 10, seed=7)},
      str(data_root))
  refs = [DatasetRef(robot_dir, 0.5), DatasetRef(play_dir, 0.3, imitate=False),
          DatasetRef(human_dir, 0.2)]
  pipeline = _pipeline(refs, tmp_path, batch_size=10)
  own = [statistics.load_or_compute(EpisodeDataset(d, "train"), str(tmp_path / "stats"))
         for d in (robot_dir, play_dir)]
  pooled = pipeline.statistics["toy_robot"]["action"]
  np.testing.assert_array_equal(pipeline.statistics["toy_robot_play"]["action"].mean,
                                pooled.mean)
  np.testing.assert_allclose(pooled.mean, statistics.pool(own)["action"].mean)
  # The human dataset (another embodiment) keeps its own.
  human = statistics.load_or_compute(EpisodeDataset(human_dir, "train"), str(tmp_path / "stats"))
  np.testing.assert_array_equal(pipeline.statistics["toy_human"]["action"].mean,
                                human["action"].mean)
  # Play windows say that their actions are not to be imitated.
  batch = next(iter(pipeline))
  names = np.array(pipeline.names)[batch["dataset"]]
  np.testing.assert_array_equal(batch["imitate"], names != "toy_robot_play")


def test_pooled_statistics_equal_those_of_the_union():
  rng = np.random.default_rng(0)
  a, b = rng.normal(0, 1, (30, 2)), rng.normal(3, 2, (70, 2))
  def stats(x):
    return {"action": statistics.VectorStatistics(
        mean=x.mean(0), std=x.std(0), min=x.min(0), max=x.max(0),
        q01=np.quantile(x, 0.01, 0), q99=np.quantile(x, 0.99, 0), count=len(x))}
  pooled = statistics.pool([stats(a), stats(b)])["action"]
  union = np.concatenate([a, b])
  np.testing.assert_allclose(pooled.mean, union.mean(0), rtol=1e-5)
  np.testing.assert_allclose(pooled.std, union.std(0), rtol=1e-5)
  np.testing.assert_allclose(pooled.max, union.max(0))
  assert pooled.count == 100


def test_statistics_pool_per_named_slot_across_layouts():
  """`reach` and `push` share the arm's slots; only `push` has the block's position."""
  from wam.data.layout import Layout  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(1)
  arm_a, arm_b = rng.normal(0, 1, (40, 2)), rng.normal(2, 3, (60, 2))
  block = rng.normal(5, 0.5, (60, 1))
  def stats(x):
    return {"proprio": statistics.VectorStatistics(
        mean=x.mean(0), std=x.std(0), min=x.min(0), max=x.max(0),
        q01=np.quantile(x, 0.01, 0), q99=np.quantile(x, 0.99, 0), count=len(x))}
  reach, push = statistics.pool_by_slot(
      [stats(arm_a), stats(np.concatenate([arm_b, block], 1))],
      [{"proprio": Layout.of([("arm", 2)])},
       {"proprio": Layout.of([("arm", 2), ("block", 1)])}])
  arms = np.concatenate([arm_a, arm_b])
  np.testing.assert_allclose(reach["proprio"].mean, arms.mean(0), rtol=1e-5)
  np.testing.assert_allclose(push["proprio"].mean[:2], arms.mean(0), rtol=1e-5)
  np.testing.assert_allclose(push["proprio"].std[2:], block.std(0), rtol=1e-5)
  assert reach["proprio"].mean.shape == (2,) and push["proprio"].mean.shape == (3,)
