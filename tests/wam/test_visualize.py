"""Dream grids and videos, metric plots."""

import json

import imageio.v2 as imageio
import numpy as np
import pytest

from wam import visualize


def _rollouts(n=2, t=5, h=8, w=10, seed=0):
  rng = np.random.default_rng(seed)
  real = rng.integers(0, 256, (n, t, h, w, 3), dtype=np.uint8)
  dreamed = rng.integers(0, 256, (n, t, h, w, 3), dtype=np.uint8)
  return real, dreamed


def test_to_uint8():
  out = visualize.to_uint8(np.array([-0.5, 0.0, 0.5, 1.0, 2.0], np.float32))
  assert out.dtype == np.uint8 and out.tolist() == [0, 0, 128, 255, 255]
  x = np.zeros((2, 2, 3), np.uint8)
  assert visualize.to_uint8(x) is x


def test_dream_grid_layout():
  real, dreamed = _rollouts()
  n, t, h, w, _ = real.shape
  pad, border = 2, 1
  image = visualize.dream_grid(real, dreamed, num_context=2, pad=pad, border=border)
  ch, cw = h + 2 * border, w + 2 * border
  assert image.dtype == np.uint8
  assert image.shape == (n * (2 * ch + pad) + (n - 1) * 3 * pad, t * cw + (t - 1) * pad, 3)

  def cell(example, row, column):
    top = example * (2 * ch + 4 * pad) + row * (ch + pad)
    left = column * (cw + pad)
    return image[top:top + ch, left:left + cw]

  # Context columns of the dreamed row show the real frame in a blue frame, the rest
  # the dreamed frame in a red one; real frames have a white frame.
  np.testing.assert_array_equal(cell(1, 0, 3)[1:-1, 1:-1], real[1, 3])
  assert (cell(1, 0, 3)[0] == 255).all()
  np.testing.assert_array_equal(cell(1, 1, 1)[1:-1, 1:-1], real[1, 1])
  assert (cell(1, 1, 1)[0] == visualize.CONTEXT_COLOR).all()
  np.testing.assert_array_equal(cell(0, 1, 4)[1:-1, 1:-1], dreamed[0, 4])
  assert (cell(0, 1, 4)[:, -1] == visualize.DREAM_COLOR).all()
  # Dreamed frames without the context give the same picture; floats are accepted.
  np.testing.assert_array_equal(visualize.dream_grid(real, dreamed[:, 2:], 2), image)
  assert visualize.dream_grid(real / 255.0, dreamed / 255.0, 0).shape == image.shape
  with pytest.raises(ValueError):
    visualize.dream_grid(real, dreamed[:, :3], 1)


def test_dream_video(tmp_path):
  real, dreamed = _rollouts(n=3, t=4)
  path = visualize.dream_video(str(tmp_path / "dream.gif"), real, dreamed, fps=4,
                               num_context=1)
  frames = imageio.mimread(path)
  assert len(frames) == 4
  # 3 examples on a 2 x 2 grid of (h + 2) x (2 (w + 2) + 2) pairs, 6 pixels apart.
  assert frames[0].shape[:2] == (2 * 10 + 6, 2 * 26 + 6)


def test_plot_curves(tmp_path):
  path = tmp_path / "metrics.jsonl"
  lines = [json.dumps({"step": s, "loss": 1.0 / (s + 1), "psnr": 20.0 + s}) for s in range(5)]
  lines.insert(2, '{"step": 2, "loss": ')  # a killed run's partial line
  lines.append(json.dumps({"step": 5, "loss": None, "eval/ssim": 0.5}))
  path.write_text("\n".join(lines) + "\n")
  out = visualize.plot_curves(str(path), str(tmp_path / "plots" / "curves.png"),
                              keys=["loss", "psnr", "missing"])
  assert out is not None
  image = imageio.imread(out)
  single = imageio.imread(visualize.plot_curves(str(path), str(tmp_path / "one.png"),
                                                keys=["eval/ssim"], log_y=False))
  assert image.ndim == 3 and image.shape[0] == 2 * single.shape[0]  # two subplots
  assert visualize.plot_curves(str(path), str(tmp_path / "none.png"), keys=["x"]) is None
  assert not (tmp_path / "none.png").exists()


def test_plot_horizon(tmp_path):
  out = visualize.plot_horizon({"model": [30.0, 25.0, 22.0], "copy last frame": [28.0, 21.0]},
                               str(tmp_path / "horizon.png"), ylabel="PSNR (dB)")
  assert imageio.imread(out).ndim == 3


def test_write_video_gif(tmp_path):
  frames = np.stack([np.full((6, 6, 3), 40 * i, np.uint8) for i in range(3)])
  visualize.write_video(str(tmp_path / "v.gif"), frames, fps=5)
  assert len(imageio.mimread(str(tmp_path / "v.gif"))) == 3
