"""The fault table (issue 10): every bad input or hostile event ends with ONE stderr line, the right exit
code, no traceback, and nothing already written lost or changed.

Each row arranges a fault in a fresh folder with the tiny COCO set and a perfect table detector, runs
the CLI, and checks: the exit code; exactly one stderr line, without a traceback, containing the
expected words; every file that existed before the command byte-identical afterwards; and any
row-specific check (e.g. a partial detections.jsonl keeps its lines). Signals need a real process and
live at the end of the file.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import TINY_GT
from helpers import save_table_detector, write_config

from ssd_eval.cli import main


@dataclass(frozen=True)
class Env:
    """One fault's folder: tmp root, tiny COCO root, perfect model, a config writing to tmp/results."""

    tmp: Path
    coco: Path
    model: Path
    config: Path

    @property
    def results(self) -> Path:
        return self.tmp / "results"

    def edit(self, **sections: dict) -> Path:
        data = yaml.safe_load(self.config.read_text())
        for key, value in sections.items():
            data.setdefault(key, {}).update(value)
        self.config.write_text(yaml.safe_dump(data))
        return self.config

    def finished_run(self, name: str) -> Path:
        """A finished run folder `results/<name>` (made by the CLI itself)."""
        assert main(["--config", str(self.config), "--run-name", name, "--quiet"]) == 0
        return self.results / name


@pytest.fixture
def env(tmp_path: Path, tiny_coco: Path) -> Env:
    model = save_table_detector(tmp_path / "perfect.onnx", tiny_coco, TINY_GT)
    return Env(tmp_path, tiny_coco, model, write_config(tmp_path / "c.yaml", model, tiny_coco))


def _snapshot(root: Path) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


def _image_ids(path: Path) -> list[int]:
    return [json.loads(line)["image_id"] for line in path.read_text().splitlines()]


@dataclass(frozen=True)
class Fault:
    """One row: `arrange` prepares the fault and returns the CLI arguments."""

    name: str
    arrange: Callable[[Env], list[str]]
    code: int
    says: tuple[str, ...]
    check: Callable[[Env], None] | None = None


# --- item 4: run names and overwrite -------------------------------------------------------------


def _parent_with_user_files(env: Env) -> list[str]:
    # `--run-name ..` under --output out/inner is out/ itself, which holds the user's own files.
    (env.tmp / "out" / "inner").mkdir(parents=True)
    (env.tmp / "out" / "thesis.txt").write_text("three years of work\n")
    env.edit(output={"overwrite": True})
    return ["--config", str(env.config), "--output", str(env.tmp / "out" / "inner"), "--run-name", ".."]


def _user_folder_with_overwrite(env: Env) -> list[str]:
    (env.results / "mine").mkdir(parents=True)
    (env.results / "mine" / "notes.txt").write_text("not a run\n")
    (env.results / "mine" / "config.yaml").write_text("a config.yaml alone does not make a run\n")
    env.edit(output={"overwrite": True})
    return ["--config", str(env.config), "--run-name", "mine"]


def _config_run_name(name: str) -> Callable[[Env], list[str]]:
    def arrange(env: Env) -> list[str]:
        env.edit(output={"run_name": name, "overwrite": True})
        return ["--config", str(env.config)]

    return arrange


def _existing_run(env: Env) -> list[str]:
    env.finished_run("r")
    return ["--config", str(env.config), "--run-name", "r"]


def _thesis_kept(env: Env) -> None:
    assert (env.tmp / "out" / "thesis.txt").read_text() == "three years of work\n"


def _notes_kept(env: Env) -> None:
    assert (env.results / "mine" / "notes.txt").read_text() == "not a run\n"
    assert sorted(p.name for p in (env.results / "mine").iterdir()) == ["config.yaml", "notes.txt"]


# --- item 6: one line, always ---------------------------------------------------------------------


def _argv(*args: str) -> Callable[[Env], list[str]]:
    return lambda env: [a.replace("{config}", str(env.config)) for a in args]


def _config_text(text: str) -> Callable[[Env], list[str]]:
    def arrange(env: Env) -> list[str]:
        env.config.write_text(text)
        return ["--config", str(env.config)]

    return arrange


def _locked_run(env: Env) -> list[str]:
    """Another process holds the run folder's lock: a second --resume must not append to its log."""
    run = env.finished_run("busy")
    (run / "metrics.json").unlink()
    holder = (run / "run.lock").open("a")
    fcntl.flock(holder.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    (run / "run.lock").write_text("ssd-eval pid 4242\n")
    _HELD.append(holder)
    return ["--resume", str(run)]


_HELD: list = []  # lock files held by a row until its checks are done


def _log_untouched(name: str, ids: list[int]) -> Callable[[Env], None]:
    def check(env: Env) -> None:
        assert _image_ids(env.results / name / "detections.jsonl") == ids

    return check


FAULTS = [
    # item 4
    Fault("run-name-dotdot-overwrite", _parent_with_user_files, 2, ("--run-name", "'..'"), _thesis_kept),
    Fault(
        "run-name-with-separator",
        _argv("--config", "{config}", "--run-name", "a/b"),
        2,
        ("--run-name", "one folder name", "'a/b'"),
    ),
    Fault("run-name-empty", _argv("--config", "{config}", "--run-name", ""), 2, ("--run-name",)),
    Fault("config-run-name-dotdot", _config_run_name(".."), 2, ("c.yaml", "output.run_name", "'..'")),
    Fault("config-run-name-dot", _config_run_name("."), 2, ("output.run_name", "'.'")),
    Fault("config-run-name-backslash", _config_run_name("a\\b"), 2, ("output.run_name", "one folder name")),
    Fault(
        "overwrite-a-folder-that-is-no-run",
        _user_folder_with_overwrite,
        2,
        ("mine", "is not a run folder", "nothing in it is replaced"),
        _notes_kept,
    ),
    Fault("existing-run-without-overwrite", _existing_run, 2, ("already exists", "--resume")),
    # item 6
    Fault(
        "typo-in-a-flag", _argv("--config", "{config}", "--limt", "3"), 2, ("did you mean --limit?", "--help")
    ),
    Fault("typo-in-a-command", _argv("scroe", "results/x"), 2, ("did you mean ssd-eval score?", "--help")),
    Fault(
        "typo-in-a-choice",
        _argv("--config", "{config}", "--selection", "al"),
        2,
        ("invalid choice: 'al'", "did you mean all?", "ssd-eval run --help"),
    ),
    Fault("bad-flag-value", _argv("--config", "{config}", "--limit", "x"), 2, ("--limit", "--help")),
    Fault("missing-argument", _argv("score"), 2, ("required: RUN_DIR", "ssd-eval score --help")),
    Fault(
        "unknown-model-name",
        _argv("--config", "{config}", "--model", "ssd-13"),
        2,
        ("'ssd-13'", "did you mean ssd-12?", "ssd-10, ssd-12, ssd-12-int8, ssd-12-qdq", "twin-"),
    ),
    Fault("empty-config", _config_text(""), 2, ("c.yaml", "the config is empty")),
    Fault("comment-only-config", _config_text("# nothing\n"), 2, ("c.yaml", "the config is empty")),
    Fault(
        "duplicate-top-level-key",
        _config_text("model: {path: a.onnx}\ndataset: {root: .}\nmodel: {source: ssd-10}\n"),
        2,
        ("c.yaml", "line 3", "duplicate key 'model'", "line 1"),
    ),
    Fault(
        "duplicate-nested-key",
        _config_text("model:\n  path: a.onnx\n  path: b.onnx\n"),
        2,
        ("c.yaml", "line 3", "duplicate key 'path'"),
    ),
    Fault(
        "run-folder-in-use",
        _locked_run,
        2,
        ("busy", "is in use by ssd-eval pid 4242"),
        _log_untouched("busy", [1, 2, 5, 7, 9]),
    ),
]


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_ends_in_one_line(fault: Fault, env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    argv = fault.arrange(env)
    capsys.readouterr()
    before = _snapshot(env.tmp)
    try:
        code = main([*argv, "--quiet"])
        err = capsys.readouterr().err
        assert code == fault.code, err
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert "Traceback" not in err
        for words in fault.says:
            assert words in lines[0], lines[0]
        after = _snapshot(env.tmp)
        changed = [str(p) for p, digest in before.items() if after.get(p) != digest]
        assert changed == [], f"files lost or changed: {changed}"
        if fault.check is not None:
            fault.check(env)
    finally:
        while _HELD:
            _HELD.pop().close()


def test_overwrite_replaces_a_run_folder(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """overwrite: true still does its job on a folder that holds a run."""
    run = env.finished_run("again")
    (run / "detections.jsonl").write_text("")  # the old run's detections: must be replaced, not kept
    env.edit(output={"overwrite": True})
    assert main(["--config", str(env.config), "--run-name", "again", "--quiet"]) == 0
    assert _image_ids(run / "detections.jsonl") == [1, 2, 5, 7, 9]
    assert json.loads((run / "metrics.json").read_text())["stats"]["AP"] == pytest.approx(1.0, abs=1e-12)


def test_a_failed_run_leaves_no_empty_run_folder(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """The lock creates the run folder before the model loads; a run that fails first removes it again."""
    assert main(["--config", str(env.config), "--run-name", "x", "--model", str(env.tmp / "no.onnx")]) == 2
    assert not (env.results / "x").exists()


def test_failed_download_urls_are_folded_into_the_error_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two sources fail: no warning per URL before the error, the one error line names both."""
    from http_server import FileServer, closed_port_url
    from test_assets import model_source

    from ssd_eval.assets import fetch as assets

    for name in ("SSD_EVAL_OFFLINE", "SSD_EVAL_MIRROR", "SSD_EVAL_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    with FileServer() as server:
        dead = closed_port_url("/fake.onnx")
        missing = server.url("/nowhere/fake.onnx")
        monkeypatch.setattr(assets, "MODELS", {"fake": model_source(server, missing, dead)})
        caplog.set_level("INFO")
        code = main(["fetch", "model", "--model-name", "fake", "--dest", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert missing in err[0] and dead in err[0] and "every source failed" in err[0]
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == []
    assert not (tmp_path / "models" / "fake.onnx").exists()
