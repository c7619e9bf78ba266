"""Meta-World as a standard benchmark, run through the Gymnasium client (docs/benchmarks/metaworld.md).

``python -m experiments.metaworld`` is the command. Modules that run in the Meta-World venv
(``tasks``, ``sim``) import only numpy, gymnasium and metaworld; the rest runs in the
project's venv. This ``__init__`` imports nothing, so both sides can import the package.
"""
