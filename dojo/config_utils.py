"""Applying user overrides to a task config with clear errors for typos."""

from __future__ import annotations

import difflib
from typing import Any, Mapping

from ml_collections import config_dict


def apply_overrides(config: config_dict.ConfigDict, overrides: Mapping[str, Any],
                    where: str) -> config_dict.ConfigDict:
  """Returns a copy of ``config`` with ``overrides`` (dotted keys allowed) applied.

  Raises:
    KeyError: an override names a key the config does not have; the message lists
      the close matches and the valid keys.
  """
  config = config_dict.ConfigDict(config.to_dict())
  valid = sorted(_flat_keys(config))
  for key, value in overrides.items():
    if key not in valid:
      close = difflib.get_close_matches(key, valid, n=3)
      hint = f" Did you mean {close}?" if close else ""
      raise KeyError(f"{where} has no config key {key!r}.{hint} Valid keys: {valid}.")
    node = config
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    if isinstance(node[leaf], tuple) and isinstance(value, list):
      value = tuple(value)
    node[leaf] = value
  return config.lock()


def _flat_keys(config: config_dict.ConfigDict, prefix: str = "") -> list[str]:
  keys = []
  for k, v in config.items():
    if isinstance(v, config_dict.ConfigDict):
      keys.extend(_flat_keys(v, prefix + k + "."))
    else:
      keys.append(prefix + k)
  return keys
