"""Writing frames to GIF/MP4 and image grids (for humans looking at episodes).

The helpers live in :mod:`wam.visualize`; this module re-exports them for dojo's
callers (``from dojo import video; video.tile(...)``).
"""

from wam.visualize import grid, tile, write_video

__all__ = ["tile", "grid", "write_video"]
