"""Saves step 1 (small) then step 2 (~160 MB of random floats) for a test to kill -9 mid-save.

Usage: python checkpoint_kill_helper.py DIRECTORY
"""

import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from wam.checkpoint import Checkpointer  # noqa: E402

BIG_SHAPE = (40_000_000,)


def step_state(step: int) -> dict:
  """The state saved at ``step`` (step 2 adds a big incompressible array)."""
  state = {"w": jnp.arange(8, dtype=jnp.float32) * step, "step": step}
  if step == 2:
    state["big"] = jnp.asarray(np.random.default_rng(0).random(BIG_SHAPE, dtype=np.float32))
  return state


def main(directory: str) -> None:
  ckpt = Checkpointer(directory, save_interval_steps=1, max_to_keep=3)
  ckpt.save(1, step_state(1), data_state={"next": 1})
  big = step_state(2)
  jax.block_until_ready(big)
  print("saving step 2", flush=True)
  ckpt.save(2, big, data_state={"next": 2})
  ckpt.close()
  print("done", flush=True)


if __name__ == "__main__":
  main(sys.argv[1])
