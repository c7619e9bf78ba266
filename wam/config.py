"""Model configs: named size variants and the defaults of every model option.

    config.model = wam.config.model_config("toy")      # or tiny, small, base, large

A variant fixes the transformer's width, depth and heads and the tokenizer's stages; any
single value is overridden afterwards (``--config.model.depth=6``). Parameter counts
for one 32x32 camera, 9 joints, 8 actions and 4-action chunks:

  toy     width 128, depth 4     1.9 M    trains in minutes on a 2-core CPU
  tiny    width 256, depth 6     7.5 M
  small   width 512, depth 12    55 M
  base    width 768, depth 16    168 M
  large   width 1024, depth 24   432 M
"""

from __future__ import annotations

import difflib
from typing import Any, Mapping

from ml_collections import config_dict

VARIANTS: dict[str, dict[str, Any]] = {
    "toy": dict(width=128, depth=4, num_heads=2, tokenizer_channels=(32, 64, 64),
                latent_channels=32, text_hidden=64, text_depth=1),
    "tiny": dict(width=256, depth=6, num_heads=4, tokenizer_channels=(32, 64),
                 latent_channels=16, text_hidden=128, text_depth=2),
    "small": dict(width=512, depth=12, num_heads=8, tokenizer_channels=(64, 128),
                  latent_channels=16, text_hidden=256, text_depth=2),
    "base": dict(width=768, depth=16, num_heads=12, tokenizer_channels=(64, 128, 256),
                 latent_channels=32, text_hidden=384, text_depth=4),
    "large": dict(width=1024, depth=24, num_heads=16, tokenizer_channels=(128, 256, 256),
                  latent_channels=32, text_hidden=512, text_depth=4),
}


def model_config(variant: str = "toy") -> config_dict.ConfigDict:
  """The model config of size ``variant`` (one of ``VARIANTS``)."""
  if variant not in VARIANTS:
    raise ValueError(f"Unknown model variant {variant!r}{suggest(variant, VARIANTS)}; "
                     f"choose from {sorted(VARIANTS)}.")
  v = VARIANTS[variant]
  c = config_dict.ConfigDict()
  c.variant = variant
  c.width = v["width"]
  c.depth = v["depth"]
  c.num_heads = v["num_heads"]
  c.mlp_ratio = 4.0
  c.max_blocks = 16            # longest sequence of time blocks (training or dreaming)
  c.max_embodiments = 16
  c.goal_image = False         # condition on a goal frame (the window's last frame)
  c.dtype = "float32"          # activations: float32 | bfloat16 (parameters stay float32)
  c.remat = False              # rematerialise blocks to save memory on big variants
  c.tokenizer = config_dict.ConfigDict(dict(
      channels=tuple(v["tokenizer_channels"]), latent_channels=v["latent_channels"]))
  c.text_encoder = config_dict.ConfigDict(dict(
      name="bytes", kwargs=dict(hidden=v["text_hidden"], depth=v["text_depth"],
                                num_heads=4, max_length=256)))
  # Objective: "flow" (flow matching; dreams with any number of Euler steps) or
  # "regression" (deterministic, one step; for comparison).
  c.objective = "flow"
  c.loss_weights = config_dict.ConfigDict(dict(
      video=1.0, state=1.0, action=1.0, reconstruction=1.0))
  # Probability that a block's action chunk is given clean (world-model mode) rather
  # than denoised jointly with the frames (policy mode); both modes train at once.
  c.given_action_prob = 0.5
  c.time_sampling = "quadratic"  # uniform | logit_normal | quadratic (flow time per block)
  # Typical size of what changes from one block to the next (normalised units): sets
  # how the prediction heads blend the noisy input with the network's correction
  # (``wam.objective.precondition``).
  c.residual_scale = config_dict.ConfigDict(dict(frames=0.5, state=0.5, actions=1.0))
  # The prior guess of the action chunk that the action head corrects: "zero", or
  # "state": a learned linear function of the block's joints and proprio, so that "keep
  # the arm where it is" (absolute joint targets sit a few hundredths of their spread
  # from the current angles) need not be copied through the transformer (docs/model.md).
  c.action_prior = "zero"
  # Slots of joints/proprio (names from the data layouts) the model predicts but never
  # reads: simulator state that no real camera measures (reach's `reach_target`), so that
  # finding it in the frames is a training signal for perception and the dream carries
  # it for planners. Data without the slot leaves its loss masked (docs/model.md).
  c.predict_only = ()
  # What trains the tokenizer: "reconstruction" only (latents fixed for the world model)
  # or also every world-model loss through the "context" latents it reads.
  c.tokenizer_gradient = "reconstruction"
  # Observation frame tokens also read the raw pixels of their patch through a linear
  # embedding (ViT's), trained end to end by every world-model loss: a path for small,
  # high-contrast things the reconstruction-trained tokenizer blurs (reach's 1-2 pixel
  # targets; docs/model.md). Dreamed observations read their decoded frames.
  c.pixel_patches = False
  return c


# Where each number of a variant lives in the model config.
_VARIANT_PATHS = {"width": "width", "depth": "depth", "num_heads": "num_heads",
                  "tokenizer_channels": "tokenizer.channels",
                  "latent_channels": "tokenizer.latent_channels",
                  "text_hidden": "text_encoder.kwargs.hidden",
                  "text_depth": "text_encoder.kwargs.depth"}


def variant_overrides(variant: str, prefix: str = "model.") -> dict[str, Any]:
  """The overrides that turn a model config into size ``variant``: label and every dim.

  ``--config.model.variant=tiny`` alone only relabels (the dims were set when the config
  was built), so a sweep's size axis sets all of these::

    add("tiny", **wam.config.variant_overrides("tiny"))
  """
  if variant not in VARIANTS:
    raise ValueError(f"Unknown model variant {variant!r}{suggest(variant, VARIANTS)}; "
                     f"choose from {sorted(VARIANTS)}.")
  dims = {prefix + path: VARIANTS[variant][key] for key, path in _VARIANT_PATHS.items()}
  return {prefix + "variant": variant, **dims}


def _dims(model: config_dict.ConfigDict) -> dict[str, Any]:
  out = {}
  for key, path in _VARIANT_PATHS.items():
    node = model
    for part in path.split("."):
      node = node[part] if part in node else None
      if node is None:
        break
    out[key] = tuple(node) if isinstance(node, (list, tuple)) else node
  return out


def check_variant(model: config_dict.ConfigDict, where: str = "config.model") -> None:
  """Raises ``ValueError`` when ``variant`` was changed without the dims it names.

  The dims are exactly another variant's while the label says ``variant``: the label was
  overridden alone (``--config.model.variant=tiny`` on a toy config), which would train
  and report the wrong size. Dims set one by one (a custom size) are left alone.
  """
  label = model.get("variant")
  if label not in VARIANTS:
    return
  dims = _dims(model)
  for name, v in VARIANTS.items():
    own = {k: tuple(x) if isinstance(x, (list, tuple)) else x for k, x in v.items()}
    if name != label and dims == own:
      raise ValueError(
          f"{where}.variant is {label!r} but its width, depth, heads, tokenizer and text "
          f"encoder are {name!r}'s: overriding the label alone does not resize the model. "
          f"Pass the size in the config argument (e.g. experiments/configs/wam.py:{label}) "
          f"or set every dim, as wam.config.variant_overrides({label!r}) lists them.")


def suggest(name: str, choices) -> str:
  """`` (did you mean 'x'?)`` for the closest of ``choices``, or ``""``."""
  close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
  return f" (did you mean {close[0]!r}?)" if close else ""


def check_keys(config: config_dict.ConfigDict, reference: Mapping | config_dict.ConfigDict,
               where: str = "config") -> None:
  """Raises ``KeyError`` for keys of ``config`` absent from ``reference``, with a suggestion.

  Nested ConfigDicts are checked recursively; a reference value that is an empty
  ConfigDict (such as ``data.datasets``) accepts any keys.
  """
  ref = reference.to_dict() if isinstance(reference, config_dict.ConfigDict) else reference
  cfg = config.to_dict() if isinstance(config, config_dict.ConfigDict) else config
  for key, value in cfg.items():
    if key not in ref:
      raise KeyError(f"Unknown config key {where}.{key}{suggest(key, ref)}; "
                     f"valid keys of {where}: {sorted(ref)}.")
    if isinstance(value, dict) and isinstance(ref[key], dict) and ref[key]:
      check_keys(value, ref[key], f"{where}.{key}")
