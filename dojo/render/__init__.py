"""A camera in pure JAX: ray-cast RGB, depth and segmentation inside jit/vmap/scan."""

from dojo.render.camera import CameraSpec, look_at
from dojo.render.renderer import Image, Renderer

__all__ = ["CameraSpec", "Image", "Renderer", "look_at"]
