"""The transfer experiment's leak check: held-out combinations never in robot data."""

import pytest

from dojo import registry
from experiments.lib import great_parallel_leaks as leak_check
from wam.data import builder, synthetic
from wam.data.layout import Layout
from wam.data.schema import EpisodeSpec

SPEC = EpisodeSpec(
    embodiment="toy_arm", source="sim", cameras=("front",), image_size=(8, 8),
    joints=Layout.of([("arm_joints", 3)]), action=Layout.of([("arm_joints", 3)]), fps=10.0)


def _dataset(root, name, instructions):
  episodes = lambda: (synthetic.synthetic_episode(SPEC, 4, i, instruction=text, task="push")
                      for i, text in enumerate(instructions))
  return builder.write_dataset(name, SPEC, {"train": episodes}, str(root))


def test_unseen_instructions_are_the_tasks_held_out_split():
  held = leak_check.unseen_instructions(["push"])
  space = registry.entry("push").resolve().instruction_space
  assert held and len(held) == len(space.split_ids("unseen"))
  seen = {space.text(int(i)) for i in space.split_ids("seen")}
  assert not seen & set(held) and set(held.values()) == {"push"}


def test_the_leak_check_names_the_dataset_episode_and_instruction(tmp_path):
  held = leak_check.unseen_instructions(["push"])
  space = registry.entry("push").resolve().instruction_space
  seen = [space.text(int(i)) for i in space.split_ids("seen")][:3]
  clean = _dataset(tmp_path, "clean", seen)
  assert leak_check.check_no_leak({"push": clean}, held) == 3
  leaked_text = sorted(held)[0]
  leaky = _dataset(tmp_path, "leaky", seen[:1] + [leaked_text])
  with pytest.raises(leak_check.LeakError,
                     match=rf"1 robot training episode.*push_dart \(.*leaky.*\) train "
                           rf"episode 1: '{leaked_text}' \(held out of push\)"):
    leak_check.check_no_leak({"push": clean, "push_dart": leaky}, held)
