"""Latent actions: a VAE learns from unlabeled pairs what a linear probe reads as actions."""

import numpy as np
import pytest

from egoscale.latent_actions.model import LatentActionConfig
from egoscale.latent_actions.pairs import FramePairs, frame_pairs
from egoscale.latent_actions.probe import linear_probe
from egoscale.latent_actions.relabel import LATENT_SLOT, label_dataset
from egoscale.latent_actions.trainer import LatentActionTrainer
from wam.data import builder
from wam.data.layout import Layout
from wam.data.reader import EpisodeDataset
from wam.data.schema import EpisodeSpec

SIZE = 16
SPEC = EpisodeSpec(embodiment="pointer", source="human", cameras=("ego",),
                   image_size=(SIZE, SIZE), action=Layout.of([("velocity", 2)]), fps=10.0)


def _episode(seed: int, length: int = 24) -> dict:
  """A bright square whose per-step displacement (the action) is random and visible."""
  rng = np.random.default_rng(seed)
  velocity = rng.uniform(-1.5, 1.5, (length, 2)).astype(np.float32)
  position = np.cumsum(np.concatenate([rng.uniform(5, 11, (1, 2)), velocity[:-1]]), axis=0)
  position = np.clip(position, 3, SIZE - 4)
  velocity[:-1] = np.diff(position, axis=0)
  velocity[-1] = 0
  ys, xs = np.mgrid[0:SIZE, 0:SIZE]
  d2 = (ys[None] - position[:, 0, None, None]) ** 2 + (xs[None] - position[:, 1, None, None]) ** 2
  frames = np.zeros((length, SIZE, SIZE, 3), np.uint8)
  frames[..., 0] = (255 * np.exp(-d2 / 4.0)).astype(np.uint8)
  frames[..., 2] = 40
  return {"steps": {"observation": {"image_ego": frames}, "action": velocity,
                    "action_mask": np.arange(length) < length - 1,
                    "language_instruction": np.array(["move"] * length)},
          "metadata": {"task": "move", "instruction": "move", "success": True}}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  root = tmp_path_factory.mktemp("lam")
  return builder.write_dataset("pointer", SPEC, {
      "train": lambda: (_episode(i) for i in range(40)),
      "val": lambda: (_episode(1000 + i) for i in range(3))}, str(root))


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
  pairs = frame_pairs(EpisodeDataset(dataset, "train"))
  config = LatentActionConfig(latent_dim=4, channels=(16, 32), hidden=64,
                              num_steps=400, batch_size=64, learning_rate=3e-3)
  untrained = LatentActionTrainer(config, (SIZE, SIZE))
  vae = LatentActionTrainer(config, (SIZE, SIZE))
  workdir = tmp_path_factory.mktemp("lam_run")
  vae.fit(pairs, workdir=str(workdir), log_every=100)
  return vae, untrained, pairs, workdir, config


def test_frame_pairs_hold_consecutive_frames_and_their_actions(dataset):
  pairs = frame_pairs(EpisodeDataset(dataset, "train"), max_episodes=2)
  assert pairs.prev.shape == (46, SIZE, SIZE, 3) and pairs.action.shape == (46, 2)
  np.testing.assert_array_equal(pairs.prev[1:23], pairs.next[:22])


def test_vae_beats_copying_and_a_linear_probe_recovers_the_actions(trained):
  vae, untrained, pairs, _, _ = trained
  last = vae.history[-1]
  assert last["recon"] < 0.7 * last["copy_mse"], last
  trained_probe = linear_probe(vae.encode_mean(pairs.prev, pairs.next), pairs.action)
  random_probe = linear_probe(untrained.encode_mean(pairs.prev, pairs.next), pairs.action)
  assert trained_probe.r2 > 0.6, trained_probe
  assert trained_probe.r2 > random_probe.r2 + 0.2, (trained_probe, random_probe)


def test_training_resumes_from_its_checkpoint(trained):
  vae, _, pairs, workdir, config = trained
  again = LatentActionTrainer(config, (SIZE, SIZE))
  again.fit(pairs, workdir=str(workdir), log_every=100)  # already finished: restores only
  assert again.step == config.num_steps
  np.testing.assert_allclose(again.encode_mean(pairs.prev[:8], pairs.next[:8]),
                             vae.encode_mean(pairs.prev[:8], pairs.next[:8]), atol=1e-6)


def test_label_dataset_writes_latent_actions_as_the_action(trained, dataset, tmp_path):
  vae = trained[0]
  path = label_dataset(vae, dataset, data_dir=str(tmp_path), name="pointer_lam")
  labelled = EpisodeDataset(path, "val")
  assert labelled.spec.action.names == (LATENT_SLOT,)
  steps = labelled.read_steps(0, range(24))
  np.testing.assert_array_equal(steps["action_mask"], np.arange(24) < 23)
  expected = vae.encode_mean(steps["observation/image_ego"][:-1],
                             steps["observation/image_ego"][1:])
  np.testing.assert_allclose(steps["action"][:-1], expected, atol=1e-5)


def test_bad_input_is_named():
  trainer = LatentActionTrainer(LatentActionConfig(num_steps=1, channels=(8,), hidden=8),
                                (SIZE, SIZE))
  bad = FramePairs(np.zeros((4, 8, 8, 3), np.uint8), np.zeros((4, 8, 8, 3), np.uint8), None)
  with pytest.raises(ValueError, match="FramePairs.prev"):
    trainer.fit(bad)
  with pytest.raises(ValueError, match="divisible"):
    LatentActionTrainer(LatentActionConfig(channels=(8, 8, 8, 8, 8)), (SIZE, SIZE))
  with pytest.raises(ValueError, match="labelled pairs"):
    linear_probe(np.zeros((5, 2)), np.zeros((5, 2)))


def test_the_probe_ignores_units_and_chooses_its_ridge():
  """Standardised features (millimetres or metres read the same), an unshrunk intercept,
  and a ridge chosen on training pairs: many noisy copies of one signal are averaged,
  where a weak ridge overfits their noise and a strong one shrinks the signal away."""
  rng = np.random.default_rng(0)
  signal = rng.normal(size=(300, 3))
  actions = signal @ rng.normal(size=(3, 2)) + 5.0 + 0.1 * rng.normal(size=(300, 2))
  metres = linear_probe(signal * 1e-3, actions)
  assert metres.r2 > 0.95
  assert linear_probe(signal, actions).r2 == pytest.approx(metres.r2, abs=1e-6)
  copies = signal[:, :1] + 3.0 * rng.normal(size=(300, 150))
  target = 2.0 * signal[:, :1] + 5.0 + 0.1 * rng.normal(size=(300, 1))
  chosen = linear_probe(copies, target)
  assert chosen.r2 > 0.85 and chosen.ridge == 1.0
  assert linear_probe(copies, target, ridge=1e-4).r2 < chosen.r2 - 0.05
  assert linear_probe(copies, target, ridge=100.0).r2 < chosen.r2 - 0.05
