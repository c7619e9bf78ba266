"""The conversion of one source episode into the schema, through a key mapping.

:func:`resolve` makes the concrete mapping and the dataset spec from the first episode;
:func:`check_episode` checks an episode against them from shapes and attributes only
(cheap: the importers run it on every episode before writing anything);
:func:`read_episode` reads and converts one episode.

Images may be ``uint8[N,H,W,3]``, channels-first ``[N,3,H,W]`` or float in ``[0, 1]``;
they are resized to the dataset's ``image_size`` by integer-factor area down-sampling or
nearest up-sampling (each axis on its own); any other size change is an error that
lists sizes that work. Images are converted in chunks of frames, so one episode at a
time is in memory.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Optional, Sequence

import numpy as np

from wam.data import images
from wam.data.importers.mapping import KeyMapping, Preset
from wam.data.importers.sources import (EpisodeSource, SourceError, match_path,
                                        missing_key_message, natural_key)
from wam.data.layout import Layout
from wam.data.schema import NUM_HAND_KEYPOINTS, SOURCES, Episode, EpisodeSpec, as_text

_IMAGE_CHUNK = 64  # frames converted at a time: bounds the float copy of a long episode


# ---------------------------------------------------------------------------- spec
def resolve(source: EpisodeSource, preset: Preset, *, name: str,
            embodiment: Optional[str] = None, source_kind: Optional[str] = None,
            cameras: Optional[Sequence[str]] = None,
            image_size: Optional[tuple[int, int]] = None, fps: Optional[float] = None
            ) -> tuple[KeyMapping, EpisodeSpec]:
  """The concrete mapping and the dataset spec, from the first episode and overrides.

  Precedence: explicit overrides, then the first episode (``metadata_json``,
  ``sim_flag``), then the preset, then ``embodiment=name``, ``source="robot"``, fps 10.
  """
  mapping, where = preset.mapping, source.where
  images: dict[str, str] = {}
  for cam, key in mapping.images.items():
    if cam != "*":
      images[cam] = key
      continue
    matches = [(m, k) for k in source.keys()
               if (m := match_path(key, k)) is not None and _is_array(source.find(k))]
    if not matches:
      raise SourceError(missing_key_message(key, "images", where, source.keys()))
    for matched, k in sorted(matches, key=lambda mk: natural_key(mk[1])):
      images[re.sub(r"[^a-z0-9_]", "_", matched[0].lower())] = k
  if cameras is not None:
    unknown = [c for c in cameras if c not in images]
    if unknown:
      raise SourceError(f"{where}: cameras {unknown} are not in the mapping; it has "
                        f"{sorted(images)}.")
    images = {c: images[c] for c in cameras}
  metadata = _metadata_json(source, mapping)
  sim_flag = mapping.sim_flag
  source_kind = source_kind or metadata.get("source")
  if source_kind is not None:
    sim_flag = None  # an explicit or recorded source wins: the flag is not checked
  elif sim_flag:
    flag = _optional(source, mapping, "sim_flag")
    if flag is not None:
      source_kind = "sim" if _scalar(flag) else "robot"
  mapping = dataclasses.replace(mapping, images=images, sim_flag=sim_flag)
  source_kind = source_kind or preset.source or "robot"
  if source_kind not in SOURCES:
    raise SourceError(f"{where}: source must be one of {SOURCES}, got {source_kind!r}.")
  if image_size is None:
    if images:
      first = next(iter(images))
      image_size = _image_geometry(source.get(images[first], f"images[{first}]"),
                                   images[first], where)[1]
    else:
      image_size = (1, 1)  # no cameras: unused, but the spec needs a valid size
  layouts = {field: _layout(source, mapping, field) for field in ("joints", "proprio", "action")}
  privileged_dim = sum(_vector_dim(source.get(k, "privileged"), k, where)
                       for k in mapping.privileged)
  try:
    spec = EpisodeSpec(
        embodiment=embodiment or metadata.get("embodiment") or preset.embodiment or name,
        source=source_kind, cameras=tuple(images), image_size=tuple(int(s) for s in image_size),
        joints=layouts["joints"], proprio=layouts["proprio"], action=layouts["action"],
        hand_keypoints=mapping.hand_keypoints is not None, privileged_dim=privileged_dim,
        fps=float(fps or metadata.get("fps") or preset.fps or 10.0))
  except ValueError as e:
    raise SourceError(f"{where}: {e}") from e
  return mapping, spec


def _layout(source: EpisodeSource, mapping: KeyMapping, field: str) -> Layout:
  """The slots of vector ``field`` in this episode (a repeated slot name raises)."""
  slots: tuple = ()
  for vk in getattr(mapping, field):
    dim = _vector_dim(source.get(vk.key, field), vk.key, source.where)
    slots += vk.layout(dim, source.where).slots
  try:
    return Layout(slots)
  except ValueError as e:
    raise SourceError(f"{source.where}: {field}: {e}") from e


# ---------------------------------------------------------------------------- checking
def check_episode(source: EpisodeSource, mapping: KeyMapping, spec: EpisodeSpec) -> int:
  """Checks that every mapped key exists with a usable shape; returns the length.

  Reads shapes and attributes only, so it is cheap enough to run on every episode
  before anything is written.
  """
  where = source.where
  lengths: dict[str, int] = {}

  def note(key: str, value: Any) -> None:
    shape = _shape(value)
    if not shape:
      raise SourceError(f"{where}: {key} is a scalar; expected one value per step.")
    lengths[key] = shape[0]

  h, w = spec.image_size
  for cam, key in mapping.images.items():
    value = source.get(key, f"images[{cam}]")
    _, size = _image_geometry(value, key, where)
    _resize_plan(size, (h, w), key, where)
    note(key, value)
  for field in ("joints", "proprio", "action"):
    for vk in getattr(mapping, field):
      note(vk.key, source.get(vk.key, field))
    layout = _layout(source, mapping, field)
    if layout != spec.layout(field):
      raise SourceError(f"{where}: {field} has slots {layout.to_json()}; the dataset (from "
                        f"its first episode) has {spec.layout(field).to_json()}.")
  if mapping.hand_keypoints:
    value = source.get(mapping.hand_keypoints, "hand_keypoints")
    if _vector_dim(value, mapping.hand_keypoints, where) != NUM_HAND_KEYPOINTS * 3:
      raise SourceError(f"{where}: {mapping.hand_keypoints} has shape {_shape(value)}; hand "
                        f"keypoints are [N, {NUM_HAND_KEYPOINTS}, 3].")
    note(mapping.hand_keypoints, value)
  dim = 0
  for key in mapping.privileged:
    value = source.get(key, "privileged")
    dim += _vector_dim(value, key, where)
    note(key, value)
  if dim != spec.privileged_dim:
    raise SourceError(f"{where}: privileged state has {dim} values; the dataset has "
                      f"{spec.privileged_dim}.")
  for field in ("reward", "is_terminal", "action_mask"):
    key = getattr(mapping, field)
    value = _optional(source, mapping, field) if key else None
    if value is not None:
      note(key, value)
  if not lengths:
    raise SourceError(f"{where}: the mapping reads no per-step array.")
  n = max(lengths.values())
  if len(set(lengths.values())) > 1:
    raise SourceError(f"{where}: arrays disagree on the number of steps: {lengths}.")
  if n == 0:
    raise SourceError(f"{where}: the episode has no steps.")
  for field in ("reward", "is_terminal", "action_mask"):
    key = getattr(mapping, field)
    value = _optional(source, mapping, field) if key else None
    if value is not None and int(np.prod(_shape(value))) != n:
      raise SourceError(f"{where}: {key} has shape {_shape(value)}; expected ({n},).")
  if mapping.sim_flag:
    flag = _optional(source, mapping, "sim_flag")
    if flag is not None and bool(_scalar(flag)) != (spec.source == "sim"):
      raise SourceError(f"{where}: {mapping.sim_flag}={bool(_scalar(flag))} but the dataset "
                        f"source is {spec.source!r} (from its first episode); import sim and "
                        "real episodes as separate datasets.")
  _instruction(source, mapping, n)
  return n


# ---------------------------------------------------------------------------- conversion
def read_episode(source: EpisodeSource, mapping: KeyMapping, spec: EpisodeSpec, *,
                 task: Optional[str] = None, default_task: str = "") -> Episode:
  """Reads and converts one episode into the schema (``spec.validate`` accepts it).

  The metadata task is ``task`` if given, else the source's (``metadata_json``), else
  ``default_task``.
  """
  where = source.where
  n = check_episode(source, mapping, spec)
  observation: dict[str, np.ndarray] = {}
  for cam, key in mapping.images.items():
    observation[f"image_{cam}"] = to_frames(source.get(key, f"images[{cam}]"), spec.image_size,
                                            key, where)
  for field in ("joints", "proprio"):
    if mapping_keys := getattr(mapping, field):
      observation[field] = np.concatenate(
          [_vector(source.get(vk.key, field), n, vk.key, where) for vk in mapping_keys], -1)
  if mapping.hand_keypoints:
    observation["hand_keypoints"] = _vector(
        source.get(mapping.hand_keypoints, "hand_keypoints"), n, mapping.hand_keypoints,
        where).reshape(n, NUM_HAND_KEYPOINTS, 3)
  if mapping.privileged:
    observation["privileged"] = np.concatenate(
        [_vector(source.get(k, "privileged"), n, k, where) for k in mapping.privileged], -1)
  steps: dict[str, Any] = {"observation": observation}
  if mapping.action:
    parts = []
    for vk in mapping.action:
      values = _vector(source.get(vk.key, "action"), n, vk.key, where)
      if vk.next_step:  # action at t = value at t + 1; the last step has none (masked)
        values = np.concatenate([values[1:], np.zeros_like(values[:1])])
      parts.append(values)
    steps["action"] = np.concatenate(parts, -1)
    mask = np.ones(n, bool)
    if mapping.action_mask and (value := _optional(source, mapping, "action_mask")) is not None:
      mask &= np.asarray(value).reshape(n).astype(bool)
    if mapping.mask_last_action or mapping.next_step_action:
      mask[-1] = False
    steps["action_mask"] = mask
  if mapping.reward and (value := _optional(source, mapping, "reward")) is not None:
    steps["reward"] = np.asarray(value, np.float32).reshape(n)
  if mapping.is_terminal and (value := _optional(source, mapping, "is_terminal")) is not None:
    steps["is_terminal"] = np.asarray(value).reshape(n).astype(bool)
  recorded = _metadata_json(source, mapping)
  texts = _instruction(source, mapping, n, fallback=recorded.get("instruction"))
  steps["language_instruction"] = texts
  metadata = {"task": default_task, **recorded}
  if task is not None:
    metadata["task"] = task
  metadata["instruction"] = texts[0]
  metadata.update(source_file=source.path, source_group=source.group)
  for key in ("embodiment", "source", "fps"):  # dataset-level: the spec holds them
    metadata.pop(key, None)
  return {"steps": steps, "metadata": metadata}


def to_frames(array: Any, image_size: tuple[int, int], key: str, where: str) -> np.ndarray:
  """``uint8[N,h,w,3]`` frames from HWC/CHW, uint8/float images, resized to ``image_size``."""
  layout, size = _image_geometry(array, key, where)
  plan = _resize_plan(size, image_size, key, where)
  n = _shape(array)[0]
  out = np.empty((n, *image_size, 3), np.uint8)
  for start in range(0, n, _IMAGE_CHUNK):
    x = np.asarray(array[start:start + _IMAGE_CHUNK])
    if layout == "chw":
      x = x.transpose(0, 2, 3, 1)
    if x.dtype.kind == "f":
      lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
      if not (np.isfinite(lo) and np.isfinite(hi) and lo >= 0.0 and hi <= 1.0 + 1e-6):
        raise SourceError(f"{where}: {key} holds float images with values in [{lo}, {hi}]; "
                          "float images must be in [0, 1] (uint8 ones in [0, 255]).")
      x = x.astype(np.float32) * 255.0
    elif x.dtype != np.uint8:
      raise SourceError(f"{where}: {key} has dtype {x.dtype}; images are uint8 or float "
                        "in [0, 1].")
    out[start:start + len(x)] = images.to_uint8(images.resize(x, plan))
  return out


def _image_geometry(array: Any, key: str, where: str) -> tuple[str, tuple[int, int]]:
  """("hwc" | "chw", (height, width)) of an image array."""
  shape = _shape(array)
  if len(shape) == 4 and shape[-1] == 3:
    return "hwc", (shape[1], shape[2])
  if len(shape) == 4 and shape[1] == 3:
    return "chw", (shape[2], shape[3])
  hint = (" It looks like encoded (compressed) images; decode them to frames first."
          if len(shape) <= 2 else "")
  raise SourceError(f"{where}: {key} has shape {shape}; images are [N, H, W, 3] or "
                    f"[N, 3, H, W].{hint}")


def _resize_plan(size: tuple[int, int], target: tuple[int, int], key: str, where: str
                 ) -> images.Plan:
  try:
    return images.resize_plan(size, target)
  except ValueError:
    h, w = size
    sizes = [(h // k, w // k) for k in (1, 2, 3, 4, 8) if h % k == 0 and w % k == 0]
    raise SourceError(
        f"{where}: {key} is {h}x{w}, the dataset's image_size is {target[0]}x{target[1]}: "
        f"not an integer-factor down- or up-sampling of each side. Pass an image_size "
        f"that is, e.g. one of {sizes}.") from None


def _vector(value: Any, n: int, key: str, where: str) -> np.ndarray:
  array = np.asarray(value)
  if array.dtype.kind not in "fiub":
    raise SourceError(f"{where}: {key} has dtype {array.dtype}; expected numbers.")
  return array.astype(np.float32).reshape(n, -1)


def _vector_dim(value: Any, key: str, where: str) -> int:
  shape = _shape(value)
  if len(shape) < 1:
    raise SourceError(f"{where}: {key} is a scalar; expected [N, ...] per-step values.")
  return int(np.prod(shape[1:], dtype=np.int64))


def _instruction(source: EpisodeSource, mapping: KeyMapping, n: int,
                 fallback: Optional[str] = None) -> np.ndarray:
  """One instruction per step: the key's, else ``fallback``, else the mapping's default."""
  value = _optional(source, mapping, "instruction") if mapping.instruction else None
  if value is None:
    text = mapping.default_instruction if fallback is None else fallback
    return np.array([text] * n, dtype=object)
  array = np.asarray(np.asarray(value), dtype=object)
  if array.ndim == 0:
    return np.array([as_text(array.item())] * n, dtype=object)
  if array.shape != (n,):
    raise SourceError(f"{source.where}: {mapping.instruction} has shape {array.shape}; an "
                      f"instruction is one string or one per step ({n},).")
  return np.array([as_text(t) for t in array], dtype=object)


def _metadata_json(source: EpisodeSource, mapping: KeyMapping) -> dict[str, Any]:
  if not mapping.metadata_json:
    return {}
  value = _optional(source, mapping, "metadata_json")
  if value is None:
    return {}
  try:
    metadata = json.loads(as_text(_scalar(value)))
  except (TypeError, ValueError) as e:
    raise SourceError(f"{source.where}: {mapping.metadata_json} is not JSON: {e}") from e
  if not isinstance(metadata, dict):
    raise SourceError(f"{source.where}: {mapping.metadata_json} is not a JSON object.")
  return metadata


def _optional(source: EpisodeSource, mapping: KeyMapping, field: str) -> Any:
  key = getattr(mapping, field)
  if field in mapping.optional:
    return source.find(key)
  return source.get(key, field)


def _shape(value: Any) -> tuple[int, ...]:
  return tuple(int(s) for s in getattr(value, "shape", np.shape(value)))


def _is_array(value: Any) -> bool:
  return value is not None and len(_shape(value)) > 0


def _scalar(value: Any) -> Any:
  array = np.asarray(value)
  if array.size != 1:
    raise SourceError(f"Expected a single value, got shape {array.shape}.")
  return array.reshape(()).item()


def describe(spec: EpisodeSpec) -> str:
  """One line summing up a spec (for logs)."""
  vectors = ", ".join(f"{k} {spec.layout(k).to_json()}" for k in ("joints", "proprio", "action")
                      if spec.layout(k).dim)
  return (f"{spec.embodiment}/{spec.source}, cameras {list(spec.cameras)} at "
          f"{spec.image_size[0]}x{spec.image_size[1]}, {vectors or 'no vectors'}"
          f"{', hand keypoints' if spec.hand_keypoints else ''}, {spec.fps:g} fps")
