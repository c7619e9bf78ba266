"""The libraries of the commands in ``experiments/``, named after them (no absl flags).

``experiments/<command>.py`` parses flags and calls ``experiments/lib/<command>.py``; a
library too large for one file continues in ``<command>_<part>.py`` beside it (for
example ``great_parallel_recipe.py``, the main job's training stages). Two modules serve
every command: ``console.py`` (what the terminal shows, and the log files) and
``stages.py`` (resumable multi-stage jobs, and the check that a workdir holds this
config's runs).
"""
