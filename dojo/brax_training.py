"""Running ``brax.training`` agents unchanged on Dojo envs."""

from __future__ import annotations

import functools
from typing import Any, Callable

from dojo.env import Env
from dojo.wrappers import wrap_for_training


def ppo_train(env: Env, *, obs_key: str = "privileged", randomize: bool = False,
              **ppo_kwargs: Any) -> tuple[Callable, Any, dict]:
  """``brax.training.agents.ppo.train`` on a Dojo env.

  Args:
    env: an unbatched Dojo env (build it with ``cameras=()`` unless the policy uses
      pixels: rendering every PPO step is costly).
    obs_key: the observation entry the policy and value networks read.
    randomize: train over domain-randomised models (``env.randomize_model``).
    **ppo_kwargs: passed to ``ppo.train`` (num_timesteps, num_envs, episode_length...).

  Returns:
    ``(make_policy, params, metrics)`` as ``ppo.train`` returns them.
  """
  from third_party import brax_compat  # pylint: disable=import-outside-toplevel
  brax_compat.apply()
  from brax.training.agents.ppo import networks as ppo_networks  # pylint: disable=import-outside-toplevel
  from brax.training.agents.ppo import train as ppo  # pylint: disable=import-outside-toplevel

  network_factory = functools.partial(ppo_networks.make_ppo_networks,
                                      policy_obs_key=obs_key, value_obs_key=obs_key)
  ppo_kwargs.setdefault("network_factory", network_factory)
  return ppo.train(
      environment=env, wrap_env_fn=wrap_for_training,
      randomization_fn=env.unwrapped.randomize_model if randomize else None,
      **ppo_kwargs)
