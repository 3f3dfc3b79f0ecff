"""The layering rule of docs/architecture.md, enforced: every import in ``src/osprey`` (at module top
or inside a function) goes from a unit to one that ``ALLOWED`` lists for it, and the module graph
has no cycle. A unit is a top-level module (``masks``, ``config``, ...) or package (``model``, ...).
Also the file-size budget: no file over ``MAX_LINES`` unless ``LONG_FILES`` says why."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "osprey"

PRIMITIVES = {"text", "config", "image", "masks", "overlay"}
# unit -> the units it may import (besides itself and the root ``osprey`` package, whose import
# installs the torchvision shim). Lowest layers first; an arrow never points up.
ALLOWED: dict[str, set[str]] = {
    "_torchvision_compat": set(),
    "_library_noise": set(),
    "text": set(),
    "config": {"text"},
    "image": {"config"},
    "masks": set(),
    "overlay": set(),
    "golden": set(),
    "flags": set(),
    "synthetic": {"masks", "text"},
    "model": {"config", "text"},
    "chat_client": {"config", "model"},
    "data": PRIMITIVES,
    "curate": PRIMITIVES | {"data", "chat_client"},
    "train": PRIMITIVES | {"model", "data"},
    "inference": PRIMITIVES | {"flags", "model"},
    "eval": PRIMITIVES | {"flags", "model", "data", "synthetic", "chat_client", "inference"},
    "serve": PRIMITIVES | {"flags", "model", "inference"},
    "label": PRIMITIVES | {"flags", "model", "data", "inference"},  # reads annotation files, runs the predictor
    "parity": {"config", "text", "image", "model", "golden"},
    "cli": {"flags", "model", "parity", "data", "synthetic", "curate", "train", "eval", "inference", "label", "serve"},
    "__main__": {"cli"},  # ``python -m osprey`` (so ``accelerate launch -m osprey``) is the command line
}
# The root package is the front door: its lazy ``__getattr__`` may import any unit (so it is left
# out of the cycle check; nothing runs those imports at ``import osprey``).
ROOT = "osprey"

MAX_LINES = 400
LONG_FILES = {  # path under src/osprey -> why it is one file
    "synthetic/questions.py": "one question/answer builder per subset behind one table; cohesive",
    "synthetic/world.py": "the scene model and its sampler: one concept",
    "synthetic/writer.py": "writing one split in every official format: one concept",
    "masks.py": "every mask format's check, decode and encode, each check beside its decoder",
    "model/weights.py": "checkpoint formats (official and ours) with one key table: one concept",
    "chat_client.py": "the HTTP chat client (cache, rate limit, retries) and its local twin",
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str:
    """The longest prefix of ``name`` that is a module of the package."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _imports(module: str, path: Path) -> set[str]:
    """Every ``osprey`` module that ``module`` imports, at any depth of the file."""
    found = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {_resolve(a.name) for a in node.names if a.name.split(".")[0] == ROOT}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != ROOT:
                continue
            for alias in node.names:  # ``from osprey import masks`` imports the module osprey.masks
                found.add(_resolve(f"{target}.{alias.name}"))
    found.discard(module)
    return found


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def test_every_unit_is_in_the_table() -> None:
    units = {unit(m) for m in MODULES} - {ROOT}
    assert units <= set(ALLOWED), f"units missing from ALLOWED (add them with their layer): {units - set(ALLOWED)}"


def test_no_import_points_up_the_layers() -> None:
    bad = []
    for module, targets in GRAPH.items():
        if module == ROOT:
            continue
        for target in targets:
            src, dst = unit(module), unit(target)
            if dst not in (src, ROOT, "_torchvision_compat") and dst not in ALLOWED[src]:
                bad.append(f"{module} -> {target}  ({src} may import {sorted(ALLOWED[src]) or 'nothing'})")
    assert not bad, "imports against the layering rule (docs/architecture.md):\n" + "\n".join(sorted(bad))


def test_the_unit_table_itself_has_no_cycle() -> None:
    _assert_acyclic({u: deps - {u} for u, deps in ALLOWED.items()})


def test_the_module_graph_has_no_cycle() -> None:
    _assert_acyclic({m: t - {ROOT} for m, t in GRAPH.items() if m != ROOT})


def _assert_acyclic(graph: dict[str, set[str]]) -> None:
    state: dict[str, int] = defaultdict(int)  # 0 new, 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state[nxt] == 1:
                cycle = [*stack[stack.index(nxt):], nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if state[nxt] == 0:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if state[node] == 0:
            visit(node)


def test_the_checker_sees_imports_inside_functions_and_from_the_root(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from osprey.model.loading import load_model\n    from osprey import masks\n"
                     "    from .regions import to_masks\n")
    found = _imports("osprey.inference.probe", probe)
    assert found == {"osprey.model.loading", "osprey.masks", "osprey.inference.regions"}


def test_no_file_is_over_the_line_budget_without_a_reason() -> None:
    over = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES and rel not in LONG_FILES:
            over[rel] = lines
    assert not over, f"files over {MAX_LINES} lines (split them, or say why in LONG_FILES): {over}"
    stale = [rel for rel in LONG_FILES if not (PACKAGE / rel).is_file()]
    assert not stale, f"LONG_FILES names files that are gone: {stale}"
