"""Language instructions built from parts, with held-out combinations as unseen tasks."""

from __future__ import annotations

import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np

SPLITS = ("all", "seen", "unseen")


@dataclasses.dataclass(frozen=True)
class InstructionSpace:
  """All instructions of a task: the product of its parts, minus nothing.

  Attributes:
    template: a format string over the part names, e.g.
      ``"push the {colour} block to the {target}"``.
    parts: ordered mapping from part name to its possible values.
    held_out: combinations (values in part order) kept out of the ``seen`` split and
      forming the ``unseen`` split, so that generalisation to new compositions of
      known words can be measured.
  """

  template: str
  parts: dict[str, tuple[str, ...]]
  held_out: tuple[tuple[str, ...], ...] = ()

  def __post_init__(self):
    for combo in self.held_out:
      if len(combo) != len(self.parts):
        raise ValueError(f"Held-out combination {combo} needs one value per part "
                         f"{tuple(self.parts)}.")
      for name, value in zip(self.parts, combo):
        if value not in self.parts[name]:
          raise ValueError(f"Held-out value {value!r} is not a known {name!r}: "
                           f"{self.parts[name]}.")

  @property
  def combinations(self) -> list[tuple[str, ...]]:
    return list(itertools.product(*self.parts.values()))

  @property
  def part_indices(self) -> np.ndarray:
    """int32[num_combinations, num_parts]: each combination's value index per part."""
    sizes = [range(len(v)) for v in self.parts.values()]
    return np.array(list(itertools.product(*sizes)), np.int32).reshape(-1, len(sizes))

  def split_ids(self, split: str) -> np.ndarray:
    """Combination ids in ``split`` (``all``, ``seen`` or ``unseen``)."""
    if split not in SPLITS:
      raise ValueError(f"Unknown instruction split {split!r}; choose one of {SPLITS}.")
    held = set(self.held_out)
    ids = [i for i, c in enumerate(self.combinations)
           if split == "all" or ((c in held) == (split == "unseen"))]
    if not ids:
      raise ValueError(f"The {split!r} split of {self.template!r} is empty.")
    return np.array(ids, np.int32)

  def text(self, combination_id: int) -> str:
    combo = self.combinations[int(combination_id)]
    return self.template.format(**dict(zip(self.parts, combo)))

  def sample(self, rng: jax.Array, split: str) -> jax.Array:
    """Draws a combination id uniformly from ``split`` (jit-able)."""
    ids = jnp.asarray(self.split_ids(split))
    return ids[jax.random.randint(rng, (), 0, ids.shape[0])]

  def part(self, combination_id: jax.Array, name: str) -> jax.Array:
    """Index of the value of part ``name`` in a combination (jit-able)."""
    column = list(self.parts).index(name)
    return jnp.asarray(self.part_indices)[combination_id, column]
