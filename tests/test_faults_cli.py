"""The fault table (issue 10): every bad input or hostile event ends with ONE stderr line, the right exit
code, no traceback, and nothing already written lost or changed.

Each row arranges a fault in a fresh folder with the tiny COCO set and a perfect table detector, runs
the CLI, and checks: the exit code; exactly one stderr line, without a traceback, containing the
expected words; every file that existed before the command byte-identical afterwards; and any
row-specific check (e.g. a partial detections.jsonl keeps its lines). Signals need a real process and
live at the end of the file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from conftest import TINY_GT
from helpers import save_table_detector, write_config
from onnx import helper, numpy_helper

from ssd_eval.cli import main
from ssd_eval.evaluation import detection_log


@dataclass(frozen=True)
class Env:
    """One fault's folder: tmp root, tiny COCO root, perfect model, a config writing to tmp/results."""

    tmp: Path
    coco: Path
    model: Path
    config: Path
    patch: pytest.MonkeyPatch

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
def env(tmp_path: Path, tiny_coco: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    model = save_table_detector(tmp_path / "perfect.onnx", tiny_coco, TINY_GT)
    config = write_config(tmp_path / "c.yaml", model, tiny_coco)
    return Env(tmp_path, tiny_coco, model, config, monkeypatch)


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


def _compare_into_a_user_folder(env: Env) -> list[str]:
    (env.results / "mine").mkdir(parents=True)
    (env.results / "mine" / "metrics.json").write_text('{"mine": true}\n')
    config = {
        "model": {"path": str(env.model)},
        "reference": {"name": "ref", "provider": {"name": "cpu"}},
        "runs": [{"name": "again", "provider": {"name": "cpu"}}],
        "dataset": {"root": str(env.coco)},
        "output": {"dir": str(env.results), "run_name": "mine", "overwrite": True},
    }
    (env.tmp / "compare.yaml").write_text(yaml.safe_dump(config))
    return ["compare", "--config", str(env.tmp / "compare.yaml")]


def _only_user_metrics(env: Env) -> None:
    assert [p.name for p in (env.results / "mine").iterdir()] == ["metrics.json"]


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


# --- item 5: input problems found at run time ----------------------------------------------------

# The evaluated images in order (selection "annotated"): 1, 2, 5, 7, 9; the faults hit image 5, so
# the log must keep exactly images 1 and 2.
IMAGE_5 = "000000000005.png"


def failing_detector(path: Path, coco: Path, fail_on: set[int]) -> Path:
    """The perfect table detector, except that onnxruntime raises (Gather index out of bounds) on the
    images in `fail_on`."""
    save_table_detector(path, coco, TINY_GT)
    model = onnx.load(path)
    ids = [
        im["id"] for im in json.loads((coco / "annotations" / "instances_val2017.json").read_text())["images"]
    ]
    remap = np.array([1000 if image_id in fail_on else row for row, image_id in enumerate(ids)], np.int64)
    model.graph.initializer.append(numpy_helper.from_array(remap, "remap"))
    for node in model.graph.node:
        if node.op_type == "Gather" and list(node.input) == ["table_counts", "idx"]:
            node.input[1] = "bad_idx"
    model.graph.node.insert(4, helper.make_node("Gather", ["remap", "idx"], ["bad_idx"], axis=0))
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def _ort_fails_on_image_5(env: Env) -> list[str]:
    model = failing_detector(env.tmp / "failing.onnx", env.coco, {5})
    return ["--config", str(env.config), "--model", str(model), "--run-name", "r"]


def _ort_fails_on_every_image(env: Env) -> list[str]:
    model = failing_detector(env.tmp / "failing.onnx", env.coco, {1, 2, 5, 7, 9, 11})
    env.edit(dataset={"on_bad_image": "skip"})
    return ["--config", str(env.config), "--model", str(model), "--run-name", "r"]


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height: Pillow reads the size from the header without decoding."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def _giant_image_5(env: Env) -> list[str]:
    (env.coco / "val2017" / IMAGE_5).write_bytes(png_header(14000, 14000))
    return ["--config", str(env.config), "--run-name", "r"]


def _low_pixel_limit(env: Env) -> list[str]:
    # Image 5 is 120x90 = 10,800 pixels; images 1 (64x48) and 2 (50x80) are under 5,000.
    env.edit(dataset={"max_image_pixels": 5000})
    return ["--config", str(env.config), "--run-name", "r"]


def _disk_full_in_the_log(env: Env) -> list[str]:
    """The third line hits a full disk after 10 of its bytes were written (a short write, then ENOSPC)."""
    real_write = os.write
    lines = {"started": 0, "short": False}

    def write(fd: int, data: bytes | memoryview) -> int:
        if not os.readlink(f"/proc/self/fd/{fd}").endswith("detections.jsonl"):
            return real_write(fd, data)
        if lines["short"]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        lines["started"] += 1
        if lines["started"] == 3:
            lines["short"] = True
            return real_write(fd, bytes(data[:10]))
        return real_write(fd, data)

    env.patch.setattr(detection_log.os, "write", write)
    return ["--config", str(env.config), "--run-name", "r"]


def _log_keeps(ids: list[int]) -> Callable[[Env], None]:
    def check(env: Env) -> None:
        log = env.results / "r" / "detections.jsonl"
        assert _image_ids(log) == ids
        assert log.read_bytes().endswith(b"\n")

    return check


def _disk_freed_run_resumes(env: Env) -> None:
    _log_keeps([1, 2])(env)
    env.patch.undo()  # space is freed
    run = env.results / "r"
    assert main(["--resume", str(run), "--quiet"]) == 0
    assert _image_ids(run / "detections.jsonl") == [1, 2, 5, 7, 9]
    assert json.loads((run / "metrics.json").read_text())["stats"]["AP"] == pytest.approx(1.0, abs=1e-12)


# --- item 7: `ssd-eval check` ---------------------------------------------------------------------


def _check_missing_images(env: Env) -> list[str]:
    (env.coco / "val2017" / IMAGE_5).unlink()
    (env.coco / "val2017" / "000000000009.png").unlink()
    return ["check", "--data", str(env.coco), "--model", str(env.model)]


def _check_giant_image(env: Env) -> list[str]:
    (env.coco / "val2017" / IMAGE_5).write_bytes(png_header(14000, 14000))
    return ["check", "--data", str(env.coco)]


def _check_duplicate_image_id(env: Env) -> list[str]:
    path = env.coco / "annotations" / "instances_val2017.json"
    data = json.loads(path.read_text())
    data["images"].append(dict(data["images"][0]))
    path.write_text(json.dumps(data))
    return ["check", "--data", str(env.coco)]


def _check_failing_model(env: Env) -> list[str]:
    model = failing_detector(env.tmp / "failing.onnx", env.coco, {1})
    return ["check", "--data", str(env.coco), "--model", str(model)]


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
    Fault(
        "compare-overwrite-into-a-folder-that-is-no-comparison",
        _compare_into_a_user_folder,
        2,
        ("mine", "is not a comparison folder", "nothing in it is replaced"),
        _only_user_metrics,
    ),
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
    # item 5
    Fault(
        "onnxruntime-fails-on-an-image",
        _ort_fails_on_image_5,
        2,
        (IMAGE_5, "onnxruntime failed running model", "failing.onnx", "2 images done so far are kept"),
        _log_keeps([1, 2]),
    ),
    Fault(
        "onnxruntime-fails-on-every-image-with-skip",
        _ort_fails_on_every_image,
        2,
        ("failing.onnx", "on each of the first 3 images"),
    ),
    Fault(
        "decompression-bomb-14000x14000",
        _giant_image_5,
        2,
        (
            IMAGE_5,
            "196000000 pixels",
            "dataset.max_image_pixels is 89,478,485",
            "2 images done so far are kept",
        ),
        _log_keeps([1, 2]),
    ),
    Fault(
        "image-over-max-image-pixels",
        _low_pixel_limit,
        2,
        (IMAGE_5, "120x90 = 10,800 pixels", "dataset.max_image_pixels (5,000)"),
        _log_keeps([1, 2]),
    ),
    Fault(
        "max-image-pixels-out-of-range",
        lambda env: (env.edit(dataset={"max_image_pixels": 0}), ["--config", str(env.config)])[1],
        2,
        ("c.yaml", "dataset.max_image_pixels", "got 0"),
    ),
    Fault(
        "disk-full-while-writing-detections",
        _disk_full_in_the_log,
        2,
        ("detections.jsonl", "No space left on device", "the 2 images before are kept", "--resume"),
        _disk_freed_run_resumes,
    ),
    # item 7
    Fault(
        "check-missing-images",
        _check_missing_images,
        2,
        (IMAGE_5, "not found", "(1 more of the 5 images have problems)"),
    ),
    Fault("check-giant-image", _check_giant_image, 2, (IMAGE_5, "196000000 pixels")),
    Fault("check-duplicate-image-id", _check_duplicate_image_id, 2, ("instances_val2017.json", "images")),
    Fault(
        "check-model-fails-on-the-first-image",
        _check_failing_model,
        2,
        ("onnxruntime failed running model", "failing.onnx"),
    ),
    Fault("check-nothing-to-check", _argv("check"), 2, ("nothing to check", "--data ROOT")),
    Fault(
        "check-unknown-model",
        _argv("check", "--config", "{config}", "--model", "ssd-99"),
        2,
        ("known models",),
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
    # Nor the output folder's parents it created (issue 20: no empty results/ after an early failure);
    # a parent that existed before stays.
    output = env.tmp / "new" / "results"
    argv = ["--config", str(env.config), "--output", str(output), "--model", str(env.tmp / "no.onnx")]
    assert main(argv) == 2
    assert not (env.tmp / "new").exists()
    (env.tmp / "kept").mkdir()
    argv[3] = str(env.tmp / "kept" / "results")
    assert main(argv) == 2
    assert (env.tmp / "kept").is_dir() and not (env.tmp / "kept" / "results").exists()


def test_failed_download_urls_are_folded_into_the_error_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two sources fail: no warning per URL before the error, the one error line names both."""
    from http_server import FileServer, closed_port_url
    from test_assets import model_source

    from ssd_eval.assets import sources

    for name in ("SSD_EVAL_OFFLINE", "SSD_EVAL_MIRROR", "SSD_EVAL_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    with FileServer() as server:
        dead = closed_port_url("/fake.onnx")
        missing = server.url("/nowhere/fake.onnx")
        monkeypatch.setattr(sources, "MODELS", {"fake": model_source(server, missing, dead)})
        caplog.set_level("INFO")
        code = main(["fetch", "model", "--model-name", "fake", "--dest", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert missing in err[0] and dead in err[0] and "every source failed" in err[0]
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == []
    assert not (tmp_path / "models" / "fake.onnx").exists()


# Image 5 held one of 4 persons and one of 2 dogs (tests/test_cli.py counts it): person recall 3/4
# (76 of 101 recall points), dog 1/2 (51 of 101), toothbrush 1.
AP_WITHOUT_IMAGE_5 = (76 / 101 + 51 / 101 + 1) / 3


def test_onnxruntime_failure_with_skip_skips_that_image(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    model = failing_detector(env.tmp / "failing.onnx", env.coco, {5})
    env.edit(dataset={"on_bad_image": "skip"})
    assert main(["--config", str(env.config), "--model", str(model), "--run-name", "s", "--quiet"]) == 0
    metrics = json.loads((env.results / "s" / "metrics.json").read_text())
    assert [s["image_id"] for s in metrics["skipped_images"]] == [5]
    assert "onnxruntime failed running model" in metrics["skipped_images"][0]["reason"]
    assert metrics["stats"]["AP"] == pytest.approx(AP_WITHOUT_IMAGE_5, abs=1e-12)


def test_oversized_image_with_skip_is_skipped_in_one_line(env: Env) -> None:
    """10000x9000 is over Pillow's warning limit but under its refusal: our check, not Pillow's warning."""
    (env.coco / "val2017" / IMAGE_5).write_bytes(png_header(10000, 9000))
    env.edit(dataset={"on_bad_image": "skip"})
    # Without --quiet (which shows errors only): the skip is a warning line of its own.
    done = subprocess.run(
        [sys.executable, "-m", "ssd_eval", "--config", str(env.config), "--run-name", "s"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    skipped = [line for line in done.stderr.splitlines() if "SKIPPED" in line]
    assert len(skipped) == 1, done.stderr
    assert "10000x9000 = 90,000,000 pixels" in skipped[0] and "DecompressionBomb" not in done.stderr
    metrics = json.loads((env.results / "s" / "metrics.json").read_text())
    assert [s["image_id"] for s in metrics["skipped_images"]] == [5]
    assert metrics["stats"]["AP"] == pytest.approx(AP_WITHOUT_IMAGE_5, abs=1e-12)


# --- item 6: signals, with a real process ---------------------------------------------------------


def slow_detector(path: Path, coco: Path, *, steps: int = 150) -> Path:
    """The perfect table detector plus a chain of 512x512 matrix products (about 0.1-1 s per image,
    depending on the load) whose result is added to the scores times zero: same detections, slow
    enough to be interrupted mid-run."""
    save_table_detector(path, coco, TINY_GT)
    model = onnx.load(path)
    graph = model.graph
    for node in graph.node:
        if list(node.output) == ["scores"]:
            node.output[0] = "scores_raw"
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array([1, -1], np.int64), "flat_shape"),
            numpy_helper.from_array(np.array([512, 1], np.int64), "tile_reps"),
            numpy_helper.from_array(np.full((3 * 32 * 32, 512), 1e-3, np.float32), "w0"),
            numpy_helper.from_array(np.eye(512, dtype=np.float32), "w"),
            numpy_helper.from_array(np.array(0.0, np.float32), "zero_f"),
        ]
    )
    nodes = [
        helper.make_node("Reshape", ["image", "flat_shape"], ["flat"]),
        helper.make_node("Tile", ["flat", "tile_reps"], ["tiled"]),
        helper.make_node("MatMul", ["tiled", "w0"], ["y0"]),
    ]
    nodes += [helper.make_node("MatMul", [f"y{i}", "w"], [f"y{i + 1}"]) for i in range(steps)]
    nodes += [
        helper.make_node("ReduceMean", [f"y{steps}"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero_f"], ["nothing"]),
        helper.make_node("Add", ["scores_raw", "nothing"], ["scores"]),
    ]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def _start_slow_run(env: Env, name: str) -> tuple[subprocess.Popen[str], Path]:
    model = slow_detector(env.tmp / "slow.onnx", env.coco)
    argv = ["--config", str(env.config), "--model", str(model), "--run-name", name, "--quiet"]
    process = subprocess.Popen(
        [sys.executable, "-m", "ssd_eval", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    run = env.results / name
    # Wait (no time limit of ours: the process ending unexpectedly stops the wait) until inference runs.
    while not (run / "detections.jsonl").exists() and process.poll() is None:
        time.sleep(0.01)
    assert process.poll() is None, process.communicate()
    return process, run


def _whole_lines(log: Path) -> list[int]:
    """Every line of the log parses: an interrupted run leaves no torn line."""
    data = log.read_text()
    assert data == "" or data.endswith("\n")
    return _image_ids(log)


def _signal(process: subprocess.Popen[str], signum: int, times: int) -> tuple[int, list[str]]:
    for _ in range(times):
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signum)
        time.sleep(0.05)  # spread the signals over the interrupt and its cleanup
    _, err = process.communicate(timeout=120)
    return process.returncode, err.strip().splitlines()


def test_ctrl_c_three_times_ends_like_once(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    process, run = _start_slow_run(env, "sigint")
    code, err = _signal(process, signal.SIGINT, 3)
    assert code == 130, err
    assert err == [f"ssd-eval: interrupted; all written so far is kept: continue with --resume {run}"]
    done = _whole_lines(run / "detections.jsonl")
    assert done == [1, 2, 5, 7, 9][: len(done)]
    assert main(["--resume", str(run), "--quiet"]) == 0
    assert _image_ids(run / "detections.jsonl") == [1, 2, 5, 7, 9]
    assert json.loads((run / "metrics.json").read_text())["stats"]["AP"] == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("times", [1, 3])
def test_sigterm_ends_with_143_and_one_line(env: Env, times: int) -> None:
    process, run = _start_slow_run(env, "sigterm")
    code, err = _signal(process, signal.SIGTERM, times)
    assert code == 143, err
    assert err == [
        f"ssd-eval: terminated (SIGTERM); all written so far is kept: continue with --resume {run}"
    ]
    done = _whole_lines(run / "detections.jsonl")
    assert done == [1, 2, 5, 7, 9][: len(done)]
    assert not (run / "metrics.json").exists()


def test_a_second_process_is_refused_while_a_run_holds_its_folder(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    process, run = _start_slow_run(env, "busy")
    process.send_signal(signal.SIGSTOP)  # frozen mid-run, holding its lock: no race with its end
    try:
        before = (run / "detections.jsonl").read_bytes()
        assert main(["--resume", str(run), "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [
            f"ssd-eval: error: run folder {run} is in use by ssd-eval pid {process.pid}: wait for it to end "
            "(or stop it), or choose another --run-name"
        ]
        assert (run / "detections.jsonl").read_bytes() == before
    finally:
        process.send_signal(signal.SIGCONT)
    code, err = _signal(process, signal.SIGTERM, 1)
    assert code == 143, err
    done = _whole_lines(run / "detections.jsonl")
    assert done == [1, 2, 5, 7, 9][: len(done)]


# --- item 5: a real full disk (a tmpfs; needs the right to mount, e.g. root) -----------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=False)


@pytest.mark.parametrize("free_pages", [3, 6])
def test_full_disk_is_one_line_and_the_run_resumes_when_space_is_freed(
    env: Env, small_disk: Path, free_pages: int
) -> None:
    """A run whose disk fills up (3 free pages: at the first detection line; 6: after the log, at
    detections.json (identity.json and history.jsonl take a page each),
    on Linux 6) ends with exit 2 naming the file; freed, `--resume` finishes it with AP 1."""
    env.edit(output={"dir": str(small_disk / "results")})
    stat = os.statvfs(small_disk)
    filler = small_disk / "filler"
    filler.write_bytes(b"x" * (stat.f_bavail * stat.f_frsize - free_pages * stat.f_frsize))
    command = [sys.executable, "-m", "ssd_eval", "--quiet"]
    done = subprocess.run(
        [*command, "--config", str(env.config), "--run-name", "r"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    run = small_disk / "results" / "r"
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0] and str(run) in lines[0], lines
    assert f"--resume {run}" in lines[0]
    done_ids = _whole_lines(run / "detections.jsonl") if (run / "detections.jsonl").exists() else []
    assert done_ids == [1, 2, 5, 7, 9][: len(done_ids)]
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    filler.unlink()  # space is freed
    resumed = subprocess.run([*command, "--resume", str(run)], capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert _image_ids(run / "detections.jsonl") == [1, 2, 5, 7, 9]
    assert json.loads((run / "metrics.json").read_text())["stats"]["AP"] == pytest.approx(1.0, abs=1e-12)


def test_check_passes_with_a_summary_and_writes_nothing(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    before = _snapshot(env.tmp)
    assert main(["check", "--data", str(env.coco), "--model", str(env.model)]) == 0
    out = capsys.readouterr().out.splitlines()
    # tests/conftest.py: 6 images, 5 annotated; 2+1+2+1+1 = 7 annotations; image 1 holds 2 of them.
    assert out[0].startswith(f"data   {env.coco / 'annotations' / 'instances_val2017.json'}: ")
    assert "5 of 6 images (annotated), 7 annotations, 80 categories" in out[0]
    assert out[1] == (
        f"model  {env.model}: input 32x32 on CPUExecutionProvider; 000000000001.png: 2 detections, "
        "output contract kept"
    )
    assert out[2] == "check OK" and len(out) == 3
    assert _snapshot(env.tmp) == before and not env.results.exists()


def test_check_with_a_config_checks_its_model_and_data(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(env.config), "--selection", "all"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "6 of 6 images (all)" in out[0] and out[1].startswith(f"model  {env.model}: ")
