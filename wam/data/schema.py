"""The episode schema shared by robot, simulated and human data (docs/data.md).

An episode is ``{"steps": {...arrays with a leading time axis...}, "metadata": {...}}``
(RLDS-like). Each step holds ``observation`` (``image_<camera>`` uint8[H,W,3],
``joints`` f32[J], ``proprio`` f32[P], ``hand_keypoints`` f32[21,3] for human data),
``action`` f32[A] (the action taken after this observation), ``reward``, ``discount``,
``is_first``, ``is_last``, ``is_terminal`` and ``language_instruction``, plus per-step
masks (``action_mask``, ``observation/joints_mask``, ...). What a source lacks is padded
and masked, never invented: a dataset without joints has an empty joints layout, and an
unlabeled step has ``action_mask=False``.

An :class:`EpisodeSpec` describes one dataset: its embodiment, source, cameras, image
size and the named-slot layouts (:mod:`wam.data.layout`) of its vectors. It produces the
TFDS features of one stored step and checks every episode before it is written, naming
the episode, field and step that is wrong.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Mapping, Optional

import numpy as np

from wam.data.layout import Layout

SOURCES = ("robot", "human", "sim")
NUM_HAND_KEYPOINTS = 21
VECTORS = ("joints", "proprio", "action")
SCHEMA_VERSION = 1

Episode = dict  # {"steps": {...}, "metadata": {...}}


class EpisodeError(ValueError):
  """An episode does not match its dataset's spec."""


@dataclasses.dataclass(frozen=True)
class EpisodeSpec:
  """What every episode of one dataset looks like."""

  embodiment: str
  source: str
  cameras: tuple[str, ...]
  image_size: tuple[int, int]  # (height, width)
  joints: Layout = Layout()
  proprio: Layout = Layout()
  action: Layout = Layout()
  hand_keypoints: bool = False
  privileged_dim: int = 0  # simulator state (object poses...) that no real camera sees
  fps: float = 10.0

  def __post_init__(self):
    if self.source not in SOURCES:
      raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}.")
    bad = [c for c in self.cameras if not re.fullmatch(r"[a-z][a-z0-9_]*", c)]
    if bad:
      raise ValueError(f"Camera names must be lower_snake_case, got {bad}.")
    if len(self.image_size) != 2 or min(self.image_size) <= 0:
      raise ValueError(f"image_size must be (height, width), got {self.image_size}.")
    if not self.cameras and not any(self.layout(k).dim for k in VECTORS):
      raise ValueError("An episode spec needs at least one camera or vector.")

  def layout(self, name: str) -> Layout:
    """The layout of ``joints``, ``proprio`` or ``action``."""
    if name not in VECTORS:
      raise KeyError(f"No vector {name!r}; vectors are {VECTORS}.")
    return getattr(self, name)

  # ------------------------------------------------------------------ (de)serialisation
  def to_json(self) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "embodiment": self.embodiment,
            "source": self.source, "cameras": list(self.cameras),
            "image_size": list(self.image_size), "joints": self.joints.to_json(),
            "proprio": self.proprio.to_json(), "action": self.action.to_json(),
            "hand_keypoints": self.hand_keypoints, "privileged_dim": self.privileged_dim,
            "fps": self.fps}

  @classmethod
  def from_json(cls, d: Mapping[str, Any]) -> "EpisodeSpec":
    version = d.get("schema_version", SCHEMA_VERSION)
    if version > SCHEMA_VERSION:
      raise ValueError(f"Dataset written with episode schema v{version}; this code reads "
                       f"up to v{SCHEMA_VERSION}. Update the code.")
    return cls(embodiment=d["embodiment"], source=d["source"], cameras=tuple(d["cameras"]),
               image_size=tuple(d["image_size"]), joints=Layout.of(d["joints"]),
               proprio=Layout.of(d["proprio"]), action=Layout.of(d["action"]),
               hand_keypoints=bool(d["hand_keypoints"]),
               privileged_dim=int(d.get("privileged_dim", 0)), fps=float(d["fps"]))

  # ------------------------------------------------------------------ storage
  def features(self):
    """TFDS features of one stored step: no TensorFlow-encoded types, so reading needs
    no TensorFlow (images are zlib-compressed uint8 tensors)."""
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
    feat = tfds.features
    h, w = self.image_size
    observation = {f"image_{c}": feat.Tensor(shape=(h, w, 3), dtype=np.uint8, encoding="zlib")
                   for c in self.cameras}
    for name in ("joints", "proprio"):
      if self.layout(name).dim:
        observation[name] = feat.Tensor(shape=(self.layout(name).dim,), dtype=np.float32)
        observation[f"{name}_mask"] = feat.Scalar(dtype=np.bool_)
    if self.hand_keypoints:
      observation["hand_keypoints"] = feat.Tensor(shape=(NUM_HAND_KEYPOINTS, 3),
                                                  dtype=np.float32)
      observation["hand_keypoints_mask"] = feat.Scalar(dtype=np.bool_)
    if self.privileged_dim:
      observation["privileged"] = feat.Tensor(shape=(self.privileged_dim,), dtype=np.float32)
    step = {"observation": observation,
            "reward": feat.Scalar(dtype=np.float32),
            "discount": feat.Scalar(dtype=np.float32),
            "is_first": feat.Scalar(dtype=np.bool_),
            "is_last": feat.Scalar(dtype=np.bool_),
            "is_terminal": feat.Scalar(dtype=np.bool_),
            "language_instruction": feat.Text(),
            # Where the step sits: the reader checks these against the episode index.
            "episode_index": feat.Scalar(dtype=np.int64),
            "step_index": feat.Scalar(dtype=np.int32)}
    if self.action.dim:
      step["action"] = feat.Tensor(shape=(self.action.dim,), dtype=np.float32)
      step["action_mask"] = feat.Scalar(dtype=np.bool_)
    return feat.FeaturesDict(step)

  # ------------------------------------------------------------------ checking
  def validate(self, episode: Episode, where: str = "episode") -> tuple[dict, dict]:
    """Checks ``episode`` and fills defaults; returns ``(steps, metadata)``.

    Steps come back flat (``"observation/joints"`` keys) with every stored field present.
    Missing ``reward``/``discount``/``is_*``/masks get their defaults; a wrong shape, a
    wrong dtype kind, a NaN or a missing required field raises :class:`EpisodeError`.
    """
    if not isinstance(episode, Mapping) or "steps" not in episode:
      raise EpisodeError(f"{where}: an episode is a dict with 'steps' and 'metadata'.")
    steps = flatten(episode["steps"])
    metadata = dict(episode.get("metadata") or {})
    n = _episode_length(steps, where)
    out: dict[str, np.ndarray] = {}
    h, w = self.image_size
    for cam in self.cameras:
      out[f"observation/image_{cam}"] = _field(steps, f"observation/image_{cam}", (n, h, w, 3),
                                               np.uint8, where)
    for name in ("joints", "proprio"):
      dim = self.layout(name).dim
      if dim:
        out[f"observation/{name}"] = _field(steps, f"observation/{name}", (n, dim),
                                            np.float32, where)
        out[f"observation/{name}_mask"] = _mask(steps, f"observation/{name}_mask", n, where)
    if self.hand_keypoints:
      out["observation/hand_keypoints"] = _field(
          steps, "observation/hand_keypoints", (n, NUM_HAND_KEYPOINTS, 3), np.float32, where)
      out["observation/hand_keypoints_mask"] = _mask(
          steps, "observation/hand_keypoints_mask", n, where)
    if self.privileged_dim:
      out["observation/privileged"] = _field(steps, "observation/privileged",
                                             (n, self.privileged_dim), np.float32, where)
    if self.action.dim:
      out["action"] = _field(steps, "action", (n, self.action.dim), np.float32, where)
      out["action_mask"] = _mask(steps, "action_mask", n, where)
    out["reward"] = _field(steps, "reward", (n,), np.float32, where, default=0.0)
    out["discount"] = _field(steps, "discount", (n,), np.float32, where, default=1.0)
    out["is_first"] = _field(steps, "is_first", (n,), np.bool_, where,
                             default=np.arange(n) == 0)
    out["is_last"] = _field(steps, "is_last", (n,), np.bool_, where,
                            default=np.arange(n) == n - 1)
    out["is_terminal"] = _field(steps, "is_terminal", (n,), np.bool_, where, default=False)
    instruction = str(metadata.get("instruction", ""))
    if "language_instruction" in steps:
      texts = np.asarray(steps["language_instruction"])
      if texts.shape != (n,):
        raise EpisodeError(f"{where}: steps/language_instruction has shape {texts.shape}, "
                           f"expected ({n},).")
      out["language_instruction"] = np.array([as_text(t) for t in texts], dtype=object)
      instruction = instruction or (as_text(texts[0]) if n else "")
    else:
      out["language_instruction"] = np.array([instruction] * n, dtype=object)
    # Masked-out entries are padding: zero them so nothing downstream reads garbage.
    for key in ("observation/joints", "observation/proprio", "observation/hand_keypoints",
                "action"):
      if key in out:
        mask = out[key + "_mask" if key != "action" else "action_mask"]
        values = out[key]
        bad = ~np.isfinite(values.reshape(n, -1)).all(axis=1) & mask
        if bad.any():
          raise EpisodeError(f"{where}: steps/{key} has NaN or inf at step "
                             f"{int(np.argmax(bad))} (mask it out if it is missing).")
        values[~mask] = 0.0
    unknown = sorted(set(steps) - set(out))
    if unknown:
      raise EpisodeError(f"{where}: fields {unknown} are not in the dataset spec "
                         f"(cameras {list(self.cameras)}, vectors with layouts "
                         f"{[k for k in VECTORS if self.layout(k).dim]}).")
    metadata.setdefault("instruction", instruction)
    metadata.setdefault("embodiment", self.embodiment)
    metadata.setdefault("source", self.source)
    metadata.setdefault("fps", self.fps)
    metadata.setdefault("success", bool(out["is_terminal"].any()))
    metadata.setdefault("task", "")
    return out, metadata


def flatten(tree: Mapping, prefix: str = "") -> dict[str, Any]:
  """``{"observation": {"joints": x}}`` -> ``{"observation/joints": x}``."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      flat.update(flatten(value, f"{prefix}{key}/"))
    else:
      flat[prefix + key] = value
  return flat


def nest(flat: Mapping[str, Any]) -> dict:
  """The inverse of :func:`flatten`."""
  tree: dict = {}
  for key, value in flat.items():
    node = tree
    *parents, leaf = key.split("/")
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = value
  return tree


def as_text(value: Any) -> str:
  """A stored or source string (``bytes``, ``np.bytes_`` or ``str``) as ``str``."""
  if isinstance(value, (bytes, np.bytes_)):
    return bytes(value).decode("utf-8")
  return str(value)


def _episode_length(steps: Mapping[str, Any], where: str) -> int:
  lengths = {k: len(v) for k, v in steps.items() if np.ndim(v) > 0}
  if not lengths:
    raise EpisodeError(f"{where}: the episode has no steps.")
  n = max(lengths.values())
  short = {k: v for k, v in lengths.items() if v != n}
  if short:
    raise EpisodeError(f"{where}: fields disagree on the number of steps: {n} steps but "
                       f"{short}.")
  if n == 0:
    raise EpisodeError(f"{where}: the episode has no steps.")
  return n


def _field(steps, key, shape, dtype, where, default: Optional[Any] = None) -> np.ndarray:
  if key not in steps:
    if default is None:
      raise EpisodeError(f"{where}: missing field steps/{key} (expected shape {shape}).")
    return np.broadcast_to(np.asarray(default, dtype), shape).copy()
  value = np.asarray(steps[key])
  if value.shape != tuple(shape):
    raise EpisodeError(f"{where}: steps/{key} has shape {value.shape}, the dataset spec "
                       f"says {tuple(shape)}.")
  if dtype == np.uint8 and value.dtype != np.uint8:
    raise EpisodeError(f"{where}: steps/{key} has dtype {value.dtype}; images are uint8.")
  if np.dtype(dtype).kind == "f" and value.dtype.kind not in "fiub":
    raise EpisodeError(f"{where}: steps/{key} has dtype {value.dtype}, expected numbers.")
  return value.astype(dtype, copy=True)


def _mask(steps, key, n, where) -> np.ndarray:
  return _field(steps, key, (n,), np.bool_, where, default=True)
