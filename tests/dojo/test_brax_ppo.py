"""brax.training's PPO runs unchanged on a Dojo task and beats a random policy."""

import jax
import numpy as np

import dojo
from dojo import rollout
from dojo.brax_training import ppo_train


def test_ppo_on_reach_beats_random():
  env = dojo.load("reach", cameras=())
  episode_length = 25
  progress = []
  make_policy, params, _ = ppo_train(
      env, num_timesteps=25_600, num_envs=64, episode_length=episode_length,
      num_evals=2, unroll_length=10, batch_size=64, num_minibatches=4,
      num_updates_per_batch=4, learning_rate=3e-3, entropy_cost=1e-3, discounting=0.95,
      normalize_observations=True, seed=0,
      progress_fn=lambda step, metrics: progress.append(
          float(metrics["eval/episode_reward"])))
  trained = progress[-1]
  policy = make_policy(params, deterministic=True)
  del policy
  random_return = _random_return(env, episode_length)
  assert trained > random_return, (trained, random_return)
  assert np.isfinite(trained)


def _random_return(env, episode_length):
  run = rollout.make_rollout(env, rollout.random_policy(env), episode_length,
                             keep=lambda s: {"reward": s.reward})
  _, records, _ = run(jax.random.key(0), 64)
  return float(np.asarray(records["reward"]).sum(0).mean())
