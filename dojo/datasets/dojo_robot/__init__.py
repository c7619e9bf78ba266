"""The ``dojo_robot`` dataset: scripted-expert demonstrations from a Dojo task."""

from dojo.datasets.dojo_robot.dojo_robot_dataset_builder import Builder, DojoRobotConfig

__all__ = ["Builder", "DojoRobotConfig"]
