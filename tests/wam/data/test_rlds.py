"""RLDS importer: TFDS's own builder writes small RLDS datasets (ArrayRecord, and TFRecord
framed by tensorboardX's writer), the importer reads exactly what TFDS decodes.

Set ``WAM_TF_PYTHON`` to a Python with TensorFlow and tensorflow-datasets to also check
shards written by TensorFlow's TFRecordWriter against what TFDS + TensorFlow read.
"""

import json
import os
import shutil
import struct
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import tensorflow_datasets as tfds
from tensorboardX.record_writer import RecordWriter
from tensorflow_datasets.core import file_adapters

from wam.data.importers import SourceError, VectorKey, oxe, read_report, rlds, tfrecord
from wam.data.reader import EpisodeDataset

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TRAIN_LENGTHS, VAL_LENGTHS = (8, 9, 7), (8, 6)
# Three records (b"", b"a", b"rlds episode") as TensorFlow 2.21's TFRecordWriter wrote them.
TF_FRAMED = bytes.fromhex("000000000000000029039807d8ea82a201000000000000000175de4161786ee428"
                          "0c00000000000000f4c8fe0a726c647320657069736f6465d0dd8fa1")


# ---------------------------------------------------------------------------- fixtures
def _toy_episode(rng, i, n):
  """A bridge-like episode; the arrays to compare against and the TFDS example."""
  truth = {"image": rng.integers(0, 256, (n, 32, 32, 3), np.uint8),
           "wrist_image": rng.integers(0, 256, (n, 16, 16, 3), np.uint8),
           "state": rng.normal(size=(n, 8)).astype(np.float32),
           "action": rng.normal(size=(n, 7)).astype(np.float32),
           "instruction": f"put block {i} in the bowl"}
  steps = [{"observation": {"image": PIL.Image.fromarray(truth["image"][t]),
                            "wrist_image": PIL.Image.fromarray(truth["wrist_image"][t]),
                            "state": truth["state"][t]},
            "action": truth["action"][t], "language_instruction": truth["instruction"],
            "reward": float(t == n - 1), "discount": 1.0,
            "is_first": t == 0, "is_last": t == n - 1, "is_terminal": t == n - 1}
           for t in range(n)]
  return truth, {"steps": steps, "episode_metadata": {"file_path": f"raw/ep_{i}.h5"}}


TOY_FEATURES = tfds.features.FeaturesDict({
    "steps": tfds.features.Dataset({
        "observation": tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(32, 32, 3), encoding_format="png"),
            "wrist_image": tfds.features.Image(shape=(16, 16, 3), encoding_format="jpeg"),
            "state": tfds.features.Tensor(shape=(8,), dtype=np.float32)}),
        "action": tfds.features.Tensor(shape=(7,), dtype=np.float32),
        "language_instruction": tfds.features.Text(),
        "reward": tfds.features.Scalar(dtype=np.float32),
        "discount": tfds.features.Scalar(dtype=np.float32),
        "is_first": np.bool_, "is_last": np.bool_, "is_terminal": np.bool_}),
    "episode_metadata": tfds.features.FeaturesDict({"file_path": tfds.features.Text()})})

FRACTAL_FEATURES = tfds.features.FeaturesDict({
    "steps": tfds.features.Dataset({
        "observation": tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(16, 20, 3), encoding_format="jpeg"),
            "base_pose_tool_reached": tfds.features.Tensor(shape=(7,), dtype=np.float32),
            "gripper_closed": tfds.features.Tensor(shape=(1,), dtype=np.float32),
            "natural_language_instruction": tfds.features.Text()}),
        "action": tfds.features.FeaturesDict({
            "world_vector": tfds.features.Tensor(shape=(3,), dtype=np.float32),
            "rotation_delta": tfds.features.Tensor(shape=(3,), dtype=np.float32),
            "gripper_closedness_action": tfds.features.Tensor(shape=(1,), dtype=np.float32),
            "terminate_episode": tfds.features.Tensor(shape=(3,), dtype=np.int32)}),
        "reward": tfds.features.Scalar(dtype=np.float32),
        "is_first": np.bool_, "is_last": np.bool_, "is_terminal": np.bool_})})


def _fractal_episode(rng, n):
  v = {k: rng.normal(size=(n, d)).astype(np.float32)
       for k, d in (("pose", 7), ("closed", 1), ("world", 3), ("rot", 3), ("grip", 1))}
  steps = [{"observation": {
      "image": PIL.Image.fromarray(rng.integers(0, 256, (16, 20, 3), np.uint8)),
      "base_pose_tool_reached": v["pose"][t], "gripper_closed": v["closed"][t],
      "natural_language_instruction": "pick coke can"},
            "action": {"world_vector": v["world"][t], "rotation_delta": v["rot"][t],
                       "gripper_closedness_action": v["grip"][t],
                       "terminate_episode": np.array([0, 1, 0], np.int32)},
            "reward": 0.0, "is_first": t == 0, "is_last": t == n - 1, "is_terminal": False}
           for t in range(n)]
  return v, {"steps": steps}


def _tfds_build(data_dir, name, features, splits, file_format):
  """Writes ``splits`` ({split: [example]}) with TFDS's GeneratorBasedBuilder."""

  class Builder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=features)

    def _split_generators(self, dl_manager):
      return {split: self._generate_examples(eps) for split, eps in splits.items()}

    def _generate_examples(self, episodes):
      for i, episode in enumerate(episodes):
        yield f"episode_{i:04d}", episode

  Builder.name = name
  builder = Builder(data_dir=str(data_dir), file_format=file_format)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      try_download_gcs=False, num_shards=2))
  return os.fspath(builder.data_dir)


def _write_examples_without_tf(cls, path, iterator):
  """TFDS's TFRecord writing with tensorboardX's TFRecord writer in place of TF's."""
  del cls
  writer = RecordWriter(os.fspath(path))
  for _, serialized in iterator:
    writer.write(serialized)
  writer.close()


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
  """The bridge-like dataset in both formats, and the arrays its episodes hold."""
  rng = np.random.default_rng(0)
  truth, examples = {}, {}
  for split, lengths in (("train", TRAIN_LENGTHS), ("val", VAL_LENGTHS)):
    pairs = [_toy_episode(rng, 10 * (split == "val") + i, n) for i, n in enumerate(lengths)]
    truth[split] = [t for t, _ in pairs]
    examples[split] = [e for _, e in pairs]
  root = tmp_path_factory.mktemp("rlds")
  dirs = {"array_record": _tfds_build(root / "ar", "toy_rlds", TOY_FEATURES, examples,
                                      "array_record")}
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(file_adapters.TfRecordFileAdapter, "write_examples",
               classmethod(_write_examples_without_tf))
    dirs["tfrecord"] = _tfds_build(root / "tfr", "toy_rlds", TOY_FEATURES, examples,
                                   "tfrecord")
  return dirs, truth


def _toy_preset(**overrides):
  kwargs = dict(image_obs_keys={"primary": "image", "wrist": "wrist_image"},
                proprio=(VectorKey("steps/observation/state",
                                   slots=(("eef_pos", 3), ("eef_axis_angle", 3),
                                          ("gripper_qpos", 2))),),
                action=(VectorKey("steps/action", slots=oxe.EEF_DELTA + (("gripper", 1),)),),
                embodiment="toy_arm", fps=10.0)
  return oxe.oxe_preset(**{**kwargs, **overrides})


def _tfds_steps(dataset_dir, split):
  """Every episode of ``split`` as TFDS decodes it, stacked: ``[{flat key: [N, ...]}]``."""
  out = []
  for example in tfds.builder_from_directory(dataset_dir).as_data_source(split):
    steps = [rlds.flatten(s) for s in example["steps"]]
    out.append({f"steps/{k}": np.stack([np.asarray(s[k]) for s in steps]) for k in steps[0]})
    out[-1].update({f"episode_metadata/{k}": v
                    for k, v in example.get("episode_metadata", {}).items()})
  return out


def _ours(dataset_dir, split):
  dataset = rlds.RldsDataset(dataset_dir)
  episodes = [dataset.episode(split, i) for i in range(dataset.num_episodes(split))]
  return [{k: np.asarray(e.find(k)) for k in e.keys()} for e in episodes]


def _assert_same(ours, theirs):
  assert len(ours) == len(theirs)
  for a, b in zip(ours, theirs):
    assert sorted(a) == sorted(b)
    for key in a:
      x, y = np.asarray(a[key]), np.asarray(b[key])
      if x.dtype == object or y.dtype.kind in "SO":  # text: the same bytes
        assert np.ravel(x).tolist() == np.ravel(y).tolist(), key
      else:
        assert x.dtype == y.dtype and x.shape == y.shape, (key, x.dtype, y.dtype, x.shape)
        np.testing.assert_array_equal(x, y, err_msg=key)


# ---------------------------------------------------------------------------- TFRecord
def test_tfrecord_framing_matches_tensorflow(tmp_path):
  path = tmp_path / "tf.tfrecord"
  path.write_bytes(TF_FRAMED)
  assert tfrecord.read_tfrecord(str(path)) == [b"", b"a", b"rlds episode"]
  assert tfrecord.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
  # A record long enough for the vectorised lanes: CRCs as TensorFlow wrote them.
  big = bytes((i * 7 + 3) % 256 for i in range(3000))
  assert tfrecord.masked_crc32c(struct.pack("<Q", len(big))) == 0x2AA7F571
  assert tfrecord.masked_crc32c(big) == 0xCBAAED43


def test_tfrecord_damage_names_file_and_record(tmp_path):
  damaged = bytearray(TF_FRAMED)
  damaged[-6] ^= 0xFF  # a byte of the last record's data
  path = tmp_path / "damaged.tfrecord"
  path.write_bytes(bytes(damaged))
  records = tfrecord.TFRecordFile(str(path))
  assert records.read(1) == b"a"
  with pytest.raises(SourceError, match=r"damaged.tfrecord: record 2 is damaged"):
    records.read(2)
  records.close()
  path.write_bytes(TF_FRAMED[:-3])
  with pytest.raises(SourceError, match="record 2 is truncated"):
    tfrecord.TFRecordFile(str(path))


# ---------------------------------------------------------------------------- reading
def test_reads_what_tfds_decodes_in_both_formats(toy):
  dirs, truth = toy
  for split in ("train", "val"):
    theirs = _tfds_steps(dirs["array_record"], split)
    for file_format in ("array_record", "tfrecord"):
      dataset = rlds.RldsDataset(dirs[file_format])
      assert dataset.file_format == file_format and len(dataset.splits[split]) == 2
      _assert_same(_ours(dirs[file_format], split), theirs)
  # TFDS (and so we) read episodes in its shuffled order; each one holds what was written.
  by_instruction = {t["instruction"]: t for t in truth["train"]}
  for episode in _ours(dirs["tfrecord"], "train"):
    t = by_instruction[episode["steps/language_instruction"][0].decode()]
    np.testing.assert_array_equal(episode["steps/observation/image"], t["image"])  # PNG
    np.testing.assert_array_equal(episode["steps/action"], t["action"])
    assert episode["steps/is_last"].tolist() == [False] * (len(t["action"]) - 1) + [True]


def test_describe_lists_keys_and_splits(toy):
  text = rlds.RldsDataset(os.path.dirname(toy[0]["tfrecord"])).describe()  # newest version
  assert "toy_rlds 1.0.0" in text and "'train': 3, 'val': 2" in text
  assert "steps/observation/image: [N] + Image(32, 32, 3) uint8" in text
  assert "episode_metadata/file_path: Text() object" in text


# ---------------------------------------------------------------------------- import
@pytest.mark.parametrize("file_format", ["array_record", "tfrecord"])
def test_import_keeps_splits_maps_actions_and_resizes(toy, tmp_path, file_format):
  dirs, _ = toy
  path = rlds.import_rlds(dirs[file_format], _toy_preset(), name="toy", image_size=(16, 16),
                          data_dir=str(tmp_path / "data"))
  source = {s: _tfds_steps(dirs["array_record"], s) for s in ("train", "val")}
  assert read_report(path)["episodes"] == {"train": 3, "val": 2}
  for split, episodes in source.items():
    ds = EpisodeDataset(path, split)
    spec = ds.spec
    assert spec.cameras == ("primary", "wrist") and spec.image_size == (16, 16)
    assert (spec.embodiment, spec.source, spec.fps) == ("toy_arm", "robot", 10.0)
    assert spec.action.to_json() == [["eef_delta_pos", 3], ["eef_delta_rot", 3],
                                     ["gripper", 1]]
    assert [n for n, _ in spec.proprio.to_json()] == ["eef_pos", "eef_axis_angle",
                                                       "gripper_qpos"]
    assert ds.episode_lengths.tolist() == [len(e["steps/action"]) for e in episodes]
    for i, src in enumerate(episodes):
      got = ds.episode(i)
      steps, n = got["steps"], len(src["steps/action"])
      np.testing.assert_array_equal(steps["action"], src["steps/action"])
      assert steps["action_mask"].all()  # OXE conversions hold a real last action
      np.testing.assert_array_equal(steps["observation"]["proprio"],
                                    src["steps/observation/state"])
      area = src["steps/observation/image"].reshape(n, 16, 2, 16, 2, 3).mean((2, 4))
      np.testing.assert_array_equal(steps["observation"]["image_primary"],
                                    np.rint(area).astype(np.uint8))  # 32 -> 16
      np.testing.assert_array_equal(steps["observation"]["image_wrist"],
                                    src["steps/observation/wrist_image"])  # 16 stays
      np.testing.assert_array_equal(steps["reward"], src["steps/reward"])
      instruction = src["steps/language_instruction"][0].decode()
      assert got["metadata"]["instruction"] == ds.instructions[i] == instruction
      assert instruction.startswith("put block 1" if split == "val" else "put block")


def test_resplit_selected_source_split_and_mask_last_action(toy, tmp_path):
  dirs, _ = toy
  path = rlds.import_rlds(dirs["tfrecord"], _toy_preset(mask_last_action=True), name="toy2",
                          data_dir=str(tmp_path / "data"), source_splits=["train"],
                          splits={"train": 0.5, "val": 0.5}, image_size=(32, 32),
                          cameras=["wrist"])
  source = _tfds_steps(dirs["array_record"], "train")
  train, val = EpisodeDataset(path, "train"), EpisodeDataset(path, "val")
  assert (len(train), len(val)) == (2, 1) and train.spec.cameras == ("wrist",)
  got = [train.episode(0), train.episode(1), val.episode(0)]
  for g, src in zip(got, source):  # consecutive runs of the source order
    np.testing.assert_array_equal(g["steps"]["observation"]["image_wrist"],
                                  np.repeat(np.repeat(src["steps/observation/wrist_image"], 2,
                                                      1), 2, 2))  # 16 -> 32 nearest
    assert g["steps"]["action_mask"].tolist() == [True] * (len(src["steps/action"]) - 1) + [
        False]
  with pytest.raises(ValueError, match="splits='source' keeps the dataset's splits"):
    rlds.import_rlds(dirs["tfrecord"], _toy_preset(), name="toy3", on_error="skip",
                     data_dir=str(tmp_path / "data"))
  with pytest.raises(SourceError, match=r"no splits \['test'\]; it has \['train', 'val'\]"):
    rlds.import_rlds(dirs["tfrecord"], _toy_preset(), name="toy3", source_splits=["test"],
                     data_dir=str(tmp_path / "data"))


def test_wrong_key_names_dataset_episode_and_key(toy, tmp_path):
  dirs, _ = toy
  preset = _toy_preset(image_obs_keys={"primary": "imag"})
  with pytest.raises(SourceError) as e:
    rlds.import_rlds(dirs["tfrecord"], preset, name="bad", data_dir=str(tmp_path / "d"))
  message = str(e.value)
  assert "toy_rlds 1.0.0 split 'train' episode 0 (toy_rlds-train.tfrecord-00000-of-00002 " \
         "record 0)" in message
  assert "no key 'steps/observation/imag' (mapping field images[primary])" in message
  assert "Did you mean ['steps/observation/image'" in message
  assert not os.path.exists(tmp_path / "d" / "bad")  # nothing written
  preset = _toy_preset(action=(VectorKey("steps/action", slots=(("eef_delta_pos", 3),)),))
  with pytest.raises(SourceError, match=r"steps/action has 7 values per step but its slots"):
    rlds.import_rlds(dirs["array_record"], preset, name="bad", data_dir=str(tmp_path / "d"))
  with pytest.raises(SourceError, match=r"is 32x32, the dataset's image_size is 24x24"):
    rlds.import_rlds(dirs["array_record"], _toy_preset(), name="bad", image_size=(24, 24),
                     data_dir=str(tmp_path / "d"))


def test_corrupt_shard_is_named(toy, tmp_path):
  copy = shutil.copytree(toy[0]["tfrecord"], tmp_path / "toy")
  shard = copy / "toy_rlds-val.tfrecord-00001-of-00002"
  data = bytearray(shard.read_bytes())
  data[len(data) // 2] ^= 0xFF
  shard.write_bytes(bytes(data))
  with pytest.raises(SourceError, match=r"toy_rlds-val.tfrecord-00001-of-00002: record 0 is "
                                        "damaged"):
    rlds.import_rlds(str(copy), _toy_preset(), name="c", data_dir=str(tmp_path / "d"))
  path = rlds.import_rlds(str(copy), _toy_preset(), name="c", data_dir=str(tmp_path / "d"),
                          splits={"train": 1}, on_error="skip")
  report = read_report(path)
  assert report["episodes"] == {"train": 4} and len(report["skipped"]) == 1
  assert "record 0 is damaged" in report["skipped"][0]["error"]
  shard.unlink()
  with pytest.raises(SourceError, match=r"split 'val' is missing shard files \['toy_rlds-val"):
    rlds.import_rlds(str(copy), _toy_preset(), name="c2", data_dir=str(tmp_path / "d"))


def test_a_tfds_dataset_without_steps_is_refused_and_nothing_written(tmp_path):
  """Episodes stored flat (a TFDS dataset, but not RLDS): the error names the directory
  and the missing ``steps`` feature and lists the features there are."""
  features = tfds.features.FeaturesDict({
      "image": tfds.features.Image(shape=(8, 8, 3), encoding_format="png"),
      "action": tfds.features.Tensor(shape=(2,), dtype=np.float32)})
  rng = np.random.default_rng(0)
  flat = _tfds_build(tmp_path / "flat", "flat_frames", features, {"train": [
      {"image": PIL.Image.fromarray(rng.integers(0, 256, (8, 8, 3), np.uint8)),
       "action": rng.normal(size=2).astype(np.float32)} for _ in range(2)]}, "array_record")
  with pytest.raises(SourceError) as e:
    rlds.import_rlds(flat, _toy_preset(), name="flat", data_dir=str(tmp_path / "d"))
  message = str(e.value)
  assert message.startswith(os.path.join(str(tmp_path), "flat", "flat_frames", "1.0.0"))
  assert message.endswith("is a TFDS dataset but not RLDS: it has no 'steps' dataset "
                          "feature (features: ['action', 'image']).")
  assert not os.path.exists(tmp_path / "d")


def test_fractal_preset_nested_action_and_observation_instruction(tmp_path):
  rng = np.random.default_rng(1)
  pairs = [_fractal_episode(rng, n) for n in (5, 6)]
  src = _tfds_build(tmp_path / "src", "fractal20220817_data", FRACTAL_FEATURES,
                    {"train": [e for _, e in pairs]}, "array_record")
  path = rlds.import_rlds(src, oxe.fractal(), name="fractal", data_dir=str(tmp_path / "d"))
  ds = EpisodeDataset(path, "train")
  assert ds.spec.action.to_json() == [["eef_delta_pos", 3], ["eef_delta_rot", 3],
                                      ["gripper_closedness_delta", 1]]
  assert ds.spec.proprio.to_json() == [["eef_pos", 3], ["eef_quat", 4], ["gripper_closed", 1]]
  assert (ds.spec.cameras, ds.spec.image_size, ds.spec.fps) == (("primary",), (16, 20), 3.0)
  assert ds.instructions == ["pick coke can"] * 2
  by_length = {len(v["world"]): v for v, _ in pairs}
  for i in range(2):
    steps = ds.episode(i)["steps"]
    v = by_length[len(steps["action"])]
    np.testing.assert_array_equal(steps["action"],
                                  np.concatenate([v["world"], v["rot"], v["grip"]], -1))
    np.testing.assert_array_equal(steps["observation"]["proprio"],
                                  np.concatenate([v["pose"], v["closed"]], -1))


def test_cli(toy, tmp_path):
  mapping = json.dumps(_toy_preset().mapping.to_json())
  out = subprocess.run(
      [sys.executable, "-m", "wam.data.importers.rlds", f"--files={toy[0]['tfrecord']}",
       f"--mapping={mapping}", "--name=toy_cli", f"--data_dir={tmp_path}",
       "--image_size=16,16", "--source_splits=val"],
      cwd=ROOT, check=True, capture_output=True, text=True)
  path = out.stdout.strip().splitlines()[-1]
  assert read_report(path)["episodes"] == {"val": 2}
  assert EpisodeDataset(path, "val").spec.cameras == ("primary", "wrist")


# ---------------------------------------------------------------------------- TensorFlow
_TF_SCRIPT = """
import json, os, shutil, sys
import numpy as np, tensorflow as tf, tensorflow_datasets as tfds
from array_record.python import array_record_module
src, dst = sys.argv[1], sys.argv[2]
shutil.copytree(src, dst)
for name in os.listdir(dst):  # re-frame every shard with TensorFlow's TFRecordWriter
  if ".array_record-" in name:
    reader = array_record_module.ArrayRecordReader(os.path.join(dst, name))
    records = reader.read(list(range(reader.num_records())))
    os.remove(os.path.join(dst, name))
    with tf.io.TFRecordWriter(os.path.join(dst, name.replace("array_record", "tfrecord"))) as w:
      for r in records:
        w.write(r)
info_path = os.path.join(dst, "dataset_info.json")
info = json.load(open(info_path))
info["fileFormat"] = "tfrecord"
json.dump(info, open(info_path, "w"))
out = {}
builder = tfds.builder_from_directory(dst)
for split in builder.info.splits:  # TFDS + TensorFlow decoding
  for e, episode in enumerate(tfds.as_numpy(builder.as_dataset(split, shuffle_files=False))):
    steps = list(episode["steps"])
    for k in ("image", "wrist_image", "state"):
      out[f"{split}/{e}/steps/observation/{k}"] = np.stack([s["observation"][k] for s in steps])
    for k in ("action", "reward", "is_last"):
      out[f"{split}/{e}/steps/{k}"] = np.stack([s[k] for s in steps])
    out[f"{split}/{e}/steps/language_instruction"] = np.array(
        [s["language_instruction"] for s in steps])
  # TensorFlow's default JPEG decoding is INTEGER_FAST; PIL's equals INTEGER_ACCURATE.
  skip = {"steps": {"observation": {"wrist_image": tfds.decode.SkipDecoding()}}}
  raw = builder.as_dataset(split, shuffle_files=False, decoders=skip)
  for e, episode in enumerate(raw):
    out[f"{split}/{e}/accurate/steps/observation/wrist_image"] = np.stack([
        tf.io.decode_jpeg(s["observation"]["wrist_image"], dct_method="INTEGER_ACCURATE")
        for s in episode["steps"]])
np.savez(os.path.join(dst, "tf_read.npz"), **out)
"""


@pytest.mark.skipif(not os.environ.get("WAM_TF_PYTHON"),
                    reason="set WAM_TF_PYTHON to a Python with tensorflow")
def test_tensorflow_written_tfrecord_reads_as_tfds_with_tf_reads(toy, tmp_path):
  dst = tmp_path / "tf_toy"
  subprocess.run([os.environ["WAM_TF_PYTHON"], "-c", _TF_SCRIPT, toy[0]["array_record"],
                  str(dst)], check=True, capture_output=True, text=True)
  expected = np.load(dst / "tf_read.npz")
  dataset = rlds.RldsDataset(str(dst))
  assert dataset.file_format == "tfrecord"
  assert len(expected.files) == 8 * 5  # 5 episodes: 7 keys and the accurate JPEG decode
  for name in expected.files:
    split, e, key = name.split("/", 2)
    value = np.asarray(dataset.episode(split, int(e)).find(key.removeprefix("accurate/")))
    if value.dtype == object:
      value = value.astype(bytes)
    if key == "steps/observation/wrist_image":  # JPEG, TF's fast IDCT: within 4 levels
      assert np.abs(value.astype(int) - expected[name]).max() <= 4, name
    else:  # PNG, tensors, text, and JPEG decoded with TF's accurate IDCT: identical
      np.testing.assert_array_equal(value, expected[name], err_msg=name)
