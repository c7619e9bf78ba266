"""The Meta-World job's report: one summary JSON and a markdown table of success rates.

Per model and task it reads ``wam-gym-evaluate``'s ``summary.json`` (successes,
episodes, the 95% Wilson interval, GIFs) of every block of evaluation seeds and pools
them; the experts' own success while recording the demonstrations (with their action
noise) is the reference row. Over tasks it gives the mean of the per-task rates and the
pooled successes with their Wilson interval, and the same block by block.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Optional, Sequence

from dojo.closed_loop import success_interval
from experiments.metaworld import published
from experiments.lib.stages import write_json
from wam.files import atomic_write

SUMMARY_FILE = "summary.json"
TABLE_FILE = "results.md"
EVAL_SUMMARY = "summary.json"      # wam-gym-evaluate's, per task
RECORD_SUMMARY = "record.json"     # wam-gym-record's, per task
MODEL_NAMES = {"experts": "scripted expert (demos)", "wam": "WAM (policy mode)",
               "bc": "pixel BC baseline"}


def read_json(path: str) -> Optional[dict]:
  """The JSON object at ``path``, or None where there is none (or a broken one)."""
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def task_result(summary: Mapping[str, Any], out_dir: Optional[str] = None) -> dict[str, Any]:
  """The figures of one task from a record or evaluate summary."""
  n, k = int(summary["episodes"]), int(summary["successes"])
  lo, hi = summary.get("ci95") or success_interval(k, n)
  results = summary.get("results", [])
  gifs = [os.path.join(out_dir, r["gif"]) if out_dir else r["gif"]
          for r in results if r.get("gif")]
  lengths = [r["length"] for r in results if "length" in r]
  return {"episodes": n, "successes": k, "success_rate": k / n if n else 0.0,
          "ci95": [float(lo), float(hi)],
          "mean_length": sum(lengths) / len(lengths) if lengths else None, "gifs": gifs}


def pool(blocks: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
  """One task's result over blocks of seeds (each a :func:`task_result`): pooled counts,
  their Wilson interval, all GIFs, and ``blocks``: each block's successes and episodes."""
  n = sum(r["episodes"] for r in blocks.values())
  k = sum(r["successes"] for r in blocks.values())
  lengths = [(r["mean_length"], r["episodes"]) for r in blocks.values()
             if r["mean_length"] is not None]
  weight = sum(w for _, w in lengths)
  return {"episodes": n, "successes": k, "success_rate": k / n if n else 0.0,
          "ci95": [float(x) for x in success_interval(k, n)],
          "mean_length": sum(m * w for m, w in lengths) / weight if weight else None,
          "gifs": [g for r in blocks.values() for g in r["gifs"]],
          "blocks": {b: {"successes": r["successes"], "episodes": r["episodes"]}
                     for b, r in blocks.items()}}


def aggregate(per_task: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
  """Mean of the per-task rates and the pooled rate with its Wilson interval."""
  if not per_task:
    return {"mean_success_rate": None, "successes": 0, "episodes": 0, "ci95": [0.0, 1.0]}
  k = sum(r["successes"] for r in per_task.values())
  n = sum(r["episodes"] for r in per_task.values())
  return {"mean_success_rate": sum(r["success_rate"] for r in per_task.values()) / len(per_task),
          "successes": k, "episodes": n, "ci95": list(success_interval(k, n))}


def collect(model_dirs: Mapping[str, str], tasks: Sequence[str],
            summary_file: str = EVAL_SUMMARY, blocks: Optional[Sequence[str]] = None
            ) -> dict[str, Any]:
  """``{model: {"tasks": {task: result}, "overall": ...}}`` from
  ``<dir>/<task>/<block>/summary`` for every block (pooled, :func:`pool`), or from
  ``<dir>/<task>/summary`` where ``blocks`` is None.

  Raises:
    FileNotFoundError: a task's summary is missing (its evaluation did not finish).
  """
  out = {}
  for model, root in model_dirs.items():
    per_task = {}
    for task in tasks:
      results = {}
      for block in blocks or [""]:
        path = os.path.join(root, task, block, summary_file)
        summary = read_json(path)
        if summary is None:
          raise FileNotFoundError(f"No {summary_file} for {model} on {task}: {path}.")
        results[block] = task_result(summary, os.path.dirname(path))
      per_task[task] = pool(results) if blocks else results[""]
    out[model] = {"tasks": per_task, "overall": aggregate(per_task)}
    if blocks:
      out[model]["blocks"] = {b: aggregate({t: task_result(r["blocks"][b])
                                            for t, r in per_task.items()})
                              for b in blocks}
  return out


def cell(result: Mapping[str, Any]) -> str:
  """``"12/30 (40%, 25-58%)"``."""
  lo, hi = result["ci95"]
  return (f"{result['successes']}/{result['episodes']} ({100 * result['success_rate']:.0f}%, "
          f"{100 * lo:.0f}-{100 * hi:.0f}%)")


def table(models: Mapping[str, Mapping[str, Any]], tasks: Sequence[str]) -> str:
  """A markdown table: one row per task, one column per model, then the pooled row."""
  names = list(models)
  header = "| task | " + " | ".join(MODEL_NAMES.get(m, m) for m in names) + " |"
  lines = [header, "|---|" + "---|" * len(names)]
  for task in tasks:
    lines.append(f"| {task} | " + " | ".join(cell(models[m]["tasks"][task]) for m in names)
                 + " |")
  lines.append("| all (pooled) | " + " | ".join(_pooled_cell(models[m]["overall"])
                                                for m in names) + " |")
  lines.append("| mean of tasks | " + " | ".join(
      f"{100 * models[m]['overall']['mean_success_rate']:.0f}%" for m in names) + " |")
  blocks = sorted({b for m in names for b in models[m].get("blocks", {})})
  if len(blocks) > 1:   # each block of seeds on its own: how much one block moves
    for b in blocks:
      lines.append(f"| seeds {b.split('_')[-1]}+ (pooled) | " + " | ".join(
          _pooled_cell(models[m]["blocks"][b]) if b in models[m].get("blocks", {}) else "-"
          for m in names) + " |")
  return "\n".join(lines) + "\n"


def _pooled_cell(overall: Mapping[str, Any]) -> str:
  return cell({**overall, "success_rate": overall["successes"] / max(overall["episodes"], 1)})


def write(workdir: str, models: Mapping[str, Mapping[str, Any]], tasks: Sequence[str],
          extra: Mapping[str, Any]) -> tuple[str, str]:
  """Writes ``<workdir>/summary.json`` and ``<workdir>/results.md``; returns both paths."""
  summary = {"tasks": list(tasks), "models": dict(models), **extra}
  json_path = os.path.join(workdir, SUMMARY_FILE)
  write_json(json_path, summary)
  md_path = os.path.join(workdir, TABLE_FILE)
  recorded, trained = extra.get("demos_per_task"), extra.get("train_demos_per_task")
  title = "; ".join(p for p in [
      str(extra.get("size") or ""),
      f"{recorded} demos recorded per task" if recorded else "",
      f"{trained:g} per task trained on" if trained is not None else ""] if p)
  lines = [f"# Meta-World: success on held-out seeds ({title})", "",
           "Successes / episodes (rate, 95% Wilson interval). Experts: Meta-World's scripted "
           "policies while recording the demonstrations (with their action noise).", "",
           table(models, tasks)]
  baselines = published.table(tasks, trained)
  if baselines:
    lines += [baselines]
  train = extra.get("train") or {}
  if train:
    lines += ["| model | steps | steps/s | training s | extra training flags |",
              "|---|---|---|---|---|"]
    for name, t in train.items():
      rate = t.get("steps_per_second")
      flags = t.get("flags") or ""
      lines.append(f"| {name} | {t.get('step')} | {'-' if rate is None else f'{rate:.2f}'} | "
                   f"{t.get('seconds', '-')} | {f'`{flags}`' if flags else 'none'} |")
    lines.append("")
  text = "\n".join(lines)
  atomic_write(md_path, lambda f: f.write(text))
  return json_path, md_path
