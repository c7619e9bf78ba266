"""Named-slot layouts: one padded vector that several embodiments share.

A robot arm's action is ``[arm_joint_targets(7), gripper(1)]``, a dexterous hand's is
``[wrist_delta(4), hand_joint_targets(20)]`` and a human hand's is
``[wrist_pose(9), hand_keypoints(63)]``. A model trained on all of them sees one
action vector, the concatenation of every slot in a shared :class:`Layout`; each
embodiment fills its own slots and the rest is zero with a ``False`` mask. Slots with
the same name mean the same thing, so two embodiments with a ``gripper`` slot share it.
The same mechanism serves joint angles and proprioception.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Slot:
  """A named block of ``size`` consecutive dimensions."""

  name: str
  size: int

  def __post_init__(self):
    if not self.name or self.size <= 0:
      raise ValueError(f"A slot needs a name and a positive size, got {self}.")


@dataclasses.dataclass(frozen=True)
class Layout:
  """An ordered tuple of slots; the vector is their concatenation."""

  slots: tuple[Slot, ...] = ()

  def __post_init__(self):
    names = [s.name for s in self.slots]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
      raise ValueError(f"Layout has duplicate slot names {duplicates}.")

  @classmethod
  def of(cls, pairs: Iterable[Sequence]) -> "Layout":
    """``Layout.of([("arm", 7), ("gripper", 1)])``; also accepts ``Slot``s or JSON lists."""
    return cls(tuple(p if isinstance(p, Slot) else Slot(str(p[0]), int(p[1])) for p in pairs))

  def to_json(self) -> list[list]:
    return [[s.name, s.size] for s in self.slots]

  @property
  def dim(self) -> int:
    return sum(s.size for s in self.slots)

  @property
  def names(self) -> tuple[str, ...]:
    return tuple(s.name for s in self.slots)

  def offset(self, name: str) -> int:
    """Index of the first dimension of slot ``name``."""
    start = 0
    for s in self.slots:
      if s.name == name:
        return start
      start += s.size
    raise KeyError(f"No slot {name!r} in layout {self.names}.")

  def union(self, other: "Layout", *, field: str = "vector") -> "Layout":
    """This layout followed by ``other``'s new slots; a size conflict names the slot."""
    slots = list(self.slots)
    sizes = {s.name: s.size for s in slots}
    for s in other.slots:
      if s.name in sizes:
        if sizes[s.name] != s.size:
          raise ValueError(f"{field} slot {s.name!r} has size {sizes[s.name]} in one dataset "
                           f"and {s.size} in another; rename one of them.")
      else:
        slots.append(s)
        sizes[s.name] = s.size
    return Layout(tuple(slots))

  def scatter_index(self, source: "Layout") -> np.ndarray:
    """Where each dimension of a ``source``-layout vector goes in this layout."""
    index = []
    for s in source.slots:
      if s.name not in self.names:
        raise KeyError(f"Slot {s.name!r} is not in the target layout {self.names}.")
      start = self.offset(s.name)
      target_size = self.slots[self.names.index(s.name)].size
      if target_size != s.size:
        raise ValueError(f"Slot {s.name!r} has size {s.size}, the target layout has "
                         f"{target_size}.")
      index.extend(range(start, start + s.size))
    return np.asarray(index, np.int64)

  def pack(self, source: "Layout", values: np.ndarray, mask: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """Places ``values[..., source.dim]`` into this layout; returns ``(padded, mask)``.

    ``mask`` (broadcast over the last axis) marks which leading entries are present;
    dimensions of slots the source lacks are zero and masked out.
    """
    values = np.asarray(values, np.float32)
    if values.shape[-1] != source.dim:
      raise ValueError(f"Vector has {values.shape[-1]} dims, its layout {source.names} has "
                       f"{source.dim}.")
    lead = values.shape[:-1]
    out = np.zeros(lead + (self.dim,), np.float32)
    out_mask = np.zeros(lead + (self.dim,), bool)
    index = self.scatter_index(source)
    present = np.ones(lead, bool) if mask is None else np.asarray(mask, bool)
    out[..., index] = np.where(present[..., None], values, 0.0)
    out_mask[..., index] = present[..., None]
    return out, out_mask


def union(layouts: Sequence[Layout], *, field: str = "vector") -> Layout:
  """The union of several layouts, slots in order of first appearance."""
  result = Layout()
  for layout in layouts:
    result = result.union(layout, field=field)
  return result
