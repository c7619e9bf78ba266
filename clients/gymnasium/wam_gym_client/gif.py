"""Animated GIFs in pure Python (no Pillow): a fixed 252-colour palette and LZW.

Slow for long, large videos (about a microsecond per pixel) but fine for evaluation
episodes of small frames. Every frame is kept (no merging of identical frames).
"""

from __future__ import annotations

import os
import struct
from typing import Sequence

import numpy as np

# A uniform palette: 6 levels of red, 7 of green (the eye's most sensitive), 6 of blue.
_LEVELS = (6, 7, 6)
_MAX_CODES = 4096


def palette() -> np.ndarray:
  """The 256 colours uint8 [256, 3] every GIF here uses (the last 4 unused, black)."""
  r, g, b = np.meshgrid(*(np.linspace(0, 255, n) for n in _LEVELS), indexing="ij")
  colours = np.stack([r, g, b], -1).reshape(-1, 3)
  out = np.zeros((256, 3), np.uint8)
  out[:len(colours)] = np.rint(colours).astype(np.uint8)
  return out


def quantize(frame: np.ndarray) -> np.ndarray:
  """Palette indices uint8 [H, W] of a uint8 [H, W, 3] frame (nearest level per channel)."""
  levels = [np.rint(frame[..., c].astype(np.float32) * (n - 1) / 255.0).astype(np.int32)
            for c, n in enumerate(_LEVELS)]
  return (levels[0] * _LEVELS[1] * _LEVELS[2] + levels[1] * _LEVELS[2] + levels[2]
          ).astype(np.uint8)


def _lzw(indices: bytes, min_code_size: int = 8) -> bytes:
  """GIF's variable-width LZW of one frame's palette indices (codes packed LSB first)."""
  clear, end = 1 << min_code_size, (1 << min_code_size) + 1
  out = bytearray()
  state = {"bits": 0, "count": 0}

  def emit(code: int, size: int) -> None:
    state["bits"] |= code << state["count"]
    state["count"] += size
    while state["count"] >= 8:
      out.append(state["bits"] & 0xFF)
      state["bits"] >>= 8
      state["count"] -= 8

  def fresh() -> tuple[dict, int, int]:
    return {bytes([i]): i for i in range(clear)}, end + 1, min_code_size + 1

  table, next_code, size = fresh()
  emit(clear, size)
  word = b""
  for byte in indices:
    symbol = bytes([byte])
    extended = word + symbol
    if extended in table:
      word = extended
      continue
    emit(table[word], size)
    if next_code < _MAX_CODES:
      table[extended] = next_code
      next_code += 1
      # The decoder adds each entry one code later: widen once the newest entry needs it.
      if next_code > (1 << size) and size < 12:
        size += 1
    else:
      emit(clear, size)
      table, next_code, size = fresh()
    word = symbol
  if word:
    emit(table[word], size)
  emit(end, size)
  if state["count"]:
    out.append(state["bits"] & 0xFF)
  return bytes(out)


def _blocks(data: bytes) -> bytes:
  """Data sub-blocks: a length byte then up to 255 bytes, ended by an empty block."""
  parts = [bytes([len(data[i:i + 255])]) + data[i:i + 255] for i in range(0, len(data), 255)]
  return b"".join(parts) + b"\x00"


def write_gif(path: str, frames: Sequence[np.ndarray] | np.ndarray, fps: float = 10.0) -> str:
  """Writes uint8 [T, H, W, 3] frames as a GIF that loops forever; returns ``path``.

  Raises:
    ValueError: no frames, or frames of different sizes.
  """
  frames = [np.asarray(f) for f in frames]
  if not frames:
    raise ValueError(f"No frames to write to {path}.")
  height, width = frames[0].shape[:2]
  if any(f.shape != (height, width, 3) or f.dtype != np.uint8 for f in frames):
    raise ValueError(f"GIF frames are uint8 [H, W, 3] of one size; got "
                     f"{sorted({(f.shape, str(f.dtype)) for f in frames})}.")
  delay = max(2, int(round(100.0 / fps)))   # centiseconds; browsers treat < 2 as 10
  data = [b"GIF89a", struct.pack("<HHBBB", width, height, 0xF7, 0, 0),
          palette().tobytes(), b"\x21\xFF\x0BNETSCAPE2.0\x03\x01\x00\x00\x00"]
  for frame in frames:
    data.append(b"\x21\xF9\x04\x04" + struct.pack("<H", delay) + b"\x00\x00")
    data.append(b"\x2C" + struct.pack("<HHHHB", 0, 0, width, height, 0))
    data.append(b"\x08" + _blocks(_lzw(quantize(frame).tobytes())))
  data.append(b"\x3B")
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".partial"
  with open(tmp, "wb") as f:
    f.write(b"".join(data))
  os.replace(tmp, path)
  return path
