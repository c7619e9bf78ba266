"""``report.md`` and ``report.json`` of the main job, from its stage results."""

from __future__ import annotations

import os
import shutil
from typing import Any, Mapping

from experiments.lib import great_parallel_acting as acting
from experiments.lib import stages as stages_lib

Results = Mapping[str, dict]

_METRICS = (("eval/loss", "held-out loss"), ("eval/loss/video", "video term"),
            ("eval/loss/action", "action term"), ("eval/psnr_h1", "PSNR h1 (dB)"),
            ("eval/psnr_copy_last_h1", "copy-last PSNR h1"), ("eval/action_mse", "action MSE"))


def _fmt(v: Any) -> str:
  if v is None:
    return "—"
  if isinstance(v, float):
    return f"{v:.4g}"
  return str(v)


def _models_table(results: Results) -> list[str]:
  rows = []
  for stage in ("pretrain", "midtrain", "posttrain", "scratch"):
    if stage in results:
      rows.append((stage, results[stage]))
  for name, r in (results.get("oneshot") or {}).items():
    if isinstance(r, dict) and "metrics" in r:
      rows.append((f"oneshot/{name}", r))
  if not rows:
    return []
  lines = ["## Models (held-out windows of each stage's own data)", "",
           "| stage | starts from | steps | " + " | ".join(n for _, n in _METRICS) + " |",
           "|---|---|---|" + "---|" * len(_METRICS)]
  for stage, r in rows:
    start = os.path.basename(r.get("init_from") or "") or "scratch"
    cells = [_fmt(r["metrics"].get(k)) for k, _ in _METRICS]
    lines.append(f"| {stage} | {start} | {r['step']} | " + " | ".join(cells) + " |")
  if "posttrain" in results and "scratch" in results:
    a = results["posttrain"]["metrics"].get("eval/loss")
    b = results["scratch"]["metrics"].get("eval/loss")
    if a is not None and b is not None:
      lines += ["", f"Robot validation loss with human pre-training {a:.4f}, without "
                    f"{b:.4f} ({100 * (b - a) / b:+.1f}% lower with pre-training)."]
  return lines + [""]


def _latent_section(results: Results) -> list[str]:
  r = results.get("latent")
  if not r:
    return []
  return ["## Latent actions", "",
          f"Linear probe from the VAE's latent action to the true hand action on held-out "
          f"pairs: R^2 {r['probe_r2']:.3f} (untrained encoder {r['probe_r2_untrained']:.3f}); "
          f"to the wrist motion alone {r.get('probe_r2_wrist', float('nan')):.3f} "
          f"(untrained {r.get('probe_r2_wrist_untrained', float('nan')):.3f}); "
          f"{r['probe_pairs']} test pairs. Next-frame MSE {r['recon']:.4f} against "
          f"{r['copy_mse']:.4f} for copying the frame.", ""]


def _scaling_section(results: Results) -> list[str]:
  r = results.get("scaling")
  if not r:
    return []
  fit = r["log_linear"]
  held = r["leave_largest_out"]
  metric = r.get("metric", "eval/loss")
  steps = r.get("steps") or [None] * len(r["runs"])
  lines = [f"## Scaling: held-out `{metric}` on human video against hours of pre-training "
           "video (steps grow with the hours)", "",
           f"| run | hours | steps | held-out {metric} |", "|---|---|---|---|"]
  lines += [f"| {n} | {h:.4g} | {s if s is not None else '-'} | {l:.4f} |"
            for n, h, s, l in zip(r["runs"], r["hours"], steps, r["loss"])]
  lines += ["", f"Log-linear fit L = {fit['a']:.4f} + ({fit['b']:.4f}) log D: "
                f"R^2 = {fit['r2']:.3f}"
                + (", slope 90% bootstrap interval [{:.4f}, {:.4f}].".format(
                    *fit["b_interval90"]) if fit.get("b_interval90") else ".")]
  if r.get("power_law"):
    p = r["power_law"]
    lines.append(f"Power law L = {p['E']:.4f} + {p['A']:.4f} D^-{p['alpha']:.3f}: "
                 f"R^2 = {p['r2']:.3f}.")
  lines.append(f"Leave the largest out, log-linear: predicted {held['predicted'][0]:.4f}, "
               f"measured {held['measured'][0]:.4f} ({100 * held['relative_error'][0]:+.1f}%).")
  power = r.get("leave_largest_out_power_law")
  if power:
    lines.append(f"Leave the largest out, power law: predicted {power['predicted'][0]:.4f} "
                 f"({100 * power['relative_error'][0]:+.1f}%).")
  lines += ["",
            "![scaling](scaling/scaling.png)", ""]
  return lines


def _data_section(results: Results) -> list[str]:
  lines = ["## Data", ""]
  if "human_data" in results:
    h = results["human_data"]
    lines.append(f"- Human egocentric video (synthetic): {h['train_episodes']} training "
                 f"episodes, {h['train_hours']:.3f} h ({h['train_frames']} frames).")
  for name, d in (results.get("robot_data") or {}).get("datasets", {}).items():
    role = "demonstrations, imitated" if d["imitate"] else "teaches dynamics only"
    lines.append(f"- Robot `{name}`: {d['train_episodes']} training episodes of "
                 f"`{d['task']}` by `{d['policy']}` (noise {d['noise']:g}; {role}).")
  return lines + [""]


def write_report(config, workdir: str, results: Results) -> dict:
  """Writes ``report.md`` and ``report.json`` in ``workdir``; returns the JSON."""
  skipped = [s for s in config.stages if s != "report" and s not in results]
  total = sum(results[s].get("seconds", 0) for s in config.stages if s in results)
  lines = [f"# Main job report (`{config.get('arg', '')}`)", "",
           "Stages: " + ", ".join(f"{s} ({results[s].get('seconds', 0):.0f} s)"
                                  for s in config.stages if s in results)
           + f"; {total / 60:.1f} minutes in all (a stage re-run from finished parts "
           "counts only its own time).", ""]
  if skipped:
    lines += [f"Not run: {', '.join(skipped)}.", ""]
  lines += _data_section(results)
  lines += _latent_section(results)
  lines += _models_table(results)
  for stage in ("pretrain", "posttrain"):
    if stage in results:
      plots = os.path.join(workdir, stage, "plots", "losses.png")
      if os.path.exists(plots):
        lines += [f"![{stage} losses]({stage}/plots/losses.png)", ""]
  lines += acting.markdown(config, results)
  lines += _scaling_section(results)
  report = {"config_arg": config.get("arg", ""), **acting.summary(config, results),
            "stages": dict(results), "not_run": skipped}
  with open(os.path.join(workdir, "report.md"), "w") as f:
    f.write("\n".join(lines))
  stages_lib.write_json(os.path.join(workdir, "report.json"), report)
  return report


def report_stage(config, stage_dir: str, results: Results) -> dict:
  """Stage: the report (always re-written from the results so far)."""
  workdir = os.path.dirname(stage_dir)
  write_report(config, workdir, results)
  shutil.rmtree(stage_dir, ignore_errors=True)  # nothing of its own: re-run every time
  os.makedirs(stage_dir, exist_ok=True)
  return {"report": os.path.join(workdir, "report.md")}
