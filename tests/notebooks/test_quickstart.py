"""notebooks/quickstart.ipynb runs top to bottom at tiny size in a fresh kernel.

The notebook is executed with nbclient in a kernel started from this interpreter (a
kernelspec written into a temporary directory, so a system-wide ``python3`` kernel
cannot stand in for the project's venv), with ``WAM_NOTEBOOK_TINY=1``, the ``colab``
install cell skipped and a temporary working directory that receives every output.
About three minutes on an idle 2-core machine, mostly JAX compiles (the tests that
execute it are marked ``slow``; ``make test`` still runs them).
"""

import json
import os
import sys

import imageio.v2 as imageio
import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

NOTEBOOK = os.path.join(os.path.dirname(__file__), "..", "..", "notebooks", "quickstart.ipynb")
CELL_TIMEOUT_S = 600
KERNEL = "wam-quickstart-test"


def _read() -> nbformat.NotebookNode:
  with open(NOTEBOOK) as f:
    return nbformat.read(f, as_version=4)


def _kernel_manager(root) -> KernelManager:
  """A kernel manager whose only kernelspec runs ``sys.executable`` (this venv)."""
  spec_dir = root / "kernels" / KERNEL
  spec_dir.mkdir(parents=True)
  (spec_dir / "kernel.json").write_text(json.dumps({
      "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
      "display_name": "wam test", "language": "python"}))
  specs = KernelSpecManager(kernel_dirs=[str(root / "kernels")], ensure_native_kernel=False)
  return KernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
  """(executed notebook, working directory) of one tiny run."""
  root = tmp_path_factory.mktemp("quickstart")
  workdir = root / "cwd"
  workdir.mkdir()
  nb = _read()
  # The kernel inherits this process's environment (JAX_PLATFORMS=cpu from conftest).
  with pytest.MonkeyPatch.context() as env:
    env.setenv("WAM_NOTEBOOK_TINY", "1")
    client = NotebookClient(nb, km=_kernel_manager(root), timeout=CELL_TIMEOUT_S,
                            skip_cells_with_tag="colab", allow_errors=False,
                            resources={"metadata": {"path": str(workdir)}})
    client.execute()   # raises CellExecutionError naming the failing cell
  return nb, workdir / "quickstart_tiny"


def _outputs(nb, mime: str) -> list:
  return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
          if mime in o.get("data", {})]


def test_committed_notebook_is_clean_and_explained():
  nb = _read()
  code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
  assert code, "no code cells"
  for i in code:
    assert not nb.cells[i].outputs and nb.cells[i].execution_count is None, (
        f"cell {i} has outputs: commit the notebook with cleared outputs")
    assert i > 0 and nb.cells[i - 1].cell_type == "markdown", f"code cell {i} has no text"
  tagged = [i for i in code if "colab" in nb.cells[i].metadata.get("tags", [])]
  assert tagged == [code[0]], "exactly the first code cell (the install) is tagged colab"
  assert 'os.environ.get("WAM_NOTEBOOK_TINY") == "1"' in nb.cells[code[1]].source


@pytest.mark.slow
def test_notebook_runs_without_errors_and_skips_the_install_cell(executed):
  nb, _ = executed
  code = [c for c in nb.cells if c.cell_type == "code"]
  assert code[0].execution_count is None and not code[0].outputs   # skipped
  assert all(c.execution_count is not None for c in code[1:])
  errors = [o for c in code for o in c.outputs if o.output_type == "error"]
  assert not errors
  text = "".join(o.get("text", "") for c in code for o in c.outputs)
  assert "tiny run of task 'reach'" in text
  for controller in ("policy mode", "CEM in the dream", "expert"):
    assert controller in text, controller


@pytest.mark.slow
def test_training_ran_to_the_tiny_step_count(executed):
  _, out = executed
  lines = [json.loads(l) for l in open(out / "wam" / "metrics.jsonl")]
  assert max(l["step"] for l in lines) == 30
  assert any("eval/psnr_h1" in l for l in lines)
  assert os.listdir(out / "wam" / "checkpoints")


@pytest.mark.slow
def test_dreams_and_episodes_are_shown_and_written(executed):
  nb, out = executed
  # Camera views, episode strip, loss curves, dreams: images displayed inline.
  assert len(_outputs(nb, "image/png")) >= 4
  assert len(_outputs(nb, "image/gif")) == 1
  grid = imageio.imread(out / "dreams.png")
  # 4 examples x (real row + dreamed row) of 32-pixel frames, 4 frames per row.
  assert grid.shape[0] >= 8 * 32 and grid.shape[1] >= 4 * 32
  frames = imageio.mimread(out / "episodes.gif")
  assert len(frames) >= 2
  height, width = frames[0].shape[:2]
  assert width > 2.5 * height   # three controllers side by side
