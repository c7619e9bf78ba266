"""Geom colours as MuJoCo's visualiser picks them: geom rgba, materials, textures.

MuJoCo's rule (``setMaterial`` in ``engine_vis_visualize.c``; the ``geom/rgba``
attribute in the MJCF reference): a geom with a material takes the material's rgba
unless its own rgba differs from the default (0.5, 0.5, 0.5, 1), which then wins.
The camera has no texture coordinates, so the RGB texture of a geom's material is
approximated by its mean colour, which multiplies the rgba as the texture would.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

DEFAULT_RGBA = np.array([0.5, 0.5, 0.5, 1.0], np.float32)
_TEXROLE_RGB = int(mujoco.mjtTextureRole.mjTEXROLE_RGB)
_NTEXROLE = int(mujoco.mjtTextureRole.mjNTEXROLE)


def texture_mean_rgb(model: mujoco.MjModel, tex_id: int) -> np.ndarray:
  """Mean RGB in [0, 1] of texture ``tex_id`` (white for a texture without colour)."""
  n = int(model.tex_width[tex_id] * model.tex_height[tex_id])
  channels = int(model.tex_nchannel[tex_id])
  if channels < 3 or n == 0:
    return np.ones(3, np.float32)
  adr = int(model.tex_adr[tex_id])
  pixels = np.asarray(model.tex_data[adr:adr + n * channels]).reshape(n, channels)
  return (pixels[:, :3].mean(0) / 255.0).astype(np.float32)


class GeomColours:
  """Resolves per-geom rgba tables into the colours drawn (static model tables)."""

  def __init__(self, model: mujoco.MjModel):
    self.matid = np.asarray(model.geom_matid, np.int32)
    mat_rgba = np.asarray(model.mat_rgba, np.float32).reshape(-1, 4)
    self.mat_rgba = mat_rgba if len(mat_rgba) else np.zeros((1, 4), np.float32)
    texid = np.asarray(model.mat_texid).reshape(model.nmat, _NTEXROLE)
    tex_rgb = np.ones((model.ngeom, 3), np.float32)  # a texture's mean colour, per geom
    for geom in np.flatnonzero(self.matid >= 0):
      tex = texid[self.matid[geom], _TEXROLE_RGB]
      if tex >= 0:
        tex_rgb[geom] = texture_mean_rgb(model, int(tex))
    self.tex_rgb = tex_rgb
    self.any_material = bool(np.any(self.matid >= 0))
    self.rgba = np.asarray(self.resolve(np.asarray(model.geom_rgba, np.float32)))

  def resolve(self, geom_rgba: jax.Array) -> jax.Array:
    """The drawn colours f32[ngeom, 4] for a (possibly run-time) ``geom_rgba`` table."""
    if not self.any_material:  # nothing to resolve: the table is drawn as given
      return geom_rgba
    xp = np if isinstance(geom_rgba, np.ndarray) else jnp
    uses_material = (self.matid >= 0) & xp.all(geom_rgba == DEFAULT_RGBA, axis=-1)
    base = xp.where(uses_material[:, None], self.mat_rgba[np.maximum(self.matid, 0)],
                    geom_rgba)
    return xp.concatenate([base[:, :3] * self.tex_rgb, base[:, 3:]], axis=-1)
