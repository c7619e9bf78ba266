"""wam.serving.memory: the figures that tell a leak from a fragmented heap."""

import platform
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

from wam.serving import memory

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallinfo2 is glibc's")


def test_rss_follows_a_large_allocation():
  before = memory.rss_mib()
  block = np.ones(64 * 2**20, np.uint8)   # 64 MiB, touched
  assert memory.rss_mib() - before > 48
  del block


@glibc
def test_malloc_counts_what_is_held_and_what_is_freed():
  before = memory.malloc_mib()
  assert set(before) == {"arena_mib", "in_use_mib", "free_mib", "mmap_mib"}
  # A block over glibc's largest dynamic mmap threshold (32 MiB on 64-bit) and larger
  # than all the arenas' free chunks together: no freed chunk can hold it (a test worker
  # may have freed hundreds of MiB in its main arena), so it gets its own mapping.
  size_mib = 64 + int(before["free_mib"])
  big = np.empty(size_mib * 2**20, np.uint8)   # untouched: the mapping counts, not RSS
  assert memory.malloc_mib()["mmap_mib"] - before["mmap_mib"] >= size_mib - 1
  del big
  held = [bytearray(1000) for _ in range(20_000)]   # ~20 MB of small blocks, in arenas
  during = memory.malloc_mib()
  assert during["in_use_mib"] - before["in_use_mib"] > 15
  del held
  after = memory.malloc_mib()
  assert during["in_use_mib"] - after["in_use_mib"] > 15
  memory.trim()   # returns whatever free pages it can; never fails


def test_python_tracing_names_the_allocating_line():
  assert memory.python_mib() is None or tracemalloc.is_tracing()
  was_tracing = tracemalloc.is_tracing()
  memory.start_tracing()
  try:
    hoard = [str(i) * 50 for i in range(50_000)]   # the largest site traced below
    usage = memory.usage(top=3)
    assert usage["python"]["traced_mib"] > 2
    assert usage["python"]["top"][0]["site"].endswith(f"{__file__}:{_line_of('hoard = ')}")
    assert usage["python"]["top"][0]["blocks"] >= 50_000
    del hoard
  finally:
    if not was_tracing:
      tracemalloc.stop()


def _line_of(text: str) -> int:
  with open(__file__, encoding="utf-8") as f:
    return next(i for i, line in enumerate(f, 1) if text in line and "_line_of" not in line)


@glibc
def test_limit_arenas_applies_and_refuses_nonsense():
  # In a fresh process: the cap is process-wide and only new arenas see it.
  code = "from wam.serving import memory; print(memory.limit_arenas(2))"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True)
  assert out.stdout.strip() == "True"
  with pytest.raises(ValueError, match="arenas must be >= 1"):
    memory.limit_arenas(0)
