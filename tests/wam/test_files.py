"""wam.files.atomic_write(_json): all or nothing, with the umask's permissions."""

import json
import os

import pytest

from wam.files import atomic_write, atomic_write_json


@pytest.mark.parametrize("umask,expected", [(0o022, 0o644), (0o077, 0o600)])
def test_text_and_binary_files_get_the_umask_permissions(tmp_path, umask, expected):
  old_umask = os.umask(umask)
  try:
    atomic_write(str(tmp_path / "a.txt"), lambda f: f.write("é"), "w", encoding="utf-8")
    atomic_write(str(tmp_path / "b.bin"), lambda f: f.write(b"\0\1"), "wb")
  finally:
    os.umask(old_umask)
  assert (tmp_path / "a.txt").read_bytes() == "é".encode("utf-8")
  assert (tmp_path / "b.bin").read_bytes() == b"\0\1"
  for name in ("a.txt", "b.bin"):
    assert os.stat(tmp_path / name).st_mode & 0o777 == expected, name
  assert sorted(os.listdir(tmp_path)) == ["a.txt", "b.bin"]   # no temporary file left


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
  path = tmp_path / "metrics.jsonl"
  path.write_text("old\n")

  def half_then_fail(f):
    f.write("new, but not all of it")
    raise OSError("disk full")
  with pytest.raises(OSError, match="disk full"):
    atomic_write(str(path), half_then_fail)
  assert path.read_text() == "old\n"
  assert os.listdir(tmp_path) == ["metrics.jsonl"]


def test_json_is_written_exactly_as_json_dump_formats_it(tmp_path):
  path = tmp_path / "result.json"
  value = {"b": 1, "a": [1.5, None], "c": object}
  kwargs = dict(indent=1, sort_keys=True, default=str)
  atomic_write_json(str(path), value, **kwargs)
  assert path.read_text() == json.dumps(value, **kwargs)
  with pytest.raises(TypeError):   # not serialisable: the old file stays, no temporary
    atomic_write_json(str(path), {"c": object})
  assert json.loads(path.read_text())["b"] == 1
  assert os.listdir(tmp_path) == ["result.json"]
