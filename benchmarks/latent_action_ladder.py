r"""What can a linear probe read of the human action, with perfect perception? (a ladder)

  python -m benchmarks.latent_action_ladder \
      --data=workdir/demo/data/egocentric_human/<name>/1.0.0 \
      [--episodes=120 --out=benchmarks/latent_action_ladder_cpu.json]

The latent-action probe (``egoscale.latent_actions.probe``: ridge regression on held-out
pairs) asks a latent of a frame pair for the human action, the wrist's motion in its own
frame plus the hand's keypoints in the wrist frame (``egoscale.actions``). This ladder
gives the same probe features better than any latent can be, from the simplest up:

  pixels          the frame difference and the first frame (what the VAE's encoder reads)
  wrist poses     the true wrist pose at t and t+1 in the head camera's frame (what a
                  perfect hand tracker on the video would give)
  + camera poses  and the head camera's pose at t and t+1 (the ego-motion too)
  bilinear        the rotation x translation products that make the wrist-frame motion
                  ``R_t^T (p_t+1 - p_t)`` linear, from world-frame poses (the ceiling)

for two targets: the wrist motion (9) and the whole action (72). If the rungs with
perfect perception stay low, the probe's target is not a linear function of what the
video shows, and no latent will pass a linear probe of it.
"""

from __future__ import annotations

import numpy as np
from absl import app, flags

from benchmarks import results as results_lib
from egoscale import hand
from egoscale.latent_actions.probe import linear_probe
from wam.data.reader import EpisodeDataset

_DATA = flags.DEFINE_string("data", None, "An egocentric human dataset (versioned dir).",
                            required=True)
_SPLIT = flags.DEFINE_string("split", "train", "The split the pairs come from.")
_EPISODES = flags.DEFINE_integer("episodes", 120, "Episodes read (the probe holds out 30%).")
_OUT = flags.DEFINE_string("out", "", "JSON results file ('' = print only).")


def read_pairs(path: str, split: str, episodes: int) -> dict[str, np.ndarray]:
  """Labelled consecutive pairs: frames, actions and the proprio poses at t and t+1."""
  data = EpisodeDataset(path, split)
  layout = data.spec.proprio
  camera = layout.offset("camera_pose") + np.arange(9)
  wrist = layout.offset("wrist_pose") + np.arange(9)
  out: dict[str, list] = {k: [] for k in ("prev", "next", "action", "camera", "camera1",
                                          "wrist", "wrist1")}
  for e in range(min(episodes, len(data))):
    steps = data.read_steps(e, range(int(data.episode_lengths[e])))
    keep = steps["action_mask"][:-1]
    frames = steps[f"observation/image_{data.spec.cameras[0]}"]
    proprio = steps["observation/proprio"]
    for key, value in (("prev", frames[:-1]), ("next", frames[1:]),
                       ("action", steps["action"][:-1]), ("camera", proprio[:-1, camera]),
                       ("camera1", proprio[1:, camera]), ("wrist", proprio[:-1, wrist]),
                       ("wrist1", proprio[1:, wrist])):
      out[key].append(value[keep])
  return {k: np.concatenate(v) for k, v in out.items()}


def _rotation(six_d: np.ndarray) -> np.ndarray:
  """Rotation matrices [N,3,3] from 6D rotations (``egoscale.hand``'s convention)."""
  return np.asarray(hand.rot6d_to_matrix(six_d))


def features(p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """The ladder's feature sets (see the module docstring)."""
  pixels = lambda x: x.reshape(len(x), -1).astype(np.float32) / 255.0
  # World-frame wrist: the camera's pose in the table frame composed with the wrist's
  # pose in the camera frame.
  rc, rc1 = _rotation(p["camera"][:, 3:]), _rotation(p["camera1"][:, 3:])
  pos = p["camera"][:, :3] + np.einsum("nij,nj->ni", rc, p["wrist"][:, :3])
  pos1 = p["camera1"][:, :3] + np.einsum("nij,nj->ni", rc1, p["wrist1"][:, :3])
  rot = rc @ _rotation(p["wrist"][:, 3:])
  products = (rot[:, :, :, None] * (pos1 - pos)[:, None, None, :]).reshape(len(pos), -1)
  return {
      "pixels": np.concatenate([pixels(p["next"]) - pixels(p["prev"]), pixels(p["prev"])], 1),
      "wrist poses": np.concatenate([p["wrist"], p["wrist1"]], 1),
      "+ camera poses": np.concatenate([p["wrist"], p["wrist1"], p["camera"], p["camera1"]],
                                       1),
      "bilinear": products}


def main(argv):
  del argv
  pairs = read_pairs(_DATA.value, _SPLIT.value, _EPISODES.value)
  targets = {"wrist motion (9)": pairs["action"][:, :9], "whole action (72)": pairs["action"]}
  rows = []
  for name, x in features(pairs).items():
    row = {"features": name, "dims": int(x.shape[1])}
    for target, y in targets.items():
      probe = linear_probe(x, y)  # ridge chosen on a fifth of the training pairs
      row[target] = probe.r2
      row["test_pairs"] = probe.num_test
    rows.append(row)
    print(f"[benchmarks.latent_action_ladder] {name:15s} ({row['dims']:5d} dims): R^2 "
          + ", ".join(f"{t} {row[t]:.3f}" for t in targets), flush=True)
  results_lib.write_json(_OUT.value, {"data": _DATA.value, "split": _SPLIT.value,
                                      "pairs": int(len(pairs["action"])), "rows": rows})


if __name__ == "__main__":
  app.run(main)
