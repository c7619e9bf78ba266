"""Importers for data people already have: HDF5 (ALOHA, robomimic, egocentric hands) and
npz (Dream Dojo collections), into the episode schema (:mod:`wam.data.schema`).

A :class:`KeyMapping` says where each schema field lives in a source episode; presets
(``aloha``, ``robomimic``, ``egocentric_hand``, ``dojo``) are mappings for known layouts.
:func:`import_hdf5` and :func:`import_npz` stream the files, one episode in memory at a
time, into a TFDS ArrayRecord dataset that :class:`wam.data.reader.EpisodeDataset` reads.
Both are also command lines: ``python -m wam.data.importers.hdf5 --help``.
RLDS / Open X-Embodiment TFDS directories: :func:`import_rlds`, presets in :mod:`~.oxe`.
LeRobot datasets (v2.0, v2.1, v3.0; parquet via pyarrow, videos via imageio-ffmpeg, no
torch): :func:`import_lerobot` (``python -m wam.data.importers.lerobot``) and, back out as
LeRobot v3.0, :func:`export_lerobot` (``python -m wam.data.importers.lerobot_export``).
"""

import importlib

from wam.data.importers.mapping import KeyMapping, Preset, VectorKey
from wam.data.importers.sources import SourceError, natural_key
from wam.data.importers.two_pass import REPORT_FILE, read_report, split_counts

# The format modules load on first use: ``python -m wam.data.importers.hdf5`` then runs
# the module once (as __main__), not also as an import of this package.
_LAZY = {"import_hdf5": "hdf5", "aloha": "hdf5", "robomimic": "hdf5",
         "egocentric_hand": "hdf5", "import_npz": "npz", "dojo": "npz"}
_LAZY.update({"import_rlds": "rlds", "RldsDataset": "rlds", "oxe_preset": "oxe"})  # RLDS / OXE
# LeRobot in and out (the preset ``lerobot.lerobot`` is not listed: it shares the module's name)
_LAZY.update({"import_lerobot": "lerobot", "export_lerobot": "lerobot_export"})

__all__ = ["KeyMapping", "Preset", "REPORT_FILE", "SourceError", "VectorKey", "natural_key",
           "read_report", "split_counts", *_LAZY]


def __getattr__(name: str):
  if name in _LAZY:
    return getattr(importlib.import_module(f"wam.data.importers.{_LAZY[name]}"), name)
  raise AttributeError(f"module 'wam.data.importers' has no attribute {name!r}")
