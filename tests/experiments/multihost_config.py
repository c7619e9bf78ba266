"""A toy training config for the multi-host test (tests/experiments/test_multihost.py):
a tiny model, a 2 x 2 (data, fsdp) mesh, 3 steps; the test sets the dataset path."""

from wam import trainer
from wam.data.config import dataset_config


def get_config(arg: str = ""):
  del arg
  c = trainer.default_config()
  c.num_steps = 3
  c.log_every = 1
  c.checkpoint_every = 2
  c.eval.every, c.eval.batch_size, c.eval.videos, c.eval.flow_steps = 3, 2, 1, 1
  c.model.width, c.model.depth, c.model.num_heads = 32, 1, 2
  c.model.tokenizer.channels, c.model.tokenizer.latent_channels = (8,), 4
  c.model.text_encoder.kwargs.update(hidden=16, depth=1, num_heads=2)
  c.mesh.data, c.mesh.fsdp = 2, 2  # parameters sharded across the two processes too
  c.data.datasets.robot = dataset_config("")
  # 24: the synthetic instructions ("move the square 3") are 17 bytes.
  c.data.update(batch_size=8, num_frames=2, action_chunk=2, image_size=(16, 16),
                max_instruction_length=24, read_threads=1)
  c.optimizer.warmup_steps = 1
  c.peak_flops = 1e11  # skip measuring the machine
  return c
