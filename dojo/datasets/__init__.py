"""TFDS datasets made from Dream Dojo tasks (``tfds build dojo/datasets/dojo_robot``)."""
