"""The brax 0.14.2 / jax 0.10 shim: it works, and it is still needed."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np

from third_party import brax_compat


def test_upstream_still_needs_shim():
  """Fails when upstream no longer needs the shim: then delete third_party/brax_compat."""
  from brax.training.agents.ppo import train as ppo  # pylint: disable=import-outside-toplevel
  assert brax_compat.needs_patch(), (
      "jax provides device_put_replicated again: remove third_party/brax_compat.")
  assert "device_put_replicated" in inspect.getsource(ppo), (
      "brax's PPO no longer calls device_put_replicated: remove third_party/brax_compat.")


def test_shim_replicates_over_devices():
  brax_compat.apply()
  devices = jax.local_devices()
  out = jax.device_put_replicated({"w": jnp.arange(3.0)}, devices)
  assert out["w"].shape == (len(devices), 3)
  np.testing.assert_array_equal(np.asarray(out["w"][0]), [0, 1, 2])
