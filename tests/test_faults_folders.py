"""Hostile folders (issue 18, folder side; issue 19, --quiet): links planted in run and comparison
folders, read-only folders, a second writer, a closed stdout, and --quiet.

Every case checks the exit code, one stderr line without a traceback where it is an error, that
nothing outside the intended folders was written (a link's target keeps its bytes, inode and time),
and that nothing already written was lost or changed.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import TINY_GT, TINY_IMAGES
from helpers import Det, make_coco, save_table_detector, write_config

from ssd_eval.cli import main
from ssd_eval.files import (
    APPENDED_FILES,
    COMPARE_CONFIG_FILE,
    DETECTION_LOG,
    DETECTION_STORE,
    DISAGREEMENTS_DIR,
    IDENTITY_FILE,
    LOCK_FILE,
    METRICS_FILE,
    PR_CURVES_FILE,
    RUN_FILES,
    RUNS_DIR,
)

REPO = Path(__file__).resolve().parents[1]

# Image 2's person missed, image 7 gets an extra toothbrush: a comparison with something to show.
PERTURBED = {**TINY_GT, 2: [], 7: [Det(5, 5, 20, 20, 90), Det(30, 30, 8, 8, 90, 0.5)]}
IMAGE_5 = "000000000005.png"  # made unreadable: a skipped image, so that skipped.jsonl exists
# Image 5 held one of 4 persons and one of 2 dogs: person recall 3/4 (76 of 101 recall points), dog 1/2
# (51 of 101), toothbrush 1 (tests/test_faults_cli.py counts it).
AP_SKIPPING_5 = (76 / 101 + 51 / 101 + 1) / 3

# Every file a command writes into a run folder, and every file of a comparison folder's own: the test
# below checks that these cover every file present in a finished folder, so a new file cannot escape.
RUN_FOLDER_NAMES = (*RUN_FILES, LOCK_FILE)
REFUSED = (*APPENDED_FILES, LOCK_FILE)  # appended or locked: a link under the name is refused


@dataclass(frozen=True)
class Env:
    """One test's folder: a copy of the prototype results/ (finished folders), its own configs."""

    tmp: Path
    coco: Path
    config: Path
    perturbed: Path
    baseline: Path

    @property
    def results(self) -> Path:
        return self.tmp / "results"


def _cli(*argv: str) -> int:
    return main([*argv, "--quiet"])


def _run(config: Path, name: str, *extra: str) -> Path:
    assert _cli("--config", str(config), "--run-name", name, *extra) == 0
    return config.parent / "results" / name


@pytest.fixture(scope="module")
def prototype(tmp_path_factory: pytest.TempPathFactory) -> Env:
    """Finished folders made once: runs (one gated against a baseline, with a skipped image), shards and
    their merge, a perturbed run, a run of 3 images, a comparison. Each test works on a copy."""
    tmp = tmp_path_factory.mktemp("prototype")
    coco = make_coco(tmp / "coco", TINY_IMAGES, TINY_GT)
    model = save_table_detector(tmp / "perfect.onnx", coco, TINY_GT)
    perturbed = save_table_detector(tmp / "perturbed.onnx", coco, PERTURBED)
    (coco / "val2017" / IMAGE_5).write_bytes(b"not an image")  # after the detectors read it
    config = write_config(tmp / "c.yaml", model, coco, dataset={"on_bad_image": "skip"})
    base = _run(config, "ref")
    baseline = tmp / "baseline.json"
    assert _cli("baseline", str(base), "--output", str(baseline)) == 0
    _run(config, "r", "--baseline", str(baseline))
    shards = [_run(config, "s1", "--shard", "1/2"), _run(config, "s2", "--shard", "2/2")]
    assert _cli("merge", *map(str, shards), "--output", str(tmp / "results" / "m")) == 0
    _run(config, "pert", "--model", str(perturbed))
    _run(config, "few", "--limit", "3")
    env = Env(tmp, coco, config, perturbed, baseline)
    assert _cli("compare", "--config", str(_compare_config(env))) == 0
    assert (env.results / "cmp" / PR_CURVES_FILE).is_file()
    return env


@pytest.fixture
def env(prototype: Env, tmp_path: Path) -> Env:
    shutil.copytree(prototype.results, tmp_path / "results", symlinks=True)
    model = prototype.tmp / "perfect.onnx"
    config = write_config(tmp_path / "c.yaml", model, prototype.coco, dataset={"on_bad_image": "skip"})
    return Env(tmp_path, prototype.coco, config, prototype.perturbed, prototype.baseline)


def _state(path: Path) -> tuple[str, int, int, int]:
    """What a write would change: the bytes, the inode, the modification time, the link count."""
    info = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), info.st_ino, info.st_mtime_ns, info.st_nlink


def _snapshot(root: Path) -> dict[str, object]:
    """Every entry under `root` (links as links): files by content and time, links by their target."""
    found: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            found[key] = ("link", os.readlink(path))
        elif path.is_file():
            found[key] = _state(path)
        else:
            found[key] = "folder"
    return found


def _plant(folder: Path, name: str, outside: Path) -> Path:
    """Replace `folder/name` by a link to a copy of it outside (an empty file if it was absent): reads
    through the link see the folder's own content, and a write through it would show on the copy."""
    target = outside / f"{folder.name}-{name}"
    path = folder / name
    if path.is_file():
        shutil.copyfile(path, target)
        path.unlink()
    else:
        target.write_bytes(b"")
    path.symlink_to(target)
    return target


def _one_line(capsys: pytest.CaptureFixture[str], *says: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for words in says:
        assert words in lines[0], lines[0]
    return lines[0]


# --- links planted in a run folder --------------------------------------------------------------


def test_every_file_of_a_finished_folder_is_in_the_tested_lists(env: Env) -> None:
    """Finished runs (one with a baseline and a skipped image), a merge and a comparison hold only files
    the tests below plant links for: a file added later cannot escape them."""
    cmp = env.results / "cmp"
    for folder in (
        *(env.results / name for name in ("r", "ref", "s1", "m", "few")),
        *(cmp / RUNS_DIR).iterdir(),
    ):
        present = {p.name for p in folder.iterdir()}
        assert present <= set(RUN_FOLDER_NAMES), present - set(RUN_FOLDER_NAMES)
    assert {p.name for p in (env.results / "r").iterdir()} == set(RUN_FOLDER_NAMES)  # every one, once
    present = {p.name for p in cmp.iterdir()}
    assert present == {*COMPARISON_NAMES, RUNS_DIR, DISAGREEMENTS_DIR}, present
    assert {p.name for p in (cmp / DISAGREEMENTS_DIR).iterdir()} == {"perturbed"}


@pytest.mark.parametrize("command", ["resume", "score"])
@pytest.mark.parametrize("name", RUN_FOLDER_NAMES)
def test_a_link_in_a_run_folder_is_replaced_or_refused_never_followed(
    env: Env, name: str, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = env.results / "r"
    (run / DETECTION_STORE).unlink()  # so that the store is written again
    os.utime(run / "detections.json", ns=(1, 1))  # older than the log: rewritten
    outside = env.tmp / "outside"
    outside.mkdir()
    target = _plant(run, name, outside)
    before_target = _state(target)
    before = _snapshot(run)
    capsys.readouterr()
    argv = ("--resume", str(run)) if command == "resume" else ("score", str(run))
    code = _cli(*argv)
    assert _state(target) == before_target  # nothing written through the link
    assert [p.name for p in outside.iterdir()] == [target.name]
    if name in REFUSED:
        assert code == 2
        _one_line(capsys, str(run / name), "is a symbolic link", "remove it")
        assert _snapshot(run) == before  # refused before anything was written
        return
    assert code == 0, capsys.readouterr().err
    assert json.loads((run / METRICS_FILE).read_text())["stats"]["AP"] == pytest.approx(
        AP_SKIPPING_5, abs=1e-12
    )
    written = WRITTEN_BY[command]
    if name in written:
        assert not (run / name).is_symlink() and (run / name).is_file(), name


# What each command rewrites whole (the others it reads, or leaves: a link there stays and is unused).
WRITTEN_BY = {
    "resume": {
        "config.yaml",
        "run_info.json",
        "detections.npz",
        "detections.json",
        "metrics.json",
        "cocoeval.txt",
        "gate_baseline.json",
        "junit.xml",
        "summary.md",
    },
    "score": {
        "detections.npz",
        "detections.json",
        "metrics.json",
        "cocoeval.txt",
        "gate_baseline.json",
        "junit.xml",
        "summary.md",
    },
}


@pytest.mark.parametrize("name", RUN_FOLDER_NAMES)
def test_merge_overwrite_replaces_links_in_its_output_or_refuses(
    env: Env, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    shards = [
        env.results / "s1",
        env.results / "s2",
    ]
    merged = env.results / "m"  # their merge
    outside = env.tmp / "outside"
    outside.mkdir()
    target = _plant(merged, name, outside)
    before_target, before = _state(target), _snapshot(merged)
    capsys.readouterr()
    code = _cli("merge", *map(str, shards), "--output", str(merged), "--overwrite")
    assert _state(target) == before_target
    if name in REFUSED:
        assert code == 2
        _one_line(capsys, str(merged / name), "is a symbolic link")
        assert _snapshot(merged) == before
        return
    assert code == 0, capsys.readouterr().err
    assert not [p for p in merged.iterdir() if p.is_symlink()]
    assert json.loads((merged / METRICS_FILE).read_text())["protocol"]["num_images"] == 5


def test_a_new_run_folder_that_is_a_link_is_refused(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """A link planted as the run folder a new run (or an overwrite) would write: refused, untouched."""
    victim = env.results / "ref"
    (env.results / "planted").symlink_to(victim)
    before = _snapshot(victim)
    env_config = yaml.safe_load(env.config.read_text())
    env_config["output"]["overwrite"] = True
    env.config.write_text(yaml.safe_dump(env_config))
    capsys.readouterr()
    assert _cli("--config", str(env.config), "--run-name", "planted") == 2
    _one_line(capsys, "is a symbolic link")
    assert _snapshot(victim) == before


def test_a_linked_results_folder_is_followed(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """The folders above a run folder are yours: a results/ linked to scratch storage works."""
    scratch = env.tmp / "scratch"
    scratch.mkdir()
    (env.tmp / "linked").symlink_to(scratch)
    assert _cli("--config", str(env.config), "--run-name", "r", "--output", str(env.tmp / "linked")) == 0
    assert (scratch / "r" / METRICS_FILE).is_file()
    assert _cli("score", str(env.tmp / "linked" / "r")) == 0


# --- links planted in a comparison folder ---------------------------------------------------------

COMPARISON_NAMES = (COMPARE_CONFIG_FILE, METRICS_FILE, "junit.xml", "summary.md", PR_CURVES_FILE, LOCK_FILE)


def _compare_config(env: Env, **output: object) -> Path:
    data = {
        "model": {"path": yaml.safe_load(env.config.read_text())["model"]["path"]},
        "reference": {"name": "ref", "provider": {"name": "cpu"}},
        "runs": [{"name": "perturbed", "provider": {"name": "cpu"}, "model": {"path": str(env.perturbed)}}],
        "dataset": {"root": str(env.coco), "on_bad_image": "skip"},
        "output": {"dir": str(env.results), "run_name": "cmp", **output},
        "pictures": {"pr_curves": True, "disagreements": 2},
    }
    path = env.tmp / "cmp.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("name", COMPARISON_NAMES)
def test_a_link_in_a_comparison_folder_is_replaced_or_refused(
    env: Env, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = env.results / "cmp"
    outside = env.tmp / "outside"
    outside.mkdir()
    target = _plant(folder, name, outside)
    before_target, before = _state(target), _snapshot(folder)
    capsys.readouterr()
    # overwrite: the comparison config is written again too (a --resume keeps it).
    code = _cli("compare", "--config", str(_compare_config(env, overwrite=True)))
    assert _state(target) == before_target
    if name == LOCK_FILE:
        assert code == 2
        _one_line(capsys, str(folder / name), "is a symbolic link")
        assert _snapshot(folder) == before
        return
    assert code == 0, capsys.readouterr().err
    assert not (folder / name).is_symlink() and (folder / name).is_file()


@pytest.mark.parametrize("where", [RUNS_DIR, f"{RUNS_DIR}/perturbed", DISAGREEMENTS_DIR, "picture"])
def test_a_linked_folder_in_a_comparison_is_refused(
    env: Env, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A link planted as one of a comparison's own folders (or pictures) is refused or replaced."""
    folder = env.results / "cmp"
    outside = env.tmp / "outside"
    outside.mkdir()
    if where == "picture":
        picture = next((folder / DISAGREEMENTS_DIR / "perturbed").iterdir())
        target = _plant(picture.parent, picture.name, outside)
        before_target = _state(target)
        assert _cli("compare", "--resume", str(folder)) == 0
        assert _state(target) == before_target and not picture.is_symlink()
        return
    moved = outside / "moved"
    shutil.move(folder / where, moved)
    (folder / where).symlink_to(moved)
    before, before_outside = _snapshot(folder), _snapshot(outside)
    capsys.readouterr()
    assert _cli("compare", "--resume", str(folder)) == 2
    _one_line(capsys, str(folder / where), "is a symbolic link")
    assert _snapshot(outside) == before_outside
    assert _snapshot(folder) == before or where == DISAGREEMENTS_DIR  # pictures come last


# --- read-only folders --------------------------------------------------------------------------


@pytest.fixture
def read_only() -> Iterator[object]:
    """Make a folder read-only: a read-only bind mount as root (chmod does not stop root), else chmod."""
    mounted: list[Path] = []
    changed: list[Path] = []

    def make(folder: Path) -> None:
        if os.geteuid() == 0:
            bind = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True)
            if bind.returncode != 0:
                pytest.skip("running as root without the right to mount: chmod cannot stop root's writes")
            mounted.append(folder)
            remount = subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], capture_output=True)
            if remount.returncode != 0:
                pytest.skip(f"cannot remount {folder} read-only: {remount.stderr.decode().strip()}")
        else:
            for path in [folder, *folder.rglob("*")]:
                if path.is_dir():
                    path.chmod(0o555)
                    changed.append(path)
        probe = folder / "probe"
        try:
            probe.write_text("x")
        except OSError:
            return
        probe.unlink()
        pytest.skip(f"{folder} is still writable after the read-only mount / chmod")

    yield make
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=False)
    for path in changed:
        path.chmod(0o755)


def test_merge_and_compare_read_run_folders_on_a_read_only_mount(
    env: Env, read_only, capsys: pytest.CaptureFixture[str]
) -> None:
    """No store can be written there, and the stores there are stale and lying: the logs are read."""
    archive = env.results
    shards = [env.results / "s1", env.results / "s2"]
    ref = env.results / "ref"
    pert = env.results / "pert"
    # Expected figures, from a writable copy of the same folders.
    copy = env.tmp / "copy"
    shutil.copytree(archive, copy)
    assert _cli("compare", str(copy / "ref"), str(copy / "pert"), "--output", str(env.tmp / "x")) in (0, 1)
    expected = json.loads(next((env.tmp / "x").iterdir()).joinpath(METRICS_FILE).read_text())
    # The stores in the archive: one missing, the others another run's (the reference's says perturbed).
    (shards[0] / DETECTION_STORE).unlink()
    shutil.copyfile(copy / "pert" / DETECTION_STORE, ref / DETECTION_STORE)
    shutil.copyfile(copy / "ref" / DETECTION_STORE, pert / DETECTION_STORE)
    read_only(archive)
    before = _snapshot(archive)
    capsys.readouterr()
    merged = env.tmp / "merged"
    assert _cli("merge", *map(str, shards), "--output", str(merged)) == 0, capsys.readouterr().err
    assert json.loads((merged / METRICS_FILE).read_text())["stats"]["AP"] == pytest.approx(
        json.loads((ref / METRICS_FILE).read_text())["stats"]["AP"], abs=1e-12
    )
    out = env.tmp / "cmp-out"
    code = _cli("compare", str(ref), str(pert), "--output", str(out), "--run-name", "c")
    got = json.loads((out / "c" / METRICS_FILE).read_text())
    assert code == got["gate"]["exit_code"]
    assert [r["stats"] for r in got["runs"]] == [r["stats"] for r in expected["runs"]]
    assert [r["agreement"] for r in got["runs"]] == [r["agreement"] for r in expected["runs"]]
    assert _snapshot(archive) == before
    # score writes into the folder: there it is one line, and nothing changes.
    capsys.readouterr()
    assert _cli("score", str(ref)) == 2
    _one_line(capsys, f"cannot write the run folder {ref}")
    assert _snapshot(archive) == before


# --- a second writer ------------------------------------------------------------------------------


def _hold_lock(folder: Path) -> object:
    """Another process's lock on `folder` (an open file description of ours holding flock)."""
    handle = (folder / LOCK_FILE).open("r+")
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.pwrite(handle.fileno(), b"ssd-eval pid 4242".ljust(63) + b"\n", 0)
    return handle


def test_score_of_a_folder_in_use_is_refused_naming_the_holder(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    run = env.results / "r"
    held = _hold_lock(run)
    try:
        before = _snapshot(run)
        capsys.readouterr()
        assert _cli("score", str(run)) == 2
        line = _one_line(capsys)
        assert line == (
            f"ssd-eval: error: run folder {run} is in use by ssd-eval pid 4242: wait for it to end (or stop "
            "it), then run this command again"
        )
        assert _snapshot(run) == before
    finally:
        held.close()  # type: ignore[attr-defined]


def test_merge_overwrite_of_a_folder_in_use_is_refused(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    shards = [env.results / "s1", env.results / "s2"]
    running = env.results / "pert"
    held = _hold_lock(running)
    try:
        before = _snapshot(env.results)
        capsys.readouterr()
        assert _cli("merge", *map(str, shards), "--output", str(running), "--overwrite") == 2
        _one_line(capsys, f"run folder {running} is in use by ssd-eval pid 4242")
        assert _snapshot(env.results) == before
    finally:
        held.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("output", ["s1", "results", "s1/inner"])
def test_a_merge_into_one_of_its_inputs_is_refused(
    env: Env, output: str, capsys: pytest.CaptureFixture[str]
) -> None:
    shards = [env.results / "s1", env.results / "s2"]
    target = env.tmp / output if output == "results" else env.results / output
    before = _snapshot(env.tmp)
    capsys.readouterr()
    assert _cli("merge", *map(str, shards), "--output", str(target), "--overwrite") == 2
    _one_line(capsys, f"the merged folder (--output) {target} is", "the run folder", "folder of its own")
    assert _snapshot(env.tmp) == before


@pytest.mark.parametrize("output", ["same", "inside"])
def test_a_comparison_into_one_of_its_runs_is_refused(
    env: Env, output: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ref, pert = env.results / "ref", env.results / "pert"
    where = (
        ("--output", str(env.results), "--run-name", "ref") if output == "same" else ("--output", str(ref))
    )
    before = _snapshot(env.tmp)
    capsys.readouterr()
    assert _cli("compare", str(ref), str(pert), *where) == 2
    _one_line(capsys, "the comparison folder", f"the run folder {ref}")
    assert _snapshot(env.tmp) == before


def _subprocess(*argv: str, stdout: int | None = subprocess.PIPE) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ssd_eval", *argv],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_concurrent_scores_end_in_a_score_or_the_in_use_line(env: Env) -> None:
    run = env.results / "r"
    processes = [_subprocess("score", str(run), "--quiet") for _ in range(3)]
    for process in processes:
        _, err = process.communicate(timeout=300)
        if process.returncode != 0:
            assert process.returncode == 2 and len(err.strip().splitlines()) == 1, err
            assert f"run folder {run} is in use by ssd-eval pid" in err, err
    assert json.loads((run / METRICS_FILE).read_text())["stats"]["AP"] == pytest.approx(
        AP_SKIPPING_5, abs=1e-12
    )
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]


# --- pipes and --quiet ----------------------------------------------------------------------------


def test_a_closed_stdout_is_no_error_and_keeps_the_verdict(env: Env) -> None:
    ref, pert = env.results / "ref", env.results / "pert"
    process = _subprocess("compare", str(ref), str(pert), "--output", str(env.tmp / "o"), "--run-name", "c")
    assert process.stdout is not None
    process.stdout.close()  # the reader is gone before the first line: every write meets EPIPE
    _, err = process.communicate(timeout=300)
    verdict = json.loads((env.tmp / "o" / "c" / METRICS_FILE).read_text())["gate"]["exit_code"]
    assert process.returncode == verdict, err
    assert "Traceback" not in err and "internal error" not in err and "Broken pipe" not in err, err
    # `| head -3` itself, the exit code of ssd-eval kept by pipefail.
    command = (
        f"set -o pipefail; {sys.executable} -m ssd_eval compare {ref} {pert} --output {env.tmp / 'o'} "
        "--run-name d | head -3"
    )
    done = subprocess.run(
        ["bash", "-c", command],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == verdict, done.stderr
    assert len(done.stdout.splitlines()) == 3 and "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize("command", ["run", "score", "merge", "compare"])
def test_quiet_is_errors_only(env: Env, command: str) -> None:
    """With a skipped image (a warning): nothing on stdout, no warning; on stderr only what explains a
    non-zero exit (a failed gate's rules and verdict)."""
    shards = [env.results / "s1", env.results / "s2"]
    run = env.results / "r"
    pert = env.results / "pert"

    def argv(name: str) -> tuple[str, ...]:
        return {
            "run": (
                "--config",
                str(env.config),
                "--run-name",
                name,
                "--expect-ap",
                "0.5",
                "--tolerance",
                "0.01",
            ),
            "score": ("score", str(run)),
            "merge": ("merge", *map(str, shards), "--output", str(env.tmp / name)),
            "compare": (
                "compare",
                str(run),
                str(pert),
                "--max-ap-drop",
                "0.01",
                "--output",
                str(env.tmp / "c"),
                "--run-name",
                name,
            ),
        }[command]

    loud = _subprocess(*argv("loud"))
    out, err = loud.communicate(timeout=300)
    assert out, err  # the report
    if command == "run":
        assert "SKIPPED image 5" in err, err  # a warning
    quiet = _subprocess(*argv("quiet"), "--quiet")
    out, err = quiet.communicate(timeout=300)
    assert quiet.returncode == loud.returncode
    assert out == "" and "SKIPPED" not in err and "warning" not in err
    if command in ("run", "compare"):
        # The gate failed: the failed rule and the verdict line, on stderr, and nothing else.
        assert quiet.returncode == 1
        lines = err.splitlines()
        assert [line.split(":")[0] for line in lines] == ["gate FAIL", "gate verdict FAIL"], err
    else:
        assert err == "", err


def test_quiet_shows_the_error_alone_without_the_warning_before_it(env: Env) -> None:
    """A damaged store (a warning) in a run that cannot be compared (an error): with --quiet, one line."""
    ref = env.results / "ref"
    few = env.results / "few"
    (few / DETECTION_STORE).write_bytes(b"damaged")
    argv = ("compare", str(ref), str(few), "--output", str(env.tmp / "c"))
    loud = _subprocess(*argv)
    _, err = loud.communicate(timeout=300)
    assert loud.returncode == 2 and "is damaged" in err, err
    (few / DETECTION_STORE).write_bytes(b"damaged")
    quiet = _subprocess(*argv, "--quiet")
    out, err = quiet.communicate(timeout=300)
    assert quiet.returncode == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ssd-eval: error: cannot compare"), err


def test_the_identity_file_is_read_not_written_on_resume(env: Env) -> None:
    """identity.json is written once; a resume reads it (a link to a copy is read, and left as it is)."""
    run = env.results / "r"
    outside = env.tmp / "outside"
    outside.mkdir()
    target = _plant(run, IDENTITY_FILE, outside)
    before = _state(target)
    assert _cli("--resume", str(run)) == 0
    assert _state(target) == before
    assert (run / DETECTION_LOG).is_file() and not (run / DETECTION_LOG).is_symlink()
