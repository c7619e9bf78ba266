"""Train steps on 8 fake CPU devices (data x fsdp mesh) against one device.

Run by tests/wam/test_trainer.py in its own process: the number of CPU devices is fixed
when JAX starts.
"""

import jax

jax.config.update("jax_num_cpu_devices", 8)

import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from wam import sharding, train_state, trainer  # noqa: E402
from wam.data.synthetic import synthetic_batch  # noqa: E402
from wam.optimizer import make_optimizer  # noqa: E402


def run(mesh_shape, devices, batch, config, steps=2):
  mesh = sharding.make_mesh(mesh_shape, devices)
  optimizer = make_optimizer(config.optimizer, 10)
  example = {k: v[:1] for k, v in batch.items()}
  build = lambda: train_state.initial_state(train_state.build_model(config, example),
                                            optimizer, jax.random.key(0))
  abstract = jax.eval_shape(build)
  shardings = train_state.state_shardings(abstract, optimizer, mesh,
                                          sharding.rules_from_config(config.sharding_rules))
  state = jax.jit(build, out_shardings=shardings)()
  graphdef, _ = nnx.split(nnx.eval_shape(lambda: train_state.build_model(config, example)))
  batch_sharding = sharding.batch_sharding(mesh)
  step = jax.jit(trainer.make_train_step(graphdef, optimizer), donate_argnums=(0,),
                 in_shardings=(shardings, batch_sharding), out_shardings=(shardings, None))
  for _ in range(steps):
    state, metrics = step(state, sharding.global_batch(batch, batch_sharding))
  return state, metrics


def main():
  assert jax.device_count() == 8, jax.devices()
  config = trainer.default_config()
  config.model.width, config.model.depth, config.model.num_heads = 32, 1, 2
  config.model.tokenizer.channels, config.model.tokenizer.latent_channels = (8,), 4
  config.model.text_encoder.kwargs.update(hidden=16, depth=1, num_heads=2)
  batch = synthetic_batch(8, num_frames=3, action_chunk=2, image_size=(16, 16))
  single, m1 = run({"data": 1, "fsdp": 1}, jax.devices()[:1], batch, config)
  multi, m8 = run({"data": 4, "fsdp": 2}, jax.devices(), batch, config)
  # The fsdp axis really shards parameters.
  kernel = multi["params"]["backbone"]["blocks"][0]["mlp"]["gate"]["kernel"][...]
  assert len(kernel.sharding.device_set) == 8 and not kernel.sharding.is_fully_replicated
  diffs = [float(np.abs(a - b).max()) for a, b in zip(
      jax.tree.leaves(jax.device_get(single["params"])),
      jax.tree.leaves(jax.device_get(multi["params"])))]
  np.testing.assert_allclose(float(m1["loss"]), float(m8["loss"]), rtol=1e-5)
  print("max difference", max(diffs))
  assert max(diffs) < 1e-5, max(diffs)


if __name__ == "__main__":
  main()
