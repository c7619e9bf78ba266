"""Importers of real human-video datasets into the episode schema (``wam.data.schema``).

``egodex``: Apple's EgoDex layout (per-episode HDF5 of hand/camera transforms beside an
mp4), its files read by ``egodex_files``. The generic HDF5/npz importers, and the
two-pass import that ``egodex`` shares with them, are in :mod:`wam.data.importers`.
"""
