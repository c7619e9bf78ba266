"""LeRobot datasets in and out: v2.1 and v3.0 fixtures written here the way lerobot's
own writer lays them out (lerobot 0.4.4 ``LeRobotDataset`` and its v2.1 predecessor;
file names, info.json fields, parquet columns and dtypes), imported, exported and read
back. Fixture videos are lossless RGB H.264 (or PNGs in the parquet), so imports are
checked for exact values; lossy AV1 is checked to codec noise."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import dojo
from dojo.datasets.dojo_robot import Builder, DojoRobotConfig
from wam.data import builder, synthetic
from wam.data.importers import KeyMapping, SourceError, lerobot, lerobot_export, read_report
from wam.data.layout import Layout
from wam.data.reader import EpisodeDataset
from wam.data.schema import EpisodeSpec, flatten

from tests.dojo import toy

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
FPS = 10
# lerobot's DEFAULT_FEATURES, written out rather than imported from lerobot_format: the
# fixtures follow the published format, not the importer's copy of it.
DEFAULT_FEATURES = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]


# ---------------------------------------------------------------------------- fixtures
def _episode(e, n, cameras, size=16):
  """Frames that name their episode and step: a flat level ``40 + 13 e + 9 t`` with a
  gentle gradient, so one frame off in a seek is off by 9 levels, far above codec noise."""
  rng = np.random.default_rng(e)
  ramp = np.linspace(0, 12, size)[None, :, None]
  frames = {}
  for c, cam in enumerate(cameras):
    level = (40 + 13 * e + 9 * np.arange(n) + 5 * c)[:, None, None, None] % 200
    frames[cam] = np.broadcast_to(level + ramp[..., None], (n, size, size, 3)).astype(np.uint8)
  return {"state": rng.normal(size=(n, 6)).astype(np.float32),
          "action": rng.normal(size=(n, 6)).astype(np.float32),
          "reward": (np.arange(n) == n - 1).astype(np.float32),
          "frames": frames, "tasks": [f"pick cube {e % 2}"] * n}


def _encode(path, frames, codec):
  """An MP4 as lerobot encodes one (GOP 2, CRF 30, yuv420p); ``lossless``: RGB H.264 at
  -qp 0 (libx264rgb), which decodes to exactly the frames written."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  if codec == "lossless":
    encoder, pix_fmt, params = "libx264rgb", "rgb24", ["-g", "2", "-qp", "0"]
  else:
    encoder, pix_fmt, params = codec, "yuv420p", ["-g", "2", "-crf", "30"]
    params += ["-preset", "12"] if codec == "libsvtav1" else []
  gen = imageio_ffmpeg.write_frames(
      path, frames.shape[2:0:-1], fps=FPS, codec=encoder, pix_fmt_out=pix_fmt, quality=None,
      macro_block_size=1, output_params=params, ffmpeg_log_level="error")
  gen.send(None)
  for f in frames:
    gen.send(np.ascontiguousarray(f))
  gen.close()


def _concat(paths, out):
  """lerobot's ``concatenate_video_files``: the concat demuxer, streams copied."""
  os.makedirs(os.path.dirname(out), exist_ok=True)
  with tempfile.NamedTemporaryFile("w", suffix=".ffconcat", delete=False) as f:
    f.write("ffconcat version 1.0\n" + "".join(f"file '{os.path.abspath(p)}'\n" for p in paths))
  subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "concat",
                  "-safe", "0", "-i", f.name, "-c", "copy", "-movflags", "faststart", out],
                 check=True)
  os.unlink(f.name)


def _features(cameras, size, codec, images=False):
  features = {"action": {"dtype": "float32", "shape": [6], "names": JOINTS},
              "observation.state": {"dtype": "float32", "shape": [6], "names": JOINTS}}
  for cam in cameras:
    if images:  # use_videos=False: PNGs embedded in the parquet (datasets.Image)
      features[f"observation.images.{cam}"] = {
          "dtype": "image", "shape": [size, size, 3], "names": ["height", "width", "channel"]}
      continue
    features[f"observation.images.{cam}"] = {
        "dtype": "video", "shape": [size, size, 3], "names": ["height", "width", "channels"],
        "info": {"video.height": size, "video.width": size,
                 "video.codec": "av1" if codec == "libsvtav1" else "h264",
                 "video.pix_fmt": "gbrp" if codec == "lossless" else "yuv420p",
                 "video.is_depth_map": False, "video.fps": FPS,
                 "video.channels": 3, "has_audio": False}}
  features["next.reward"] = {"dtype": "float32", "shape": [1], "names": None}
  return {**features, **DEFAULT_FEATURES}


def _frame_table(features, ep, e, start, task_index):
  n = len(ep["state"])
  cols = {"action": ep["action"], "observation.state": ep["state"],
          "next.reward": ep["reward"], "timestamp": (np.arange(n) / FPS).astype(np.float32),
          "frame_index": np.arange(n), "episode_index": np.full(n, e),
          "index": np.arange(start, start + n),
          "task_index": np.array([task_index[t] for t in ep["tasks"]])}
  arrays, names = [], []
  for key, ft in features.items():
    if ft["dtype"] == "video":
      continue
    if ft["dtype"] == "image":
      cam = key.rsplit(".", 1)[-1]
      cells = [{"bytes": iio.imwrite("<bytes>", f, extension=".png"), "path": None}
               for f in ep["frames"][cam]]
      arrays.append(pa.array(cells, pa.struct([("bytes", pa.binary()),
                                               ("path", pa.string())])))
      names.append(key)
      continue
    v = cols[key]
    arrow = {"float32": pa.float32(), "int64": pa.int64()}[ft["dtype"]]
    if ft["shape"] == [1]:  # datasets.Value
      arrays.append(pa.array(v.astype(ft["dtype"]), arrow))
    else:                   # datasets.Sequence(length=...): a fixed-size list
      arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1), arrow),
                                                      ft["shape"][0]))
    names.append(key)
  return pa.Table.from_arrays(arrays, names=names)


def _stats(v):
  v = np.asarray(v, np.float64).reshape(len(v), -1)
  return {"min": v.min(0).tolist(), "max": v.max(0).tolist(), "mean": v.mean(0).tolist(),
          "std": v.std(0).tolist(), "count": [len(v)]}


def write_v21(root, episodes, cameras=("top",), size=16, codec="libx264", images=False):
  """A LeRobot v2.1 dataset: one parquet and one MP4 per episode (and camera); with
  ``images``, PNG frames inside the parquet instead of videos."""
  features = _features(cameras, size, codec, images=images)
  tasks = {}
  for ep in episodes:
    for t in ep["tasks"]:
      tasks.setdefault(t, len(tasks))
  start = 0
  os.makedirs(os.path.join(root, "meta"))
  with open(os.path.join(root, "meta/episodes.jsonl"), "w") as fe, \
      open(os.path.join(root, "meta/episodes_stats.jsonl"), "w") as fs:
    for e, ep in enumerate(episodes):
      n = len(ep["state"])
      path = os.path.join(root, f"data/chunk-000/episode_{e:06d}.parquet")
      os.makedirs(os.path.dirname(path), exist_ok=True)
      pq.write_table(_frame_table(features, ep, e, start, tasks), path)
      for cam in () if images else cameras:
        _encode(os.path.join(root, f"videos/chunk-000/observation.images.{cam}/"
                                   f"episode_{e:06d}.mp4"), ep["frames"][cam], codec)
      fe.write(json.dumps({"episode_index": e, "tasks": list(dict.fromkeys(ep["tasks"])),
                           "length": n}) + "\n")
      fs.write(json.dumps({"episode_index": e, "stats": {
          "action": _stats(ep["action"]), "observation.state": _stats(ep["state"])}}) + "\n")
      start += n
  with open(os.path.join(root, "meta/tasks.jsonl"), "w") as f:
    f.writelines(json.dumps({"task_index": i, "task": t}) + "\n" for t, i in tasks.items())
  info = {"codebase_version": "v2.1", "robot_type": "so100",
          "total_episodes": len(episodes), "total_frames": start, "total_tasks": len(tasks),
          "total_videos": 0 if images else len(episodes) * len(cameras), "total_chunks": 1,
          "chunks_size": 1000, "fps": FPS, "splits": {"train": f"0:{len(episodes)}"},
          "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
          "video_path": None if images else ("videos/chunk-{episode_chunk:03d}/{video_key}/"
                                             "episode_{episode_index:06d}.mp4"),
          "features": features}
  with open(os.path.join(root, "meta/info.json"), "w") as f:
    json.dump(info, f, indent=4)
  return root


def write_v30(root, episodes, cameras=("top",), size=16, codec="libsvtav1",
              episodes_per_file=2, chunks_size=2):
  """A LeRobot v3.0 dataset: ``episodes_per_file`` episodes per data and video file,
  ``chunks_size`` files per chunk; videos encoded per episode, then concatenated."""
  features = _features(cameras, size, codec)
  tasks, rows, start = {}, [], 0
  for ep in episodes:
    for t in ep["tasks"]:
      tasks.setdefault(t, len(tasks))
  groups = [list(range(i, min(i + episodes_per_file, len(episodes))))
            for i in range(0, len(episodes), episodes_per_file)]
  chunk, file = 0, 0
  tmp = tempfile.mkdtemp()
  for group in groups:
    tables, parts, offset = [], {c: [] for c in cameras}, 0.0
    for e in group:
      ep, n = episodes[e], len(episodes[e]["state"])
      tables.append(_frame_table(features, ep, e, start, tasks))
      row = {"episode_index": e, "tasks": list(dict.fromkeys(ep["tasks"])), "length": n,
             "data/chunk_index": chunk, "data/file_index": file,
             "dataset_from_index": start, "dataset_to_index": start + n}
      for cam in cameras:
        part = os.path.join(tmp, f"{cam}_{e}.mp4")
        _encode(part, ep["frames"][cam], codec)
        parts[cam].append(part)
        row.update({f"videos/observation.images.{cam}/chunk_index": chunk,
                    f"videos/observation.images.{cam}/file_index": file,
                    f"videos/observation.images.{cam}/from_timestamp": offset,
                    f"videos/observation.images.{cam}/to_timestamp": offset + n / FPS})
      row.update({f"stats/action/{k}": v for k, v in _stats(ep["action"]).items()})
      row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
      rows.append(row)
      offset += n / FPS
      start += n
    path = os.path.join(root, f"data/chunk-{chunk:03d}/file-{file:03d}.parquet")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with pq.ParquetWriter(path, tables[0].schema, compression="snappy") as w:
      for t in tables:  # one row group per episode, as lerobot writes them
        w.write_table(t)
    for cam in cameras:
      _concat(parts[cam], os.path.join(
          root, f"videos/observation.images.{cam}/chunk-{chunk:03d}/file-{file:03d}.mp4"))
    chunk, file = (chunk + 1, 0) if file == chunks_size - 1 else (chunk, file + 1)
  shutil.rmtree(tmp)
  path = os.path.join(root, "meta/episodes/chunk-000/file-000.parquet")
  os.makedirs(os.path.dirname(path))
  pq.write_table(pa.Table.from_pylist(rows), path)
  # lerobot 0.4.4: pd.DataFrame({"task_index": ...}, index=tasks).to_parquet(...)
  table = pa.table({"task_index": list(tasks.values()), "__index_level_0__": list(tasks)})
  pandas = {"index_columns": ["__index_level_0__"], "columns": [
      {"name": "task_index", "field_name": "task_index"},
      {"name": None, "field_name": "__index_level_0__"}]}
  pq.write_table(table.replace_schema_metadata({"pandas": json.dumps(pandas)}),
                 os.path.join(root, "meta/tasks.parquet"))
  with open(os.path.join(root, "meta/stats.json"), "w") as f:
    json.dump({"action": _stats(np.concatenate([ep["action"] for ep in episodes]))}, f)
  info = {"codebase_version": "v3.0", "robot_type": "so100", "total_episodes": len(episodes),
          "total_frames": start, "total_tasks": len(tasks), "chunks_size": chunks_size,
          "data_files_size_in_mb": 100, "video_files_size_in_mb": 200, "fps": FPS,
          "splits": {"train": f"0:{len(episodes)}"},
          "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
          "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
          "features": features}
  with open(os.path.join(root, "meta/info.json"), "w") as f:
    json.dump(info, f, indent=4)
  return root


def _check_frames(got, want, codec="libsvtav1"):
  """Exact from lossless video; else codec-close, and closer to the right frame than to
  its neighbours (no seek slip)."""
  if codec == "lossless":
    np.testing.assert_array_equal(got, want)
    return
  err = np.abs(got.astype(int) - want.astype(int)).mean(axis=(1, 2, 3))
  assert err.max() < 3.0, err


@pytest.fixture(scope="module")
def v21(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("lerobot") / "v21")
  eps = [_episode(e, n, ("top",)) for e, n in enumerate((6, 8))]
  return write_v21(root, eps, codec="lossless"), eps


# ---------------------------------------------------------------------------- import
def test_v21_import(v21, tmp_path):
  root, eps = v21
  path = lerobot.import_lerobot(root, name="so100_v21", data_dir=str(tmp_path))
  ds = EpisodeDataset(path, "train")
  spec = ds.spec
  assert (spec.cameras, spec.image_size, spec.fps) == (("top",), (16, 16), float(FPS))
  assert (spec.embodiment, spec.source) == ("so100", "robot")
  assert spec.joints.to_json() == [["state", 6]] and spec.action.to_json() == [["action", 6]]
  assert ds.episode_lengths.tolist() == [6, 8]
  assert ds.instructions == ["pick cube 0", "pick cube 1"]
  for e, want in enumerate(eps):
    got = ds.episode(e)["steps"]
    np.testing.assert_array_equal(got["observation"]["joints"], want["state"])
    np.testing.assert_array_equal(got["action"], want["action"])
    np.testing.assert_array_equal(got["reward"], want["reward"])
    np.testing.assert_array_equal(got["observation"]["image_top"], want["frames"]["top"])
    assert list(got["language_instruction"]) == want["tasks"]
  report = read_report(path)
  assert report["kind"] == "LeRobot" and report["skipped"] == []


@pytest.mark.parametrize("codec", ["lossless", "libsvtav1"])
def test_v30_import_several_files_and_chunks(tmp_path, codec):
  cams = ("top", "wrist")
  eps = [_episode(e, n, cams) for e, n in enumerate((7, 9, 8, 10, 6))]
  eps[3]["tasks"] = ["pick cube 1"] * 5 + ["place it"] * 5  # a task change mid-episode
  root = write_v30(str(tmp_path / "v30"), eps, cams, codec=codec)
  assert os.path.exists(os.path.join(root, "data/chunk-001/file-000.parquet"))
  assert os.path.exists(os.path.join(root, "videos/observation.images.wrist/chunk-000/"
                                           "file-001.mp4"))
  path = lerobot.import_lerobot(
      root, lerobot.lerobot(state_slots=(("arm_joints", 5), ("gripper", 1))),
      name="so100_v30", data_dir=str(tmp_path / "data"), splits={"train": 0.6, "val": 0.4})
  train, val = EpisodeDataset(path, "train"), EpisodeDataset(path, "val")
  assert train.spec.cameras == cams and train.spec.joints.names == ("arm_joints", "gripper")
  assert train.episode_lengths.tolist() == [7, 9, 8] and val.episode_lengths.tolist() == [10, 6]
  for ds, first in ((train, 0), (val, 3)):
    for i in range(len(ds)):
      got, want = ds.episode(i)["steps"], eps[first + i]
      np.testing.assert_array_equal(got["observation"]["joints"], want["state"])
      np.testing.assert_array_equal(got["action"], want["action"])
      np.testing.assert_array_equal(got["reward"], want["reward"])
      for cam in cams:  # episodes 1, 3 start mid-file: the seek must land on frame 0
        _check_frames(got["observation"][f"image_{cam}"], want["frames"][cam], codec)
      assert list(got["language_instruction"]) == want["tasks"]


def test_image_size_and_episode_selection(v21, tmp_path):
  root, _ = v21
  path = lerobot.import_lerobot(root, name="small", data_dir=str(tmp_path), image_size=(8, 8),
                                episode_groups="episode_000001", task="pick")
  ds = EpisodeDataset(path, "train")
  assert ds.spec.image_size == (8, 8) and ds.episode_lengths.tolist() == [8]
  assert ds.tasks == ["pick"]


def test_dataset_written_by_lerobot_itself(tmp_path):
  """tests/fixtures/lerobot_writer_v3: made by lerobot 0.4.4's LeRobotDataset (make.py)."""
  fixture = os.path.join(ROOT, "tests/fixtures/lerobot_writer_v3")
  want = np.load(os.path.join(fixture, "expected.npz"))
  path = lerobot.import_lerobot(os.path.join(fixture, "dataset"), name="lerobot_made",
                                data_dir=str(tmp_path))
  ds = EpisodeDataset(path, "train")
  assert (ds.spec.cameras, ds.spec.image_size, ds.spec.embodiment) == (("top",), (32, 32),
                                                                       "so100")
  assert ds.instructions == list(want["tasks"])
  for e in range(2):
    got = ds.episode(e)["steps"]
    np.testing.assert_array_equal(got["observation"]["joints"], want["state"][e])
    np.testing.assert_array_equal(got["action"], want["action"][e])
    _check_frames(got["observation"]["image_top"], want["frames"][e])


def test_v21_images_in_parquet(tmp_path):
  eps = [_episode(e, 4, ("top",)) for e in range(2)]
  root = write_v21(str(tmp_path / "img"), eps, images=True)
  path = lerobot.import_lerobot(root, name="img", data_dir=str(tmp_path / "d"))
  ds = EpisodeDataset(path, "train")
  for e, want in enumerate(eps):  # PNG is lossless: exact
    np.testing.assert_array_equal(ds.episode(e)["steps"]["observation"]["image_top"],
                                  want["frames"]["top"])


# ---------------------------------------------------------------------------- export
ROBOT = EpisodeSpec(embodiment="toy_arm", source="sim", cameras=("front", "wrist"),
                    image_size=(16, 16), joints=Layout.of([("arm_joints", 3), ("gripper", 1)]),
                    proprio=Layout.of([("vel", 2)]),
                    action=Layout.of([("arm_joint_targets", 3), ("gripper", 1)]), fps=10.0)


@pytest.mark.parametrize("codec", ["h264", "libsvtav1"])
def test_export_import_roundtrip(tmp_path, codec):
  lengths = [6, 9, 7]
  src = builder.write_dataset(
      "toy", ROBOT, {"train": lambda: synthetic.synthetic_episodes(ROBOT, 2, lengths[:2]),
                     "val": lambda: synthetic.synthetic_episodes(ROBOT, 1, lengths[2:], 5)},
      str(tmp_path / "data"))
  out = lerobot_export.export_lerobot(src, str(tmp_path / "lr"), codec=codec,
                                      episodes_per_file=2, chunks_size=1)
  with open(os.path.join(out, "meta/info.json")) as f:
    info = json.load(f)
  assert info["codebase_version"] == "v3.0" and info["total_frames"] == sum(lengths)
  assert info["splits"] == {"train": "0:2", "val": "2:3"} and info["robot_type"] == "toy_arm"
  assert info["features"]["observation.state"]["names"] == [
      "arm_joints_0", "arm_joints_1", "arm_joints_2", "gripper"]
  assert info["features"]["observation.images.front"]["info"]["video.codec"] == (
      "h264" if codec == "h264" else "av1")
  for rel in ("data/chunk-000/file-000.parquet", "data/chunk-001/file-000.parquet",
              "videos/observation.images.wrist/chunk-001/file-000.mp4",
              "meta/episodes/chunk-000/file-000.parquet", "meta/tasks.parquet",
              "meta/stats.json"):
    assert os.path.exists(os.path.join(out, rel)), rel
  data = pq.read_table(os.path.join(out, "data/chunk-000/file-000.parquet"))
  assert data.column_names[-5:] == list(DEFAULT_FEATURES)
  assert data.schema.field("observation.state").type == pa.list_(pa.float32(), 4)
  assert data.column("index").to_pylist() == list(range(15))
  with open(os.path.join(out, "meta/stats.json")) as f:
    stats = json.load(f)
  assert stats["action"]["count"] == [sum(lengths)]
  assert np.array(stats["observation.images.front"]["mean"]).shape == (3, 1, 1)

  mapping = KeyMapping(images={"*": "observation.images.*"},
                       joints=[{"key": "observation.state",
                                "slots": [["arm_joints", 3], ["gripper", 1]]}],
                       proprio=[{"key": "observation.proprio", "name": "vel"}],
                       action=[{"key": "action",
                                "slots": [["arm_joint_targets", 3], ["gripper", 1]]}],
                       action_mask="action_mask", reward="next.reward",
                       is_terminal="next.done", instruction="task",
                       metadata_json="episode_metadata")
  back = lerobot.import_lerobot(out, mapping, name="back", data_dir=str(tmp_path / "data"),
                                splits={"train": 2, "val": 1}, embodiment="toy_arm",
                                source="sim")
  for split in ("train", "val"):
    a, b = EpisodeDataset(src, split), EpisodeDataset(back, split)
    assert b.spec == ROBOT and b.instructions == a.instructions
    for i in range(len(a)):
      x, y = a.episode(i)["steps"], b.episode(i)["steps"]
      for key in ("joints", "proprio"):
        np.testing.assert_array_equal(y["observation"][key], x["observation"][key])
      for key in ("action", "action_mask", "reward", "is_terminal", "language_instruction"):
        np.testing.assert_array_equal(y[key], x[key])
      for cam in ROBOT.cameras:
        err = np.abs(y["observation"][f"image_{cam}"].astype(int)
                     - x["observation"][f"image_{cam}"].astype(int)).mean()
        assert err < 8.0, (cam, err)


@pytest.fixture(scope="module")
def dojo_dataset(tmp_path_factory):
  """A real Dojo dataset: the dojo_robot builder collects noisy-expert episodes of the
  tests' two-link MJX task, rendered by the Dojo renderer (front and wrist at 16x16;
  about 15 s here, against about 30 s for the ``reach`` task's robot)."""
  if "toy" not in dojo.names():
    dojo.register("toy", toy.Toy)
  config = DojoRobotConfig(name="toy_lerobot", task="toy", num_episodes=4, batch_size=4,
                           cameras=("front", "wrist"), image_size=(16, 16), num_steps=7,
                           val_fraction=0.25)
  built = Builder(config=config, data_dir=str(tmp_path_factory.mktemp("dojo")))
  built.download_and_prepare()
  return os.fspath(built.data_dir)


def test_dojo_dataset_exported_lossless_and_imported_back_is_identical(dojo_dataset, tmp_path):
  """Export to LeRobot v3.0 with ``codec="lossless"``, import back with ``key_mapping``:
  the same spec, splits, episode lengths, tasks, instructions and success, and every
  step field equal, frames bit for bit."""
  src = {split: EpisodeDataset(dojo_dataset, split) for split in ("train", "val")}
  spec = src["train"].spec
  out = lerobot_export.export_lerobot(dojo_dataset, str(tmp_path / "lr"), codec="lossless",
                                      episodes_per_file=2)
  with open(os.path.join(out, "meta/info.json")) as f:
    info = json.load(f)
  video = info["features"]["observation.images.front"]["info"]
  assert (video["video.codec"], video["video.pix_fmt"]) == ("h264", "gbrp")
  assert info["splits"] == {"train": "0:3", "val": "3:4"}
  back = lerobot.import_lerobot(out, lerobot_export.key_mapping(spec), name="dojo_back",
                                data_dir=str(tmp_path / "data"), splits={"train": 3, "val": 1})
  for split, a in src.items():
    b = EpisodeDataset(back, split)
    assert b.spec == spec and len(b) == len(a)
    assert b.episode_lengths.tolist() == a.episode_lengths.tolist()
    assert (b.tasks, b.instructions, b.successes.tolist()) == (a.tasks, a.instructions,
                                                              a.successes.tolist())
    for i in range(len(a)):
      x, y = a.episode(i), b.episode(i)
      assert y["metadata"] == x["metadata"]
      fx, fy = flatten(x["steps"]), flatten(y["steps"])
      assert sorted(fy) == sorted(fx)
      for key, value in fx.items():
        assert fy[key].dtype == value.dtype, key
        np.testing.assert_array_equal(fy[key], value, err_msg=f"{split} {i} {key}")


# ---------------------------------------------------------------------------- errors
def _copy(root, tmp_path):
  return shutil.copytree(root, str(tmp_path / "copy"))


def test_missing_key_names_key_episode_and_file(v21, tmp_path):
  mapping = KeyMapping(images={"top": "observation.images.top"}, joints=["observation.joints"])
  with pytest.raises(SourceError) as e:
    lerobot.import_lerobot(v21[0], mapping, name="x", data_dir=str(tmp_path))
  msg = str(e.value)
  assert "'observation.joints'" in msg and "episode_000000" in msg and "info.json" in msg
  assert "observation.state" in msg  # the keys that are there


def test_missing_video_corrupt_parquet_and_bad_shape(v21, tmp_path):
  root = _copy(v21[0], tmp_path)
  video = os.path.join(root, "videos/chunk-000/observation.images.top/episode_000001.mp4")
  os.remove(video)
  with pytest.raises(SourceError, match="episode_000001.*does not exist"):
    lerobot.import_lerobot(root, name="x", data_dir=str(tmp_path / "d"))
  parquet = os.path.join(root, "data/chunk-000/episode_000000.parquet")
  with open(parquet, "wb") as f:
    f.write(b"not parquet")
  with pytest.raises(SourceError, match="episode_000000.parquet.*corrupt"):
    lerobot.import_lerobot(root, name="x", data_dir=str(tmp_path / "d"))
  root2 = _copy(v21[0], tmp_path / "b")
  info_path = os.path.join(root2, "meta/info.json")
  with open(info_path) as f:
    info = json.load(f)
  info["features"]["observation.state"]["shape"] = [7]
  with open(info_path, "w") as f:
    json.dump(info, f)
  with pytest.raises(SourceError, match="observation.state.*6 values per frame.*shape \\[7\\]"):
    lerobot.import_lerobot(root2, name="x", data_dir=str(tmp_path / "d"))


def _nothing_written(data_dir):
  """No dataset (nor a TFDS temporary one) under ``data_dir``."""
  leftovers = [os.path.join(d, f) for d, _, files in os.walk(data_dir) for f in files]
  assert not leftovers, leftovers


def test_short_video_and_unknown_codec_name_file_episode_key_and_write_nothing(v21, tmp_path):
  """Both are found only when frames are decoded (the write pass): the error names the
  dataset, episode, key and video, and the half-built dataset is gone."""
  root = _copy(v21[0], tmp_path)
  video = os.path.join(root, "videos/chunk-000/observation.images.top/episode_000001.mp4")
  frames = v21[1][1]["frames"]["top"]
  _encode(video, frames[:3], "lossless")   # the parquet has 8 rows
  data_dir = str(tmp_path / "d")
  with pytest.raises(SourceError) as e:
    lerobot.import_lerobot(root, name="x", data_dir=data_dir)
  msg = str(e.value)
  assert "info.json" in msg and "episode_000001" in msg and "'observation.images.top'" in msg
  assert "episode_000001.mp4 has 3 frames" in msg and "the episode has 8" in msg
  _nothing_written(data_dir)
  # A stream whose codec has no decoder: the sample entry renamed from avc1 to wam0.
  _encode(video, frames, "lossless")
  with open(video, "rb") as f:
    data = f.read()
  with open(video, "wb") as f:
    f.write(data.replace(b"avc1", b"wam0"))
  with pytest.raises(SourceError) as e:
    lerobot.import_lerobot(root, name="x", data_dir=data_dir)
  msg = str(e.value)
  assert "episode_000001" in msg and "'observation.images.top'" in msg
  assert "episode_000001.mp4 is in a codec the bundled ffmpeg cannot decode" in msg
  assert "wam0" in msg
  _nothing_written(data_dir)


def test_unsupported_version(v21, tmp_path):
  root = _copy(v21[0], tmp_path)
  info_path = os.path.join(root, "meta/info.json")
  with open(info_path) as f:
    info = json.load(f)
  info["codebase_version"] = "v1.6"
  with open(info_path, "w") as f:
    json.dump(info, f)
  with pytest.raises(SourceError, match="'v1.6' is not supported.*v3.0"):
    lerobot.import_lerobot(root, name="x", data_dir=str(tmp_path / "d"))
  with pytest.raises(FileNotFoundError, match="not a LeRobot dataset"):
    lerobot.import_lerobot(str(tmp_path), name="x", data_dir=str(tmp_path / "d"))


def test_skip_mode(tmp_path):
  eps = [_episode(e, 5, ("top",)) for e in range(4)]
  root = write_v21(str(tmp_path / "v21"), eps)
  os.remove(os.path.join(root, "videos/chunk-000/observation.images.top/episode_000001.mp4"))
  with open(os.path.join(root, "data/chunk-000/episode_000002.parquet"), "wb") as f:
    f.write(b"PAR1 truncated")
  # Episode 3's video is cut short: found only when decoding, in the write pass.
  _encode(os.path.join(root, "videos/chunk-000/observation.images.top/episode_000003.mp4"),
          eps[3]["frames"]["top"][:3], "libx264")
  path = lerobot.import_lerobot(root, name="skipped", data_dir=str(tmp_path / "d"),
                                on_error="skip")
  ds = EpisodeDataset(path, "train")
  assert len(ds) == 1
  np.testing.assert_array_equal(ds.episode(0)["steps"]["action"], eps[0]["action"])
  skipped = read_report(path)["skipped"]
  assert [(s["group"], s["stage"]) for s in skipped] == [
      ("episode_000001", "scan"), ("episode_000002", "scan"), ("episode_000003", "write")]
  assert "episode_000001.mp4" in skipped[0]["error"]
  assert "3 frames" in skipped[2]["error"]


def test_cli(v21, tmp_path):
  out = subprocess.run(
      [sys.executable, "-m", "wam.data.importers.lerobot", f"--files={v21[0]}",
       "--preset=lerobot", "--name=cli_lr", f"--data_dir={tmp_path}"],
      check=True, cwd=ROOT, capture_output=True, text=True)
  path = out.stdout.strip().splitlines()[-1]
  assert EpisodeDataset(path, "train").episode_lengths.tolist() == [6, 8]
