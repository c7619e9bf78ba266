"""`benchmarks.tables` rewrites marked tables from JSON; `benchmarks.results` adds `meta`."""

import json
import subprocess

import pytest

from benchmarks import results as results_lib
from benchmarks import tables

PROSE_BEFORE = "# Title\n\nHand-written prose, MFU 0.4 in words.\n\n"
PROSE_AFTER = "\nMore prose.\n\n| a hand | table |\n|---|---|\n| 1 | 2 |\n"


def _train_result(mfu: float) -> dict:
  return {"model": {"width": 256, "depth": 4, "num_heads": 2}, "params": 5_170_388,
          "flops_per_step": 50.5e9, "step_seconds": 0.2565, "peak_flops": 496e9,
          "mfu": mfu}


def _head() -> str | None:
  proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=results_lib.ROOT,
                        capture_output=True, text=True, check=False)
  return proc.stdout.strip() if proc.returncode == 0 else None


def test_results_carry_meta_with_the_commit(tmp_path):
  path = tmp_path / "r.json"
  results_lib.write_json(str(path), {"x": 1.5})
  written = json.loads(path.read_text())
  assert list(written)[0] == "meta" and written["x"] == 1.5
  meta = written["meta"]
  assert meta["commit"] == _head()
  if meta["commit"] is not None:
    assert isinstance(meta["dirty"], bool)
  assert meta["argv"] and meta["date"] and meta["machine"]["cpu_count"] >= 1
  assert isinstance(meta["flags"], dict)
  # A list result keeps its rows beside the meta.
  results_lib.write_json(str(path), [{"task": "reach"}])
  written = json.loads(path.read_text())
  assert written["meta"]["commit"] == meta["commit"]
  assert results_lib.rows_of(written) == [{"task": "reach"}]
  with pytest.raises(ValueError, match="meta"):
    results_lib.with_meta({"meta": 1}, {})


def test_marked_table_is_rewritten_and_prose_left_alone(tmp_path):
  results_lib.write_json(str(tmp_path / "b" / "train.json"), _train_result(0.39663768))
  doc = (PROSE_BEFORE + "<!-- table:train_mfu b/train.json -->\n| stale | 0.40 |\n"
         "<!-- /table -->\n" + PROSE_AFTER)
  new = tables.rewrite(doc, root=str(tmp_path))
  assert new.startswith(PROSE_BEFORE) and new.endswith("<!-- /table -->\n" + PROSE_AFTER)
  body = new[len(PROSE_BEFORE):-len(PROSE_AFTER)]
  assert "stale" not in body
  assert "**0.397** (below 0.4)" in body          # as measured, not rounded up to 0.40
  assert "measured at commit" in body and "b/train.json" in body
  if _head():
    assert f"`{_head()[:10]}`" in body
  assert tables.rewrite(new, root=str(tmp_path)) == new   # idempotent


def test_old_json_and_missing_json_are_said_so(tmp_path):
  (tmp_path / "old.json").write_text(json.dumps(_train_result(0.29)))
  doc = ("<!-- table:train_mfu old.json -->\n<!-- /table -->\n"
         "<!-- table:train_mfu gone.json -->\n<!-- /table -->\n")
  new = tables.rewrite(doc, root=str(tmp_path))
  assert "provenance not recorded" in new and "`gone.json` missing" in new
  with pytest.raises(ValueError, match="Unknown table kind"):
    tables.rewrite("<!-- table:nope old.json -->\n<!-- /table -->\n", root=str(tmp_path))


def test_a_changed_benchmark_source_is_flagged():
  meta = {"commit": "0" * 40, "module": "benchmarks.tables", "argv": ["x.py"],
          "date": "2026-01-01T00:00:00+00:00",
          "source_sha256": results_lib.source_sha256("benchmarks.tables")}
  assert "has changed" not in tables.provenance_line("t.json", {"meta": meta})
  meta["source_sha256"] = "0" * 64
  assert "has changed" in tables.provenance_line("t.json", {"meta": meta})


@pytest.mark.parametrize("value,target,shown", [
    (0.39663768, 0.4, "0.397"), (0.39996, 0.4, "0.39996"), (0.9912, 0.9, "0.991"),
    (0.8996, 0.9, "0.8996"), (2.0, 2.0, "2.00"), (9567.33, 0.9, "9,567")])
def test_figures_never_round_onto_their_target(value, target, shown):
  assert tables.vs_target(value, target) == shown
