"""Any Gymnasium simulator, in its own Python environment, against a served world action
model: record episodes for training, evaluate the policy in closed loop.

Needs numpy, gymnasium, msgpack and websockets only (no JAX, no ``wam``): the policy
client and wire protocol come along in :mod:`wam_gym_client.serving`. See
``docs/gymnasium.md``.

==========================  ==========================================================
module                      what it holds
==========================  ==========================================================
``observation``             ``RobotObservation``: adds cameras, joints, proprio to obs
``cameras``, ``fields``     where images and vectors come from in an env
``rollout``                 N episodes over a vector env's sub-envs (any autoreset mode)
``record``                  episodes -> ``.npz`` + ``mapping.json`` (command line)
``evaluate``                closed loop through the policy server (command line)
``episodes``                the episode file layout and its key mapping
``images``, ``gif``         area resizing, GIFs without Pillow
``progress``                success from ``info``, Wilson interval, progress line
==========================  ==========================================================
"""

# ``record`` and ``evaluate`` are not imported here: ``python -m wam_gym_client.record``
# would otherwise load that module twice (once as __main__).
from wam_gym_client.envs import make_env_fn, make_vector_env
from wam_gym_client.observation import RobotObservation
from wam_gym_client.rollout import run_episodes

__all__ = ["RobotObservation", "make_env_fn", "make_vector_env", "run_episodes"]
