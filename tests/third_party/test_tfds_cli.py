"""`wam-tfds` (third_party/tfds_cli): the tfds CLI builds our datasets without TensorFlow."""

import os
import subprocess
import sys
import textwrap

import pytest

from third_party import tfds_cli
from wam.data.reader import EpisodeDataset

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BUILDER = textwrap.dedent('''
    import tensorflow_datasets as tfds
    from wam.data import synthetic
    from wam.data.builder import EpisodeBuilder
    from wam.data.layout import Layout
    from wam.data.schema import EpisodeSpec

    SPEC = EpisodeSpec(embodiment="cli_arm", source="sim", cameras=("front",),
                       image_size=(8, 8), joints=Layout.of([("arm", 2)]),
                       action=Layout.of([("arm", 2)]))

    class Builder(EpisodeBuilder):
      """Synthetic episodes for the CLI test."""
      VERSION = tfds.core.Version("1.0.0")

      def episode_spec(self):
        return SPEC

      def split_episodes(self, dl_manager):
        return {"train": synthetic.synthetic_episodes(SPEC, 3, 6)}
''')


def _run(args, **kwargs):
  env = dict(os.environ, PYTHONPATH=ROOT)
  return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=300, **kwargs)


def test_upstream_cli_still_needs_shim():
  """Fails once upstream's CLI imports without TensorFlow: then drop third_party/tfds_cli."""
  if not tfds_cli.missing_dependencies():
    pytest.skip("TensorFlow and mlcroissant are installed: plain `tfds` works.")
  result = _run(["-c", "import tensorflow_datasets.scripts.cli.main"])
  assert result.returncode != 0 and "No module named" in result.stderr


def test_tfds_build_command_builds_an_episode_dataset(tmp_path):
  folder = tmp_path / "cli_episodes"
  folder.mkdir()
  (folder / "cli_episodes_dataset_builder.py").write_text(BUILDER)
  result = _run(["-m", "third_party.tfds_cli", "build", str(folder),
                 f"--data_dir={tmp_path / 'data'}"])
  assert result.returncode == 0, result.stderr[-3000:]
  dataset = EpisodeDataset(str(tmp_path / "data" / "cli_episodes" / "1.0.0"))
  assert len(dataset) == 3 and dataset.spec.embodiment == "cli_arm"
  # A command that needs a missing package says which.
  if tfds_cli.missing_dependencies():
    result = _run(["-m", "third_party.tfds_cli", "convert_format"])
    assert result.returncode != 0 and "needs" in (result.stderr + result.stdout)
