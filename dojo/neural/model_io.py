"""How a trained world action model reads a Dojo task's observations and writes actions.

``ModelIO`` is ``wam.model_io.ModelIO`` (the task-free vector codecs, model inputs,
instruction prefix and window restart, shared with ``wam.policy``) for one (model, task)
pair: it reads the task's observation dicts and instruction ids and keeps actions in
the task's [-1, 1], so the neural simulator, the policy-mode controller and the
planners share one definition of them, and a task that does not fit the model (another
robot, a camera the model never saw, an image size that does not rescale by an integer
factor) fails at construction with the reason.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from wam import model_io
from wam.data import images
from wam.data import text as text_lib
from wam.data.layout import Layout
from wam.model import WorldActionModel
from wam.vectors import LayoutMismatchError


class ModelTaskMismatchError(ValueError):
  """A task's observations or actions do not fit a model's inputs."""


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
class ModelIO(model_io.ModelIO):
  """Conversions between one Dojo task and one trained model (all unbatched, pure).

  Build with :meth:`create`. Attributes are constants (numpy), so a ``ModelIO`` can be
  closed over by jitted functions.
  """

  env_action_size: int
  instruction_tokens: np.ndarray    # [num_instructions, L] int32
  instruction_mask: np.ndarray      # [num_instructions, L] bool

  @classmethod
  def create(cls, model: WorldActionModel, metadata, task, *,
             dataset: Optional[str] = None) -> "ModelIO":
    """Checks that ``task`` fits ``model`` and builds the conversions.

    Args:
      model: a trained model (``wam.loading.load``).
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
    slots = {name: Layout.of(s) for name, s in task.data_slots().items()}

    def mismatch(name, e):
      if not isinstance(e, LayoutMismatchError):
        return None
      return ModelTaskMismatchError(
          f"The task's {name} slots {slots[name].names} do not fit the model's {name} "
          f"layout {Layout.of(layouts[name]).names}: {e}")

    space = task.instruction_space
    texts = [space.text(i) for i in range(len(space.combinations))]
    try:  # encode would cut them, and the model would never read their end
      text_lib.check_lengths(texts, model.dims.instruction_length,
                             where=f"Task {type(task).__name__}")
    except ValueError as e:
      raise ModelTaskMismatchError(str(e)) from None
    tokens, masks = zip(*(text_lib.encode(t, model.dims.instruction_length)
                          for t in texts))
    io = cls.for_robot(model, metadata, dataset, slots, embodiments.index(task.embodiment),
                       mismatch=mismatch, env_action_size=task.action_size,
                       instruction_tokens=np.stack(tokens), instruction_mask=np.stack(masks))
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
    from wam.run_metadata import RunMetadata  # pylint: disable=import-outside-toplevel
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
    return self.inputs(self.frames(obs), obs["joints"], obs["proprio"])

  def instruction(self, instruction_id: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Byte tokens and mask [L] of an instruction id (``state.info["instruction"]``)."""
    return (jnp.asarray(self.instruction_tokens)[instruction_id],
            jnp.asarray(self.instruction_mask)[instruction_id])

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
