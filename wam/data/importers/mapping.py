"""Where each schema field lives in a source episode, and the conversion of one episode.

A :class:`KeyMapping` names, for every field of the episode schema
(:mod:`wam.data.schema`), the key that holds it in a source episode: a ``/``-separated
path inside an HDF5 episode group, or an ``.npz`` key. A key that is not an array is
looked up as an attribute: ``"sim"`` is the episode group's attribute ``sim`` and
``"observations/instruction"`` the attribute ``instruction`` of ``observations``; a
leading ``/`` starts from the file's root instead of the episode group.

The formats plug in through :class:`SourceFile` (one open file: its episode groups) and
:class:`EpisodeSource` (one episode group: ``find(key)`` returns a lazily read array,
an attribute value or ``None``). Arrays are read only when converted, images in chunks
of frames, so one episode at a time is in memory.

Images may be ``uint8[N,H,W,3]``, channels-first ``[N,3,H,W]`` or float in ``[0, 1]``;
they are resized to the dataset's ``image_size`` by integer-factor area down-sampling or
nearest up-sampling (each axis on its own); any other size change is an error that
lists sizes that work.
"""

from __future__ import annotations

import abc
import dataclasses
import difflib
import json
import re
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import numpy as np

from wam.data import images
from wam.data.layout import Layout
from wam.data.schema import NUM_HAND_KEYPOINTS, SOURCES, Episode, EpisodeSpec, as_text

# Fields whose key may be absent from an episode when listed in ``KeyMapping.optional``.
OPTIONAL_FIELDS = ("instruction", "reward", "is_terminal", "action_mask", "metadata_json",
                   "sim_flag")
_IMAGE_CHUNK = 64  # frames converted at a time: bounds the float copy of a long episode


class SourceError(ValueError):
  """A source file or episode cannot be read, or does not match the key mapping."""


# ---------------------------------------------------------------------------- mapping
@dataclasses.dataclass(frozen=True)
class VectorKey:
  """One source array that becomes one or more named slots of a vector.

  Attributes:
    key: where the array is; values ``[N, ...]`` are flattened to ``[N, D]``.
    name: the slot name; defaults to the key's last path component.
    slots: ``((name, size), ...)`` to split the ``D`` values into several named slots
      instead (sizes must sum to ``D``).
    next_step: actions only: the value at step ``t + 1`` (an action read off the next
      state, e.g. the next wrist pose); the last step has none and its action is masked.
  """

  key: str
  name: Optional[str] = None
  slots: tuple[tuple[str, int], ...] = ()
  next_step: bool = False

  def __post_init__(self):
    if not self.key:
      raise ValueError("A VectorKey needs a key.")
    object.__setattr__(self, "slots", tuple((str(n), int(s)) for n, s in self.slots))
    if self.slots and self.name:
      raise ValueError(f"{self.key}: give either a slot name or slots, not both.")

  def layout(self, dim: int, where: str) -> Layout:
    """The layout of this key's ``dim`` values."""
    if not self.slots:
      return Layout.of([(self.name or self.key.rstrip("/").rsplit("/", 1)[-1], dim)])
    if sum(s for _, s in self.slots) != dim:
      raise SourceError(f"{where}: {self.key} has {dim} values per step but its slots "
                        f"{list(self.slots)} sum to {sum(s for _, s in self.slots)}.")
    return Layout.of(self.slots)

  def to_json(self) -> Any:
    if not (self.name or self.slots or self.next_step):
      return self.key
    return {"key": self.key, "name": self.name, "slots": [list(s) for s in self.slots],
            "next_step": self.next_step}

  @classmethod
  def of(cls, value: Any) -> "VectorKey":
    """A ``VectorKey`` from itself, a key string or its JSON dict."""
    if isinstance(value, VectorKey):
      return value
    if isinstance(value, str):
      return cls(value)
    if isinstance(value, Mapping):
      return cls(key=value["key"], name=value.get("name"),
                 slots=tuple(tuple(s) for s in value.get("slots") or ()),
                 next_step=bool(value.get("next_step", False)))
    raise TypeError(f"A vector source is a key, a dict or a VectorKey, got {value!r}.")


@dataclasses.dataclass(frozen=True)
class KeyMapping:
  """Where each schema field lives in a source episode (keys relative to its group).

  Attributes:
    images: ``{camera: key}``. A camera ``"*"`` with a key holding one ``*`` (e.g.
      ``{"*": "observations/images/*"}``) means every matching key of the first episode;
      the camera is named after what ``*`` matched (lower-cased, ``[^a-z0-9_]`` -> ``_``).
    joints, proprio, action: keys (or :class:`VectorKey`) concatenated along the last
      axis; each becomes a named slot of the layout.
    hand_keypoints: key of ``[N, 21, 3]`` (or ``[N, 63]``) hand keypoints.
    privileged: keys of simulator state, concatenated (no layout).
    instruction: key of the instruction: a string, or one string per step.
    default_instruction: the instruction when ``instruction`` is None (or optional and
      absent).
    reward, is_terminal, action_mask: keys of per-step values.
    mask_last_action: the source pads the last step's action (RLDS: no action follows
      the final observation), so it is masked out.
    metadata_json: key of a JSON object merged into the episode metadata (task,
      instruction, success); its ``embodiment``/``source``/``fps`` are dataset defaults.
    sim_flag: key of a boolean that marks simulated episodes (source ``"sim"``).
    optional: names of the fields above (of :data:`OPTIONAL_FIELDS`) whose key may be
      absent from an episode; a missing non-optional key is an error.
  """

  images: Mapping[str, str] = dataclasses.field(default_factory=dict)
  joints: tuple[VectorKey, ...] = ()
  proprio: tuple[VectorKey, ...] = ()
  action: tuple[VectorKey, ...] = ()
  hand_keypoints: Optional[str] = None
  privileged: tuple[str, ...] = ()
  instruction: Optional[str] = None
  default_instruction: str = ""
  reward: Optional[str] = None
  is_terminal: Optional[str] = None
  action_mask: Optional[str] = None
  mask_last_action: bool = False
  metadata_json: Optional[str] = None
  sim_flag: Optional[str] = None
  optional: tuple[str, ...] = ()

  def __post_init__(self):
    # Accept plain strings and lists (e.g. from JSON); store immutable forms.
    object.__setattr__(self, "images", dict(self.images))
    for name in ("joints", "proprio", "action"):
      value = getattr(self, name)
      object.__setattr__(self, name, tuple(VectorKey.of(v) for v in
                                           ([value] if isinstance(value, str) else value)))
    privileged = [self.privileged] if isinstance(self.privileged, str) else self.privileged
    object.__setattr__(self, "privileged", tuple(privileged))
    object.__setattr__(self, "optional", tuple(self.optional))
    bad = sorted(set(self.optional) - set(OPTIONAL_FIELDS))
    if bad:
      raise ValueError(f"optional {bad} are not optional fields; those are {OPTIONAL_FIELDS}.")
    if any(v.next_step for v in self.joints + self.proprio):
      raise ValueError("next_step is for actions only (joints/proprio are observations).")
    for cam, key in self.images.items():
      if cam == "*" and key.count("*") != 1:
        raise ValueError(f"The camera '*' needs a key with one '*', got {key!r}.")
      if cam != "*" and "*" in key:
        raise ValueError(f"Camera {cam!r}: key {key!r} has a '*'; name the camera '*'.")

  @property
  def next_step_action(self) -> bool:
    return any(v.next_step for v in self.action)

  def to_json(self) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(self):
      value = getattr(self, f.name)
      if f.name in ("joints", "proprio", "action"):
        value = [v.to_json() for v in value]
      elif isinstance(value, tuple):
        value = list(value)
      out[f.name] = value
    return out

  @classmethod
  def from_json(cls, d: Mapping[str, Any]) -> "KeyMapping":
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
      raise ValueError(f"Unknown key mapping fields {unknown}; fields are {sorted(names)}.")
    return cls(**d)


@dataclasses.dataclass(frozen=True)
class Preset:
  """A key mapping plus the dataset-level defaults of one source format.

  ``None`` defaults are taken from the first episode (``metadata_json``, ``sim_flag``) or
  fall back to ``embodiment=<dataset name>``, ``source="robot"``, ``fps=10``.
  """

  mapping: KeyMapping
  embodiment: Optional[str] = None
  source: Optional[str] = None
  fps: Optional[float] = None
  episode_groups: str = "/"  # glob of episode groups inside a file ("/" = the file)
  files: str = ""            # the usual file name pattern (documentation, CLI help)


# ---------------------------------------------------------------------------- sources
class LazyArray:
  """An array known by shape and dtype, loaded on first use (then kept): what an
  ``EpisodeSource`` returns for a large field, so that checking an episode reads
  headers only."""

  def __init__(self, shape: Sequence[int], dtype: Any, load: Callable[[], np.ndarray]):
    self.shape, self.dtype = tuple(shape), np.dtype(dtype)
    self._load, self._data = load, None

  def _get(self) -> np.ndarray:
    if self._data is None:
      self._data = self._load()
    return self._data

  def __getitem__(self, index: Any) -> np.ndarray:
    return self._get()[index]

  def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
    data = self._get()
    return data if dtype is None else data.astype(dtype)

  def __len__(self) -> int:
    return self.shape[0]


class EpisodeSource(abc.ABC):
  """One episode group of an open source file."""

  def __init__(self, path: str, group: str):
    self.path = path
    self.group = group

  @property
  def where(self) -> str:
    return f"{self.path} (episode group {self.group!r})"

  @abc.abstractmethod
  def find(self, key: str) -> Any:
    """The array (lazy: ``.shape``, ``.dtype``, slicing) or attribute at ``key``, or None."""

  @abc.abstractmethod
  def keys(self) -> list[str]:
    """Every array and attribute key of the group (for error messages)."""

  def get(self, key: str, field: str) -> Any:
    """``find(key)``, or a :class:`SourceError` naming the key, file, group and near keys."""
    value = self.find(key)
    if value is None:
      raise SourceError(missing_key_message(key, field, self.where, self.keys()))
    return value


class SourceFile(abc.ABC):
  """One open source file (a context manager)."""

  @abc.abstractmethod
  def groups(self, pattern: str) -> list[str]:
    """The episode groups matching ``pattern`` ("/" = the whole file), naturally sorted."""

  @abc.abstractmethod
  def episode(self, group: str) -> EpisodeSource:
    """The episode in ``group``."""

  def close(self) -> None:
    """Releases the file."""

  def __enter__(self) -> "SourceFile":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def missing_key_message(key: str, field: str, where: str, keys: Sequence[str]) -> str:
  close = difflib.get_close_matches(key, keys, n=3, cutoff=0.5)
  listed = list(keys)[:40]
  more = f" (and {len(keys) - 40} more)" if len(keys) > 40 else ""
  return (f"{where}: no key {key!r} (mapping field {field}). "
          f"{'Did you mean ' + repr(close) + '? ' if close else ''}"
          f"Keys in the group: {listed}{more}.")


def natural_key(text: str) -> tuple:
  """Sort key that orders embedded numbers by value: ``demo_2`` before ``demo_10``."""
  parts = re.split(r"(\d+)", text)
  return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts) + (text,)


def match_path(pattern: str, path: str) -> Optional[list[str]]:
  """Matches ``/``-separated ``path`` against a glob whose ``*`` stays within a component;
  returns what each ``*`` matched, or None."""
  regex = "/".join("[^/]*".join(re.escape(p) for p in c.split("*"))
                   for c in pattern.strip("/").split("/"))
  regex = regex.replace("[^/]*", "([^/]+)")
  m = re.fullmatch(regex, path.strip("/"))
  return list(m.groups()) if m else None


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


def as_list(value: str | Iterable[str]) -> list[str]:
  return [value] if isinstance(value, str) else list(value)
