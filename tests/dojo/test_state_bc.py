"""State BC: episodes to pairs, training, closed loop in the toy task, save/load, errors."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dojo import closed_loop, collect, state_bc
from dojo.env import State
from tests.dojo.toy import Toy

CHUNK = 4
LINK = 0.2  # both toy links are 0.2 m long


class GoalToy(Toy):
  """The toy task with a random goal per episode and an expert that reaches it.

  The plain toy expert holds one fixed pose (and never meets the success radius), so a
  constant action would clone it. Here the goal is the tip position of a random pose
  and the expert moves its joint targets at most 0.15 rad per step towards that pose:
  the right action depends on the goal and the joints, so the policy has to learn
  inverse kinematics from ``obs["privileged"]`` (which holds the goal, not the pose).
  """

  def _reset_data(self, rng, data, info):
    rng_start, rng_goal = jax.random.split(rng)
    data, info = super()._reset_data(rng_start, data, info)
    # One elbow side (q2 > 0), so the pose for a goal is unique.
    pose = jax.random.uniform(rng_goal, (2,), minval=jnp.array([-0.6, 0.8]),
                              maxval=jnp.array([0.6, 1.8]))
    angles = jnp.array([pose[0], pose[0] + pose[1]])
    tip = LINK * jnp.array([jnp.cos(angles).sum(), jnp.sin(angles).sum()])
    return data, {**info, "goal": jnp.array([tip[0], tip[1], 0.3]), "goal_pose": pose}

  def expert_action(self, state, rng, noise=0.0):
    q = state.data.qpos[:2]
    ctrl = q + jnp.clip(state.info["goal_pose"] - q, -0.15, 0.15)
    return self.ctrl_to_action(ctrl) + noise * jax.random.normal(rng, (2,))


class MeanController:
  """Always the mean demonstrated chunk: what a policy that ignores the state does."""

  def __init__(self, chunks):
    self.chunk = CHUNK
    self.actions = jnp.asarray(chunks.mean(0).reshape(CHUNK, -1))

  def init(self, state):
    return jnp.zeros(())

  def act(self, carry, state, rng):
    return self.actions, carry


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  env = GoalToy(cameras=())
  episode_dir = str(tmp_path_factory.mktemp("episodes"))
  stats = collect.collect_to_dir(env, episode_dir, num_episodes=64, batch_size=64,
                                 task_name="toy", num_steps=40, policy="noisy_expert",
                                 noise=0.1)
  obs, chunks = state_bc.load_episodes([episode_dir], chunk=CHUNK)
  config = state_bc.StateBCConfig(hidden=(64, 64), learning_rate=3e-3, steps=1500,
                                  batch_size=128, seed=0, chunk=CHUNK)
  return env, stats, obs, chunks, state_bc.train(obs, chunks, config), episode_dir


def test_pairs_are_states_and_the_real_actions_that_follow(trained):
  env, _, obs, chunks, _, episode_dir = trained
  # 64 episodes of 40 real actions (plus a padded last step): 40 - CHUNK + 1 pairs each.
  assert obs.shape == (64 * (40 - CHUNK + 1), 7) and obs.dtype == np.float32
  assert chunks.shape == (obs.shape[0], CHUNK * env.action_size)
  first = collect.read_npz(collect.episode_path(episode_dir, 0))["steps"]
  np.testing.assert_array_equal(obs[0], first["observation"]["privileged"][0])
  np.testing.assert_array_equal(chunks[0], first["action"][:CHUNK].reshape(-1))
  np.testing.assert_array_equal(chunks[1], first["action"][1:CHUNK + 1].reshape(-1))


def test_training_beats_the_mean_action(trained):
  _, _, obs, chunks, policy, _ = trained
  baseline = float(np.mean((chunks - chunks.mean(0)) ** 2))
  loss = state_bc.mse(policy, obs, chunks)
  # The demonstrations' noise (0.1 per action: variance 0.01) cannot be predicted; it is
  # a third of the variance around the mean action here. The fit gets close to it.
  noise = 0.1 ** 2
  assert loss < 0.5 * baseline and loss < 1.3 * noise, (loss, baseline)


def test_closed_loop_reaches_goals_like_the_expert(trained):
  env, stats, _, chunks, policy, _ = trained
  def run(controller):
    return closed_loop.run_episodes(env, controller, jax.random.key(7), num_episodes=16,
                                    num_chunks=10)

  bc, mean = run(policy), run(MeanController(chunks))
  bc_rate, mean_rate = bc["success"].mean(), mean["success"].mean()
  # Unseen goals (other reset keys than the demonstrations'): the noisy expert that
  # collected the data succeeds in stats.success_rate of its episodes.
  assert bc_rate >= 0.8 and bc_rate >= stats.success_rate - 0.15, (bc_rate, stats)
  assert mean_rate <= 0.5 and bc["return"].mean() > mean["return"].mean(), (mean_rate,)


def test_save_load_round_trip(trained, tmp_path):
  env, _, obs, _, policy, _ = trained
  path = policy.save(str(tmp_path / "policy" / "state_bc.npz"))
  loaded = state_bc.StateBC.load(path)
  assert loaded.config == policy.config and loaded.chunk == CHUNK
  assert os.listdir(tmp_path / "policy") == ["state_bc.npz"]  # no temp left
  # act reads only obs["privileged"] (the closed-loop test runs it on real env states).
  states = State(None, {"privileged": jnp.asarray(obs[::100][:4])}, jnp.zeros(4),
                 jnp.zeros(4), {}, {})
  def act(p):
    return np.asarray(jax.jit(jax.vmap(
        lambda s: p.act(p.init(s), s, jax.random.key(0))[0]))(states))

  actions = act(policy)
  assert actions.shape == (4, CHUNK, env.action_size)
  assert np.all(np.abs(actions) <= 1)
  np.testing.assert_array_equal(act(loaded), actions)


def test_clear_errors(tmp_path, trained):
  empty = tmp_path / "empty"
  empty.mkdir()
  with pytest.raises(ValueError, match=r"No episode_\*\.npz files in .*empty"):
    state_bc.load_episodes([str(empty)], chunk=CHUNK)
  # An episode without privileged observations.
  steps = {"observation": {"joints": np.zeros((5, 2), np.float32)},
           "action": np.zeros((5, 2), np.float32), "action_mask": np.arange(5) < 4}
  blind = tmp_path / "blind"
  collect.write_npz({"steps": steps, "metadata": {}}, str(blind / "episode_00000.npz"))
  with pytest.raises(ValueError, match="blind.*no 'privileged'"):
    state_bc.load_episodes([str(blind)], chunk=CHUNK)
  # Episodes that disagree in the action size.
  mixed = tmp_path / "mixed"
  for i, a in enumerate((2, 3)):
    steps = {"observation": {"privileged": np.zeros((6, 7), np.float32)},
             "action": np.zeros((6, a), np.float32), "action_mask": np.arange(6) < 5}
    collect.write_npz({"steps": steps, "metadata": {}}, str(mixed / f"episode_{i:05d}.npz"))
  with pytest.raises(ValueError, match="disagree.*action dim 3"):
    state_bc.load_episodes([str(mixed)], chunk=CHUNK)
  policy = trained[4]
  with pytest.raises(ValueError, match="privileged states of size 7"):
    policy.predict(jnp.zeros((5,)))
