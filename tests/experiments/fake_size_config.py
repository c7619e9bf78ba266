"""A model-size x data research config for the loop's tests: the fake launcher's loss is
``E + A N^-a + B D^-b`` of the size's parameters ``N`` and the data scale ``D``."""

from ml_collections import config_dict

LAUNCHER = "tests.experiments.fake_launcher"
SUMMARY_METRICS = ("loss",)

RESEARCH_METRIC = "loss"
MIN_SCALE = 2
RESEARCH_SIZES = {"small": 100.0, "medium": 400.0, "large": 1600.0}


def get_config(arg: str = "") -> config_dict.ConfigDict:
  del arg
  return config_dict.ConfigDict(dict(
      scale=1, params=0.0, E=1.0, A=20.0, a=0.5, B=4.0, b=0.5, alpha=0.5, noise=0.0,
      fail_times=0, sleep=0.0))


def research_run(d: int, size: str) -> dict:
  return {"scale": int(d), "params": RESEARCH_SIZES[size], "noise": 0.002}


def run_cost(d: int, size: str) -> float:
  """Parameters x data, in units of 100 parameters."""
  return RESEARCH_SIZES[size] / 100.0 * d
