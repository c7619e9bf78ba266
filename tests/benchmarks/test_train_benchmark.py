"""`python -m benchmarks.train --quick`: it runs the trainer's step and dreams, and reports."""

import json
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
POSITIVE_KEYS = ("params", "batch", "tokens_per_step", "flops_per_step", "step_seconds",
                 "steps_per_second", "examples_per_second", "peak_flops", "mfu", "mfu_6nd",
                 "dream_fps", "dream_fps_4_steps", "dream_fps_no_cache",
                 "dream_fps_latents_only", "cache_speedup", "seconds")
BREAKDOWN_PARTS = ("tokenizer_reconstruction", "text_encoder", "backbone",
                   "backbone_attention_core", "backbone_mlp")


@pytest.mark.slow
def test_quick_benchmark_writes_its_keys(tmp_path):
  out = tmp_path / "train.json"
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
  proc = subprocess.run(
      [sys.executable, "-m", "benchmarks.train", "--quick", f"--out={out}"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-4000:]
  assert "[benchmarks.train] train step compiled" in proc.stdout
  assert "mfu (counted)" in proc.stdout
  results = json.loads(out.read_text())
  for key in POSITIVE_KEYS:
    value = results[key]
    assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (key, value)
  assert results["tokens_per_step"] == results["batch"] * results["tokens_per_example"]
  assert results["variant"] == "toy"
  assert results["machine"]["backend"] == "cpu"
  assert results["details"]["quick"] is True
  for part in BREAKDOWN_PARTS:
    for key in ("flops", "seconds", "mfu", "share_of_step"):
      value = results["breakdown"][part][key]
      assert math.isfinite(value) and value > 0, (part, key, value)
