"""A sweep config for the runner's tests: a fake launcher whose "loss" is a known function
of the scale (L = E + A scale^-alpha, times log-normal noise seeded by the scale)."""

from ml_collections import config_dict

LAUNCHER = "tests.experiments.fake_launcher"
SUMMARY_METRICS = ("loss",)

# For the research loop.
RESEARCH_METRIC = "loss"
MIN_SCALE = 2


def get_config(arg: str = "") -> config_dict.ConfigDict:
  c = config_dict.ConfigDict(dict(
      scale=1, E=1.0, A=4.0, alpha=0.5, noise=0.0, fail_times=0, sleep=0.0, variant=arg))
  return c


def sweep(add):
  add("s2", scale=2)
  add("s8", **{"scale": 8})
  add("s32", {"scale": 32, "sleep": 0.0})


def research_run(d: int) -> dict:
  return {"scale": int(d), "noise": 0.003}


def run_cost(d: int) -> float:
  return float(d)
