"""The ``egocentric_human`` dataset: synthetic egocentric human-hand video."""

from egoscale.datasets.egocentric_human.egocentric_human_dataset_builder import (
    Builder, EgocentricHumanConfig, build, config_name)

__all__ = ["Builder", "EgocentricHumanConfig", "build", "config_name"]
