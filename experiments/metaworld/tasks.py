"""The Meta-World tasks of the benchmark: scripted policy and instruction of each.

Imported on both sides (the project's venv and Meta-World's), so it imports nothing.
The tasks are Meta-World's MT10 (``metaworld.env_dict.MT10_V3``); each has a scripted
policy in ``metaworld.policies`` (``ENV_POLICY_MAP``), named here so that the project's
venv, which cannot install Meta-World, can still name it on a command line.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Task:
  """One Meta-World task: its scripted policy's class and its instruction."""
  policy: str          # a class of metaworld.policies
  instruction: str     # one instruction string per task (utf-8 bytes <= 48)


TASKS: dict[str, Task] = {
    "reach-v3": Task("SawyerReachV3Policy", "reach the goal"),
    "push-v3": Task("SawyerPushV3Policy", "push the puck to the goal"),
    "pick-place-v3": Task("SawyerPickPlaceV3Policy", "pick up the puck and place it at the goal"),
    "door-open-v3": Task("SawyerDoorOpenV3Policy", "open the door"),
    "drawer-open-v3": Task("SawyerDrawerOpenV3Policy", "open the drawer"),
    "drawer-close-v3": Task("SawyerDrawerCloseV3Policy", "close the drawer"),
    "button-press-topdown-v3": Task("SawyerButtonPressTopdownV3Policy",
                                    "press the button from the top"),
    "peg-insert-side-v3": Task("SawyerPegInsertionSideV3Policy",
                               "insert the peg into the hole from the side"),
    "window-open-v3": Task("SawyerWindowOpenV3Policy", "slide the window open"),
    "window-close-v3": Task("SawyerWindowCloseV3Policy", "slide the window closed"),
}
# The default five: a reach, two object tasks and two articulated ones.
DEFAULT_TASKS = ("reach-v3", "push-v3", "door-open-v3", "drawer-open-v3",
                 "button-press-topdown-v3")
# Gymnasium ids of the seeded tasks that experiments.metaworld.sim registers.
NAMESPACE = "WamMetaWorld"


def env_id(task: str) -> str:
  """``"reach-v3"`` -> ``"WamMetaWorld/reach-v3"``."""
  check(task)
  return f"{NAMESPACE}/{task}"


def check(*names: str) -> None:
  """Raises ValueError naming the known tasks if any of ``names`` is not one."""
  unknown = [n for n in names if n not in TASKS]
  if unknown:
    raise ValueError(f"Unknown Meta-World task(s) {unknown}; known: {sorted(TASKS)}.")
