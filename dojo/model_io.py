"""How a trained world action model reads a Dojo task's observations and writes actions.

A WAM sees normalised, padded vectors (``wam.data``: per-dataset statistics, layouts
shared by a mixture of robots), frames at its own resolution and cameras, and byte
tokens of the instruction. ``ModelIO`` holds those conversions for one (model, task)
pair as pure JAX functions on *unbatched* values, so the neural simulator, the
policy-mode controller and the planners share one definition of them, and a task that
does not fit the model (another robot, a camera the model never saw, an image size
that does not rescale by an integer factor) fails at construction with the reason.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from wam.data import images
from wam.data import text as text_lib
from wam.data.layout import Layout
from wam.data.statistics import VectorStatistics
from wam.model import WorldActionModel
from wam.vectors import LayoutMismatchError, VectorCodec, vector_codec


class ModelTaskMismatchError(ValueError):
  """A task's observations or actions do not fit a model's inputs."""


# The per-vector conversion is task-free and lives in wam (``wam.policy`` uses it too).
_Vector = VectorCodec


def _vector(name: str, env_layout: Layout, model_layout: Layout,
            stats: Optional[VectorStatistics], normalization: str) -> _Vector:
  try:
    return vector_codec(env_layout, model_layout, stats, normalization)
  except LayoutMismatchError as e:
    raise ModelTaskMismatchError(
        f"The task's {name} slots {env_layout.names} do not fit the model's {name} layout "
        f"{model_layout.names}: {e}") from None


def _dataset_of(task, names: list, extra: Mapping, statistics: Mapping) -> str:
  """The run's first dataset of the task's robot, whose statistics normalise its vectors.

  Runs record each dataset's embodiment; for older runs of a mixture, the dataset whose
  joint statistics have the task's number of joints.
  """
  if len(names) == 1:
    return names[0]
  by_dataset = extra.get("dataset_embodiments")
  if by_dataset:
    mine = [n for n in names if by_dataset.get(n) == task.embodiment]
    # Of several datasets of the robot (a multi-task run), one whose vectors have the
    # task's sizes: `push` adds its block's position to the arm's proprioception.
    slots = task.data_slots()
    sizes = {v: sum(size for _, size in slots[v]) for v in ("joints", "proprio", "action")
             if v in slots}
    for name in mine:
      stats = statistics.get(name, {})
      if all(_dim(stats[v]) == n for v, n in sizes.items() if v in stats):
        return name
    if mine:
      return mine[0]
  joints = sum(size for _, size in task.data_slots()["joints"])
  fits = [n for n in names if len((statistics.get(n, {}).get("joints") or {}).get("mean", []))
          == joints]
  if len(fits) == 1:
    return fits[0]
  raise ModelTaskMismatchError(
      f"Cannot tell which of the run's datasets {names} is the task's robot "
      f"{task.embodiment!r}; pass ModelIO.create(..., dataset=NAME).")


def _dim(stats: Any) -> int:
  """The size of a vector's statistics (JSON or ``VectorStatistics``)."""
  return len(stats["mean"] if isinstance(stats, Mapping) else stats.mean)


@dataclasses.dataclass(frozen=True)
class ModelIO:
  """Conversions between one Dojo task and one trained model (all unbatched, pure).

  Build with :meth:`create`. Attributes are constants (numpy), so a ``ModelIO`` can be
  closed over by jitted functions.
  """

  cameras: tuple[str, ...]
  image_size: tuple[int, int]
  joints: _Vector
  proprio: _Vector
  action: _Vector
  action_chunk: int
  env_action_size: int
  embodiment_id: int
  instruction_tokens: np.ndarray    # [num_instructions, L] int32
  instruction_mask: np.ndarray      # [num_instructions, L] bool

  @classmethod
  def create(cls, model: WorldActionModel, metadata, task, *,
             dataset: Optional[str] = None) -> "ModelIO":
    """Checks that ``task`` fits ``model`` and builds the conversions.

    Args:
      model: a trained model (``wam.trainer.load``).
      metadata: its ``RunMetadata`` (statistics, layouts, embodiments, data config).
      task: an ``MjxTask`` (or anything with ``data_slots()``, ``embodiment``,
        ``instruction_space`` and ``observation_size``).
      dataset: whose statistics normalise the task's vectors (default: the run's first
        dataset whose embodiment is the task's).

    Raises:
      ModelTaskMismatchError: the task's robot, cameras, image size or vector slots do
        not fit the model.
    """
    extra = metadata.extra or {}
    data_config = metadata.config["data"]
    embodiments = list(extra.get("embodiments", []))
    if task.embodiment not in embodiments:
      raise ModelTaskMismatchError(
          f"The model was trained on embodiments {embodiments}; the task's robot is "
          f"{task.embodiment!r}.")
    names = list(extra.get("datasets", []))
    if dataset is None:
      dataset = _dataset_of(task, names, extra, metadata.statistics or {})
    statistics = (metadata.statistics or {}).get(dataset, {})
    sizes = task.observation_size
    cameras = tuple(data_config["cameras"])
    image_size = tuple(data_config["image_size"])
    for cam in cameras:
      key = f"pixels/{cam}"
      if key not in sizes:
        raise ModelTaskMismatchError(
            f"The model reads camera {cam!r}; the task renders "
            f"{sorted(k[len('pixels/'):] for k in sizes if k.startswith('pixels/'))}.")
      try:
        images.resize_plan(sizes[key][:2], image_size)
      except ValueError as e:
        raise ModelTaskMismatchError(f"Camera {cam!r}: {e}") from None
    layouts = extra.get("layouts", {})
    slots = task.data_slots()
    normalization = data_config.get("normalization", "mean_std")

    def vector(name):
      stats = statistics.get(name)
      stats = VectorStatistics.from_json(stats) if isinstance(stats, Mapping) else stats
      return _vector(name, Layout.of(slots[name]), Layout.of(layouts[name]), stats,
                     normalization)

    space = task.instruction_space
    texts = [space.text(i) for i in range(len(space.combinations))]
    try:  # encode would cut them, and the model would never read their end
      text_lib.check_lengths(texts, model.dims.instruction_length,
                             where=f"Task {type(task).__name__}")
    except ValueError as e:
      raise ModelTaskMismatchError(str(e)) from None
    tokens, masks = zip(*(text_lib.encode(t, model.dims.instruction_length)
                          for t in texts))
    io = cls(cameras, image_size, vector("joints"), vector("proprio"),
             vector("action"), model.dims.action_chunk, task.action_size,
             embodiments.index(task.embodiment), np.stack(tokens), np.stack(masks))
    if io.action.model_dim != model.dims.action:
      raise ModelTaskMismatchError(f"Model actions have {model.dims.action} dims, the "
                                   f"layout {io.action.model_dim}.")
    return io

  @classmethod
  def untrained(cls, model: WorldActionModel, task, cameras: tuple[str, ...]) -> "ModelIO":
    """Conversions for a model built for ``task`` without training data (benchmarks).

    No normalisation; the layouts are the task's own. The model's ``dims`` must match
    the task (joints, proprio and action sizes).
    """
    from wam.checkpoint import RunMetadata  # pylint: disable=import-outside-toplevel
    slots = task.data_slots()
    d = model.dims
    metadata = RunMetadata(
        config={"data": {"cameras": list(cameras), "image_size": list(d.image_size),
                         "normalization": "none"}},
        statistics={}, example_batch={},
        extra={"embodiments": [task.embodiment], "datasets": ["untrained"],
               "layouts": {k: [list(x) for x in v] for k, v in slots.items()}})
    return cls.create(model, metadata, task)

  # ----------------------------------------------------------------- observations

  def frames(self, obs: Mapping[str, jax.Array]) -> jax.Array:
    """The model's cameras at its resolution: uint8 [V, H, W, 3].

    Rescaled by whole factors as the data loader does (``wam.data.images``: area
    down-sampling, nearest up-sampling); frames already at the model's size (the neural
    simulator's) pass unchanged.
    """
    out = []
    for cam in self.cameras:
      image = obs[f"pixels/{cam}"]
      image = images.resize(image, images.resize_plan(image.shape[:2], self.image_size))
      out.append(jnp.clip(jnp.round(image), 0, 255).astype(jnp.uint8))
    return jnp.stack(out)

  def observation(self, obs: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """One time step of model inputs (``wam.data`` field names, no batch/time axes)."""
    joints, joints_mask = self.joints.to_model(obs["joints"])
    proprio, proprio_mask = self.proprio.to_model(obs["proprio"])
    return {"frames": self.frames(obs), "joints": joints, "joints_mask": joints_mask,
            "proprio": proprio, "proprio_mask": proprio_mask,
            "camera_mask": jnp.ones((len(self.cameras),), bool),
            "embodiment": jnp.asarray(self.embodiment_id, jnp.int32)}

  def instruction(self, instruction_id: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Byte tokens and mask [L] of an instruction id (``state.info["instruction"]``)."""
    return (jnp.asarray(self.instruction_tokens)[instruction_id],
            jnp.asarray(self.instruction_mask)[instruction_id])

  def state_to_env(self, state: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A predicted model state [S] (joints + proprio, normalised) -> env joints, proprio."""
    j = self.joints.model_dim
    return self.joints.to_env(state[..., :j]), self.proprio.to_env(state[..., j:])

  # ----------------------------------------------------------------- actions

  def actions_to_model(self, actions: jax.Array) -> jax.Array:
    """Env actions [..., K, A_env] in [-1, 1] -> normalised model actions [..., K, A]."""
    if actions.shape[-1] != self.env_action_size:
      raise ModelTaskMismatchError(f"Actions have {actions.shape[-1]} dims; the task's "
                                   f"action size is {self.env_action_size}.")
    return self.action.to_model(jnp.clip(actions, -1.0, 1.0))[0]

  def actions_to_env(self, actions: jax.Array) -> jax.Array:
    """Normalised model actions [..., K, A] -> env actions [..., K, A_env] in [-1, 1]."""
    return jnp.clip(self.action.to_env(actions), -1.0, 1.0)
