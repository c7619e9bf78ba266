r"""Rewrites the tables of docs/BENCHMARKS.md from the benchmarks' JSON files.

  python -m benchmarks.tables [--doc=docs/BENCHMARKS.md] [--check]

A table lives between two marker comments; the first names its kind and JSON file(s)
(paths relative to the repository root):

  <!-- table:dojo benchmarks/dojo_cpu.json -->
  ...generated, replaced on every run...
  <!-- /table -->

Everything outside the markers is hand-written prose and is left as it is. Each table
ends with where its numbers come from: the commit the JSON was measured at (its
``meta``, ``benchmarks.results``), the command and the date, and a warning when the
benchmark's source has changed since that commit. Figures are printed as measured: a
figure compared with a target gets as many digits as it takes not to round across the
target (an MFU of 0.397 stays 0.397 against a 0.4 target). ``--check`` writes nothing
and exits 1 when the document is not what the JSON files give.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from typing import Any, Callable, Optional, Sequence

from benchmarks import results as results_lib

MARKER = re.compile(r"(<!-- table:(?P<kind>[\w-]+)(?P<files>(?: +[^ >]+)*) *-->\n)"
                    r"(?P<body>.*?)(?P<end><!-- /table -->)", re.DOTALL)
Loaded = tuple[str, Any]   # (path as written in the marker, parsed JSON or None)


# ----------------------------------------------------------------------------- numbers


def num(x: Any, sig: int = 3) -> str:
  """``x`` to ``sig`` significant digits (whole numbers from 1,000 up, with commas)."""
  if x is None:
    return "-"
  if isinstance(x, bool) or not isinstance(x, (int, float)):
    return str(x)
  if isinstance(x, float) and not math.isfinite(x):
    return str(x)
  if abs(x) >= 10 ** sig or (isinstance(x, int) and abs(x) >= 1000):
    return f"{x:,.0f}"
  text = f"{x:#.{sig}g}"
  return text[:-1] if text.endswith(".") else text


def dec(x: Any, places: int = 2) -> str:
  """``x`` with ``places`` decimals (``-`` for None)."""
  return "-" if x is None else f"{x:.{places}f}"


def vs_target(x: float | None, target: float, sig: int = 3) -> str:
  """``x`` with at least ``sig`` significant digits and as many more as it takes for the
  printed figure to lie on the same side of ``target`` as ``x`` (never rounded onto it)."""
  if x is None:
    return "-"
  for digits in range(sig, 12):
    text = num(x, digits)
    shown = float(text.replace(",", ""))
    if (shown >= target) == (x >= target):
      return text
  return repr(x)


def met(x: float | None, target: float) -> str:
  """``x`` against a lower bound ``target``: the figure and whether it meets it."""
  if x is None:
    return "-"
  return f"**{vs_target(x, target)}** ({'meets' if x >= target else 'below'} {target:g})"


def ms(seconds: float | None) -> str:
  return "-" if seconds is None else f"{num(seconds * 1e3)} ms"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
  """A markdown table."""
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
  return "\n".join(lines)


# ----------------------------------------------------------------------------- provenance


def _git(*args: str) -> str | None:
  try:
    proc = subprocess.run(["git", *args], cwd=results_lib.ROOT, capture_output=True,
                          text=True, timeout=30, check=False)
  except (OSError, subprocess.SubprocessError):
    return None
  return proc.stdout.rstrip() if proc.returncode == 0 else None


def source_changed(meta: dict) -> bool | None:
  """Whether the benchmark's source file differs now from the one that measured ``meta``:
  by its recorded SHA-256 (exact, dirty trees included), else by a diff against the
  recorded commit; None when unknown."""
  module = meta.get("module")
  if not module:
    return None
  recorded = meta.get("source_sha256")
  if recorded:
    return results_lib.source_sha256(module) != recorded
  commit = meta.get("commit")
  if not commit or _git("cat-file", "-e", f"{commit}^{{commit}}") is None:
    return None
  changed = _git("diff", "--name-only", commit, "--", module.replace(".", "/") + ".py")
  return None if changed is None else bool(changed)


def _command(meta: dict) -> str:
  argv = meta.get("argv") or []
  module = meta.get("module")
  head = f"python -m {module}" if module else (argv[0] if argv else "?")
  return " ".join([head, *argv[1:]])


def provenance_line(path: str, data: Any) -> str:
  """Where the numbers of ``path`` come from, one markdown line."""
  meta = data.get("meta") if isinstance(data, dict) else None
  if not meta:
    return (f"_`{path}`: provenance not recorded (written before results carried "
            "`meta`); regenerate it with `make benchmarks`._")
  commit = meta.get("commit") or "unknown"
  dirty = " plus uncommitted changes" if meta.get("dirty") else ""
  machine = meta.get("machine", {})
  devices = machine.get("jax_devices") or []
  where = (f"{machine.get('cpu_count', '?')} CPUs, jax {machine.get('jax_backend', '?')}"
           f" ({len(devices)} device{'s' if len(devices) != 1 else ''})")
  load = machine.get("load_average")
  if load:
    where += f", load average {load[0]:.1f} at the end"
  line = (f"_`{path}`: measured at commit `{commit[:10]}`{dirty} on "
          f"{str(meta.get('date', '?'))[:10]} by `{_command(meta)}`; {where}._")
  if source_changed(meta):
    line += (f" **`{meta['module'].replace('.', '/')}.py` has changed since that commit: "
             "re-run it.**")
  return line


# ----------------------------------------------------------------------------- tables


def _dojo(files: list[Loaded]) -> str:
  data = files[0][1]
  rows = []
  for r in data["runs"]:
    c = r["compile_s"]
    rows.append([r["impl"], r["batch"], r["substeps"], num(r["env_physics_steps_per_s"]),
                 num(r["raw_mjx_steps_per_s"]), met(r["env_step_ratio"], 0.9),
                 f"{num(r['c_mujoco_steps_per_s'])} ({r['c_threads']} threads)",
                 num(r["vs_c_ratio"]), num(r["render_fps_64"]),
                 f"{num(c['env'])} / {num(c['raw'])} / {num(c['render'])}"])
  out = table(["impl", "batch", "substeps", "Dojo env physics steps/s",
               "raw `jit(vmap(mjx.step))` steps/s", "`env_step_ratio` (target 0.9)",
               "C MuJoCo steps/s", "`vs_c_ratio`", "`render_fps_64`",
               "compile env / raw / render (s)"], rows)
  comparisons = data.get("comparisons")
  if comparisons:
    out += "\n\n" + table(
        ["implementations, same batch", "batch", "env steps/s ratio", "raw steps/s ratio"],
        [[f"`{name}`", c["batch"], f"{num(c['env_steps_ratio'])}x",
          f"{num(c['raw_steps_ratio'])}x"] for name, c in comparisons.items()
         if c["env_steps_ratio"] >= 1.0])
  else:
    out += ("\n\nNo two implementations were measured at the same batch: their rates "
            "are not compared here.")
  return out


def _experts(files: list[Loaded]) -> str:
  rows_in = results_lib.rows_of(files[0][1])
  noises = sorted({r["noise"] for r in rows_in})
  tasks: dict[str, dict] = {}
  for r in rows_in:
    v = tasks.setdefault(r["task"], {"steps": r.get("episode_steps"),
                                     "episodes": r["episodes"], "impl": r["impl"]})
    v[r["noise"]] = r["success_rate"]
    if "batch_fits" in r:   # the buffer audit: the worst over the noise levels
      audit = v.setdefault("audit", dict(r))
      for key in ("contacts_per_world_max", "rows_per_world_max"):
        audit[key] = max(audit[key], r[key])
      audit["batch_fits"] = min(audit["batch_fits"], r["batch_fits"])
  with_audit = any("audit" in v for v in tasks.values())

  def audit_cells(a: Optional[dict]) -> list[str]:
    if a is None:
      return ["-", "-"]
    batch = f"batch <= {a['batch_fits']}" if a["contacts_per_world_max"] else "no contacts"
    rows_ok = "fits" if a["rows_per_world_max"] <= a["njmax"] else "**too small**"
    return [f"{a['contacts_per_world_max']} / {a['naconmax']} ({batch})",
            f"{a['rows_per_world_max']} / {a['njmax']} ({rows_ok})"]

  rows = [[t, v["steps"] if v["steps"] is not None else "-", v["episodes"], v["impl"],
           *[vs_target(v.get(n), 0.9) for n in noises],
           *(audit_cells(v.get("audit")) if with_audit else [])] for t, v in tasks.items()]
  return table(["task", "episode steps", "episodes", "impl",
                *[f"noise {n:g}" for n in noises],
                *(["contacts per world (max) / naconmax", "rows per world (max) / njmax"]
                  if with_audit else [])], rows)


DATA_KEYS = (
    ("loader_windows_per_s", "windows/s the pipeline delivers"),
    ("loader_windows_per_s_workers2", "the same with 2 grain worker processes"),
    ("train_windows_per_s", "windows/s the training step consumes on a fixed batch"),
    ("loader_over_train_ratio", "target 2"),
    ("train_with_loader_over_train_alone",
     "training fed straight from the loader vs on a fixed batch"),
    ("train_with_loader_workers2_over_train_alone", "the same, fed by 2 worker processes"),
    ("peak_rss_mb", "peak resident memory (MB) of the benchmark process"),
)


def _data(files: list[Loaded]) -> str:
  data = files[0][1]
  rows = []
  for key, meaning in DATA_KEYS:
    value = data.get(key)
    shown = met(value, 2.0) if key == "loader_over_train_ratio" else num(value)
    rows.append([f"`{key}`", shown, meaning])
  ds = data.get("dataset", {})
  rows.append(["dataset", f"{num(ds.get('episodes'))} episodes, {num(ds.get('steps'))} steps",
               os.path.basename(os.path.dirname(ds.get("path", "?/?")))])
  rows.append(["consumer", data.get("train_step", "-"), ""])
  return table(["key", "value", "meaning"], rows)


def _model_line(data: dict) -> str:
  m, d = data["model"], data["data"]
  return (f"{data['variant']} (width {m['width']}, depth {m['depth']}, {m['num_heads']} "
          f"heads of {m['head_dim']}, {m['dtype']}); batch {data['batch']} x "
          f"{d['num_frames']} frames x {len(d['cameras'])} camera(s) at "
          f"{d['image_size'][0]}x{d['image_size'][1]}, {data['tokens_per_example']} tokens "
          "per window")


def _train(files: list[Loaded]) -> str:
  data = files[0][1]
  size = "x".join(str(s) for s in data["data"]["image_size"])
  rows = [
      ["config", f"`{data['config_source']}`"],
      ["model and batch", _model_line(data)],
      ["parameters", num(data["params"])],
      ["FLOPs per step (XLA-counted) / 6·N·D estimate",
       f"{num(data['flops_per_step'] / 1e9)} / "
       f"{num(data['flops_6nd_per_step_estimate'] / 1e9)} GFLOP"],
      ["step time", f"{ms(data['step_seconds'])} ({num(data['steps_per_second'])} steps/s, "
                    f"{num(data['examples_per_second'])} windows/s)"],
      ["measured f32 matmul peak", f"{num(data['peak_flops'] / 1e9)} GFLOP/s"],
      ["`mfu` (counted FLOPs / step time / peak; target 0.4)", met(data["mfu"], 0.4)],
      ["`mfu_6nd` (estimate)", num(data["mfu_6nd"])],
  ]
  if data.get("dream_fps") is not None:
    h = data["dream_horizon"]
    rows += [
        [f"`dream_fps` (world-model mode, 1 flow step, horizon {h}, decoded {size} frames)",
         f"**{num(data['dream_fps'])} frames/s**"],
        ["`dream_fps_4_steps`", f"{num(data['dream_fps_4_steps'])} frames/s"],
        ["`dream_fps_no_cache` (full recomputation per block)",
         f"{num(data['dream_fps_no_cache'])} frames/s (cache speed-up "
         f"{num(data['cache_speedup'])}x)"],
        ["`dream_fps_latents_only` (1 step, not decoded)",
         f"{num(data['dream_fps_latents_only'])} frames/s"],
    ]
  for name, part in (data.get("breakdown") or {}).items():
    rows.append([f"breakdown: {name} (forward + backward, alone)",
                 f"{ms(part['seconds'])}, mfu {num(part['mfu'])}, "
                 f"{num(100 * part['share_of_step'])}% of the step"])
  return table(["measure", "value"], rows)


def _train_mfu(files: list[Loaded]) -> str:
  rows = []
  for path, data in files:
    m = data["model"]
    rows.append([f"`{os.path.basename(path)}`", m["width"], f"{m['depth']} x {m['num_heads']}",
                 num(data["params"]), num(data["flops_per_step"] / 1e9),
                 ms(data["step_seconds"]), num(data["peak_flops"] / 1e9),
                 met(data["mfu"], 0.4)])
  return table(["JSON", "width", "depth x heads", "parameters", "GFLOP per step", "step",
                "peak GFLOP/s", "`mfu` (target 0.4)"], rows)


def _wam_run(files: list[Loaded]) -> str:
  data = files[0][1]
  c, final = data.get("config", {}), data.get("final", {})
  if data.get("wall_seconds") is not None:
    wall = data["wall_seconds"]
    took = (f"{int(wall // 60)} min {int(wall % 60)} s wall, data collection included"
            + (" (resumed from earlier checkpoints)" if data.get("resumed") else ""))
  else:
    took = ("not timed: a finished workdir was reused, trained at a commit not recorded "
            "here (the commit below is the summary's)")
  run = f"`{data['config_arg']}`" if not data.get("reused") else f"`{data['workdir']}`"
  out = (f"{run}: {data['steps']} steps of batch {c.get('batch_size', '?')}"
         f" ({c.get('variant', '?')} model, {', '.join(c.get('cameras') or [])} at "
         f"{'x'.join(str(s) for s in c.get('image_size') or [])}); {took}; last "
         f"{num(final.get('steps_per_second'))} steps/s. Datasets: "
         f"{', '.join(f'{k} `{v}`' for k, v in data.get('datasets', {}).items()) or '-'}.\n\n")
  rows = []
  for e in data["evals"]:
    h = lambda key: " / ".join(dec(e.get(f"{key}_h{i}")) for i in (1, 2, 3))
    rows.append([e["step"], h("psnr"), h("psnr_copy_last"),
                 f"{dec(e.get('ssim_h1'), 3)} ({dec(e.get('ssim_copy_last_h1'), 3)})",
                 f"{dec(e.get('joint_mae'), 3)} ({dec(e.get('joint_mae_copy_last'), 3)})",
                 dec(e.get("action_mse"), 3)])
  return out + table(["step", "PSNR h1 / h2 / h3 (dB)", "copy last frame h1 / h2 / h3",
                      "SSIM h1 (copy)", "joint MAE (nothing moves)",
                      "action MSE (policy mode)"], rows)


def _dreams(files: list[Loaded]) -> str:
  data = files[0][1]
  rows = []
  for split in ("val", "train"):
    r = data[split]
    name = "val (held out)" if split == "val" else split
    if r.get("split_found") is False:
      name += " (no such split: training windows)"
    rows.append([name, r["windows"], f"{dec(r['latent_mse'], 3)} ({dec(r['latent_mse_copy'], 3)})",
                 f"{dec(r['psnr_model'])} / {dec(r['psnr_copy'])} / {dec(r['psnr_oracle'])}",
                 f"{dec(r['pooled_psnr_model'])} / {dec(r['pooled_psnr_copy'])} / "
                 f"{dec(r['pooled_psnr_oracle'])}"])
  out = (f"Model: `{data['workdir']}`.\n\n"
         + table(["split", "windows", "latent MSE model (copy)",
                  "PSNR h1 model / copy / oracle (dB)",
                  "pooled PSNR model / copy / oracle (dB)"], rows))
  rows = []
  for source in ("play", "random"):
    t = data.get(f"tracking_{source}")
    if not t:
      continue
    joined = lambda xs: " / ".join(dec(x, 3) for x in xs)
    rows.append([source, t["episodes"], joined(t["joint_error_by_chunk"]),
                 joined(t["joint_error_if_still_by_chunk"]), dec(t["tracking_ratio"]),
                 f"**{dec(t['motion_gain'])}**", dec(t["motion_correlation"])])
  if rows:
    out += "\n\n" + table(["actions", "episodes", "joint error after each chunk (rad)",
                           "\"nothing moves\"", "tracking ratio", "motion gain",
                           "correlation"], rows)
  return out


def _plan(files: list[Loaded]) -> str:
  data = files[0][1]
  k, cem = data["chunk"], data["cem"]
  if "image_size" in data:
    frames = (f"both rendering {', '.join(data['cameras'])} at "
              f"{'x'.join(str(s) for s in data['image_size'])}, dream `{data['dream_render']}`")
  else:
    frames = ("physics rendering 64x64, the dream its model's own size: not like for like, "
              "camera sizes not recorded")
  workdir = (data.get("meta") or {}).get("flags", {}).get("workdir")
  rows = [
      ["model", f"{data['model']}{f' (`{workdir}`)' if workdir else ''}, "
                f"{num(data['params'])} parameters, chunks of {k} control steps"],
      ["policy mode, decisions/s (`policy_hz`), one env",
       f"{num(data['policy_hz'])} ({num(data['policy_steps_hz'])} control steps/s)"],
      [f"CEM in the neural simulator, decisions/s (`cem_hz`; horizon {cem['horizon']} "
       f"chunks, {cem['num_samples']} samples, {cem['num_elites']} elites, "
       f"{cem['iterations']} iterations), fast path (`render=\"none\"`; target 10)",
       f"{met(data['cem_hz'], 10.0)} ({num(data['cem_steps_hz'])} control steps/s)"],
      ["the same with every dreamed frame decoded (`cem_hz_rendered`)",
       f"{num(data['cem_hz_rendered'])} (fast over rendered "
       f"{num(data['cem_fast_over_rendered'])}x)"],
      [f"`dream_over_physics_ratio`: imagined control steps/s over MJX's, batch "
       f"{data['batch']}, {frames}",
       f"{num(data['dream_over_physics_ratio'])} ({num(data['dream_steps_per_second'])} vs "
       f"{num(data['physics_steps_per_second'])} steps/s)"],
  ]
  return table(["measure", "value"], rows)


def _serve(files: list[Loaded]) -> str:
  data = files[0][1]
  inp = data.get("inprocess", {})
  rows = [["in-process `Policy.act`", num(inp.get("median_ms")), num(inp.get("p99_ms")), "-"]]
  for n, s in data.get("served", {}).items():
    who = "1 client" if str(n) == "1" else f"{n} clients at once"
    rows.append([f"served over a loopback WebSocket, {who}", num(s.get("median_ms")),
                 num(s.get("p99_ms")), num(s.get("actions_per_s"))])
  out = f"Model: {data.get('model', '?')}.\n\n" + table(
      ["setting", "median ms", "p99 ms", "actions/s"], rows)
  ratio = data.get("serve_over_inprocess_latency")
  if ratio is not None:
    out += f"\n\n`serve_over_inprocess_latency` = **{num(ratio)}**."
  batching = data.get("batching")
  if batching and batching.get("batched") and batching.get("unbatched"):
    rows = []
    for name, key in (("`max_batch=1` (one act at a time)", "unbatched"),
                      (f"`max_batch={batching.get('max_batch')}`", "batched")):
      r = batching[key]
      rows.append([name, num(r.get("median_ms")), num(r.get("p90_ms")), num(r.get("p99_ms")),
                   num(r.get("chunks_per_s")), num(r.get("server_batch_size", {}).get("mean"))])
    out += (f"\n\nSessions batched through the model, {batching.get('clients')} clients at "
            "once, measured side by side:\n\n" + table(
                ["setting", "median ms", "p90 ms", "p99 ms", "chunks/s", "mean batch"], rows)
            + f"\n\nMedian round trip **{num(batching.get('median_ratio'))}x** shorter, p90 "
            f"{num(batching.get('p90_ratio'))}x, throughput "
            f"{num(batching.get('throughput_ratio'))}x.")
  return out


RENDERERS: dict[str, Callable[[list[Loaded]], str]] = {
    "dojo": _dojo, "experts": _experts, "data": _data, "train": _train,
    "train_mfu": _train_mfu, "wam_run": _wam_run, "dreams": _dreams, "plan": _plan,
    "serve": _serve,
}


# ----------------------------------------------------------------------------- document


def render(kind: str, paths: Sequence[str], root: str) -> str:
  """The body of one marked table: the table and a provenance line per JSON file."""
  if kind not in RENDERERS:
    raise ValueError(f"Unknown table kind {kind!r}; known: {sorted(RENDERERS)}.")
  files, missing = [], []
  for path in paths:
    full = path if os.path.isabs(path) else os.path.join(root, path)
    if os.path.exists(full):
      with open(full) as f:
        files.append((path, json.load(f)))
    else:
      missing.append(path)
  if missing:
    return (f"_Not measured yet: {', '.join(f'`{p}`' for p in missing)} missing; run "
            "`make benchmarks`._\n")
  lines = [RENDERERS[kind](files)]
  lines += [provenance_line(path, data) for path, data in files]
  return "\n\n".join(lines) + "\n"


def rewrite(text: str, root: str = results_lib.ROOT) -> str:
  """``text`` with the body of every marked table regenerated from its JSON files."""
  def one(match: re.Match) -> str:
    paths = match.group("files").split()
    if not paths:
      raise ValueError(f"Table marker {match.group(1).strip()!r} names no JSON file.")
    return match.group(1) + render(match.group("kind"), paths, root) + match.group("end")
  return MARKER.sub(one, text)


def main(argv: Sequence[str]) -> int:
  import argparse  # pylint: disable=import-outside-toplevel
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--doc", default=os.path.join(results_lib.ROOT, "docs", "BENCHMARKS.md"))
  parser.add_argument("--root", default=results_lib.ROOT,
                      help="Where the JSON paths of the markers are relative to.")
  parser.add_argument("--check", action="store_true",
                      help="Write nothing; exit 1 if the document is out of date.")
  args = parser.parse_args(argv)
  with open(args.doc) as f:
    text = f.read()
  new = rewrite(text, args.root)
  count = len(MARKER.findall(text))
  if args.check:
    print(f"{args.doc}: {count} tables, {'up to date' if new == text else 'OUT OF DATE'}")
    return 0 if new == text else 1
  if new != text:
    with open(args.doc, "w") as f:
      f.write(new)
  print(f"{args.doc}: {count} tables {'rewritten' if new != text else 'unchanged'}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
