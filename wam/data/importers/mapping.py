"""Where each schema field lives in a source episode: the key mapping and presets.

A :class:`KeyMapping` names, for every field of the episode schema
(:mod:`wam.data.schema`), the key that holds it in a source episode: a ``/``-separated
path inside an HDF5 episode group, or an ``.npz`` key. A key that is not an array is
looked up as an attribute: ``"sim"`` is the episode group's attribute ``sim`` and
``"observations/instruction"`` the attribute ``instruction`` of ``observations``; a
leading ``/`` starts from the file's root instead of the episode group.

A :class:`Preset` is a mapping plus the dataset-level defaults of one source format.
:mod:`wam.data.importers.convert` applies a mapping to an episode.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

from wam.data.importers.sources import SourceError
from wam.data.layout import Layout

# Fields whose key may be absent from an episode when listed in ``KeyMapping.optional``.
OPTIONAL_FIELDS = ("instruction", "reward", "is_terminal", "action_mask", "metadata_json",
                   "sim_flag")


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
