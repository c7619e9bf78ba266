"""The layout of docs/architecture.md, checked on the source (no imports, just the AST).

Every import counts, at module level or inside a function: a circle through an import
hidden in a function is still a circle.
"""

from __future__ import annotations

import ast
import glob
import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("wam", "dojo", "experiments", "egoscale")
MAX_LINES = 450
# Who may import whom (prefixes); anything not listed for a part is forbidden to it.
FORBIDDEN = {
    "wam": ("dojo", "experiments", "egoscale", "benchmarks"),
    "dojo": ("experiments", "egoscale", "benchmarks"),
    "egoscale": ("experiments", "benchmarks"),
    "experiments": ("benchmarks",),
}
# The simulator proper never imports the model; the Dojo's dataset builder may use the
# episode format (wam.data), which is not the model.
SIMULATOR_MAY_IMPORT = ("wam.data",)
# Inference sits below training: a served or loaded model never imports the trainer.
INFERENCE = ("wam.loading", "wam.model_io", "wam.policy", "wam.serving", "dojo.neural")


def _modules() -> dict[str, str]:
  out = {}
  for package in PACKAGES:
    for folder, _, files in os.walk(os.path.join(REPO, package)):
      for name in files:
        if name.endswith(".py"):
          path = os.path.join(folder, name)
          module = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
          out[module.removesuffix(".__init__")] = path
  return out


MODULES = _modules()


def _owner(name: str) -> str:
  """The project module ``name`` refers to (a module, or the one defining it), or ''."""
  while name and name not in MODULES:
    name = name.rpartition(".")[0]
  return name


def _imports(path: str) -> list[tuple[str, str]]:
  """``(module, imported name or '')`` for every absolute import in the file."""
  with open(path) as f:
    tree = ast.parse(f.read(), path)
  out = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      out += [(a.name, "") for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      out += [(node.module, a.name) for a in node.names]
  return out


def _graph() -> dict[str, set[str]]:
  graph = {}
  for module, path in MODULES.items():
    deps = set()
    for name, item in _imports(path):
      target = _owner(f"{name}.{item}" if item else name) or _owner(name)
      # A submodule imports its own packages' __init__ anyway: not an edge.
      if target and target != module and not module.startswith(target + "."):
        deps.add(target)
    graph[module] = deps
  return graph


GRAPH = _graph()


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """Strongly connected components with more than one module (Tarjan, iterative)."""
  index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]

  def visit(root):
    work = [(root, iter(sorted(graph[root])))]
    index[root] = low[root] = counter[0]
    counter[0] += 1
    stack.append(root)
    on_stack.add(root)
    while work:
      node, children = work[-1]
      child = next(children, None)
      if child is not None:
        if child not in index:
          index[child] = low[child] = counter[0]
          counter[0] += 1
          stack.append(child)
          on_stack.add(child)
          work.append((child, iter(sorted(graph[child]))))
        elif child in on_stack:
          low[node] = min(low[node], index[child])
        continue
      work.pop()
      if work:
        low[work[-1][0]] = min(low[work[-1][0]], low[node])
      if low[node] == index[node]:
        component = []
        while True:
          member = stack.pop()
          on_stack.discard(member)
          component.append(member)
          if member == node:
            break
        if len(component) > 1:
          found.append(sorted(component))

  for module in sorted(graph):
    if module not in index:
      visit(module)
  return found


def test_the_cycle_finder_finds_a_cycle():
  assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circle():
  assert _cycles(GRAPH) == []


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_import_directions(part):
  wrong = sorted((m, d) for m, deps in GRAPH.items() if m.split(".")[0] == part
                 for d in deps if d.split(".")[0] in FORBIDDEN[part])
  assert wrong == [], f"{part} may not import {FORBIDDEN[part]} (docs/architecture.md)"


def test_the_simulator_does_not_import_the_model():
  wrong = sorted((m, d) for m, deps in GRAPH.items()
                 if m.startswith("dojo") and not m.startswith("dojo.neural")
                 for d in deps if (d.startswith("wam") and not d.startswith(SIMULATOR_MAY_IMPORT))
                 or d.startswith("dojo.neural"))
  assert wrong == [], "only dojo/neural/ imports the model"


def test_inference_does_not_import_the_trainer():
  wrong = sorted((m, d) for m, deps in GRAPH.items() if m.startswith(INFERENCE)
                 for d in deps if d == "wam.trainer")
  assert wrong == []


def test_no_module_imports_a_private_name():
  wrong = []
  for module, path in MODULES.items():
    for name, item in _imports(path):
      hidden = [p for p in f"{name}.{item}".split(".") if re.fullmatch(r"_[^_].*", p)]
      if hidden and _owner(name):
        wrong.append((module, name, item))
  assert wrong == []


def test_library_files_are_short():
  long = {m: n for m, p in MODULES.items() if (n := sum(1 for _ in open(p))) >= MAX_LINES}
  assert long == {}, f"split these by concern (under {MAX_LINES} lines)"


def _readme_rows() -> list[list[str]]:
  """The backticked names of each row's first column in the README's code-structure table."""
  with open(os.path.join(REPO, "README.md")) as f:
    text = f.read()
  table = text.split("## Code structure", 1)[1].split("\n## ", 1)[0]
  return [[t.rstrip(":") for t in re.findall(r"`([^`]+)`", row.split(" | ")[0])]
          for row in table.splitlines() if row.startswith("| `")]


def _resolve(row: list[str]) -> tuple[list[str], list[str]]:
  """``(existing paths, names found nowhere)``: a bare name is relative to a folder of an
  earlier name in its row (``dojo/env.py``, ``task.py`` -> ``dojo/task.py``)."""
  found, missing, bases = [], [], []
  for token in row:
    rooted = "/" in token and os.path.isdir(os.path.join(REPO, token.split("/")[0]))
    if rooted:
      folder = token.rstrip("/") if token.endswith("/") else os.path.dirname(token)
      bases = [folder, folder.split("/")[0]] + bases
    candidates = [token] if rooted else [token] + [f"{b}/{token}" for b in bases]
    hits = [c for c in candidates if glob.glob(os.path.join(REPO, c.rstrip("/")))]
    if hits:
      found += [os.path.relpath(h, REPO) for h in glob.glob(os.path.join(REPO, hits[0].rstrip("/")))]
    else:
      missing.append(token)
  return found, missing


def test_readme_code_structure_matches_the_tree():
  rows = _readme_rows()
  assert len(rows) > 15
  named, missing = set(), []
  for row in rows:
    found, gone = _resolve(row)
    named.update(found)
    missing += gone
  assert missing == [], "README's code-structure table names paths that do not exist"
  # Every file and folder at the top of each package is in the table.
  omitted = []
  for package in PACKAGES:
    for entry in sorted(os.listdir(os.path.join(REPO, package))):
      path = f"{package}/{entry}"
      if entry.startswith(("_", ".")) or not (entry.endswith(".py") or os.path.isdir(
          os.path.join(REPO, path))):
        continue
      if path not in named and not any(n.startswith(path + "/") for n in named):
        omitted.append(path)
  assert omitted == [], "README's code-structure table omits these"
