"""TFDS builders of egoscale datasets."""
