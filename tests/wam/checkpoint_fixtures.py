"""Corrupting a checkpoint step on disk (tests of the checkpointer and the trainer)."""

import glob
import os

# What a restore of garbled bytes reports: our checksum over the restored arrays, or, when
# the bytes land in a compressed chunk, tensorstore's own decompression check. Which one
# depends on the file's layout, which orbax's parallel writes do not fix.
CORRUPTION_REASONS = ("checksum mismatch", "FAILED_PRECONDITION", "DATA_LOSS")


def largest_data_file(step_dir: str) -> str:
  """The largest array data file of a checkpoint step."""
  files = [p for p in glob.glob(os.path.join(step_dir, "state", "**", "*"), recursive=True)
           if os.path.isfile(p) and os.sep + "d" + os.sep in p]
  return max(files, key=os.path.getsize)


def garble_largest_data_file(step_dir: str) -> str:
  """Overwrites bytes in the middle of the step's largest data file; returns its path."""
  path = largest_data_file(step_dir)
  size = os.path.getsize(path)
  with open(path, "r+b") as f:
    f.seek(size // 2)
    f.write(b"\x13\x37garbage" * 8)
  return path
