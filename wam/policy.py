"""A trained world action model as a task-free policy: instruction + observations in,
action chunks in robot units out.

``Policy`` holds what a run's metadata says about its inputs (cameras and image size,
the robot's vector slots and normalisation statistics, the byte encoding of
instructions, the action layout) and two jitted functions over the model's parameters:
``start`` (encode the instruction into a KV-cache prefix) and ``act`` (observe one real
observation, denoise the next action chunk in policy mode, ``wam.dream.act``). Each is
traced once per policy: observations are checked and resized on the host, so every call
has the same shapes. ``act_batch`` steps several sessions in one call (a server's
clients acting at once), compiled once per padded batch size. The conversions
themselves (vector codecs, model inputs, the instruction prefix, the window restart)
are ``wam.model_io.ModelIO``'s, as in the Dojo's neural simulator.

A ``Session`` is one episode's state (the cache, the block position, the step count and
its noise key). It is an immutable value: ``act`` returns a new one, so sessions are
independent and a session can be replayed from any point. The model was trained on
windows of ``num_frames`` blocks: when they are used up, the context starts over from
the instruction prefix and the current observation (``ModelIO.restart``).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Mapping, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from wam import dream
from wam.data import images
from wam.data import text as text_lib
from wam.data.layout import Layout
from wam.model import WorldActionModel
from wam.model_io import VECTORS, ModelIO

# Instructions are the byte tokens of ``wam.data.text`` (what the data pipeline writes,
# whatever text encoder reads them): the only encoding a WAM knows.
INSTRUCTION_ENCODING = "bytes"
IMAGE_PREFIX = "image_"
# How far ``act_batch`` may differ from ``act`` (|a - b| <= tol + tol * |b|, f32, robot
# units). Bit-identity is lost in batching: XLA's batched matmuls and reductions sum in
# another order, a few ulps (f32 eps 1.2e-7) per op, carried across steps by the cache.
# Measured over 2 windows + 1 steps of 8 sessions in batches of 8 and 3: at most
# 9.5e-7 (tests' tiny model, actions up to 3.1) and 6.2e-6 (runlocal toy size, up to
# 9.3), i.e. under 1e-6 of the largest action: 1e-5 leaves a 10x margin for the tests'
# model while staying far below anything a robot can execute.
BATCH_TOLERANCE = 1e-5


class PolicyInputError(ValueError):
  """A request a policy cannot serve (bad observation or instruction)."""


class ObservationError(PolicyInputError):
  """An observation does not fit the model (camera, image size, dtype, vector shape)."""


class InstructionError(PolicyInputError):
  """An instruction the model cannot read (too long, unknown encoding, not text)."""


@dataclasses.dataclass(frozen=True)
class Session:
  """One episode's state; ``Policy.act`` returns the next one (this one stays valid)."""

  instruction: str
  prefix: dream.Cache   # the instruction alone: where the context starts over
  cache: dream.Cache    # prefix + the observation blocks of the current window
  block: int            # the window position of the next observation
  step: int             # chunks produced so far
  rng: jax.Array        # the session's noise key; step ``i`` uses fold_in(rng, i)


class CheckedObservation(NamedTuple):
  """An observation ``Policy.check_observation`` accepted, at the model's sizes.

  ``Policy.act`` takes it as it is, so a server can check observations on its own
  thread and hand the model thread only arrays that fit.
  """

  frames: np.ndarray    # uint8 [V, H, W, 3]
  joints: np.ndarray    # f32 [J]
  proprio: np.ndarray   # f32 [P] (zeros when absent)
  has_proprio: bool


@dataclasses.dataclass(frozen=True)
class _Robot:
  """Which robot of a run the policy drives: its embodiment and vector slots."""
  dataset: str
  embodiment_id: int
  layouts: dict[str, Layout]


def _robot(metadata, dataset: Optional[str], embodiment: Optional[str],
           layouts: Optional[Mapping[str, Any]]) -> _Robot:
  """The robot description from the run metadata (and explicit overrides)."""
  extra = metadata.extra or {}
  names = list(extra.get("datasets", []))
  embodiments = list(extra.get("embodiments", []))
  if not names or not embodiments or "layouts" not in extra:
    raise ValueError("Run metadata lacks 'datasets', 'embodiments' or 'layouts' in extra "
                     "(written by wam.trainer); cannot tell which robot the model drives.")
  if dataset is None:
    dataset = names[0]
  if dataset not in names:
    raise ValueError(f"Unknown dataset {dataset!r}; the run trained on {names}.")
  if len(names) == 1:
    # One dataset: the run's layouts are its layouts and its robot is embodiment 0.
    robot_layouts = {n: Layout.of(extra["layouts"][n]) for n in VECTORS}
    robot_embodiment = embodiments[0]
  elif layouts is not None and embodiment is not None:
    missing = [n for n in VECTORS if n not in layouts]
    if missing:
      raise ValueError(f"layouts= lacks {missing}: a robot of a mixture needs all of "
                       f"{list(VECTORS)}.")
    robot_layouts, robot_embodiment = {}, embodiment
  else:
    robot_layouts, robot_embodiment = _dataset_spec(metadata, dataset)
  if layouts is not None:
    robot_layouts = {n: Layout.of(layouts[n]) if n in layouts else robot_layouts[n]
                     for n in VECTORS}
  robot_embodiment = embodiment or robot_embodiment
  if robot_embodiment not in embodiments:
    raise ValueError(f"Embodiment {robot_embodiment!r} is not one the run trained on: "
                     f"{embodiments}.")
  return _Robot(dataset, embodiments.index(robot_embodiment), robot_layouts)


def _dataset_spec(metadata, dataset: str) -> tuple[dict[str, Layout], str]:
  """Slots and embodiment of one dataset of a mixture, read from its directory."""
  from wam.data.reader import EpisodeDataset  # pylint: disable=import-outside-toplevel
  entry = metadata.config.get("data", {}).get("datasets", {}).get(dataset)
  try:
    spec = EpisodeDataset(os.path.expanduser(entry["path"]), entry.get("split", "train")).spec
  except (TypeError, KeyError, OSError, ValueError) as e:
    raise ValueError(
        f"The run mixes several datasets and the spec of {dataset!r} cannot be read "
        f"({e}); pass embodiment= and layouts= (joints/proprio/action slots) "
        "explicitly.") from None
  return {n: spec.layout(n) for n in VECTORS}, spec.embodiment


def _as_array(value: Any, key: str) -> np.ndarray:
  """``value`` as an array; ObservationError naming ``key`` if it is none (ragged)."""
  try:
    return np.asarray(value)
  except (ValueError, TypeError, RecursionError) as e:
    raise ObservationError(f"{key} is not an array: {type(e).__name__}: {e}") from None


class Policy:
  """A trained WAM as a closed-loop policy for one robot (see module docstring)."""

  def __init__(self, model: WorldActionModel, metadata, *, flow_steps: int = 1,
               dataset: Optional[str] = None, embodiment: Optional[str] = None,
               layouts: Optional[Mapping[str, Any]] = None):
    """Builds the policy.

    Args:
      model: a trained model (``wam.loading.load``).
      metadata: its ``RunMetadata`` (config, statistics, layouts, embodiments).
      flow_steps: Euler steps per chunk (1 is the fastest; more refine the flow).
      dataset: whose statistics normalise the vectors (default: the run's first).
      embodiment, layouts: the robot and its ``{joints, proprio, action}`` slots, needed
        only for a mixture whose dataset directories are not readable here.

    Raises:
      ValueError: the metadata does not describe the robot, or its layouts do not fit.
    """
    if flow_steps < 1:
      raise ValueError(f"flow_steps must be >= 1, got {flow_steps}.")
    data_config = metadata.config.get("data", {})
    self.model = model
    self.flow_steps = int(flow_steps)
    self.cameras = tuple(data_config["cameras"])
    self.image_size = tuple(int(s) for s in data_config["image_size"])
    if len(self.cameras) != model.dims.num_cameras or self.image_size != tuple(
        model.dims.image_size):
      raise ValueError(f"Metadata cameras {self.cameras} at {self.image_size} do not match "
                       f"the model's {model.dims.num_cameras} cameras at "
                       f"{model.dims.image_size}.")
    robot = _robot(metadata, dataset, embodiment, layouts)
    self.dataset, self.embodiment_id = robot.dataset, robot.embodiment_id
    self.io = ModelIO.for_robot(
        model, metadata, robot.dataset, robot.layouts, robot.embodiment_id,
        mismatch=lambda name, e: ValueError(f"The robot's {name} does not fit the model: {e}"))
    self.joints, self.proprio, self.action = self.io.joints, self.io.proprio, self.io.action
    d = model.dims
    if (self.joints.model_dim, self.proprio.model_dim, self.action.model_dim) != (
        d.joints, d.proprio, d.action):
      raise ValueError(f"Layouts give joints/proprio/action of {self.joints.model_dim}/"
                       f"{self.proprio.model_dim}/{self.action.model_dim} dims; the model "
                       f"has {d.joints}/{d.proprio}/{d.action}.")
    self.action_chunk = d.action_chunk
    self.instruction_length = d.instruction_length
    self.window = d.num_frames
    self.instruction_encoding = INSTRUCTION_ENCODING
    self.traces = 0   # how often the hot path was traced (1 after the first act)
    self.batch_traces = 0   # how often ``act_batch`` was traced (once per padded size)
    self._graphdef, self._params = nnx.split(model)
    self._start = jax.jit(self._start_fn)
    self._act = jax.jit(self._act_fn)
    self._act_batch = jax.jit(self._act_batch_fn)

  @classmethod
  def from_workdir(cls, path: str, step: Optional[int] = None, *, flow_steps: int = 1,
                   **kwargs) -> "Policy":
    """Loads a run (``wam.loading.load``) as a policy; ``kwargs`` go to ``Policy``."""
    from wam import loading  # pylint: disable=import-outside-toplevel  (heavy imports)
    model, metadata = loading.load(path, step)
    return cls(model, metadata, flow_steps=flow_steps, **kwargs)

  # ------------------------------------------------------------------ description

  @property
  def robot_action_dim(self) -> int:
    return self.action.dim

  def describe(self) -> dict[str, Any]:
    """What a client needs to know to send observations (JSON-friendly)."""
    return {"cameras": list(self.cameras), "image_size": list(self.image_size),
            "joints": self.joints.dim, "proprio": self.proprio.dim,
            "action": self.action.dim, "action_chunk": self.action_chunk,
            "instruction_length": self.instruction_length,
            "instruction_encoding": self.instruction_encoding,
            "window": self.window, "flow_steps": self.flow_steps}

  # ------------------------------------------------------------------ jitted functions

  def _start_fn(self, params, tokens, mask):
    return self.io.start(nnx.merge(self._graphdef, params), tokens, mask)

  def _act_fn(self, params, cache, block, frames, joints, proprio, has_proprio, rng):
    self.traces += 1  # runs at trace time only
    return self._act_body(params, cache, block, frames, joints, proprio, has_proprio, rng)

  def _act_batch_fn(self, params, caches, blocks, frames, joints, proprio, has_proprio,
                    rngs, steps):
    """``_act_fn`` of several sessions at once: tuples of caches and keys, the rest
    stacked on the host along a leading axis; returns one cache per session."""
    self.batch_traces += 1  # runs at trace time only
    cache = jax.tree.map(lambda *x: jnp.stack(x), *caches)
    rng = jax.vmap(jax.random.fold_in)(jnp.stack(rngs), steps)
    # vmap, not the model's own batch axis: each session has its own cache length and
    # block position (scalars of ``dream.Cache``), which the batch axis shares.
    actions, cache = jax.vmap(functools.partial(self._act_body, params))(
        cache, blocks, frames, joints, proprio, has_proprio, rng)
    return actions, tuple(jax.tree.map(lambda x, i=i: x[i], cache)
                          for i in range(len(caches)))

  def _act_body(self, params, cache, block, frames, joints, proprio, has_proprio, rng):
    """One session's step: traced by ``act`` as it is, by ``act_batch`` under vmap."""
    actions, _, cache = self.io.act(nnx.merge(self._graphdef, params), cache, block,
                                    self.io.inputs(frames, joints, proprio, has_proprio),
                                    rng, flow_steps=self.flow_steps)
    return self.action.to_env(actions), cache

  # ------------------------------------------------------------------ sessions

  def encode_instruction(self, instruction: Any, encoding: Optional[str] = None
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Byte tokens and mask [L] of ``instruction``.

    Raises:
      InstructionError: not a string, an encoding other than the model's, or longer
        than the model's ``instruction_length`` bytes (it would be cut silently).
    """
    if encoding is not None and encoding != self.instruction_encoding:
      raise InstructionError(f"Instruction encoding {encoding!r} is unknown to this model; "
                             f"it reads {self.instruction_encoding!r} (utf-8 byte tokens).")
    if not isinstance(instruction, str):
      raise InstructionError(f"The instruction must be a string, got "
                             f"{type(instruction).__name__}.")
    try:
      length = len(instruction.encode("utf-8"))
    except UnicodeEncodeError as e:
      raise InstructionError(f"The instruction is not encodable as utf-8: {e}.") from None
    if length > self.instruction_length:
      raise InstructionError(f"The instruction is {length} utf-8 bytes; the model reads at "
                             f"most {self.instruction_length}.")
    return text_lib.encode(instruction, self.instruction_length)

  def new_session(self, instruction: str, *, seed: int = 0,
                  encoding: Optional[str] = None) -> Session:
    """A fresh episode following ``instruction`` (its noise drawn from ``seed``)."""
    tokens, mask = self.encode_instruction(instruction, encoding)
    prefix = self._start(self._params, jnp.asarray(tokens), jnp.asarray(mask))
    return Session(instruction, prefix, prefix, 0, 0, jax.random.key(seed))

  def check_observation(self, observation: Any) -> CheckedObservation:
    """Validates one observation: frames uint8 [V, H, W, 3] at the model's size, joints
    f32 [J], proprio f32 [P] (zeros when absent) and whether proprio was given.

    Raises:
      ObservationError: naming the field that does not fit (unknown field, missing
        camera or vector, dtype, shape, size, non-finite value).
    """
    if isinstance(observation, CheckedObservation):
      return observation
    if not isinstance(observation, Mapping):
      raise ObservationError(f"An observation is a mapping, got {type(observation).__name__}.")
    expected = {IMAGE_PREFIX + c for c in self.cameras} | {"joints", "proprio"}
    for key in observation:
      if isinstance(key, str) and key.startswith(IMAGE_PREFIX) and key not in expected:
        raise ObservationError(f"Unknown camera {key[len(IMAGE_PREFIX):]!r}; the model reads "
                               f"{list(self.cameras)} (keys image_<camera>).")
      if key not in expected:
        raise ObservationError(f"Unknown observation field {key!r}; expected "
                               f"{sorted(expected)}.")
    frames = []
    for cam in self.cameras:
      key = IMAGE_PREFIX + cam
      if key not in observation:
        raise ObservationError(f"Missing {key!r}: the model reads cameras {list(self.cameras)}.")
      image = _as_array(observation[key], key)
      if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ObservationError(f"{key} must be uint8 [H, W, 3], got {image.dtype} "
                               f"{list(image.shape)}.")
      if 0 in image.shape:
        raise ObservationError(f"{key} is empty: {list(image.shape)}.")
      try:
        plan = images.resize_plan(image.shape[:2], self.image_size)
      except ValueError as e:
        raise ObservationError(f"{key}: {e}") from None
      frames.append(images.to_uint8(images.resize(image, plan)))
    joints = self._vector(observation, "joints", self.joints.dim)
    has_proprio = "proprio" in observation and observation["proprio"] is not None
    proprio = (self._vector(observation, "proprio", self.proprio.dim) if has_proprio
               else np.zeros((self.proprio.dim,), np.float32))
    return CheckedObservation(np.stack(frames), joints, proprio, has_proprio)

  @staticmethod
  def _vector(observation: Mapping, key: str, dim: int) -> np.ndarray:
    if key not in observation:
      raise ObservationError(f"Missing {key!r} (f32[{dim}]).")
    x = _as_array(observation[key], key)
    if x.dtype.kind not in "fiu" or x.shape != (dim,):
      raise ObservationError(f"{key} must be f32[{dim}], got {x.dtype} {list(x.shape)}.")
    with np.errstate(over="ignore"):   # too large for f32: inf, refused below
      x = x.astype(np.float32)
    if not np.isfinite(x).all():
      raise ObservationError(f"{key} has non-finite values: {x.tolist()}.")
    return x

  def act(self, session: Session, observation: Mapping[str, Any] | CheckedObservation
          ) -> tuple[Session, np.ndarray]:
    """The next action chunk after ``observation``.

    Args:
      session: from ``new_session`` or the previous ``act``.
      observation: ``{"image_<camera>": uint8[H, W, 3]`` per model camera (any size that
        rescales to the model's by integer factors), ``"joints": f32[J]``, optionally
        ``"proprio": f32[P]}`` in the robot's units; or what ``check_observation``
        returned for it (not checked again).

    Returns:
      The next session and the actions f32 [chunk, A] in the robot's units.

    Raises:
      ObservationError: the observation does not fit (the session is unchanged).
    """
    frames, joints, proprio, has_proprio = self.check_observation(observation)
    cache, block = self.io.restart(session.cache, session.prefix, session.block)
    actions, cache = self._act(self._params, cache, jnp.asarray(block, jnp.int32),
                               jnp.asarray(frames), jnp.asarray(joints), jnp.asarray(proprio),
                               jnp.asarray(has_proprio),
                               jax.random.fold_in(session.rng, session.step))
    next_session = dataclasses.replace(session, cache=cache, block=block + 1,
                                       step=session.step + 1)
    return next_session, np.asarray(actions, np.float32)

  def act_batch(self, sessions: Sequence[Session],
                observations: Sequence[Mapping[str, Any] | CheckedObservation], *,
                size: Optional[int] = None) -> list[tuple[Session, np.ndarray]]:
    """``act`` for several sessions in one jitted call: ``[(next_session, actions)]``.

    Each result equals what ``act(sessions[i], observations[i])`` returns to within
    float rounding (``BATCH_TOLERANCE``).

    Args:
      sessions: distinct episodes (acting twice on one session in a batch would run
        both steps from the same state).
      observations: one per session, as for ``act``.
      size: the batch the call is padded to (repeating the first session), so that
        the call compiles once per ``size``, not once per count; default: the next
        power of two.

    Raises:
      ObservationError: an observation does not fit (no session acts).
    """
    n = len(sessions)
    if n == 0 or n != len(observations):
      raise ValueError(f"act_batch needs one observation per session, at least one; got "
                       f"{n} sessions and {len(observations)} observations.")
    size = 1 << (n - 1).bit_length() if size is None else size
    if size < n:
      raise ValueError(f"size={size} is smaller than the batch of {n}.")
    checked = [self.check_observation(o) for o in observations]
    starts = [self.io.restart(s.cache, s.prefix, s.block) for s in sessions]
    pad = lambda xs: list(xs) + [xs[0]] * (size - n)
    caches, blocks = pad([c for c, _ in starts]), pad([b for _, b in starts])
    checked, padded = pad(checked), pad(list(sessions))
    actions, caches = self._act_batch(
        self._params, tuple(caches), np.asarray(blocks, np.int32),
        *(np.stack([c[i] for c in checked]) for i in range(4)),
        tuple(s.rng for s in padded), np.asarray([s.step for s in padded], np.uint32))
    actions = np.asarray(actions, np.float32)
    return [(dataclasses.replace(s, cache=caches[i], block=blocks[i] + 1, step=s.step + 1),
             actions[i]) for i, s in enumerate(sessions)]

  def dummy_observation(self) -> dict[str, np.ndarray]:
    """A valid observation (grey frames, zero vectors): warm-up and smoke tests."""
    obs = {IMAGE_PREFIX + c: np.full(self.image_size + (3,), 128, np.uint8)
           for c in self.cameras}
    obs["joints"] = np.zeros((self.joints.dim,), np.float32)
    return obs

  def warmup(self, batch_sizes: Sequence[int] = ()) -> None:
    """Compiles both jitted functions, and ``act_batch`` at each of ``batch_sizes``, so
    that the first request is not slow."""
    session, observation = self.new_session(""), self.dummy_observation()
    self.act(session, observation)
    for size in batch_sizes:
      self.act_batch([session], [observation], size=size)
