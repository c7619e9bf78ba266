"""The model-size x data research loop with a fake launcher whose loss is a known
Chinchilla law ``1 + 20 N^-0.5 + 4 D^-0.5`` (0.2% noise)."""

import json
import os

import pytest

from experiments.lib import research as research_lib
from experiments.lib import research_compute

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAKE = os.path.join(ROOT, "tests", "experiments", "fake_size_config.py")


def _truth(n, d):
  return 1 + 20 * n ** -0.5 + 4 * d ** -0.5


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("research_size"))
  spec = research_compute.load_size_spec(FAKE)
  # Costs N/100 x d: 3 sizes x (2, 4, 8, 16) cost 630 of the half (1000) of 2000; the
  # rest (1370) buys small at 1370, medium at 342 or large at 85, and large predicts best.
  result = research_compute.run_size_research(spec, out, 2000, workers=2,
                                              bootstrap_samples=30, progress=lambda _: None)
  return out, spec, result


def test_grid_over_sizes_and_data_then_the_compute_optimal_run(loop):
  out, _, result = loop
  assert result["grid_scales"] == [2, 4, 8, 16] and len(result["grid"]) == 12
  assert result["target"] == {"size": "large", "parameters": 1600.0, "scale": 85}
  assert result["fit"]["r2"] > 0.99
  assert result["fit"]["a"] == pytest.approx(0.5, abs=0.1)
  assert result["predicted"] == pytest.approx(_truth(1600, 85), rel=0.02)
  assert result["prediction_error"] < 0.05
  lo, hi = result["interval"]
  assert lo <= result["predicted"] <= hi
  saved = json.load(open(os.path.join(out, "research.json")))
  assert saved["prediction_error"] == pytest.approx(result["prediction_error"])
  assert "large-d85" in os.listdir(os.path.join(out, "runs"))


def test_the_allocation_says_why(loop):
  out, _, _ = loop
  lines = [json.loads(l) for l in open(os.path.join(out, "decisions.jsonl"))]
  assert [d["decision"] for d in lines] == ["grid", "grid_done", "fit", "allocate", "predict",
                                            "launch", "compare"]
  allocate = lines[3]
  assert "compute-optimal" in allocate["reason"]
  assert "large predicts the lowest" in allocate["reason"]
  assert allocate["optimum"]["N"] == pytest.approx(1850, rel=0.25)  # G (C/k)^0.5, G = 5
  assert set(allocate["options"]) == {"small", "medium", "large"}
  assert lines[2]["leave_costliest_out"] is not None
  report = open(os.path.join(out, "research.md")).read()
  assert "**allocate**" in report and "| size | 2 | 4 | 8 | 16 |" in report
  assert "N^-" in report and "np.float64" not in report


def test_the_allocation_says_why_not_the_size_nearest_the_optimum():
  options = {"w64": {"scale": 270}, "w128": {"scale": 270}, "w256": {"scale": 100}}
  assert research_compute.nearest_aside("w128", "w128", options) == ""
  assert "higher predicted loss" in research_compute.nearest_aside("w64", "w128", options)
  assert "affords less data" in research_compute.nearest_aside("w256", "w128", options)
  assert "buys no run" in research_compute.nearest_aside("w512", "w128", options)


def test_bad_knobs_and_budgets_are_clear_errors(tmp_path):
  spec = research_compute.load_size_spec(FAKE)
  with pytest.raises(research_lib.ResearchError, match="the fit needs 3"):
    research_compute.run_size_research(spec, str(tmp_path), 100, progress=lambda _: None)
  same = tmp_path / "same.py"
  same.write_text(open(FAKE).read().replace('"large": 1600.0', '"large": 400.0'))
  with pytest.raises(research_lib.ResearchError, match="same parameter count"):
    research_compute.load_size_spec(str(same))
  assert research_compute.has_sizes(FAKE)
  assert not research_compute.has_sizes(os.path.join(ROOT, "tests", "experiments",
                                                     "fake_config.py"))
