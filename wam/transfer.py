"""Starting a run from another run's parameters (pre-train -> mid-train -> post-train).

``config.init_from`` names a workdir (or checkpoint directory) of an earlier run. Its
parameters are copied into the new model wherever the parameter path and shape match;
the rest keep their fresh initialisation. That is what fine-tuning to a new action
space needs: a human-video model (action = wrist motion + hand keypoints, 72 numbers)
continued on a robot hand (24 numbers) keeps its tokenizer, transformer and video heads
and relearns only the action and state projections whose sizes changed.

The report says what was copied and what was not, so a silent mismatch (a renamed
layer, a different width) shows up in the log rather than as a slow, confusing run.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Collection, Optional, Union

import jax
import numpy as np
from flax import nnx

from wam import loading
from wam.checkpoint import Checkpointer


@dataclasses.dataclass
class TransferReport:
  """What ``transfer_params`` copied, by parameter path."""
  source: str
  source_step: int
  copied: list[str]
  shape_mismatch: list[tuple[str, tuple, tuple]]  # path, new shape, stored shape
  missing: list[str]        # in the new model, not in the source
  unused: list[str]         # in the source, not in the new model

  @property
  def copied_fraction(self) -> float:
    total = len(self.copied) + len(self.shape_mismatch) + len(self.missing)
    return len(self.copied) / max(total, 1)

  def summary(self) -> str:
    total = len(self.copied) + len(self.shape_mismatch) + len(self.missing)
    lines = [f"init_from {self.source} (step {self.source_step}): copied "
             f"{len(self.copied)} of {total} parameter arrays."]
    for path, new, old in self.shape_mismatch:
      lines.append(f"  fresh (shape {new} here, {old} stored): {path}")
    for path in self.missing:
      lines.append(f"  fresh (not in the source run): {path}")
    for path in self.unused:
      lines.append(f"  unused (only in the source run): {path}")
    return "\n".join(lines)


def _flat(params: Any) -> dict[str, Any]:
  leaves, _ = jax.tree_util.tree_flatten_with_path(params)
  return {jax.tree_util.keystr(path): leaf for path, leaf in leaves}


def _latest_step(path: str) -> int:
  ckpt_dir = loading.checkpoint_directory(path)
  if not os.path.isdir(ckpt_dir):
    raise FileNotFoundError(f"init_from={path!r}: no such directory.")
  with Checkpointer(ckpt_dir, read_only=True) as checkpointer:
    step = checkpointer.latest_step()
  if step is None:
    raise FileNotFoundError(f"init_from={path!r}: the run has no checkpoint yet.")
  return step


def transfer_params(fresh_params: nnx.State, path: str, step: Optional[int] = None, *,
                    allow_code_import: Union[bool, Collection[str]] = False
                    ) -> tuple[nnx.State, TransferReport]:
  """Copies the stored parameters of run ``path`` into ``fresh_params`` where they fit.

  Args:
    fresh_params: the new model's parameters (``nnx.state(model, nnx.Param)``).
    path: a workdir or checkpoint directory of a finished or running earlier run.
    step: the stored step; None: the latest.
    allow_code_import: which ``module:Class`` text encoders the source run's config may
      import (``wam.loading.load``).

  Returns:
    The parameters (same tree and shardings as ``fresh_params``) and the report.

  Raises:
    FileNotFoundError: ``path`` holds no checkpoint.
    ValueError: nothing at all could be copied (almost surely the wrong run).
  """
  if step is None:
    step = _latest_step(path)
  model, _ = loading.load(path, step, allow_code_import=allow_code_import)
  stored = _flat(nnx.state(model, nnx.Param))
  leaves, treedef = jax.tree_util.tree_flatten_with_path(fresh_params)
  copied, mismatch, missing, out = [], [], [], []
  for key_path, leaf in leaves:
    name = jax.tree_util.keystr(key_path)
    old = stored.get(name)
    if old is None:
      missing.append(name)
      out.append(leaf)
    elif tuple(old.shape) != tuple(leaf.shape):
      mismatch.append((name, tuple(leaf.shape), tuple(old.shape)))
      out.append(leaf)
    else:
      value = np.asarray(jax.device_get(old)).astype(leaf.dtype)
      sharding = getattr(leaf, "sharding", None)
      out.append(jax.device_put(value, sharding) if sharding is not None else value)
      copied.append(name)
  names = {jax.tree_util.keystr(p) for p, _ in leaves}
  report = TransferReport(source=path, source_step=step, copied=copied,
                          shape_mismatch=mismatch, missing=missing,
                          unused=sorted(set(stored) - names))
  if not copied:
    raise ValueError(f"init_from={path!r}: no parameter of that run matches this model by "
                     f"name and shape; is it a world action model run?\n{report.summary()}")
  return jax.tree_util.tree_unflatten(treedef, out), report
