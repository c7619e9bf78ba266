"""Latent actions: a VAE that infers a continuous action from a pair of frames.

Most video has no action labels. DreamDojo trains its world model on such video by
inferring a latent action from each pair of consecutive frames and using it as the
action label. The VAE here does the same:

* the **encoder** sees ``(frame_t, frame_t+gap)`` and outputs a Gaussian over a small
  latent ``z`` (``latent_dim`` numbers);
* the **decoder** sees ``frame_t`` and ``z`` only and must predict ``frame_t+gap``.

The decoder can only learn what changed between the frames through ``z``, and the KL
term keeps ``z`` small, so ``z`` comes to encode the *change* (the hand's and camera's
motion) rather than the scene, which the decoder already has.

Quality is measured the way the field does: a **linear probe** (ridge regression) from
``z`` to the true actions on held-out labelled pairs, reported as R^2 next to the same
probe on an untrained encoder. ``label_dataset`` then writes a copy of a dataset whose
action is the latent action, ready for world-model pre-training.

One concern per module: ``model`` (:class:`LatentActionConfig`, the Flax NNX
:class:`LatentActionVAE`), ``trainer`` (:class:`LatentActionTrainer`: trains, orbax
checkpoints, resumes, applies), ``pairs`` (:class:`FramePairs` from a stored dataset),
``probe`` (:func:`linear_probe`) and ``relabel`` (:func:`label_dataset`).

Library use::

  from egoscale.latent_actions.model import LatentActionConfig
  from egoscale.latent_actions.probe import linear_probe
  from egoscale.latent_actions.relabel import label_dataset
  from egoscale.latent_actions.trainer import LatentActionTrainer

  vae = LatentActionTrainer(LatentActionConfig(latent_dim=8), image_size=(32, 32))
  vae.fit(pairs, num_steps=1500, workdir="workdir/lam")     # resumable (orbax)
  r2 = linear_probe(vae.encode_mean(test.prev, test.next), test.action, ...)
  path = label_dataset(vae, "data/egocentric_human/1.0.0", data_dir="data", name="ego_lam")
"""
