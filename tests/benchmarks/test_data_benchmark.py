"""`python -m benchmarks.data --quick` on a synthetic dataset: it runs and reports."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
POSITIVE_KEYS = ("loader_windows_per_s", "loader_windows_per_s_workers2",
                 "train_windows_per_s", "loader_over_train_ratio",
                 "train_with_loader_over_train_alone", "peak_rss_mb", "seconds")


def test_quick_benchmark_writes_its_keys(tmp_path):
  out = tmp_path / "x.json"
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
  proc = subprocess.run(
      [sys.executable, "-m", "benchmarks.data", "--quick", "--dataset=synthetic",
       f"--out={out}", f"--data_dir={tmp_path / 'data'}"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-4000:]
  assert "[benchmarks.data] loader" in proc.stdout
  results = json.loads(out.read_text())
  for key in POSITIVE_KEYS:
    assert results[key] > 0, (key, results[key])
  assert results["train_step"].startswith("wam.trainer.make_train_step")
  assert results["dataset"]["episodes"] > 0 and results["dataset"]["steps"] > 0
  assert results["config"]["batch_size"] == 8  # the runlocal training batch
  assert results["machine"]["backend"] == "cpu"
