"""Transfer experiments' guard: no held-out instruction combination in the robot data.

A transfer result ("human video carries what robot data lacks") means nothing if the
combinations the robot is tested on were also in its training data. The main job checks
every robot dataset it trains on against the ``unseen`` split of the tasks before the
first training step (``experiments/lib/great_parallel_recipe.py``).
"""

from __future__ import annotations

from typing import Iterable, Mapping

from dojo import registry
from wam.data.reader import EpisodeDataset


class LeakError(ValueError):
  """Robot training data holds an instruction of the held-out (unseen) combinations."""


def unseen_instructions(tasks: Iterable[str]) -> dict[str, str]:
  """``{instruction text: task}`` of every task's ``unseen`` split."""
  out = {}
  for task in tasks:
    space = registry.entry(task).resolve().instruction_space
    for i in space.split_ids("unseen"):
      out[space.text(int(i))] = task
  return out


def check_no_leak(datasets: Mapping[str, str], held_out: Mapping[str, str],
                  splits: Iterable[str] = ("train", "val")) -> int:
  """Raises :class:`LeakError` if any episode of ``datasets`` has a held-out instruction.

  Args:
    datasets: name -> dataset directory (the robot data a model trains on).
    held_out: instruction text -> the task it is held out of (:func:`unseen_instructions`).
    splits: the splits to read (a missing split is skipped).

  Returns:
    The number of episodes checked.
  """
  checked, leaks = 0, []
  for name, path in datasets.items():
    for split in splits:
      try:
        data = EpisodeDataset(path, split)
      except KeyError:
        continue  # the dataset has no such split
      for e, text in enumerate(data.instructions):
        checked += 1
        if text in held_out:
          leaks.append(f"{name} ({path}) {split} episode {e}: {text!r} (held out of "
                       f"{held_out[text]})")
  if leaks:
    shown = "; ".join(leaks[:5]) + (f"; and {len(leaks) - 5} more" if len(leaks) > 5 else "")
    raise LeakError(f"{len(leaks)} robot training episode(s) hold an instruction of the "
                    f"unseen split, so transfer to it would not be measured: {shown}. "
                    "Build the robot data with instructions='seen'.")
  return checked
