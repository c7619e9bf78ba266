"""Scenes and robots from MJCF (or URDF) files anywhere, checked for MJX before use.

A task's ``xml_path`` may be

- absolute: ``/path/to/robot.xml``;
- inside an installed package: ``"package:relative/path.xml"``, e.g.
  ``"gymnasium_robotics:envs/assets/fetch/reach.xml"`` (``resolve_path``);
- relative: looked up in ``dojo/assets/``.

MuJoCo resolves meshes, height fields and textures relative to the model file (its
``meshdir``/``texturedir``, or the included file that names them); a URDF compiles
through the same path (``<mujoco><compiler meshdir=.../></mujoco>`` inside ``<robot>``).
``load_spec`` and ``compile_spec`` turn MuJoCo's terse asset errors into ones that name
the asset, the file and where it was looked for; ``check_mjx`` lists, in one error,
every option and element of a compiled model that the installed MJX cannot run with
the chosen implementation, each with what to use instead. The supported sets are read
from the installed ``mujoco.mjx`` (and MuJoCo Warp) enums, so they follow upgrades.
"""

from __future__ import annotations

import importlib.util
import os
import re
from typing import Optional

import mujoco
import numpy as np
from mujoco.mjx._src import collision_driver
from mujoco.mjx._src import types as mjx_types

from dojo import physics


def names(model: mujoco.MjModel, kind: mujoco.mjtObj) -> list[str]:
  """Names of every object of ``kind`` in ``model`` (``#i`` for unnamed ones), in order;
  for error messages that list what the model has."""
  count = {mujoco.mjtObj.mjOBJ_JOINT: model.njnt, mujoco.mjtObj.mjOBJ_SITE: model.nsite,
           mujoco.mjtObj.mjOBJ_BODY: model.nbody, mujoco.mjtObj.mjOBJ_GEOM: model.ngeom,
           mujoco.mjtObj.mjOBJ_ACTUATOR: model.nu, mujoco.mjtObj.mjOBJ_CAMERA: model.ncam}[kind]
  return [mujoco.mj_id2name(model, kind, i) or f"#{i}" for i in range(count)]


def resolve_path(path: str, base_dir: str) -> str:
  """The file ``path`` names: absolute, ``"package:relative/path"`` or under ``base_dir``.

  Raises:
    FileNotFoundError: the file does not exist or the package is not installed (the
      message says how ``path`` was resolved).
  """
  package, sep, rest = path.partition(":")
  if sep and not os.path.isabs(path) and re.fullmatch(r"[A-Za-z_][\w.]*", package):
    try:
      spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
      spec = None
    if spec is None:
      raise FileNotFoundError(f"{path!r}: package {package!r} is not installed.")
    roots = list(spec.submodule_search_locations or [os.path.dirname(spec.origin)])
    full = os.path.join(roots[0], rest)
    how = f"{rest!r} inside package {package!r} ({roots[0]})"
  else:
    full = path if os.path.isabs(path) else os.path.join(base_dir, path)
    how = "an absolute path" if os.path.isabs(path) else f"{path!r} under {base_dir}"
  if not os.path.isfile(full):
    raise FileNotFoundError(f"MJCF file {full!r} does not exist (resolved from {how}).")
  return full


def load_spec(path: str) -> mujoco.MjSpec:
  """Parses an MJCF or URDF file (includes resolved); errors name the file."""
  try:
    return mujoco.MjSpec.from_file(path)
  except ValueError as e:
    raise ValueError(f"MuJoCo cannot parse {path}: {e}") from e


def asset_files(spec: mujoco.MjSpec) -> list[tuple[str, str, str]]:
  """``(kind, name, file)`` of every mesh, height field and texture read from a file,
  the file resolved as MuJoCo's compiler does (relative to ``meshdir``/``texturedir``,
  themselves relative to the model file)."""
  model_dir = spec.modelfiledir or ""
  out = []
  for kind, items, subdir in (("mesh", spec.meshes, spec.meshdir),
                              ("hfield", spec.hfields, spec.meshdir),
                              ("texture", spec.textures, spec.texturedir)):
    for item in items:
      file = getattr(item, "file", "")
      if not file:
        continue
      if not os.path.isabs(file):
        file = os.path.join(model_dir, subdir or "", file)
      out.append((kind, item.name, os.path.normpath(file)))
  return out


def compile_spec(spec: mujoco.MjSpec, path: str) -> mujoco.MjModel:
  """Compiles ``spec`` (loaded from ``path``) with errors that name the bad asset.

  Raises:
    FileNotFoundError: a mesh, height field or texture file is missing (all listed).
    ValueError: MuJoCo cannot compile the model, e.g. a malformed mesh file (named).
  """
  files = asset_files(spec)
  missing = [f"  - {kind} {name!r}: {file}" for kind, name, file in files
             if not os.path.isfile(file)]
  if missing:
    raise FileNotFoundError(
        f"{path}: asset file(s) not found (paths resolved relative to the model file, "
        f"meshdir={spec.meshdir!r}, texturedir={spec.texturedir!r}):\n" + "\n".join(missing))
  try:
    return spec.compile()
  except ValueError as e:
    message = str(e)
    named = [f"{kind} {name!r} ({file})" for kind, name, file in files
             if os.path.basename(file) in message]
    culprit = f"; the error is about {', '.join(named)}" if named else ""
    raise ValueError(f"MuJoCo cannot compile {path}{culprit}: {message}") from e


# ---------------------------------------------------------------- MJX support

# MJCF spellings of the option values.
_INTEGRATORS = {"EULER": "Euler", "RK4": "RK4", "IMPLICIT": "implicit",
                "IMPLICITFAST": "implicitfast", "DISCRETE": "discrete"}
_SOLVERS = {"PGS": "PGS", "CG": "CG", "NEWTON": "Newton"}


def _enum_names(values, enum) -> list[str]:
  return sorted({enum(int(v)).name for v in values})


def _supported(impl: str) -> dict[str, set[int]]:
  """What the installed MJX runs with ``impl``: sets of MuJoCo enum values."""
  t = mjx_types
  sup = {
      "integrator": {int(v) for v in t.IntegratorType},
      "solver": {int(v) for v in t.SolverType},
      "cone": {int(v) for v in t.ConeType},
      "jacobian": {int(v) for v in t.JacobianType},
      "enable": {int(v) for v in t.EnableBit},
      "disable": {int(v) for v in t.DisableBit},
      "geom": {int(v) for v in t.GeomType},
      "trn": {int(v) for v in t.TrnType}, "dyn": {int(v) for v in t.DynType},
      "gain": {int(v) for v in t.GainType}, "bias": {int(v) for v in t.BiasType},
      "eq": {int(v) for v in t.EqType}, "sensor": {int(v) for v in t.SensorType},
      "wrap": {int(v) for v in t.WrapType},
  }
  if impl == "jax":
    # In the enum, but mjx.step of the JAX implementation has no discrete integrator.
    sup["integrator"].discard(int(mujoco.mjtIntegrator.mjINT_DISCRETE))
  elif impl == "warp" and physics.warp_available():
    # pylint: disable-next=import-outside-toplevel  (needs the optional warp-lang)
    from mujoco.mjx.third_party.mujoco_warp._src import types as w
    # MJX checks the options with its own enums first, then MuJoCo Warp with its.
    for key, enum in (("integrator", w.IntegratorType), ("solver", w.SolverType),
                      ("cone", w.ConeType), ("enable", w.EnableBit)):
      sup[key] &= {int(v) for v in enum}
    for key, enum in (("disable", w.DisableBit), ("geom", w.GeomType),
                      ("trn", w.TrnType), ("dyn", w.DynType), ("gain", w.GainType),
                      ("bias", w.BiasType), ("eq", w.EqType), ("sensor", w.SensorType),
                      ("wrap", w.WrapType)):
      sup[key] = {int(v) for v in enum}
  return sup


def _flag_name(enum_name: str) -> str:
  return enum_name.split("_", 1)[1].lower()   # mjDSBL_MIDPHASE -> midphase


def unsupported(model: mujoco.MjModel, impl: str) -> list[str]:
  """Every option and element of ``model`` that MJX cannot run with ``impl``
  ("jax" or "warp"), one line each with what to use instead; [] if none."""
  sup = _supported(impl)
  out = []
  opt = model.opt

  def option(key, value, enum, attr, fix, spell=lambda n: n.split("_", 1)[1].lower()):
    if int(value) not in sup[key]:
      ok = ", ".join(sorted(spell(enum(v).name) for v in sup[key]))
      out.append(f"option {attr}={spell(enum(int(value)).name)}: MJX ({impl}) supports "
                 f"{ok}; set <option {attr}=\"{fix}\"/>")

  option("integrator", opt.integrator, mujoco.mjtIntegrator, "integrator", "implicitfast",
         spell=lambda n: _INTEGRATORS.get(n.split("_", 1)[1], n))
  option("solver", opt.solver, mujoco.mjtSolver, "solver", "Newton",
         spell=lambda n: _SOLVERS.get(n.split("_", 1)[1], n))
  option("cone", opt.cone, mujoco.mjtCone, "cone", "pyramidal")
  option("jacobian", opt.jacobian, mujoco.mjtJacobian, "jacobian", "auto")
  for bit in range(32):
    flag = 1 << bit
    if opt.enableflags & flag and flag not in sup["enable"]:
      name = _flag_name(mujoco.mjtEnableBit(flag).name)
      out.append(f"option flag {name}=enable: MJX ({impl}) does not support it; remove "
                 f"<flag {name}=\"enable\"/>")
    if opt.disableflags & flag and flag not in sup["disable"]:
      name = _flag_name(mujoco.mjtDisableBit(flag).name)
      out.append(f"option flag {name}=disable: MJX ({impl}) does not support disabling "
                 f"it; remove <flag {name}=\"disable\"/>")

  def elements(kind, obj, values, key, enum, fix):
    bad = np.flatnonzero(~np.isin(values, list(sup[key])))
    if bad.size:
      named = [mujoco.mj_id2name(model, obj, int(i)) or f"#{i}" for i in bad[:5]]
      more = f" and {bad.size - 5} more" if bad.size > 5 else ""
      out.append(f"{kind} {named}{more}: {key} {_enum_names(values[bad], enum)} is not "
                 f"supported by MJX ({impl}); {fix}")

  act, geom = mujoco.mjtObj.mjOBJ_ACTUATOR, mujoco.mjtObj.mjOBJ_GEOM
  elements("geom(s)", geom, model.geom_type, "geom", mujoco.mjtGeom,
           "use primitives or meshes")
  elements("actuator(s)", act, model.actuator_trntype, "trn", mujoco.mjtTrn,
           "drive a joint, tendon or site")
  elements("actuator(s)", act, model.actuator_dyntype, "dyn", mujoco.mjtDyn,
           "use dyntype none, integrator, filter or filterexact")
  elements("actuator(s)", act, model.actuator_gaintype, "gain", mujoco.mjtGain,
           "use gaintype fixed or affine (e.g. <position>/<motor>)")
  elements("actuator(s)", act, model.actuator_biastype, "bias", mujoco.mjtBias,
           "use biastype none or affine (e.g. <position>/<motor>)")
  elements("equality constraint(s)", mujoco.mjtObj.mjOBJ_EQUALITY, model.eq_type, "eq",
           mujoco.mjtEq, "use connect, weld, joint or tendon equalities")
  elements("sensor(s)", mujoco.mjtObj.mjOBJ_SENSOR, model.sensor_type, "sensor",
           mujoco.mjtSensor, "remove them (the Dojo observes joints and sites itself)")
  if model.nwrap:
    elements("tendon wrap(s)", mujoco.mjtObj.mjOBJ_UNKNOWN, model.wrap_type, "wrap",
             mujoco.mjtWrap, "wrap tendons around sites, spheres or cylinders")
  if impl == "jax":
    out.extend(_unsupported_jax(model))
  if impl == "warp":
    for kind, ids in (("body", model.body_plugin), ("actuator", model.actuator_plugin),
                      ("sensor", model.sensor_plugin)):
      if (np.asarray(ids) != -1).any():
        out.append(f"{kind} plugins: MJX (warp) does not run them; remove them")
  return out


def _unsupported_jax(model: mujoco.MjModel) -> list[str]:
  """What only the JAX implementation refuses (``mjx._src.io._put_model_jax``)."""
  out = []
  opt = model.opt
  if model.nflex:
    out.append(f"{model.nflex} flex object(s): MJX (jax) has no flex; use impl='warp'")
  fluid = opt.density > 0 or opt.viscosity > 0 or np.any(opt.wind)
  if fluid and opt.integrator == mujoco.mjtIntegrator.mjINT_IMPLICITFAST:
    out.append("option integrator=implicitfast with fluid forces (density, viscosity or "
               "wind): MJX (jax) has no implicitfast fluid drag; set <option "
               "integrator=\"Euler\"/> or remove the fluid options")
  contact = model.sensor_type == mujoco.mjtSensor.mjSENS_CONTACT
  if contact.any():
    kinds = set(model.sensor_objtype[contact]) | set(model.sensor_reftype[contact])
    if kinds & {int(mujoco.mjtObj.mjOBJ_SITE), int(mujoco.mjtObj.mjOBJ_BODY),
                int(mujoco.mjtObj.mjOBJ_XBODY)} or (model.sensor_intprm[contact, 1] == 3).any():
      out.append("contact sensor(s) matching sites, bodies or subtrees, or reducing to a "
                 "net force: MJX (jax) matches geoms only; name geoms or use impl='warp'")
  no_margin = {int(mujoco.mjtGeom.mjGEOM_MESH), int(mujoco.mjtGeom.mjGEOM_HFIELD)}
  pairs, margins = set(), set()
  for g1, g2, ip in collision_driver.geom_pairs(model):
    t1, t2 = (int(t) for t in model.geom_type[[g1, g2]])
    if not collision_driver.has_collision_fn(t1, t2):
      pairs.add((mujoco.mjtGeom(t1).name[7:].lower(), mujoco.mjtGeom(t2).name[7:].lower()))
    elif no_margin & {t1, t2}:
      margin = model.pair_margin[ip] if ip != -1 else model.geom_margin[g1] + model.geom_margin[g2]
      if np.any(margin):
        for g in (g1, g2):
          margins.add(mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, int(g)) or f"#{g}")
  for t1, t2 in sorted(pairs):
    out.append(f"collisions between {t1} and {t2} geoms: MJX (jax) has no collision "
               f"function for them; set contype/conaffinity so that they cannot collide, "
               f"change a geom type, or use impl='warp'")
  if margins:
    names = sorted(margins)
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    out.append(f"geoms {names[:5]}{more}: MJX (jax) has no margin/gap on mesh or height "
               f"field collisions; set margin=\"0\" gap=\"0\" on them")
  return out


def check_mjx(model: mujoco.MjModel, impl: str, where: str,
              path: Optional[str] = None) -> None:
  """Raises one ``ValueError`` listing everything ``unsupported(model, impl)`` finds."""
  problems = unsupported(model, impl)
  if problems:
    source = f" ({path})" if path else ""
    raise ValueError(f"{where}: the model{source} uses what MJX (mujoco "
                     f"{mujoco.__version__}) cannot run with impl={impl!r}:\n"
                     + "\n".join(f"  - {p}" for p in problems))
