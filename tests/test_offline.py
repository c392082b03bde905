"""Downloads off (`--offline`, SSD_EVAL_OFFLINE=1, assets.download: false) make no request at all.

Every path that can fetch (`fetch model|data|annotations`, `run` and `check` with a known model or
data set) is run against a local server that counts connections, with a mirror that *has* the
files: a leak would not only be counted, it would succeed. The cache is missing the file, holds one
of the wrong size, or one of the right size and the wrong checksum; each time the error is one line
naming the file, its expected size and checksum, and what to do.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import TINY_GT
from helpers import save_table_detector
from http_server import FileServer
from test_assets import MODEL_BYTES, dataset_source, model_source

from ssd_eval.assets import sources
from ssd_eval.assets.sources import ArchiveSource
from ssd_eval.cli import main

STATES = {
    "missing": None,
    "wrong size": lambda size: b"x" * 10,
    "wrong checksum": lambda size: b"\x00" * size,
}
STATE_TEXT = {
    "missing": "is missing",
    "wrong size": "has 10 bytes, expected {size:,}",
    "wrong checksum": "has the expected size but not the expected {checksum}",
}


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FileServer]:
    for name in ("SSD_EVAL_OFFLINE", "SSD_EVAL_MIRROR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SSD_EVAL_HOME", str(tmp_path / "cache"))
    with FileServer() as running:
        model = model_source(running)
        dataset = dataset_source(running)
        monkeypatch.setattr(sources, "MODELS", {"fake": model})
        monkeypatch.setattr(sources, "DATASETS", {"coco-val2017": dataset})
        running.add("/mirror/fake.onnx", MODEL_BYTES)
        for item in dataset.archives:
            running.add(f"/mirror/{item.filename}", running.routes[f"/coco/{item.filename}"].body)
        monkeypatch.setenv("SSD_EVAL_MIRROR", running.url("/mirror"))
        yield running


def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def plant(path: Path, state: str, size: int) -> None:
    """Leave `path` missing, or of the wrong size, or of the right size with the wrong bytes."""
    make = STATES[state]
    if make is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(make(size))


def error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("ssd-eval: error:")]
    assert len(lines) == 1, err
    return lines[0]


def archives() -> tuple[ArchiveSource, ...]:
    return sources.DATASETS["coco-val2017"].archives


def assert_names_archive(line: str, archive: ArchiveSource, where: Path, state: str) -> None:
    text = STATE_TEXT[state].format(size=archive.size, checksum="md5")
    assert f"{where} {text}: put {archive.filename} ({archive.size:,} bytes, md5 {archive.md5})" in line


# --- ssd-eval fetch ---------------------------------------------------------------------------------


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("switch", ["env", "flag"])
def test_fetch_model_offline_makes_no_request(
    server: FileServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    state: str,
    switch: str,
) -> None:
    model = sources.MODELS["fake"]
    path = cache(tmp_path) / "models" / "fake.onnx"
    plant(path, state, model.size)
    argv = ["fetch", "model", "--model-name", "fake"]
    if switch == "env":
        monkeypatch.setenv("SSD_EVAL_OFFLINE", "1")
    else:
        argv.append("--offline")

    line = error_line(capsys, argv)

    text = STATE_TEXT[state].format(size=model.size, checksum="sha256")
    assert f"model fake: {path} {text}; downloads are off (" in line
    assert (
        f"put fake.onnx ({model.size:,} bytes, sha256 {model.sha256}) from {model.urls[0]} at {path}" in line
    )
    assert "--model PATH" in line
    undo = "unset SSD_EVAL_OFFLINE" if switch == "env" else "drop --offline"
    assert undo in line
    assert server.connections == 0


@pytest.mark.parametrize("state", STATES)
def test_fetch_data_offline_makes_no_request_and_names_every_archive(
    server: FileServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    state: str,
) -> None:
    monkeypatch.setenv("SSD_EVAL_OFFLINE", "1")
    for item in archives():
        plant(cache(tmp_path) / "downloads" / item.filename, state, item.size)

    line = error_line(capsys, ["fetch", "data"])

    assert (
        f"coco-val2017: {cache(tmp_path) / 'coco'} is missing; downloads are off (SSD_EVAL_OFFLINE=1)" in line
    )
    for item in archives():
        assert_names_archive(line, item, cache(tmp_path) / "downloads" / item.filename, state)
    assert "--data ROOT" in line and "unset SSD_EVAL_OFFLINE" in line
    assert server.connections == 0
    assert not (cache(tmp_path) / "coco").exists()


def test_fetch_data_offline_names_only_the_archive_that_is_not_there(
    server: FileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images, annotations = archives()
    good = server.routes[f"/coco/{annotations.filename}"].body
    (cache(tmp_path) / "downloads").mkdir(parents=True)
    (cache(tmp_path) / "downloads" / annotations.filename).write_bytes(good)

    line = error_line(capsys, ["fetch", "data", "--offline"])

    assert_names_archive(line, images, cache(tmp_path) / "downloads" / images.filename, "missing")
    assert annotations.filename not in line
    assert server.connections == 0


@pytest.mark.parametrize("state", STATES)
def test_fetch_annotations_offline_makes_no_request(
    server: FileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], state: str
) -> None:
    _, annotations = archives()
    plant(cache(tmp_path) / "downloads" / annotations.filename, state, annotations.size)

    line = error_line(capsys, ["fetch", "annotations", "--offline"])

    wanted = cache(tmp_path) / "coco-annotations" / "annotations" / "instances_val2017.json"
    assert f"coco-val2017 annotations: {wanted} is missing; downloads are off" in line
    assert_names_archive(line, annotations, cache(tmp_path) / "downloads" / annotations.filename, state)
    assert "put val2017.zip" not in line  # the images are not needed
    assert server.connections == 0


def test_offline_fetch_still_extracts_archives_in_the_cache(
    server: FileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for item in archives():
        path = cache(tmp_path) / "downloads" / item.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(server.routes[f"/coco/{item.filename}"].body)

    assert main(["fetch", "data", "--offline"]) == 0

    assert "(extracted from the archives already in the cache)" in capsys.readouterr().out
    assert server.connections == 0


# --- ssd-eval run / check --------------------------------------------------------------------------


@pytest.fixture
def detector(tmp_path: Path, tiny_coco: Path) -> Path:
    return save_table_detector(tmp_path / "perfect.onnx", tiny_coco, TINY_GT)


def run_config(tmp_path: Path, *, model: dict[str, str], dataset: dict[str, str]) -> Path:
    path = tmp_path / "run.yaml"
    config = {"model": model, "dataset": dataset, "output": {"dir": str(tmp_path / "results")}}
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("command", [[], ["check"]])
def test_run_offline_with_a_known_model_makes_no_request(
    server: FileServer,
    tmp_path: Path,
    tiny_coco: Path,
    capsys: pytest.CaptureFixture[str],
    state: str,
    command: list[str],
) -> None:
    model = sources.MODELS["fake"]
    path = cache(tmp_path) / "models" / "fake.onnx"
    plant(path, state, model.size)
    config = run_config(tmp_path, model={"source": "fake"}, dataset={"root": str(tiny_coco)})

    line = error_line(capsys, [*command, "--config", str(config), "--offline"])

    text = STATE_TEXT[state].format(size=model.size, checksum="sha256")
    assert f"{path} {text}; downloads are off (--offline, or assets.download: false)" in line
    assert f"({model.size:,} bytes, sha256 {model.sha256})" in line
    assert "--model PATH" in line and "drop --offline" in line
    assert server.connections == 0


@pytest.mark.parametrize("state", STATES)
def test_run_offline_with_coco_from_the_cache_makes_no_request(
    server: FileServer,
    tmp_path: Path,
    detector: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    state: str,
) -> None:
    for item in archives():
        plant(cache(tmp_path) / "downloads" / item.filename, state, item.size)
    config = run_config(tmp_path, model={"path": str(detector)}, dataset={"source": "coco-val2017"})
    monkeypatch.setenv("SSD_EVAL_OFFLINE", "1")

    line = error_line(capsys, ["--config", str(config)])

    for item in archives():
        assert_names_archive(line, item, cache(tmp_path) / "downloads" / item.filename, state)
    assert "--data ROOT" in line and "SSD_EVAL_OFFLINE=1" in line
    assert server.connections == 0


def test_assets_download_false_in_the_config_is_offline_too(
    server: FileServer, tmp_path: Path, tiny_coco: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = run_config(tmp_path, model={"source": "fake"}, dataset={"root": str(tiny_coco)})
    data = yaml.safe_load(config.read_text())
    data["assets"] = {"download": False}
    config.write_text(yaml.safe_dump(data))

    line = error_line(capsys, ["--config", str(config)])

    assert "downloads are off" in line
    assert server.connections == 0


# --- score, merge and compare need the annotations only -------------------------------------------


def test_paths_that_read_no_pixels_fetch_the_annotations_alone(server: FileServer, tmp_path: Path) -> None:
    """A merge job (README's Actions recipe) of shards that used `dataset.source: coco-val2017` fetches
    the 253 MB annotations archive, never the images archive; a run fetches both."""
    from ssd_eval.config.run import config_from_dict
    from ssd_eval.engine.resolve import resolve_data

    config = config_from_dict({"dataset": {"source": "coco-val2017"}}, base_dir=tmp_path)
    annotation_file, image_dir = resolve_data(config, progress=False, images=False)

    fetched = {path.rsplit("/", 1)[-1] for path, _ in server.requests}
    assert fetched == {"annotations_trainval2017.zip"}
    assert annotation_file == cache(tmp_path) / "coco-annotations" / "annotations" / "instances_val2017.json"
    assert annotation_file.is_file() and not image_dir.exists()

    annotation_file, image_dir = resolve_data(config, progress=False)
    fetched = {path.rsplit("/", 1)[-1] for path, _ in server.requests}
    assert fetched == {"annotations_trainval2017.zip", "val2017.zip"}
    assert image_dir.is_dir()
