"""Importers of real human-video datasets into the episode schema (``wam.data.schema``).

``egodex``: Apple's EgoDex layout (per-episode HDF5 of hand/camera transforms beside an
mp4). The generic HDF5/npz importers are in :mod:`wam.data.importers`.
"""
