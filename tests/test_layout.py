"""The package layout: imports go one way, down the stages, and no module imports one of a higher stage.

The stage order is written here, independently of the package, from the README's architecture section.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ssd_eval"

# Lowest first. A module may import modules of its own stage or of a lower one.
STAGES = [
    ("errors", "coco_stats"),
    ("config",),
    ("assets",),
    ("data",),
    ("pipeline",),
    ("twin",),
    ("evaluation",),
    ("reports",),
    ("engine",),
    ("cli",),
    ("__main__",),
]


def _stage(module: str) -> int:
    parts = module.split(".")
    assert parts[0] == "ssd_eval", module
    if len(parts) == 1:  # the package itself: __version__ only
        return 0
    for rank, names in enumerate(STAGES):
        if parts[1] in names:
            return rank
    raise AssertionError(f"{module}: not in any stage; add its folder to STAGES and the README")


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(a.name for a in node.names if a.name.startswith("ssd_eval"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ssd_eval"):
            if node.module == "ssd_eval":
                found.extend(
                    f"ssd_eval.{a.name}" if a.name != "__version__" else "ssd_eval" for a in node.names
                )
            else:
                found.append(node.module)
    return found


def _all_modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_belongs_to_a_stage():
    for path in _all_modules():
        _stage(_module_name(path))


def test_no_module_imports_a_higher_stage():
    violations = []
    for path in _all_modules():
        name = _module_name(path)
        for target in _imports(path):
            if _stage(target) > _stage(name):
                violations.append(f"{name} imports {target}")
    assert violations == []


def test_no_import_cycles_between_modules():
    graph = {_module_name(p): set(_imports(p)) for p in _all_modules()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph or nxt == node:
                continue
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            raise AssertionError(" -> ".join(cycle))


def test_modules_stay_readable_in_one_sitting():
    too_long = {}
    for path in _all_modules():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > 600:
            too_long[_module_name(path)] = lines
    assert too_long == {}
