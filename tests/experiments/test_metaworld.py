"""The Meta-World job without Meta-World: configs, commands, the seeded-task wrapper on a
fake env, stage resumption with faked commands, the server wait, and the report."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

from dojo.closed_loop import success_interval
from experiments.configs import metaworld as mw_config
from experiments.metaworld import commands, pipeline, report, served, sim, tasks, venv
from experiments.lib.stages import StageError, run_stages
from wam import trainer

# ----------------------------------------------------------------------------- configs


@pytest.mark.parametrize("arg", ["tiny", "runlocal", "", "runlocal,bc", "tiny,bc"])
def test_training_configs_are_valid(arg):
  config = mw_config.get_config(arg)
  trainer.check_config(config)   # unknown keys (a leftover `dojo`) would raise
  assert tuple(config.data.cameras) == tuple(mw_config.CAMERAS)
  assert config.data.max_instruction_length >= max(
      len(t.instruction.encode()) for t in tasks.TASKS.values())
  downsampling = 2 ** len(config.model.tokenizer.channels)
  assert all(s % downsampling == 0 for s in config.data.image_size)
  size = mw_config.parse(arg)[0]
  recorded = mw_config.pipeline_config(size).record_size
  assert all(r % s == 0 for r, s in zip(recorded, config.data.image_size))


def test_bc_trains_actions_only():
  for size in ("tiny", "runlocal", "full"):
    bc, wam = mw_config.get_config(f"{size},bc"), mw_config.get_config(size)
    assert bc.model.loss_weights.video == 0.0 and bc.model.loss_weights.state == 0.0
    assert bc.model.given_action_prob == 0.0
    assert wam.model.loss_weights.video > 0 and wam.model.given_action_prob == 0.25
    assert bc.model.variant == wam.model.variant and bc.num_steps == wam.num_steps


def test_config_arguments_are_checked():
  with pytest.raises(ValueError, match="one size"):
    mw_config.get_config("tiny,runlocal")
  with pytest.raises(ValueError, match="'bc'"):
    mw_config.get_config("huge")
  with pytest.raises(ValueError, match="size only"):
    mw_config.pipeline_config("runlocal,bc")
  assert pipeline.job_config("tiny", ["reach-v3"]).tasks == ("reach-v3",)
  with pytest.raises(ValueError, match="known"):
    pipeline.job_config("tiny", ["reach-v2"])


def test_pipeline_sizes():
  for size in ("runlocal", "full"):
    job = mw_config.pipeline_config(size)
    assert job.eval_episodes >= 30 and len(job.tasks) >= 5
  tiny = mw_config.pipeline_config("tiny")
  assert tiny.eval_episodes <= 3 and mw_config.get_config("tiny").num_steps <= 100
  for size in mw_config.SIZES:   # evaluation seeds never meet demonstration seeds
    job = mw_config.pipeline_config(size)
    pipeline.check_job(job)
    assert min(job.eval_seeds) >= job.demos_per_task
  assert len(mw_config.pipeline_config("runlocal").eval_seeds) == 2   # 300 scenes


def test_check_job_refuses_overlapping_seed_blocks():
  job = mw_config.pipeline_config("runlocal")
  job.eval_seeds = (100_000, 100_010)
  with pytest.raises(ValueError, match="blocks from 100000 and 100010 overlap"):
    pipeline.check_job(job)
  job.eval_seeds = (5,)
  with pytest.raises(ValueError, match="seed 5 is a demonstration's"):
    pipeline.check_job(job)
  job.eval_seeds = ()
  with pytest.raises(ValueError, match="tuple of first seeds"):
    pipeline.check_job(job)


def test_tasks_table():
  assert tasks.env_id("push-v3") == "WamMetaWorld/push-v3"
  assert set(tasks.DEFAULT_TASKS) <= set(tasks.TASKS)
  assert all(t.policy.startswith("Sawyer") and t.policy.endswith("V3Policy")
             for t in tasks.TASKS.values())
  assert len({t.instruction for t in tasks.TASKS.values()}) == len(tasks.TASKS)


# ----------------------------------------------------------------------------- commands


def _flags(command):
  return dict(a[2:].split("=", 1) for a in command if a.startswith("--"))


def test_record_and_evaluate_commands():
  job = mw_config.pipeline_config("runlocal")
  rec = commands.record("/v", job, "push-v3", "/w/demos/push-v3")
  assert rec[0] == "/v/bin/wam-gym-record"
  f = _flags(rec)
  assert f["env"] == "experiments.metaworld.sim:WamMetaWorld/push-v3"
  assert f["policy"] == "metaworld.policies:SawyerPushV3Policy"
  assert f["instruction"] == "push the puck to the goal"
  assert f["seed"] == "0" and f["episodes"] == str(job.demos_per_task)
  assert json.loads(f["env_kwargs"]) == {"action_noise": job.demo_noise}
  assert f["cameras"] == "corner:corner,wrist:gripperPOV" and f["image_size"] == "64,64"
  ev = _flags(commands.evaluate("/v", job, "push-v3", "ws://h:1", job.eval_seeds[1],
                                "/w/eval/push-v3/seed_200000"))
  assert ev["url"] == "ws://h:1" and ev["seed"] == "200000"
  assert ev["episodes"] == "30" and ev["joints"] == f["joints"] == "data.qpos[:9]"
  assert "env_kwargs" not in ev   # no noise when the model acts
  train = commands.train("runlocal", True, "/w/train_bc", "/w/ds")
  assert train[-3].endswith("configs/metaworld.py:runlocal,bc")
  assert train[-1] == "--config.data.datasets.metaworld.path=/w/ds"
  ablation = commands.train("runlocal", False, "/w/train_wam", "/w/ds",
                            "--config.model.given_action_prob=0.25  --config.num_steps='4000'")
  assert ablation[-3:-1] == ["--config.model.given_action_prob=0.25", "--config.num_steps=4000"]
  assert ablation[-1] == "--config.data.datasets.metaworld.path=/w/ds"
  with pytest.raises(ValueError, match=r"train_flags.wam: \['--workdir=/x'\]"):
    commands.train("runlocal", False, "/w/t", "/w/ds", "--workdir=/x")


def test_sim_env():
  env = commands.sim_env("/v", {"PATH": "/usr/bin", "PYTHONPATH": "/x", "VIRTUAL_ENV": "/p"})
  assert env["PYTHONPATH"].split(os.pathsep) == [commands.REPO, "/x"]
  assert env["PATH"].startswith("/v/bin") and env["MUJOCO_GL"] == "egl"
  assert "VIRTUAL_ENV" not in env
  assert commands.sim_env("/v", {"MUJOCO_GL": "osmesa"})["MUJOCO_GL"] == "osmesa"


# ----------------------------------------------------------------------------- sim


class FakeSawyer(gym.Env):
  """Meta-World's shape: ``seed()`` seeds the scene, ``reset`` ignores its seed, success
  once the hand (moved by the action's first value) passes the goal."""

  action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
  observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)

  def __init__(self):
    self.rng, self.executed = np.random.default_rng(123), []

  def seed(self, seed):
    self.rng = np.random.default_rng(seed)

  def reset(self, *, seed=None, options=None):
    self.goal, self.hand = float(self.rng.uniform(0.5, 1.0)), 0.0
    return np.array([self.hand, self.goal]), {}

  def step(self, action):
    self.executed.append(np.array(action))
    self.hand += 0.1 * float(action[0])
    obs = np.array([self.hand, self.goal])
    return obs, 0.0, False, False, {"success": float(self.hand >= self.goal)}


def test_seeded_task_scenes_come_from_the_seed():
  env = sim.SeededTask(FakeSawyer())
  a, b, c = (env.reset(seed=s)[0][1] for s in (7, 7, 8))
  assert a == b != c
  env.reset()   # no seed: the next scene of the same stream, not the seeded one again
  assert env.unwrapped.goal != a


def test_seeded_task_ends_at_success():
  env = sim.SeededTask(FakeSawyer())
  env.reset(seed=0)
  steps, terminated = 0, False
  while not terminated:
    _, _, terminated, _, info = env.step(np.ones(4, np.float32))
    steps += 1
    assert steps < 20
  hand, goal = env.unwrapped.hand, env.unwrapped.goal
  assert info["success"] and hand - 0.1 < goal <= hand   # the first successful step
  keep = sim.SeededTask(FakeSawyer(), end_on_success=False)
  keep.reset(seed=0)
  assert not any(keep.step(np.ones(4, np.float32))[2] for _ in range(20))


def test_seeded_task_noise_is_executed_not_recorded():
  exact = sim.SeededTask(FakeSawyer())
  exact.reset(seed=1)
  action = np.array([0.5, -0.2, 0.9, 1.0], np.float32)
  exact.step(action)
  np.testing.assert_array_equal(exact.unwrapped.executed[-1], action)
  runs = []
  for _ in range(2):
    noisy = sim.SeededTask(FakeSawyer(), action_noise=0.3)
    noisy.reset(seed=1)
    for _ in range(5):
      noisy.step(action)
    runs.append(np.stack(noisy.unwrapped.executed))
  np.testing.assert_array_equal(runs[0], runs[1])          # the seed fixes the noise
  assert np.abs(runs[0] - action).max() > 0.01              # ... and there is some
  assert runs[0].max() <= 1.0 and runs[0].min() >= -1.0     # clipped to the space
  with pytest.raises(ValueError, match="action_noise"):
    sim.SeededTask(FakeSawyer(), action_noise=-1)


def test_fast_rendering_turns_shadows_and_multisampling_off():
  quality = type("Quality", (), {"offsamples": 4})()
  model = type("Model", (), {"light_castshadow": np.ones(3, np.uint8),
                             "vis": type("Vis", (), {"quality": quality})()})()
  sim.fast_rendering(model)
  assert not model.light_castshadow.any() and model.vis.quality.offsamples == 0


def test_sim_registers_every_task():
  for task in tasks.TASKS:
    spec = gym.spec(tasks.env_id(task))
    assert spec.kwargs == {"task": task} and spec.max_episode_steps == sim.MAX_EPISODE_STEPS


# ----------------------------------------------------------------------------- venv


def test_venv_marker(tmp_path):
  client = tmp_path / "client"
  client.mkdir()
  (client / "a.py").write_text("x = 1\n")
  want = venv.wanted(("metaworld==3.1.1",), str(client))
  env_dir = tmp_path / "env"
  (env_dir / "bin").mkdir(parents=True)
  (env_dir / "bin" / "python").write_text("")
  assert not venv.is_ready(str(env_dir), want)            # no marker yet
  (env_dir / venv.MARKER).write_text(json.dumps(want))
  assert venv.is_ready(str(env_dir), want)
  assert venv.ensure(str(env_dir), pins=("metaworld==3.1.1",),
                     client_dir=str(client)) == str(env_dir / "bin" / "python")  # no pip
  assert not venv.is_ready(str(env_dir), venv.wanted(("metaworld==3.1.0",), str(client)))
  (client / "a.py").write_text("x = 2\n")                  # a changed client: reinstall
  assert not venv.is_ready(str(env_dir), venv.wanted(("metaworld==3.1.1",), str(client)))
  assert all("==" in p for p in venv.PINS) and "mujoco==3.3.0" in venv.PINS


# ----------------------------------------------------------------------------- resumption


class FakeCommands:
  """Stands in for every subprocess of the job: writes what each real one writes."""

  def __init__(self):
    self.calls = []

  def run(self, command, *, log=None, env=None):
    del env
    name = os.path.basename(command[0]) if "-m" not in command else command[2]
    f = _flags(command)
    self.calls.append((name, f.get("env", f.get("workdir", ""))))
    if log:
      with open(log, "w") as out:
        out.write("ok\n")
    if name == "wam-gym-record":
      n = int(f["episodes"])
      results = [{"episode": k, "seed": k, "success": k != 1, "length": 50, "return": 1.0,
                  "file": f"episode_{k:05d}.npz"} for k in range(n)]
      for r in results:
        open(os.path.join(f["out"], r["file"]), "w").close()
      _write(f["out"], "mapping.json", {"images": {"corner": "x"}})
      _write(f["out"], "record.json", {"episodes": n, "successes": n - 1, "steps": 50 * n,
                                       "results": results})
    elif name == "wam.data.importers.npz":
      path = os.path.join(f["data_dir"], "metaworld", "1.0.0")
      os.makedirs(path)
      files = sorted(os.listdir(os.path.dirname(f["files"])))
      _write(path, "dataset_info.json", {"files": files})
      val = round(float(f["splits"].split("val=")[1]) * len(files))
      _write(path, "import_report.json", {"episodes": {"train": len(files) - val, "val": val}})
    elif name == "experiments.train":
      _write(f["workdir"], "result.json", {"step": 30, "num_steps": 30, "metrics": {"loss": 1}})
      with open(os.path.join(f["workdir"], "metrics.jsonl"), "w") as out:
        out.write('{"step": 10, "steps_per_second": 1.5}\n{"step": 20, "steps_per_second": 2.5}\n')
    elif name == "wam-gym-evaluate":
      n = int(f["episodes"])
      _write(f["out"], "summary.json", {
          "episodes": n, "successes": 1, "ci95": list(success_interval(1, n)),
          "results": [{"length": 10, "gif": "episode_00000.gif"}]})


def _write(directory, name, value):
  with open(os.path.join(directory, name), "w") as f:
    json.dump(value, f)


@pytest.fixture
def fake(monkeypatch):
  commands_ = FakeCommands()
  monkeypatch.setattr(pipeline, "run", commands_.run)

  @contextlib.contextmanager
  def fake_served(command, log_path, cwd, timeout=0):
    del cwd, timeout
    commands_.calls.append(("serve", _flags(command)["workdir"]))
    open(log_path, "w").close()
    yield "ws://127.0.0.1:1"

  monkeypatch.setattr(served, "served", fake_served)
  return commands_


def test_job_runs_once_and_resumes(tmp_path, fake):
  job = pipeline.job_config("tiny", ["reach-v3", "push-v3"])
  workdir = str(tmp_path / "w")
  results = run_stages(pipeline.stages("/v"), job, workdir)
  names = [c[0] for c in fake.calls]
  assert names.count("wam-gym-record") == 2 and names.count("experiments.train") == 2
  assert names.count("serve") == 2 and names.count("wam-gym-evaluate") == 4
  # Only successful demos are imported, interleaved across tasks.
  info = report.read_json(os.path.join(results["dataset"]["path"], "dataset_info.json"))
  assert info["files"][:3] == ["episode_00000_reach-v3.npz", "episode_00001_push-v3.npz",
                               "episode_00002_reach-v3.npz"]
  assert results["dataset"]["episodes"] == 2 * (job.demos_per_task - 1)
  assert results["train_wam"]["steps_per_second"] == 2.5
  summary = report.read_json(os.path.join(workdir, "summary.json"))
  assert set(summary["models"]) == {"experts", "wam", "bc"}
  assert summary["train_demos_per_task"] == summary["dataset_splits"]["train"] / 2
  assert summary["models"]["wam"]["tasks"]["push-v3"]["gifs"][0].endswith(
      "eval_wam/push-v3/seed_100000/episode_00000.gif")
  assert "| push-v3 |" in open(os.path.join(workdir, "results.md")).read()

  fake.calls.clear()                        # the same command again: nothing runs
  run_stages(pipeline.stages("/v"), job, workdir)
  assert fake.calls == []

  # An evaluation cut short: its finished task is kept, only the other one runs again.
  os.remove(os.path.join(workdir, "eval_bc", "stage.json"))
  os.remove(os.path.join(workdir, "eval_bc", "push-v3", "seed_100000", "summary.json"))
  os.remove(os.path.join(workdir, "report", "stage.json"))
  run_stages(pipeline.stages("/v"), job, workdir)
  assert [c[0] for c in fake.calls] == ["serve", "wam-gym-evaluate"]
  assert fake.calls[1][1].endswith("WamMetaWorld/push-v3")

  with pytest.raises(StageError, match="another config"):   # results never mix
    run_stages(pipeline.stages("/v"), pipeline.job_config("tiny", ["reach-v3"]), workdir)


def test_recording_keeps_finished_tasks(tmp_path, fake):
  job = pipeline.job_config("tiny", ["reach-v3", "push-v3"])
  stage_dir = tmp_path / "demos"
  pipeline.record_demos("/v", job, str(stage_dir), {})
  os.remove(stage_dir / "push-v3" / "record.json")   # killed while recording push
  fake.calls.clear()
  result = pipeline.record_demos("/v", job, str(stage_dir), {})
  assert fake.calls == [("wam-gym-record", "experiments.metaworld.sim:WamMetaWorld/push-v3")]
  assert result["tasks"]["reach-v3"]["successes"] == job.demos_per_task - 1


def test_a_failed_command_names_its_log(tmp_path):
  log = str(tmp_path / "x.log")
  with pytest.raises(RuntimeError, match="x.log; it ends with:\n.*boom"):
    pipeline.run([sys.executable, "-c", "print('boom'); raise SystemExit(3)"], log=log)


def test_complete_needs_every_episode():
  assert pipeline.complete({"episodes": 30}, 30)
  assert not pipeline.complete({"episodes": 2}, 30)   # a smaller earlier job's output
  assert not pipeline.complete(None, 30)


def test_interleave():
  pairs = pipeline.interleave({"a": ["a0", "a1", "a2"], "b": ["b0"]})
  assert [t for _, t in pairs] == ["a0", "b0", "a1", "a2"]
  assert [n for n, _ in pairs][:2] == ["episode_00000_a.npz", "episode_00001_b.npz"]


# ----------------------------------------------------------------------------- server


def test_served_waits_for_the_url_and_stops_the_server(tmp_path):
  script = ("import time; print('loading'); print('Serving w at ws://127.0.0.1:4321', "
            "flush=True); time.sleep(60)")
  log = str(tmp_path / "server.log")
  with served.served([sys.executable, "-c", script], log, cwd=str(tmp_path)) as url:
    assert url == "ws://127.0.0.1:4321"
  dead = subprocess.Popen([sys.executable, "-c", "print('no model here')"],
                          stdout=open(log, "w"), stderr=subprocess.STDOUT)
  dead.wait()
  with pytest.raises(RuntimeError, match=r"exited \(0\)(.|\n)*no model here"):
    served.wait_for_url(dead, log, timeout=30, poll=0.05)


# ----------------------------------------------------------------------------- report


def test_report_figures_and_table(tmp_path):
  for model, successes in (("wam", (12, 0)), ("bc", (30, 3))):
    for task, k in zip(("reach-v3", "push-v3"), successes):
      d = tmp_path / model / task
      d.mkdir(parents=True)
      _write(str(d), "summary.json", {"episodes": 30, "successes": k,
                                      "ci95": list(success_interval(k, 30)), "results": []})
  models = report.collect({m: str(tmp_path / m) for m in ("wam", "bc")},
                          ["reach-v3", "push-v3"])
  wam = models["wam"]
  assert wam["tasks"]["reach-v3"]["success_rate"] == pytest.approx(0.4)
  assert wam["overall"]["successes"] == 12 and wam["overall"]["episodes"] == 60
  assert wam["overall"]["ci95"] == pytest.approx(success_interval(12, 60))
  assert models["bc"]["overall"]["mean_success_rate"] == pytest.approx(0.55)
  assert report.cell(wam["tasks"]["reach-v3"]) == "12/30 (40%, 25-58%)"
  assert report.cell(wam["tasks"]["push-v3"]) == "0/30 (0%, 0-11%)"
  json_path, md_path = report.write(str(tmp_path), models, ["reach-v3", "push-v3"],
                                    {"size": "runlocal", "demos_per_task": 10,
                                     "train_demos_per_task": 9.0,
                                     "train": {"wam": {"step": 2000, "flags": "--config.a=1"},
                                               "bc": {"step": 2000, "flags": ""}}})
  table = open(md_path).read()
  assert "| wam | 2000 | - | - | `--config.a=1` |" in table and "| bc | 2000 | - | - | none |" in table
  assert "(runlocal; 10 demos recorded per task; 9 per task trained on)" in table
  assert "| reach-v3 | 12/30 (40%, 25-58%) | 30/30 (100%, 89-100%) |" in table
  assert "| all (pooled) | 12/60 (20%, 12-32%) | 33/60 (55%, 42-67%) |" in table
  # The published rates of the same tasks, with their source and demo count.
  assert "| reach-v3 | 18±2% | 24±1% |" in table and "| push-v3 | 30±3% | 51±3% |" in table
  assert "10 demos per task; this run trained on 9 per task" in table
  assert "arXiv:2403.03954" in table
  assert "the same count as this run" in report.published.table(["reach-v3"], 10.0)
  assert report.read_json(json_path)["size"] == "runlocal"
  with pytest.raises(FileNotFoundError, match="bc on door-open-v3"):
    report.collect({"bc": str(tmp_path / "bc")}, ["door-open-v3"])


def test_report_pools_blocks_of_seeds(tmp_path):
  for block, (k, length) in {"seed_100000": (6, 100), "seed_200000": (9, 40)}.items():
    d = tmp_path / "wam" / "reach-v3" / block
    d.mkdir(parents=True)
    _write(str(d), "summary.json", {"episodes": 10, "successes": k, "results": [
        {"length": length, "gif": "episode_00000.gif"}]})
  models = report.collect({"wam": str(tmp_path / "wam")}, ["reach-v3"],
                          blocks=["seed_100000", "seed_200000"])
  reach = models["wam"]["tasks"]["reach-v3"]
  assert (reach["successes"], reach["episodes"]) == (15, 20)
  assert reach["ci95"] == pytest.approx(success_interval(15, 20))
  assert reach["mean_length"] == pytest.approx(70.0)
  assert [os.path.relpath(g, tmp_path) for g in reach["gifs"]] == [
      "wam/reach-v3/seed_100000/episode_00000.gif", "wam/reach-v3/seed_200000/episode_00000.gif"]
  assert models["wam"]["blocks"]["seed_200000"]["successes"] == 9
  table = report.table(models, ["reach-v3"])
  assert "| seeds 100000+ (pooled) | 6/10 (60%, 31-83%) |" in table
  assert "| seeds 200000+ (pooled) | 9/10 (90%, 60-98%) |" in table
  with pytest.raises(FileNotFoundError, match="seed_300000"):
    report.collect({"wam": str(tmp_path / "wam")}, ["reach-v3"], blocks=["seed_300000"])


def test_benchmark_config_file_is_the_size_flags_job():
  """--config=experiments/configs/metaworld_benchmark.py:SIZE resumes a --size=SIZE workdir:
  the workdir check compares the JSON of the two."""
  # pylint: disable=import-outside-toplevel
  from experiments.configs import metaworld_benchmark
  for size in mw_config.SIZES:
    assert (metaworld_benchmark.get_config(size).to_json_best_effort()
            == pipeline.job_config(size).to_json_best_effort())
  assert metaworld_benchmark.get_config("").size == "runlocal"
