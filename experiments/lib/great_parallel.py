"""The library of ``experiments.great_parallel``, the main job: its stage table and
``run_main_job`` (no absl flags: tests import it).

Human video -> world action model -> robot, one resumable stage each
(``experiments.lib.stages``):

  human_data   synthetic egocentric human video (egoscale.synthetic), hours from config
  robot_data   Dojo data of every robot task: scripted demonstrations, DART and play
  latent       (optional) a latent-action VAE on the human video, its linear probe, and
               the video relabelled with latent actions
  pretrain     the world action model on human video (hand or latent actions)
  midtrain     (optional) aligned human + robot data of the same task, from ``pretrain``
  posttrain    one multi-task robot model, from ``midtrain`` (or ``pretrain``)
  scratch      the same post-training without human pre-training: the baseline
  oneshot      (optional) a task never seen in robot data, from one robot demonstration
               plus human demonstrations of it, with and without human pre-training
  acting       closed loop in MJX physics on every task: the ladder from the scripted
               expert to planning in the dream, the dream against physics, policy
               evaluation and PPO in the dream
  scaling      pre-training at several hours of human video as a sweep of separate
               processes (experiments.lib.sweep), fitted with egoscale.scaling
  report       report.md (tables, plots) and report.json

The stages are in ``great_parallel_recipe.py`` (data, training, scaling),
``great_parallel_acting.py`` and ``great_parallel_report.py``.
"""

from __future__ import annotations

from typing import Optional, Sequence

from ml_collections import config_dict

from experiments.lib import great_parallel_acting as acting
from experiments.lib import great_parallel_recipe as recipe
from experiments.lib import great_parallel_report as report
from experiments.lib.stages import Stage, run_stages

STAGES = {
    "human_data": Stage("human_data", recipe.human_data, "synthetic egocentric human video"),
    "robot_data": Stage("robot_data", recipe.robot_data,
                        "Dojo demonstrations, DART and play of every robot task"),
    "latent": Stage("latent", recipe.latent, "latent-action VAE, probe and relabelling",
                    needs=("human_data",)),
    "pretrain": Stage("pretrain", recipe.pretrain, "pre-train on human video",
                      needs=("human_data",)),
    "midtrain": Stage("midtrain", recipe.midtrain, "mid-train on aligned human + robot data",
                      needs=("pretrain",)),
    "posttrain": Stage("posttrain", recipe.posttrain, "post-train on the robot tasks",
                       needs=("robot_data", "pretrain")),
    "scratch": Stage("scratch", recipe.scratch, "the same post-training from scratch",
                     needs=("robot_data",)),
    "oneshot": Stage("oneshot", recipe.oneshot, "one-shot adaptation to an unseen task",
                     needs=("posttrain", "scratch")),
    "acting": Stage("acting", acting.acting,
                    "closed loop in MJX on every task: the ladder of controllers",
                    needs=("robot_data", "posttrain")),
    "scaling": Stage("scaling", recipe.scaling, "pre-training sweep over hours, and fits",
                     needs=("human_data",)),
    "report": Stage("report", report.report_stage, "report.md and report.json"),
}


def stages_of(config: config_dict.ConfigDict) -> list[Stage]:
  """The stages ``config.stages`` names, in order; an unknown name is an error."""
  unknown = [s for s in config.stages if s not in STAGES]
  if unknown:
    raise KeyError(f"Unknown stage(s) {unknown} in config.stages; known: {list(STAGES)}.")
  return [STAGES[s] for s in config.stages]


def run_main_job(config: config_dict.ConfigDict, workdir: str,
                 only: Optional[Sequence[str]] = None) -> dict:
  """Runs (or resumes) the job; returns every stage's result."""
  results = run_stages(stages_of(config), config, workdir, only=only)
  if "report" not in results and "report" in config.stages:
    report.write_report(config, workdir, results)
  return results
