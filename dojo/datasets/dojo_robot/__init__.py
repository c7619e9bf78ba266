"""The ``dojo_robot`` dataset: scripted-expert demonstrations from a Dojo task."""

from dojo.datasets.dojo_robot.dojo_robot_dataset_builder import (
    Builder, DojoRobotConfig, build, config_name)

__all__ = ["Builder", "DojoRobotConfig", "build", "config_name"]
