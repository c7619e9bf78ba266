"""The research loop with a fake launcher whose loss is a known power law of the scale."""

import json
import os

import numpy as np
import pytest

from experiments.lib import research as research_lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAKE = os.path.join(ROOT, "tests", "experiments", "fake_config.py")


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("research"))
  spec = research_lib.load_spec(FAKE)
  # cost(d) = d: the grid 2, 4, 8, 16, 32 costs 62 of 140 (half is 70); the rest buys 78.
  report = research_lib.run_research(spec, out, 140, workers=2, bootstrap_samples=40,
                                      progress=lambda _: None)
  return out, spec, report


def test_grid_prediction_and_larger_run(loop):
  out, _, report = loop
  assert report.grid == [2, 4, 8, 16, 32] and report.target_scale == 78
  truth = 1 + 4 * 78 ** -0.5
  noisy = truth * np.exp(0.003 * np.random.default_rng(78).normal())
  assert report.actual == pytest.approx(noisy)  # the fake launcher's loss, measured
  assert report.predicted == pytest.approx(truth, rel=0.03)
  lo, hi = report.interval
  assert lo < report.predicted < hi and hi - lo < 0.2
  assert sorted(os.listdir(os.path.join(out, "runs"))) == sorted(
      ["d2", "d4", "d8", "d16", "d32", "d78", "summary.json", "summary.md", "sweep.json"])
  assert os.path.getsize(os.path.join(out, "fit.png")) > 5000


def test_every_decision_is_logged_with_a_reason(loop):
  out, _, report = loop
  lines = [json.loads(l) for l in open(os.path.join(out, "decisions.jsonl"))]
  assert [d["decision"] for d in lines] == ["grid", "target", "grid_done", "fit", "predict",
                                            "launch", "compare", "refit", "propose"]
  assert all(d["reason"] for d in lines)
  assert lines[3]["model"] in ("log_linear", "power_law")
  assert "leave-the-largest-out" in lines[3]["reason"]
  compare = lines[6]
  assert compare["actual"] == pytest.approx(report.actual)
  assert abs(compare["relative_error"]) < 0.05
  proposal = lines[-1]
  assert proposal["scale"] == 140 and proposal["overrides"] == {"scale": 140, "noise": 0.003}
  text = open(os.path.join(out, "research.md")).read()
  assert "larger run at scale 78" in text and "**propose**" in text


def test_rerun_reads_finished_runs(loop):
  out, spec, report = loop
  again = research_lib.run_research(spec, out, 140, bootstrap_samples=10,
                                     progress=lambda _: None)
  assert again.actual == report.actual
  for name in ("d2", "d78"):
    assert len(open(os.path.join(out, "runs", name, "launches.txt")).readlines()) == 1
  grid_done = [json.loads(l) for l in open(os.path.join(out, "decisions.jsonl"))][2]
  assert "already finished and read back" in grid_done["reason"]


def test_budgets_too_small_are_clear_errors(tmp_path):
  spec = research_lib.load_spec(FAKE)
  with pytest.raises(research_lib.ResearchError, match="a fit needs 3"):
    research_lib.run_research(spec, str(tmp_path), 10, progress=lambda _: None)
  with pytest.raises(research_lib.ResearchError, match="nothing to extrapolate"):
    research_lib.run_research(spec, str(tmp_path), 20, grid_fraction=0.9,
                               progress=lambda _: None)
  assert not os.path.exists(tmp_path / "runs")  # nothing was launched
  with pytest.raises(research_lib.ResearchError, match="lacks"):
    research_lib.load_spec(os.path.join(ROOT, "experiments", "configs", "wam.py"))
