"""A module that a checkpoint's ``config.json`` names as its text encoder (the
``loading.load`` tests check whether it was imported)."""

from wam.text_encoder import ByteTextEncoder as Encoder  # noqa: F401  (same parameters)
