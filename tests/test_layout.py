"""The package layout: imports go one way, down the stages, and no module imports one of a higher stage.

The stage order is written here, independently of the package, from docs/architecture.md.

One exception: the package itself (`ssd_eval/__init__.py`, stage 0) offers the Python API
(`ssd_eval.evaluate`, `score`, `merge`, `compare`) as thin functions that import `ssd_eval.engine.api`
and nothing else above stage 0, and only inside a function body or under `if TYPE_CHECKING:`, so that
`import ssd_eval` loads no stage above 0 (no onnxruntime) and those imports close no cycle at run time.
The cycle check therefore leaves them out.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ssd_eval"

# The one module above stage 0 the package's __init__ may import (lazily): the Python API.
PACKAGE_API = "ssd_eval.engine.api"

# Lowest first. A module may import modules of its own stage or of a lower one.
STAGES = [
    ("errors", "coco_stats", "files"),
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
    raise AssertionError(f"{module}: not in any stage; add its folder to STAGES and docs/architecture.md")


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[str]:
    return _imports_in(ast.parse(path.read_text(encoding="utf-8")))


def _imports_in(tree: ast.AST) -> list[str]:
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
            if name == "ssd_eval" and target == PACKAGE_API:
                continue  # the Python API, imported lazily (test_the_package_imports_only_the_api_lazily)
            if _stage(target) > _stage(name):
                violations.append(f"{name} imports {target}")
    assert violations == []


def _eager_imports(statements: list[ast.stmt]) -> list[ast.stmt]:
    """The import statements a module runs when it is imported: those outside any function or class
    and outside `if TYPE_CHECKING:`."""
    found: list[ast.stmt] = []
    for node in statements:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If):
            if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                found += _eager_imports(node.body)
            found += _eager_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, *(h.body for h in node.handlers), node.orelse, node.finalbody):
                found += _eager_imports(block)
    return found


def test_the_package_imports_only_the_api_lazily():
    init = PACKAGE / "__init__.py"
    tree = ast.parse(init.read_text(encoding="utf-8"))
    above = {target for target in _imports_in(tree) if _stage(target) > 0}
    assert above == {PACKAGE_API}
    eager = _imports_in(ast.Module(body=_eager_imports(tree.body), type_ignores=[]))
    assert [target for target in eager if _stage(target) > 0] == []


def test_no_import_cycles_between_modules():
    graph = {_module_name(p): set(_imports(p)) for p in _all_modules()}
    graph["ssd_eval"].discard(PACKAGE_API)  # lazy: run when the API is called, never on import
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
