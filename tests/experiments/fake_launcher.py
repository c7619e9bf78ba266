"""A stand-in for experiments.train in the sweep and research-loop tests (seconds, no JAX).

Takes the same flags (``--config=FILE:ARG --config.x=v --workdir=DIR``), appends a line to
``DIR/launches.txt`` per start, crashes while it has been started at most
``config.fail_times`` times, sleeps ``config.sleep`` seconds, then writes ``result.json``
with loss = E + A scale^-alpha, or E + A params^-a + B scale^-b when the config has a
model size (times exp(noise * N(0, 1)), seeded by the scale).
"""

import json
import os
import sys
import time

import numpy as np
from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "config")
_WORKDIR = flags.DEFINE_string("workdir", None, "workdir")


def main(argv):
  del argv
  c, workdir = _CONFIG.value, _WORKDIR.value
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "launches.txt"), "a") as f:
    f.write(f"{os.getpid()}\n")
  with open(os.path.join(workdir, "launches.txt")) as f:
    launches = len(f.readlines())
  if launches <= c.fail_times:
    print(f"fake crash {launches} of {c.fail_times}", file=sys.stderr)
    sys.exit(3)
  if not os.environ.get("FAKE_LAUNCHER_NO_SLEEP"):  # lets a test finish a slow run
    time.sleep(c.sleep)
  noise = np.random.default_rng(int(c.scale)).normal() * c.noise
  if c.get("params"):  # a model size too: E + A N^-a + B D^-b
    loss = (c.E + c.A * c.params ** -c.a + c.B * c.scale ** -c.b) * float(np.exp(noise))
  else:
    loss = (c.E + c.A * c.scale ** -c.alpha) * float(np.exp(noise))
  path = os.path.join(workdir, "result.json")
  with open(path + ".tmp", "w") as f:
    json.dump({"step": 10, "metrics": {"loss": loss, "scale": float(c.scale)}}, f)
  os.replace(path + ".tmp", path)


if __name__ == "__main__":
  app.run(main)
