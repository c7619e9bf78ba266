"""The world action model: learning, masks, causality, cached dreaming, sizes, bad input."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from wam import config as wam_config
from wam import dream, model as wam_model, objective, policy_shortcut, train_state
from wam.data.layout import Layout
from wam.data.synthetic import synthetic_batch


def tiny_config(objective_name: str = "flow"):
  cfg = wam_config.model_config("toy")
  cfg.width, cfg.depth, cfg.num_heads = 64, 2, 2
  cfg.tokenizer.channels, cfg.tokenizer.latent_channels = (16,), 8
  cfg.text_encoder.kwargs.update(hidden=16, depth=1, num_heads=2)
  cfg.objective = objective_name
  return cfg


@pytest.fixture(scope="module")
def batch():
  b = synthetic_batch(2, num_frames=3, action_chunk=2, image_size=(16, 16))
  return {k: jnp.asarray(v) for k, v in b.items()}


@pytest.fixture(scope="module")
def model(batch):
  m = wam_model.WorldActionModel(tiny_config(), wam_model.Dims.from_batch(batch),
                                 rngs=nnx.Rngs(0))
  # Heads start at zero; make outputs depend on the inputs for the equality tests.
  for head in (m.action_head, m.frame_head, m.state_head):
    head.kernel[...] = 0.3 * jax.random.normal(jax.random.key(1), head.kernel.shape)
  return m


def _train(cfg, batch, steps, fixed_noise):
  m = wam_model.WorldActionModel(cfg, wam_model.Dims.from_batch(batch), rngs=nnx.Rngs(0))
  opt = nnx.Optimizer(m, optax.adam(3e-3), wrt=nnx.Param)

  @nnx.jit
  def step(m, opt, rng):
    (_, metrics), grads = nnx.value_and_grad(lambda m: m.loss(batch, rng), has_aux=True)(m)
    opt.update(m, grads)
    return metrics["loss"]
  losses = [float(step(m, opt, jax.random.key(0 if fixed_noise else i))) for i in range(steps)]
  return np.mean(losses[:3]), np.mean(losses[-5:])


def test_overfits_a_tiny_batch(batch):
  """The flow objective on a fixed batch and fixed noise draw falls more than 10x."""
  first, last = _train(tiny_config("flow"), batch, 120, fixed_noise=True)
  assert last < first / 10, (first, last)


def test_regression_variant_learns(batch):
  first, last = _train(tiny_config("regression"), batch, 60, fixed_noise=False)
  assert last < first / 2, (first, last)


def _grads(model, batch):
  graphdef, params = nnx.split(model, nnx.Param)

  def loss(p):
    return nnx.merge(graphdef, p).loss(batch, jax.random.key(3))[0]
  return jax.jit(jax.grad(loss))(params)


def test_action_free_batch_gives_zero_gradient_to_the_action_head(model, batch):
  free = dict(batch, action_mask=jnp.zeros_like(batch["action_mask"]),
              actions=jnp.zeros_like(batch["actions"]))
  grads = _grads(model, free)
  assert float(jnp.abs(grads["action_head"]["kernel"][...]).max()) == 0.0
  assert float(jnp.abs(grads["action_head"]["bias"][...]).max()) == 0.0
  # ... while video, state and the tokenizer still learn.
  assert float(jnp.abs(grads["frame_head"]["kernel"][...]).max()) > 0.0
  assert float(jnp.abs(grads["state_head"]["kernel"][...]).max()) > 0.0
  with_actions = _grads(model, batch)
  assert float(jnp.abs(with_actions["action_head"]["kernel"][...]).max()) > 0.0


def test_play_windows_always_give_their_actions(model, batch):
  """Windows whose actions are not to be imitated train world-model mode only."""
  z = model.latents(batch["frames"])
  state, state_mask = model.state_of(batch)
  x1, masks = objective.targets(z, state, state_mask, batch, model.tokens_per_frame)
  size = batch["frames"].shape[0]
  imitate = jnp.arange(size) % 2 == 0
  config = dict(model.config.to_dict(), given_action_prob=0.0)
  flow = objective.Flow.sample(jax.random.key(0), x1, masks["has_actions"],
                               wam_model.config_dict.ConfigDict(config), imitate)
  assert bool(jnp.all(flow.tau_action[~imitate] == 1.0))
  assert bool(jnp.all(flow.tau_action[imitate] < 1.0))
  # No action loss reaches the play windows: their action head gradient is zero.
  play = dict(batch, imitate=jnp.zeros(size, bool))
  assert float(jnp.abs(_grads(model, play)["action_head"]["kernel"][...]).max()) == 0.0


def _forward(model, batch, flow):
  z = model.latents(batch["frames"])
  return model.forward(batch, z, flow.noisy, flow.tau_action, flow.tau_video)


def _flow(model, batch, rng=0):
  z = model.latents(batch["frames"])
  state, state_mask = model.state_of(batch)
  x1, masks = objective.targets(z, state, state_mask, batch, model.tokens_per_frame)
  return objective.Flow.sample(jax.random.key(rng), x1, masks["has_actions"], model.config)


def test_future_blocks_do_not_change_earlier_predictions(model, batch):
  flow = _flow(model, batch)
  before = _forward(model, batch, flow)
  # Change everything about block 2: its frame, joints, actions and its noisy inputs.
  changed = dict(batch)
  changed["frames"] = batch["frames"].at[:, 2].set(255 - batch["frames"][:, 2])
  changed["joints"] = batch["joints"].at[:, 2].add(5.0)
  changed["actions"] = batch["actions"].at[:, 2].add(5.0)
  noisy = objective.Targets(*[x.at[:, 2].add(3.0) for x in flow.noisy])
  after = _forward(model, changed, flow._replace(noisy=noisy))
  for b, a in zip(before, after):
    np.testing.assert_allclose(a[:, :2], b[:, :2], atol=1e-5)
    assert float(jnp.abs(a[:, 2] - b[:, 2]).max()) > 1e-3  # block 2 itself did change


def test_policy_shortcut_sees_the_next_frame_only_when_it_is_clean(model, batch):
  """Only block 0 is scored: its next frame (frames[:, 1]) is invisible at tau_video = 0
  and read at tau_video = 1, so changing it moves only the second figure."""
  first_block = dict(batch, action_mask=batch["action_mask"].at[:, 1:].set(False))
  changed = dict(first_block, frames=batch["frames"].at[:, 1].set(255 - batch["frames"][:, 1]))
  run = jax.jit(lambda b: policy_shortcut.action_error_by_video_time(
      model, b, jax.random.key(0), video_times=(0.0, 1.0), draws=2))
  before, after = run(first_block), run(changed)
  assert before.shape == (2,) and bool(jnp.isfinite(before).all())
  np.testing.assert_allclose(after[0], before[0], rtol=1e-5)
  assert abs(float(after[1] - before[1])) > 1e-4 * float(before[1])


@pytest.mark.parametrize("given", [False, True], ids=["policy_mode", "world_model_mode"])
def test_kv_cached_rollout_equals_full_recomputation(model, batch, given):
  context = dream.context_of(batch, 1)
  actions = batch["actions"][:, :2] if given else None
  cached = dream.dream(model, context, jax.random.key(0), horizon=2, actions=actions,
                       flow_steps=2, decode=False)
  full = dream.dream(model, context, jax.random.key(0), horizon=2, actions=actions,
                     flow_steps=2, decode=False, use_cache=False)
  for a, b in zip(cached[:3], full[:3]):
    np.testing.assert_allclose(a, b, atol=2e-5)
  if given:
    np.testing.assert_array_equal(cached.actions, actions)


def test_closed_loop_act_uses_real_observations(model, batch):
  """act() on real frames 0 and 1 plans block 1 exactly as a dream with both frames as
  context does, and differently from a dream that imagined frame 1 itself."""
  rng = jax.random.key(2)
  cache = dream.start(model, batch["instruction"], batch["instruction_mask"],
                      batch["camera_mask"], num_blocks=3)
  for t in range(2):
    obs = {k: (v[:, t] if k in dream.TIME_FIELDS else v) for k, v in batch.items()}
    actions, _, cache = dream.act(model, cache, t, obs, jax.random.fold_in(rng, 0),
                                  flow_steps=2)
  real = dream.dream(model, dream.context_of(batch, 2), rng, horizon=1, flow_steps=2)
  np.testing.assert_allclose(actions, real.actions[:, 0], atol=2e-5)
  imagined = dream.dream(model, dream.context_of(batch, 1), rng, horizon=2, flow_steps=2)
  assert float(jnp.abs(imagined.actions[:, 1] - actions).max()) > 1e-4


def test_one_step_rollout_matches_the_training_forward_pass(model, batch):
  """Dreaming one Euler step from noise = the training pass's estimate at tau = 0."""
  t = 1  # predict block 1 from observed blocks 0 and 1
  noise = dream.block_noise(model, jax.random.key(5), 2)
  cache = dream.start(model, batch["instruction"], batch["instruction_mask"],
                      batch["camera_mask"], num_blocks=3)
  z = model.latents(batch["frames"])
  state, state_mask = model.state_of(batch)
  for i in range(t + 1):
    cache = dream.observe(model, cache, i, z[:, i], state[:, i], state_mask[:, i],
                          batch["camera_mask"], batch["embodiment"])
  one_step = dream.predict(model, cache, t, noise, last_latents=z[:, t],
                           last_state=state[:, t] * state_mask[:, t],
                           camera_mask=batch["camera_mask"], embodiment=batch["embodiment"],
                           flow_steps=1)
  flow = _flow(model, batch)
  noisy = objective.Targets(*[x.at[:, t].set(n) for x, n in zip(flow.noisy, noise)])
  zeros = jnp.zeros_like(flow.tau_video)
  out = model.forward(batch, z, noisy, zeros, zeros)
  for estimate, o in zip(one_step, out):
    np.testing.assert_allclose(estimate, o[:, t], atol=2e-5)


def test_dream_runs_under_jit_with_one_flow_step(model, batch):
  graphdef, params = nnx.split(model)
  context = dream.context_of(batch, 1)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def run(params, context):
    return dream.dream(nnx.merge(graphdef, params), context, jax.random.key(0), horizon=2,
                       flow_steps=1)
  out = run(params, context)
  out = run(params, context)
  assert out.frames.shape == (2, 2, 1, 16, 16, 3)
  assert float(out.frames.min()) >= 0.0 and float(out.frames.max()) <= 1.0


@pytest.mark.parametrize("variant,low,high", [("toy", 0.5e6, 3e6), ("small", 20e6, 80e6),
                                              ("large", 200e6, 500e6)])
def test_size_variants(batch, variant, low, high):
  dims = wam_model.Dims(num_frames=4, num_cameras=1, image_size=(32, 32), joints=9,
                        proprio=0, action=8, action_chunk=4, instruction_length=64)
  abstract = nnx.eval_shape(lambda: wam_model.WorldActionModel(
      wam_config.model_config(variant), dims, rngs=nnx.Rngs(0)))
  assert low < wam_model.count_parameters(abstract) < high


def test_bad_input_errors(model, batch):
  with pytest.raises(ValueError, match="did you mean 'small'"):
    wam_config.model_config("smal")
  bad = dict(batch, frames=batch["frames"][:, :, :, :8], joints=batch["joints"][..., :2])
  with pytest.raises(wam_model.BatchShapeError, match=r"frames: batch \[2, 3, 1, 8, 16, 3\] "
                     r"vs model \[2, 3, 1, 16, 16, 3\]") as e:
    model.dims.check_batch(bad)
  assert "joints: batch [2, 3, 2] vs model [2, 3, 3]" in str(e.value)
  with pytest.raises(ValueError, match="exceeds model.max_blocks"):
    dream.start(model, batch["instruction"], batch["instruction_mask"], batch["camera_mask"],
                num_blocks=99)


def test_bfloat16_activations(batch):
  cfg = tiny_config()
  cfg.dtype = "bfloat16"
  m = wam_model.WorldActionModel(cfg, wam_model.Dims.from_batch(batch), rngs=nnx.Rngs(0))
  loss, _ = nnx.jit(lambda m, b: m.loss(b, jax.random.key(0)))(m, batch)
  assert loss.dtype == jnp.float32 and bool(jnp.isfinite(loss))
  assert m.backbone.blocks[0].mlp.gate.kernel[...].dtype == jnp.float32  # params stay f32


def test_goal_image_conditioning(batch):
  cfg = tiny_config()
  cfg.goal_image = True
  m = wam_model.WorldActionModel(cfg, wam_model.Dims.from_batch(batch), rngs=nnx.Rngs(0))
  loss, _ = nnx.jit(lambda m, b: m.loss(b, jax.random.key(0)))(m, batch)
  assert bool(jnp.isfinite(loss))
  context = dream.context_of(batch, 1)
  context["goal_latents"] = m.latents(batch["frames"][:, -1:])[:, 0]
  out = nnx.jit(lambda m, c: dream.dream(m, c, jax.random.key(0), horizon=1, flow_steps=1,
                                         decode=False))(m, context)
  assert out.latents.shape[:2] == (2, 1)
  with pytest.raises(ValueError, match="no goal frame"):
    dream.dream(m, dream.context_of(batch, 1), jax.random.key(0), horizon=1, decode=False)


def test_state_action_prior_is_added_to_policy_mode_actions(batch):
  """``model.action_prior="state"``: the action chunk is a learned linear function of the
  block's state plus the head's correction; it starts at zero (same as no prior)."""
  cfg = tiny_config()
  cfg.action_prior = "state"
  m = wam_model.WorldActionModel(cfg, wam_model.Dims.from_batch(batch), rngs=nnx.Rngs(0))
  z = m.latents(batch["frames"])
  state, mask = m.state_of(batch)
  noisy = wam_model.Prediction(jnp.zeros_like(batch["actions"], jnp.float32),
                               jnp.zeros_like(z), jnp.zeros_like(state))
  zeros = jnp.zeros(batch["actions"].shape[:2])

  def actions():
    return m.forward(batch, z, noisy, zeros, zeros).actions
  before = actions()
  kernel = jax.random.normal(jax.random.key(2), m.action_prior.kernel.shape)
  m.action_prior.kernel[...] = kernel
  m.action_prior.bias[...] = jnp.ones_like(m.action_prior.bias[...])
  expected = ((state * mask) @ kernel + 1.0).reshape(before.shape)
  np.testing.assert_allclose(actions() - before, expected, atol=1e-4)
  cfg.action_prior = "joints"
  with pytest.raises(ValueError, match="Unknown model.action_prior 'joints'"):
    wam_model.WorldActionModel(cfg, wam_model.Dims.from_batch(batch), rngs=nnx.Rngs(0))


def test_predict_only_state_is_never_read_but_is_learned(batch):
  """``model.predict_only`` slots: predictions do not depend on their observed values,
  and the state loss still asks the model to predict them (a perception signal)."""
  cfg = tiny_config()
  cfg.predict_only = ("p",)
  layouts = {"joints": Layout.of([("q", 3)]), "proprio": Layout.of([("p", 2)])}
  assert train_state.hidden_state(cfg, layouts) == (3, 4)
  m = wam_model.WorldActionModel(cfg, wam_model.Dims.from_batch(batch), rngs=nnx.Rngs(0))
  m = wam_model.WorldActionModel(cfg, dataclasses.replace(m.dims, hidden_state=(3, 4)),
                                 rngs=nnx.Rngs(0))
  for head in (m.action_head, m.frame_head, m.state_head):
    head.kernel[...] = 0.3 * jax.random.normal(jax.random.key(1), head.kernel.shape)
  other = dict(batch, proprio=batch["proprio"] + 5.0)
  z = m.latents(batch["frames"])
  flow = objective.Flow.sample(jax.random.key(0), objective.Targets(
      batch["actions"], z, jnp.concatenate([batch["joints"], batch["proprio"]], -1)),
      jnp.ones(batch["actions"].shape[:2], bool), cfg)
  outs = [m.forward(b, z, flow.noisy, flow.tau_action, flow.tau_video) for b in (batch, other)]
  np.testing.assert_allclose(outs[0].actions, outs[1].actions, atol=1e-5)
  np.testing.assert_allclose(outs[0].frames, outs[1].frames, atol=1e-5)
  # The predicted state differs only where its noisy input (the target's path) differs.
  np.testing.assert_allclose(outs[0].state[..., :3], outs[1].state[..., :3], atol=1e-5)
  assert float(jnp.abs(_grads(m, batch).state_head.kernel[...][:, 3:]).sum()) > 0
  cfg.predict_only = ("target",)
  with pytest.raises(ValueError, match="does not have; joints slots: \\('q',\\)"):
    train_state.hidden_state(cfg, layouts)
  with pytest.raises(ValueError, match="needs the data layouts"):
    train_state.hidden_state(cfg, None)


def test_tokenizer_gradient_from_the_context(batch):
  """By default only reconstruction trains the tokenizer; with "context" the world-model
  losses reach it too."""
  cfg = tiny_config()
  cfg.loss_weights.reconstruction = 0.0
  grads = {}
  for mode in ("reconstruction", "context"):
    cfg.tokenizer_gradient = mode
    m = wam_model.WorldActionModel(cfg, wam_model.Dims.from_batch(batch), rngs=nnx.Rngs(0))
    for head in (m.action_head, m.frame_head, m.state_head):
      head.kernel[...] = 0.3 * jax.random.normal(jax.random.key(1), head.kernel.shape)
    g = _grads(m, batch)
    grads[mode] = sum(float(jnp.abs(x).sum()) for x in jax.tree.leaves(g.tokenizer))
  assert grads["reconstruction"] == 0.0 and grads["context"] > 0.0
  cfg.tokenizer_gradient = "all"
  m = wam_model.WorldActionModel(cfg, wam_model.Dims.from_batch(batch), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="Unknown model.tokenizer_gradient 'all'"):
    m.loss(batch, jax.random.key(0))


def test_pixel_patches_follow_token_order():
  """Patch i holds the pixels of latent token i: camera, then row, then column."""
  b = synthetic_batch(1, num_frames=1, action_chunk=2, image_size=(16, 16),
                      cameras=("front", "head"))
  m = wam_model.WorldActionModel(tiny_config(), wam_model.Dims.from_batch(b), rngs=nnx.Rngs(0))
  p = m.tokenizer.patch
  frames = np.zeros((1, 1, 2, 16, 16, 3), np.uint8)
  frames[0, 0, 1, 9, 3] = 255  # camera 1, row 9, column 3
  patches = np.asarray(m.patches(jnp.asarray(frames)))
  assert patches.shape == (1, 1, 2 * (16 // p) ** 2, p * p * 3)
  token = (16 // p) ** 2 + (9 // p) * (16 // p) + 3 // p
  lit = np.flatnonzero((patches[0, 0] > -1).any(-1))
  np.testing.assert_array_equal(lit, [token])
  assert patches[0, 0, token].reshape(p, p, 3)[9 % p, 3 % p].tolist() == [1.0] * 3


def test_pixel_patches_are_read_and_learned(batch):
  """With model.pixel_patches, observation tokens read the real pixels (decoded ones for
  dreamed observations), the action loss trains the pixel embedding, and cached dreams
  (real pixels, then decoded ones) equal full recomputation."""
  cfg = tiny_config()
  cfg.pixel_patches = True
  m = wam_model.WorldActionModel(cfg, wam_model.Dims.from_batch(batch), rngs=nnx.Rngs(0))
  for head in (m.action_head, m.frame_head, m.state_head):
    head.kernel[...] = 0.3 * jax.random.normal(jax.random.key(1), head.kernel.shape)
  assert float(jnp.abs(_grads(m, batch).obs_pixel_in["kernel"][...]).max()) > 0.0
  z = m.latents(batch["frames"])
  state, state_mask = m.state_of(batch)
  obs = [m.embed_obs(z, state, state_mask, batch["camera_mask"], batch["embodiment"], 0,
                     frames)[0] for frames in (batch["frames"], None, m.decode(z))]
  assert float(jnp.abs(obs[0] - obs[1]).max()) > 1e-3
  np.testing.assert_allclose(obs[1], obs[2], atol=1e-6)
  context = dream.context_of(batch, 1)
  cached = dream.dream(m, context, jax.random.key(0), horizon=2, flow_steps=1, decode=False)
  full = dream.dream(m, context, jax.random.key(0), horizon=2, flow_steps=1, decode=False,
                     use_cache=False)
  for a, b in zip(cached[:3], full[:3]):
    np.testing.assert_allclose(a, b, atol=2e-5)
