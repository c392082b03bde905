"""Mutation testing of every module that computes or decides something (docs/testing.md).

Each group of scripts/mutation_groups.toml is run by mutmut in a copy of the project of its own
(`.mutation/<group>/`, git-ignored), mutating the group's modules against the group's test files
only. Why groups: mutmut runs, for each mutant, every selected test that reached the mutated function;
with the whole suite selected, a surviving mutant of a function every run passes through costs about
100 s of tests, and a whole run does not fit in a day. The group's own tests bound that cost.

    python scripts/mutation.py                  # every group, from scratch, then the report
    python scripts/mutation.py scoring data     # these groups, from scratch, then the report
    python scripts/mutation.py --report         # only the report, from the groups already run
    python scripts/mutation.py --list           # the groups, their modules and test files
    python scripts/mutation.py --check-equivalents   # after a code change: is every listed equivalent still
                                                     # generated as listed? (seconds: no tests run)

The report (printed, and written to .mutation/report.md) counts per module: killed (by a test, by
mypy, which .ci/run also runs, or by a timeout), survived, and the survivors listed as equivalent in
scripts/mutation_equivalents/<group>.toml. It exits 1 unless every group was run on what the checkout
holds now (its inputs: below), at least 95% of all mutants and 90% of each module's are killed, and every
survivor is listed there with its reason (a listed mutant whose mutated line no longer matches is stale:
read it again).

A group's inputs are every file its run can read: the whole package, the group's own test files, the tests'
shared files (conftest.py, helpers, data), pyproject.toml, the README and the pages of docs/ the tests read.
Not among them: the other test files (never collected by the group's run), the other pages of docs/, and what
only this script reads (the groups file, the equivalents lists). A run stays valid while its inputs are
unchanged: a test added for one group's survivor means running that group again, not all sixteen.

Needs `pip install -e ".[dev]"` (mutmut 3.8). MUTMUT_CHILDREN sets mutmut's parallel workers
(default: the number of cores).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
GROUPS_FILE = ROOT / "scripts" / "mutation_groups.toml"
EQUIVALENTS = ROOT / "scripts" / "mutation_equivalents"  # one file per group: <group>.toml
# MUTATION_WORK: another folder for the groups' copies (two people, or two sessions, on one checkout).
WORK = Path(os.environ.get("MUTATION_WORK", ROOT / ".mutation")).resolve()

TOTAL_TARGET = 0.95
MODULE_TARGET = 0.90

# mutmut's statuses that count as killed: a failing test, mypy (run by .ci/run) or a time-out.
KILLED = {"killed", "caught by type check", "timeout"}

# Run once per group inside its copy: every mutant's status and, for those not killed, its diff.
_DIFFS = """
import json, sys
from mutmut.__main__ import walk_mutatable_files
from mutmut.mutation.data import SourceFileMutationData
from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.stats import status_by_exit_code
out = {}
for path in walk_mutatable_files():
    data = SourceFileMutationData(path=path)
    data.load()
    for name, code in data.exit_code_by_key.items():
        status = status_by_exit_code[code]
        diff = "" if status in ("killed", "caught by type check") else get_diff_for_mutant(name, path=path)
        out[name] = {"status": status, "diff": diff}
json.dump(out, sys.stdout)
"""


@dataclass(frozen=True)
class Group:
    name: str
    modules: tuple[str, ...]
    tests: tuple[str, ...]


@dataclass(frozen=True)
class Selection:
    groups: tuple[Group, ...]
    left_out: dict[str, str]  # module path -> why it is not mutated


@dataclass(frozen=True)
class Mutant:
    name: str
    status: str
    diff: str

    @property
    def module(self) -> str:
        return module_of(self.name)

    @property
    def mutated_lines(self) -> str:
        """The diff's added lines, stripped and joined: what an equivalents entry must quote. A mutant
        that only deletes (a keyword argument on a line of its own) is quoted by its deleted lines,
        each as `deleted: LINE`."""
        lines = self.diff.splitlines()
        added = [line[1:].strip() for line in lines if line.startswith("+") and not line.startswith("+++")]
        if added:
            return " / ".join(added)
        deleted = [line[1:].strip() for line in lines if line.startswith("-") and not line.startswith("---")]
        return " / ".join(f"deleted: {line}" for line in deleted)


@dataclass(frozen=True)
class GroupRun:
    """What one group's run left: every mutant with its status, and where and how long it ran."""

    mutants: tuple[Mutant, ...]
    commit: str
    seconds: int
    inputs: str  # inputs_digest of what the group's run read ("" when not known)


@dataclass
class ModuleScore:
    killed: int = 0
    caught_by_mypy: int = 0
    equivalent: int = 0
    unread: int = 0
    total: int = 0

    @property
    def rate(self) -> float:
        return self.killed / self.total if self.total else 1.0


def module_of(mutant_name: str) -> str:
    """`ssd_eval.data.dataset.x_read_id_list__mutmut_8` -> `ssd_eval.data.dataset`."""
    match = re.match(r"(ssd_eval(?:\.\w+)*?)\.x[ǁ_]", mutant_name)
    if not match:
        raise ValueError(f"not a mutmut mutant name: {mutant_name}")
    return match.group(1)


def load_selection(path: Path = GROUPS_FILE) -> Selection:
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    groups = tuple(
        Group(name=g["name"], modules=tuple(g["modules"]), tests=tuple(g["tests"])) for g in raw["group"]
    )
    return Selection(groups=groups, left_out=dict(raw["left_out"]))


def load_equivalents(folder: Path = EQUIVALENTS) -> dict[str, tuple[str, str]]:
    """mutant name -> (its mutated line as quoted, why the mutant is equivalent)."""
    found: dict[str, tuple[str, str]] = {}
    for path in sorted(folder.glob("*.toml")):
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        for entry in raw.get("equivalent", []):
            for item in entry["mutants"]:
                name, _, line = item.partition(": ")
                if name in found:
                    raise SystemExit(f"{path.name}: {name} is listed twice")
                found[name] = (line.strip(), entry["why"])
    return found


def _project_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and os.path.lexists(ROOT / name)]


def _copy_project(dest: Path) -> None:
    """The working tree as git sees it (tracked and new files, not the ignored ones), links kept."""
    for name in _project_files():
        source, target = ROOT / name, dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        elif source.is_file():
            shutil.copy2(source, target)


# Read only by this script, never by a group's run: changing them leaves every run valid.
_REPORT_ONLY = ("scripts/mutation.py", "scripts/mutation_groups.toml")
# The pages under docs/ that a group's tests read (test_api.py runs api.md's examples); the others are
# read by no group (tests/test_docs.py is in none), tests/test_mutation_selection.py keeps this list true.
DOCS_READ_BY_TESTS = ("docs/api.md",)


def is_group_input(name: str, group: Group) -> bool:
    """Whether a project file can change what the group's run measures (module docstring)."""
    if name in _REPORT_ONLY or name.startswith("scripts/mutation_equivalents/"):
        return False
    if name.startswith("docs/"):
        return name in DOCS_READ_BY_TESTS
    if name.startswith("tests/") and Path(name).name.startswith("test_") and name.endswith(".py"):
        return name in group.tests
    return True


def inputs_digest(group: Group, files: dict[str, bytes]) -> str:
    """SHA-256 of the group's inputs (path and content, a link as its target) and of its selection."""
    digest = hashlib.sha256(json.dumps([group.modules, group.tests]).encode())
    for name in sorted(n for n in files if is_group_input(n, group)):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()


def _checkout_files() -> dict[str, bytes]:
    """The working tree as the copies take it: a link as its target, a file as its bytes."""
    files: dict[str, bytes] = {}
    for name in _project_files():
        path = ROOT / name
        if path.is_symlink():
            files[name] = b"link:" + os.readlink(path).encode()
        elif path.is_file():
            files[name] = path.read_bytes()
    return files


def _commit_files(commit: str) -> dict[str, bytes] | None:
    """The files of a commit, as _checkout_files reads a working tree; None when git does not have it."""
    done = subprocess.run(["git", "archive", "--format=tar", commit], cwd=ROOT, capture_output=True)
    if done.returncode != 0:
        return None
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
        for member in tar.getmembers():
            if member.issym():
                files[member.name] = b"link:" + member.linkname.encode()
            elif member.isfile():
                extracted = tar.extractfile(member)
                assert extracted is not None
                files[member.name] = extracted.read()
    return files


def _with_group(pyproject: str, group: Group) -> str:
    """pyproject.toml with the group's modules and test files under [tool.mutmut]."""
    header = "[tool.mutmut]\n"
    if header not in pyproject:
        raise SystemExit("pyproject.toml has no [tool.mutmut] table")
    lines = [
        f"only_mutate = {json.dumps(list(group.modules))}",
        f"pytest_add_cli_args_test_selection = {json.dumps(list(group.tests))}",
    ]
    return pyproject.replace(header, header + "\n".join(lines) + "\n", 1)


def _commit() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True)
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def prepare_group(group: Group) -> None:
    """The group's copy of the project, with its [tool.mutmut] selection. Every group is copied before
    the first one runs, so that all are measured on the same code even if the tree changes meanwhile."""
    dest = WORK / group.name
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    _copy_project(dest)
    pyproject = dest / "pyproject.toml"
    pyproject.write_text(_with_group(pyproject.read_text(encoding="utf-8"), group), encoding="utf-8")
    # configs/ is a link to ssd_eval/configs in the repository: in mutmut's copy too, or the bundled
    # configs' relative paths (../baselines/...) resolve elsewhere.
    (dest / "mutants").mkdir()
    (dest / "mutants" / "configs").symlink_to("ssd_eval/configs")
    (dest / "commit.txt").write_text(_commit(), encoding="utf-8")
    (dest / "inputs.txt").write_text(inputs_digest(group, _checkout_files()), encoding="utf-8")


def run_group(group: Group, children: int) -> None:
    dest = WORK / group.name
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # ssd_eval comes from mutants/
    started = time.time()
    with open(dest / "mutmut.log", "w", encoding="utf-8") as log:
        done = subprocess.run(
            ["nice", "-n", "10", "mutmut", "run", "--max-children", str(children)],
            cwd=dest,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0:
        print(
            f"group {group.name}: mutmut exited {done.returncode}; see {dest / 'mutmut.log'}", file=sys.stderr
        )
        return
    found = subprocess.run(
        [sys.executable, "-c", _DIFFS], cwd=dest, env=env, capture_output=True, text=True, check=True
    ).stdout
    (dest / "mutants.json").write_text(found, encoding="utf-8")
    commit = (dest / "commit.txt").read_text(encoding="utf-8")
    inputs = (dest / "inputs.txt").read_text(encoding="utf-8")
    stamp = {"commit": commit, "seconds": round(time.time() - started), "group": group.name, "inputs": inputs}
    (dest / "stamp.json").write_text(json.dumps(stamp), encoding="utf-8")


def read_group(group: Group) -> GroupRun | None:
    dest = WORK / group.name
    if not (dest / "stamp.json").is_file():
        return None
    stamp = json.loads((dest / "stamp.json").read_text(encoding="utf-8"))
    raw = json.loads((dest / "mutants.json").read_text(encoding="utf-8"))
    mutants = tuple(Mutant(name, v["status"], v["diff"]) for name, v in sorted(raw.items()))
    inputs = stamp.get("inputs")
    if inputs is None and not stamp["commit"].endswith("+changes"):
        # A run stamped before inputs were recorded, copied from a clean checkout: its commit's files.
        files = _commit_files(stamp["commit"])
        inputs = "" if files is None else inputs_digest(group, files)
    return GroupRun(mutants=mutants, commit=stamp["commit"], seconds=stamp["seconds"], inputs=inputs or "")


def report(
    selection: Selection,
    runs: dict[str, GroupRun],
    equivalents: dict[str, tuple[str, str]],
    checkout: dict[str, str],
) -> tuple[str, bool]:
    """The report's text, and whether the targets are met: every group run on the inputs the checkout
    holds (`checkout`: group -> inputs_digest), >= 95% of all mutants and >= 90% of each module's killed,
    every survivor listed as equivalent with its line."""
    problems: list[str] = []
    scores: dict[str, ModuleScore] = defaultdict(ModuleScore)
    statuses: Counter[str] = Counter()
    unread: list[Mutant] = []
    stale: list[str] = []
    seen: set[str] = set()
    not_run = [g.name for g in selection.groups if g.name not in runs]
    if not_run:
        problems.append(f"groups not run: {', '.join(not_run)}")
    commits = sorted({run.commit for run in runs.values()})
    outdated = [name for name, run in runs.items() if not run.inputs or run.inputs != checkout.get(name)]
    if outdated:
        problems.append(
            f"groups run on other code or tests than the checkout holds: {', '.join(outdated)} "
            f"(run them again: python scripts/mutation.py {' '.join(outdated)})"
        )
    for run in runs.values():
        for mutant in run.mutants:
            seen.add(mutant.name)
            score = scores[mutant.module]
            score.total += 1
            statuses[mutant.status] += 1
            listed = equivalents.get(mutant.name)
            if mutant.status in KILLED:
                score.killed += 1
                score.caught_by_mypy += mutant.status == "caught by type check"
            elif listed and listed[0] == mutant.mutated_lines:
                score.equivalent += 1
            else:
                if listed:
                    stale.append(f"{mutant.name}: listed as `{listed[0]}`, is `{mutant.mutated_lines}`")
                score.unread += 1
                unread.append(mutant)
    whole = ModuleScore()
    for s in scores.values():
        whole.killed += s.killed
        whole.caught_by_mypy += s.caught_by_mypy
        whole.equivalent += s.equivalent
        whole.unread += s.unread
        whole.total += s.total
    low = [m for m, s in scores.items() if s.rate < MODULE_TARGET]
    if low:
        problems.append(f"modules below {MODULE_TARGET:.0%}: {', '.join(sorted(low))}")
    if whole.rate < TOTAL_TARGET:
        problems.append(f"{whole.rate:.1%} of all mutants killed, below {TOTAL_TARGET:.0%}")
    if unread:
        problems.append(f"{len(unread)} survivors not listed as equivalent")
    gone = sorted(set(equivalents) - seen) if not not_run else []
    if gone:
        problems.append(f"listed as equivalent but not generated: {', '.join(gone)}")

    lines = [
        f"commit {', '.join(commits) or '-'}; " + "; ".join(f"{n} {r.seconds} s" for n, r in runs.items())
    ]
    lines.append("statuses: " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))
    lines += ["", "| module | killed | of which by mypy | mutants | score | equivalent | not read |"]
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for module, s in [*sorted(scores.items()), ("all", whole)]:
        name = "**all**" if module == "all" else f"`{module}`"
        lines.append(
            f"| {name} | {s.killed} | {s.caught_by_mypy} | {s.total} | {100 * s.rate:.1f}% "
            f"| {s.equivalent} | {s.unread} |"
        )
    lines += ["", *(f"NOT MET: {p}" for p in problems)] if problems else ["", "targets met"]
    if stale:
        lines += ["", "listed as equivalent, but the mutation is another now (read it again):"]
        lines += [f"- {s}" for s in stale]
    if unread:
        lines += ["", f"survivors not listed in {EQUIVALENTS.name}/ ({len(unread)}):"]
        for mutant in unread:
            lines.append(f"### {mutant.name} ({mutant.status})")
            lines.extend(mutant.diff.splitlines()[2:])
    return "\n".join(lines) + "\n", not problems


def generated_mutants(module_path: str, wanted: set[str]) -> dict[str, Mutant | None]:
    """The mutants mutmut makes now (no test run) of the functions `wanted` are mutants of, each with its
    diff, and None for a wanted one not made any more: to check the equivalents lists after a code change
    in a minute or two rather than a run."""
    import difflib

    import libcst as cst
    from mutmut.mutation.diff_apply import read_mutant_function, read_original_function
    from mutmut.mutation.file_mutation import mutate_file_contents

    mutated = mutate_file_contents(module_path, (ROOT / module_path).read_text(encoding="utf-8"))
    prefix = module_path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    made = {f"{prefix}.{short}" for short in mutated.mutant_names}
    tree = cst.parse_module(mutated.code)
    families = {name.rsplit("__mutmut_", 1)[0] for name in wanted}
    found: dict[str, Mutant | None] = {name: None for name in wanted}
    for name in sorted(made):
        if name.rsplit("__mutmut_", 1)[0] not in families:
            continue
        original, mutant = (
            cst.Module([function]).code.strip().split("\n")
            for function in (read_original_function(tree, name), read_mutant_function(tree, name))
        )
        diff = "\n".join(difflib.unified_diff(original, mutant, module_path, module_path, lineterm=""))
        found[name] = Mutant(name, "not run", diff)
    return found


def stale_equivalents(selection: Selection, equivalents: dict[str, tuple[str, str]]) -> list[str]:
    """Each listed equivalent that the code no longer makes, or makes as another mutation."""
    os.chdir(ROOT)  # mutmut reads its settings (do_not_mutate_patterns) from ./pyproject.toml
    problems = []
    for group in selection.groups:
        for path in group.modules:
            module = path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
            wanted = {name for name in equivalents if module_of(name) == module}
            if not wanted:
                continue
            made = generated_mutants(path, wanted)
            for name in sorted(wanted):
                line, mutant = equivalents[name][0], made[name]
                if mutant is not None and mutant.mutated_lines == line:
                    continue
                now = [m.name for m in made.values() if m is not None and m.mutated_lines == line]
                where = f"; that mutation is now {', '.join(now)}" if now else ""
                what = "not generated any more" if mutant is None else f"is `{mutant.mutated_lines}`"
                problems.append(f"{name}: listed as `{line}`, {what}{where}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="*", help="groups to run (default: all)")
    parser.add_argument("--report", action="store_true", help="report on the groups already run")
    parser.add_argument("--list", action="store_true", help="list the groups")
    parser.add_argument(
        "--check-equivalents",
        action="store_true",
        help="check the equivalents lists against the mutants the code makes now (seconds, no tests run)",
    )
    args = parser.parse_args(argv)
    selection = load_selection()
    by_name = {g.name: g for g in selection.groups}
    unknown = [name for name in args.groups if name not in by_name]
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; known: {', '.join(by_name)}")
    if args.list:
        for g in selection.groups:
            print(f"{g.name}: {' '.join(g.modules)}\n    tests: {' '.join(g.tests)}")
        return 0
    if args.check_equivalents:
        problems = stale_equivalents(selection, load_equivalents())
        print("\n".join(problems) if problems else "every listed equivalent is still generated as listed")
        return 1 if problems else 0
    if not args.report:
        children = int(os.environ.get("MUTMUT_CHILDREN", os.cpu_count() or 2))
        names = args.groups or list(by_name)
        for name in names:
            prepare_group(by_name[name])
        for name in names:
            print(f"{time.strftime('%H:%M:%S')} group {name} ...", flush=True)
            run_group(by_name[name], children)
    runs = {g.name: run for g in selection.groups if (run := read_group(g)) is not None}
    files = _checkout_files()
    checkout = {g.name: inputs_digest(g, files) for g in selection.groups}
    text, ok = report(selection, runs, load_equivalents(), checkout)
    WORK.mkdir(exist_ok=True)
    (WORK / "report.md").write_text(text, encoding="utf-8")
    print(text, end="")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
