"""The mutation selection follows the code (issue 22): every module of the package is mutated by one group
of scripts/mutation_groups.toml or left out with a reason, and the lists the script reads are well formed.

A module added without a line there fails here, so mutation testing cannot silently miss it. The mutation
run itself (hours) is not part of the suite: docs/testing.md has its command and its last measurement.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutation_script", ROOT / "scripts" / "mutation.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutation_script"] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return _script()


def _package_modules() -> set[str]:
    return {p.relative_to(ROOT).as_posix() for p in (ROOT / "ssd_eval").rglob("*.py")}


def test_every_module_is_mutated_by_one_group_or_left_out_with_a_reason(script):
    selection = script.load_selection()
    in_groups = [m for g in selection.groups for m in g.modules]
    assert len(in_groups) == len(set(in_groups)), "a module is in two groups"
    both = set(in_groups) & set(selection.left_out)
    assert not both, f"both mutated and left out: {sorted(both)}"
    classified = set(in_groups) | set(selection.left_out)
    assert sorted(_package_modules() - classified) == [], "add these to scripts/mutation_groups.toml"
    assert sorted(classified - _package_modules()) == [], "no such modules: remove them"
    assert all(reason.strip() for reason in selection.left_out.values())


def test_groups_name_existing_test_files_and_unique_names(script):
    selection = script.load_selection()
    names = [g.name for g in selection.groups]
    assert len(names) == len(set(names))
    for group in selection.groups:
        assert group.modules and group.tests, group.name
        missing = [t for t in group.tests if not (ROOT / t).is_file()]
        assert missing == [], f"group {group.name}: no such test files {missing}"


def test_the_modules_that_decide_a_number_or_an_exit_code_are_mutated(script):
    """Written out by hand: the modules issue 22 names, and those that decide an exit code."""
    mutated = {m for g in script.load_selection().groups for m in g.modules}
    for module in (
        "evaluation/array_cocoeval.py",
        "reports/diagnosis.py",
        "reports/baseline.py",
        "engine/run_folder.py",
        "engine/rescore.py",
        "engine/compare_runs.py",
        "pipeline/graph_preprocess.py",
        "evaluation/identity.py",
        "evaluation/agreement.py",
        "evaluation/imports/coco_results.py",
        "evaluation/imports/mlperf_log.py",
        "reports/gate.py",
        "reports/verdict.py",
        "engine/runner.py",
        "config/run.py",
        "cli/__init__.py",
        "cli/interrupts.py",
    ):
        assert f"ssd_eval/{module}" in mutated, module


def test_pyproject_leaves_the_selection_to_the_groups_file(script):
    mutmut = script.tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mutmut"]
    assert "only_mutate" not in mutmut
    assert "pytest_add_cli_args_test_selection" not in mutmut


def test_equivalents_name_mutants_of_mutated_modules_with_their_line_and_a_reason(script):
    mutated = {
        m.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        for g in script.load_selection().groups
        for m in g.modules
    }
    groups = {g.name for g in script.load_selection().groups}
    for path in script.EQUIVALENTS.glob("*.toml"):
        assert path.stem in groups, f"{path.name}: not a group's name"
        raw = script.tomllib.loads(path.read_text(encoding="utf-8"))
        for entry in raw.get("equivalent", []):
            assert entry["why"].strip()
            for item in entry["mutants"]:
                name, sep, line = item.partition(": ")
                assert sep and line.strip(), f"{item!r}: write 'name: mutated line'"
                assert script.module_of(name) in mutated, name
    script.load_equivalents()  # no mutant listed twice


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("ssd_eval.data.dataset.x_read_id_list__mutmut_8", "ssd_eval.data.dataset"),
        ("ssd_eval.data.annotation_checks.xǁ_Tableǁunique__mutmut_11", "ssd_eval.data.annotation_checks"),
        ("ssd_eval.cli.x_main__mutmut_3", "ssd_eval.cli"),
        ("ssd_eval.evaluation.imports.x_detect_format__mutmut_1", "ssd_eval.evaluation.imports"),
    ],
)
def test_module_of_a_mutant_name(script, name, module):
    assert script.module_of(name) == module


def _mutant(script, name, status, added="x = 1"):
    return script.Mutant(name, status, f"--- a\n+++ b\n@@ -1 +1 @@\n-x = 0\n+{added}")


def test_a_mutant_is_quoted_by_its_added_lines_or_else_by_its_deleted_ones(script):
    diff = "--- a\n+++ b\n@@ -1,2 +1,2 @@\n-  a = 1\n-  b = 2\n+  a = 3\n+  b = 4"
    changed = script.Mutant("m", "survived", diff)
    assert changed.mutated_lines == "a = 3 / b = 4"
    dropped = script.Mutant("m", "survived", '--- a\n+++ b\n@@ -1,3 +1,2 @@\n f(\n-    mode="x",\n )')
    assert dropped.mutated_lines == 'deleted: mode="x",'


def test_the_report_counts_mypy_as_killed_and_holds_both_targets(script):
    """19 of 20 killed (95%) meets the whole target; a module at 17 of 20 (85%) does not meet its own."""
    group = script.Group(name="g", modules=("ssd_eval/a.py", "ssd_eval/b.py"), tests=("tests/t.py",))
    selection = script.Selection(groups=(group,), left_out={})
    a = [_mutant(script, f"ssd_eval.a.x_f__mutmut_{i}", "killed") for i in range(1, 11)]
    a += [_mutant(script, f"ssd_eval.a.x_f__mutmut_{i}", "caught by type check") for i in range(11, 20)]
    a.append(_mutant(script, "ssd_eval.a.x_f__mutmut_20", "survived", added="x = 2"))
    run = script.GroupRun(mutants=tuple(a), commit="abc", seconds=1, inputs="d")
    equivalents = {"ssd_eval.a.x_f__mutmut_20": ("x = 2", "why")}
    text, ok = script.report(selection, {"g": run}, equivalents, {"g": "d"})
    assert ok, text
    assert "| `ssd_eval.a` | 19 | 9 | 20 | 95.0% | 1 | 0 |" in text

    # The same survivor listed with another line is stale: read again, and counted as not read.
    text, ok = script.report(
        selection, {"g": run}, {"ssd_eval.a.x_f__mutmut_20": ("x = 3", "why")}, {"g": "d"}
    )
    assert not ok
    assert "ssd_eval.a.x_f__mutmut_20: listed as `x = 3`, is `x = 2`" in text
    assert "NOT MET: 1 survivors not listed as equivalent" in text

    b = [_mutant(script, f"ssd_eval.b.x_g__mutmut_{i}", "killed") for i in range(1, 18)]
    b += [_mutant(script, f"ssd_eval.b.x_g__mutmut_{i}", "survived", added=f"y = {i}") for i in range(18, 21)]
    b_listed = {m.name: (m.mutated_lines, "why") for m in b[17:]}
    run = script.GroupRun(mutants=tuple(a + b), commit="abc", seconds=1, inputs="d")
    text, ok = script.report(selection, {"g": run}, {**equivalents, **b_listed}, {"g": "d"})
    assert not ok
    assert "NOT MET: modules below 90%: ssd_eval.b" in text
    assert "NOT MET: 90.0% of all mutants killed, below 95%" in text


def test_the_report_refuses_groups_not_run_or_run_on_other_inputs(script):
    one = script.Group(name="one", modules=("ssd_eval/a.py",), tests=("tests/t.py",))
    two = script.Group(name="two", modules=("ssd_eval/b.py",), tests=("tests/t.py",))
    selection = script.Selection(groups=(one, two), left_out={})
    checkout = {"one": "d1", "two": "d2"}
    run_a = script.GroupRun(
        mutants=(_mutant(script, "ssd_eval.a.x_f__mutmut_1", "killed"),), commit="c1", seconds=1, inputs="d1"
    )
    text, ok = script.report(selection, {"one": run_a}, {}, checkout)
    assert not ok and "NOT MET: groups not run: two" in text
    run_b = script.GroupRun(
        mutants=(_mutant(script, "ssd_eval.b.x_f__mutmut_1", "killed"),), commit="c2", seconds=1, inputs="d2"
    )
    text, ok = script.report(selection, {"one": run_a, "two": run_b}, {}, checkout)
    assert ok, text  # two commits, each group's inputs unchanged since
    text, ok = script.report(selection, {"one": run_a, "two": run_b}, {}, {"one": "d1", "two": "d3"})
    assert not ok
    assert (
        "NOT MET: groups run on other code or tests than the checkout holds: two "
        "(run them again: python scripts/mutation.py two)"
    ) in text
    unknown = dataclasses.replace(run_b, inputs="")  # an old stamp whose inputs cannot be known
    text, ok = script.report(selection, {"one": run_a, "two": unknown}, {}, checkout)
    assert not ok and "than the checkout holds: two " in text


def test_a_groups_inputs_are_what_its_run_can_read(script):
    group = script.Group(name="g", modules=("ssd_eval/a.py",), tests=("tests/test_a.py",))
    files = {
        "ssd_eval/a.py": b"x = 1\n",
        "ssd_eval/b.py": b"y = 1\n",
        "tests/test_a.py": b"def test(): ...\n",
        "tests/test_b.py": b"def test(): ...\n",
        "tests/conftest.py": b"",
        "tests/helpers.py": b"",
        "pyproject.toml": b"[tool.mutmut]\n",
        "docs/api.md": b"# API\n",
        "docs/testing.md": b"MEASURED\n",
        "scripts/mutation_equivalents/g.toml": b"",
        "configs": b"link:ssd_eval/configs",
    }
    before = script.inputs_digest(group, files)
    for unread in (
        "tests/test_b.py",
        "docs/testing.md",
        "docs/new.md",
        "scripts/mutation_equivalents/g.toml",
    ):
        assert script.inputs_digest(group, {**files, unread: b"changed"}) == before, unread
    for read in (
        "ssd_eval/a.py",
        "ssd_eval/b.py",
        "tests/test_a.py",
        "tests/conftest.py",
        "tests/helpers.py",
        "pyproject.toml",
        "docs/api.md",
        "configs",
        "ssd_eval/new.py",
    ):
        assert script.inputs_digest(group, {**files, read: b"changed"}) != before, read
    other_tests = script.Group(name="g", modules=("ssd_eval/a.py",), tests=("tests/test_b.py",))
    assert script.inputs_digest(other_tests, files) != before


def test_the_docs_a_groups_tests_read_are_inputs(script):
    """A page of docs/ named in a group's test file (a quoted path, not a docstring's opening words) is among
    DOCS_READ_BY_TESTS."""
    named: set[str] = set()
    for group in script.load_selection().groups:
        for test in group.tests:
            text = (ROOT / test).read_text(encoding="utf-8")
            named |= {f"docs/{m}" for m in re.findall(r"(?<![\"'])[\"']docs/([\w.-]+\.md)", text)}
            named |= {f"docs/{m}" for m in re.findall(r"\"docs\"\s*/\s*\"([^\"]+)\"", text)}
    assert named and named <= set(script.DOCS_READ_BY_TESTS), named


def test_a_run_stamped_before_inputs_were_recorded_is_judged_by_its_commit(script, tmp_path, monkeypatch):
    """The digest of a clean commit's files (git archive) is the digest of the same tree checked out."""
    group = script.load_selection().groups[0]
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    files = script._commit_files(head.stdout.strip())
    assert files is not None and "ssd_eval/__init__.py" in files
    assert files.get("configs") == b"link:ssd_eval/configs"
    assert script._commit_files("0" * 40) is None
    work = tmp_path / group.name
    work.mkdir()
    (work / "stamp.json").write_text(json.dumps({"commit": head.stdout.strip(), "seconds": 3}))
    (work / "mutants.json").write_text("{}")
    monkeypatch.setattr(script, "WORK", tmp_path)
    assert script.read_group(group).inputs == script.inputs_digest(group, files)
    (work / "stamp.json").write_text(json.dumps({"commit": "abc+changes", "seconds": 3}))
    assert script.read_group(group).inputs == ""


def test_only_the_errors_a_mutation_made_reach_mutmut(tmp_path):
    """mypy's errors in mutmut's copy: outside every copy, or also in the unmutated copy (the same code and
    message), are the copy's; an error only a mutant has is the mutation's."""
    spec = importlib.util.spec_from_file_location("mutation_mypy", ROOT / "scripts" / "mutation_mypy.py")
    assert spec and spec.loader
    wrapper = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(wrapper)
    source = tmp_path / "m.py"
    source.write_text(
        "def f(x):\n"  # 1: the trampolined original
        "    return len(x)\n"
        "def x_f__mutmut_orig(x):\n"  # 3
        "    return len(x)\n"
        "def x_f__mutmut_1(x):\n"  # 5
        "    return len(x)\n"
        "def x_f__mutmut_2(x):\n"  # 7
        "    return len(None) + len(x)\n",
        encoding="utf-8",
    )
    inherited = {"code": "arg-type", "message": 'Argument 1 to "len" has "Any | None"'}
    own = {"code": "arg-type", "message": 'Argument 1 to "len" has incompatible type "None"'}
    diagnostics = [
        {"file": str(source), "line": 2, **inherited},  # the original: not a copy
        {"file": str(source), "line": 4, **inherited},  # the unmutated copy
        {"file": str(source), "line": 6, **inherited},  # mutant 1: the copy's error only
        {"file": str(source), "line": 8, **inherited},  # mutant 2: the copy's error ...
        {"file": str(source), "line": 8, **own},  # ... and its own
    ]
    assert wrapper.mutation_errors(diagnostics) == [{"file": str(source), "line": 8, **own}]


def test_a_stale_equivalent_is_named_with_where_its_mutation_went(script, monkeypatch):
    """--check-equivalents: listed mutants compared with those the code makes now (here a stand-in for
    mutmut's generation: the real one needs the dev extra)."""
    group = script.Group(name="g", modules=("ssd_eval/a.py",), tests=("tests/t.py",))
    selection = script.Selection(groups=(group,), left_out={})
    made = {
        "ssd_eval.a.x_f__mutmut_1": _mutant(script, "ssd_eval.a.x_f__mutmut_1", "not run", added="x = 2"),
        "ssd_eval.a.x_f__mutmut_2": _mutant(script, "ssd_eval.a.x_f__mutmut_2", "not run", added="x = 3"),
        "ssd_eval.a.x_f__mutmut_3": None,  # listed, not made any more
    }
    monkeypatch.setattr(script, "generated_mutants", lambda path, wanted: made)
    listed = {
        "ssd_eval.a.x_f__mutmut_1": ("x = 2", "why"),  # as listed
        "ssd_eval.a.x_f__mutmut_2": ("x = 2", "why"),  # renumbered: x = 2 is mutant 1 now
        "ssd_eval.a.x_f__mutmut_3": ("x = 4", "why"),
    }
    assert script.stale_equivalents(selection, listed) == [
        "ssd_eval.a.x_f__mutmut_2: listed as `x = 2`, is `x = 3`; "
        "that mutation is now ssd_eval.a.x_f__mutmut_1",
        "ssd_eval.a.x_f__mutmut_3: listed as `x = 4`, not generated any more",
    ]
