"""Published Meta-World success rates for the job's tasks, to print beside its own.

One source gives per-task numbers for all five default tasks from scripted-expert
demonstrations: 3D Diffusion Policy (Ze et al., RSS 2024, arXiv:2403.03954), Table
XVIII ("Main results on 72 simulation tasks"), 10 demonstrations per task, one camera
at 84x84, 3 training seeds; each seed evaluates 20 episodes every 200 epochs and scores
the mean of its 5 best evaluations (Sec. IV-A), so these are best-checkpoint figures,
not a final checkpoint's. Mean ± std over the seeds, in percent, as printed.
"""

from __future__ import annotations

from typing import Optional

SOURCE = ("Ze et al., 3D Diffusion Policy, RSS 2024 (arXiv:2403.03954), Table XVIII: "
          "10 demos per task, 84x84 single camera, mean of the 5 best of the evaluations "
          "every 200 epochs (20 episodes each), 3 seeds")
DEMOS_PER_TASK = 10
# task -> method -> "mean±std" (%), Table XVIII.
RATES = {
    "reach-v3": {"Diffusion Policy (image)": "18±2", "DP3 (point cloud)": "24±1"},
    "push-v3": {"Diffusion Policy (image)": "30±3", "DP3 (point cloud)": "51±3"},
    "door-open-v3": {"Diffusion Policy (image)": "98±3", "DP3 (point cloud)": "99±1"},
    "drawer-open-v3": {"Diffusion Policy (image)": "93±3", "DP3 (point cloud)": "100±0"},
    "button-press-topdown-v3": {"Diffusion Policy (image)": "98±1",
                                "DP3 (point cloud)": "100±0"},
}
METHODS = ("Diffusion Policy (image)", "DP3 (point cloud)")


def table(tasks, trained_per_task: Optional[float] = None) -> str:
  """A markdown table of the published rates of ``tasks`` ("-" where none), with its
  source and how many demonstrations per task this run trained on
  (``trained_per_task``) beside theirs; empty when none of ``tasks`` has one."""
  rows = [t for t in tasks if t in RATES]
  if not rows:
    return ""
  same = ("" if trained_per_task is None else
          ", the same count as this run" if trained_per_task == DEMOS_PER_TASK else
          f"; this run trained on {trained_per_task:g} per task")
  lines = [f"Published ({DEMOS_PER_TASK} demos per task{same}; Meta-World v2 tasks), {SOURCE}:",
           "", "| task | " + " | ".join(METHODS) + " |", "|---|" + "---|" * len(METHODS)]
  lines += [f"| {t} | " + " | ".join(f"{RATES[t].get(m, '-')}%" for m in METHODS) + " |"
            for t in rows]
  return "\n".join(lines) + "\n"
