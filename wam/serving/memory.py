"""Where this process's memory is: RSS, the C allocator's heap, and Python's own objects.

A server whose RSS creeps may be leaking Python objects, leaking native memory (XLA
buffers, C extensions), or only fragmenting the C heap (glibc keeps freed chunks in its
arenas, so RSS stays at its high-water mark although nothing is held). ``usage()``
separates the three: ``rss_mib`` from the kernel (``rss_anon_mib``: heaps and stacks,
``rss_file_mib``: the libraries' pages), ``malloc`` from glibc's
``mallinfo2`` (``in_use_mib`` allocated now, ``free_mib`` freed but kept in the arenas,
``mmap_mib`` in large blocks of their own) and ``python`` from ``tracemalloc`` (when
tracing: ``start_tracing``). ``trim`` and ``limit_arenas`` keep a long-running server's
RSS from creeping; ``docs/RELIABILITY.md`` ("Where the memory goes") measures both.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import tracemalloc
from typing import Any, Optional

_MIB = 2**20
_M_ARENA_MAX = -8   # mallopt's parameter number (malloc.h)


class _MallInfo2(ctypes.Structure):
  """glibc's ``struct mallinfo2`` (glibc >= 2.33): every field a ``size_t``."""
  _fields_ = [(name, ctypes.c_size_t) for name in (
      "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
      "fordblks", "keepcost")]


@functools.cache
def _libc() -> Optional[ctypes.CDLL]:
  """glibc with ``mallinfo2`` and ``malloc_trim``, or None (musl, macOS, old glibc)."""
  name = ctypes.util.find_library("c")
  if name is None:
    return None
  try:
    libc = ctypes.CDLL(name)
    libc.mallinfo2.restype = _MallInfo2
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.malloc_trim.restype = ctypes.c_int
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
  except (OSError, AttributeError):
    return None
  return libc


def _status_mib(pid: Optional[int] = None) -> dict[str, float]:
  """``/proc/<pid>/status``'s memory lines in MiB (``VmRSS``, ``RssAnon``, ``RssFile``,
  ...); empty off Linux."""
  out = {}
  try:
    with open(f"/proc/{pid or os.getpid()}/status", encoding="ascii") as f:
      for line in f:
        key, _, value = line.partition(":")
        if value.strip().endswith("kB"):
          out[key] = int(value.split()[0]) / 1024
  except OSError:
    pass
  return out


def rss_mib(pid: Optional[int] = None) -> Optional[float]:
  """The resident set size of ``pid`` (default: this process) in MiB; None off Linux."""
  return _status_mib(pid).get("VmRSS")


def malloc_mib() -> Optional[dict[str, float]]:
  """glibc's heap, all arenas together (MiB): ``arena_mib`` (obtained from the system
  with brk/mmap for the arenas), ``in_use_mib``, ``free_mib`` (freed, kept),
  ``mmap_mib`` (large allocations, each its own mapping); None without glibc."""
  libc = _libc()
  if libc is None:
    return None
  info = libc.mallinfo2()
  return {"arena_mib": info.arena / _MIB, "in_use_mib": info.uordblks / _MIB,
          "free_mib": info.fordblks / _MIB, "mmap_mib": info.hblkhd / _MIB}


def trim() -> bool:
  """Returns the C heap's free pages to the system (``malloc_trim(0)``); whether it
  released any (False without glibc)."""
  libc = _libc()
  return bool(libc.malloc_trim(0)) if libc is not None else False


def limit_arenas(arenas: int) -> bool:
  """Caps glibc's malloc arenas at ``arenas`` (``mallopt(M_ARENA_MAX)``, as the
  ``MALLOC_ARENA_MAX`` environment variable does); whether it was applied (False
  without glibc). Call it before the threads start: arenas made before stay. glibc
  otherwise makes up to 8 per core, one per thread that allocates concurrently, and
  each keeps its own free chunks.
  """
  if arenas < 1:
    raise ValueError(f"arenas must be >= 1, got {arenas}.")
  libc = _libc()
  return bool(libc.mallopt(_M_ARENA_MAX, arenas)) if libc is not None else False


def start_tracing(frames: int = 1) -> None:
  """Traces Python allocations from now on (``frames`` of stack each; costs time and
  memory, for diagnosis)."""
  if not tracemalloc.is_tracing():
    tracemalloc.start(frames)


def python_mib(top: int = 0) -> Optional[dict[str, Any]]:
  """Python's traced allocations, or None when not tracing: ``traced_mib`` now,
  ``peak_mib``, and with ``top`` the ``top`` largest source lines (``site``, ``mib``,
  ``blocks``) of what is held now."""
  if not tracemalloc.is_tracing():
    return None
  current, peak = tracemalloc.get_traced_memory()
  result: dict[str, Any] = {"traced_mib": current / _MIB, "peak_mib": peak / _MIB}
  if top:
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)])
    result["top"] = [{"site": f"{s.traceback[0].filename}:{s.traceback[0].lineno}",
                      "mib": s.size / _MIB, "blocks": s.count}
                     for s in snapshot.statistics("lineno")[:top]]
  return result


def usage(top: int = 0) -> dict[str, Any]:
  """``{"rss_mib", "rss_anon_mib", "rss_file_mib", "malloc", "python"}`` of this process
  (see the module docstring; anonymous pages are the heaps, file pages the mapped
  libraries' code and data); ``top`` as in ``python_mib``."""
  status = _status_mib()
  return {"rss_mib": status.get("VmRSS"), "rss_anon_mib": status.get("RssAnon"),
          "rss_file_mib": status.get("RssFile"), "malloc": malloc_mib(),
          "python": python_mib(top)}
