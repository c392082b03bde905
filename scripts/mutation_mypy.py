"""mypy for mutmut's type check (scripts/mutation.py): only the errors inside a mutant's own function.

mutmut runs `type_check_command` in its copy of the package, where every mutated function is followed by
its mutants (`x_name__mutmut_3`, ...) and by an unmutated copy (`x_name__mutmut_orig`), the original being
wrapped in a trampoline. The trampoline costs some type information (a function returning `TypeGuard` no
longer narrows its callers' types), so mypy finds errors the real code does not have: outside any copy
(mutmut then stops) and in the unmutated copy, hence in every mutant of that function too (mutmut would
count them all as caught). A mutation's own errors are those of a mutant that its unmutated copy lacks:
only those are passed on to mutmut, as mypy wrote them.

    python ../scripts/mutation_mypy.py mypy ssd_eval --output json ...   # from mutants/, as mutmut runs it
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from functools import cache
from pathlib import Path
from typing import Any

_COPY = re.compile(r"^(?P<family>.+)__mutmut_(?P<which>\d+|orig)$")


@cache
def copies(path: str) -> tuple[tuple[str, str, int, int], ...]:
    """(family, "orig" or the mutant's number, first line, last line) of every copy mutmut made in a file."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (m := _COPY.match(node.name)):
            found.append((m["family"], m["which"], node.lineno, node.end_lineno or node.lineno))
    return tuple(found)


def _copy_of(diagnostic: dict[str, Any]) -> tuple[str, str] | None:
    path, line = diagnostic.get("file"), diagnostic.get("line")
    if not isinstance(path, str) or not isinstance(line, int) or not Path(path).is_file():
        return None
    for family, which, first, last in copies(path):
        if first <= line <= last:
            return f"{path}:{family}", which
    return None


def mutation_errors(diagnostics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The errors a mutation made: inside a mutant's function, and more than its unmutated copy has (the
    same code and message, counted, are the copy's: a line a mutation moves keeps its error's text)."""
    by_copy: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for diagnostic in diagnostics:
        copy = _copy_of(diagnostic)
        if copy is not None:
            by_copy[copy].append(diagnostic)
    kept: list[dict[str, Any]] = []
    for (family, which), found in by_copy.items():
        if which == "orig":
            continue
        inherited = Counter((d.get("code"), d.get("message")) for d in by_copy.get((family, "orig"), []))
        for diagnostic in found:
            key = (diagnostic.get("code"), diagnostic.get("message"))
            if inherited[key]:
                inherited[key] -= 1
            else:
                kept.append(diagnostic)
    return kept


def main(command: list[str]) -> int:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    diagnostics = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    for diagnostic in mutation_errors(diagnostics):
        print(json.dumps(diagnostic))
    sys.stderr.write(done.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
