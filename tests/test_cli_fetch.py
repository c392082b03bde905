"""`ssd-eval fetch` through ssd_eval.cli.main, with the sources pointed at a local HTTP server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from http_server import FileServer
from test_assets import dataset_source, model_source

from ssd_eval.assets import sources
from ssd_eval.cli import main


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FileServer]:
    for name in ("SSD_EVAL_OFFLINE", "SSD_EVAL_MIRROR", "SSD_EVAL_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    with FileServer() as running:
        monkeypatch.setattr(sources, "MODELS", {"fake": model_source(running)})
        monkeypatch.setattr(sources, "DATASETS", {"coco-val2017": dataset_source(running)})
        yield running


def test_fetch_all_then_again(server: FileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["fetch", "--model-name", "fake", "--dest", str(tmp_path), "--no-progress"]

    assert main(args) == 0
    first = capsys.readouterr().out.splitlines()
    requests = len(server.requests)
    assert main(args) == 0
    second = capsys.readouterr().out.splitlines()

    assert first == [
        f"fake: {tmp_path / 'models' / 'fake.onnx'} (downloaded and verified)",
        f"coco-val2017: {tmp_path / 'coco'} (downloaded and verified)",
    ]
    assert second == [
        f"fake: {tmp_path / 'models' / 'fake.onnx'} (already present, nothing to do)",
        f"coco-val2017: {tmp_path / 'coco'} (already present, nothing to do)",
    ]
    assert len(server.requests) == requests


def test_fetch_model_only_into_the_cache_from_the_environment(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SSD_EVAL_HOME", str(tmp_path / "home"))

    assert main(["fetch", "model", "--model-name", "fake"]) == 0

    assert capsys.readouterr().out.startswith(f"fake: {tmp_path / 'home' / 'models' / 'fake.onnx'} (")
    assert not (tmp_path / "home" / "coco").exists()


def test_fetch_data_uses_the_mirror_first(server: FileServer, tmp_path: Path) -> None:
    for item in sources.DATASETS["coco-val2017"].archives:
        server.add(f"/mirror/{item.filename}", server.routes[f"/coco/{item.filename}"].body)

    code = main(
        ["fetch", "data", "--dest", str(tmp_path), "--mirror", server.url("/mirror"), "--no-progress"]
    )

    assert code == 0
    assert {path for path, _ in server.requests} == {
        "/mirror/val2017.zip",
        "/mirror/annotations_trainval2017.zip",
    }


def test_offline_fetch_says_it_cannot_download_and_exits_2(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SSD_EVAL_OFFLINE", "1")

    code = main(["fetch", "--model-name", "fake", "--dest", str(tmp_path), "--no-progress"])

    err = capsys.readouterr().err
    assert code == 2
    message = next(line for line in err.splitlines() if line.startswith("ssd-eval: error:"))
    assert (
        str(tmp_path / "models" / "fake.onnx") in message
        and "downloads are off (SSD_EVAL_OFFLINE=1)" in message
    )
    assert server.requests == []


def test_an_unknown_model_name_lists_the_known_ones(
    server: FileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fetch", "--model-name", "ssd-99", "--dest", str(tmp_path)]) == 2
    assert "unknown model 'ssd-99': known models are fake" in capsys.readouterr().err
    assert server.requests == []


def test_fetch_help_lists_the_targets(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["fetch", "--help"])
    assert excinfo.value.code == 0
    assert "{model,data,annotations,all}" in capsys.readouterr().out


def test_fetch_annotations_downloads_only_the_annotations_archive(
    server: FileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["fetch", "annotations", "--dest", str(tmp_path), "--no-progress"]

    assert main(args) == 0
    assert main([*args, "--offline"]) == 0

    wanted = tmp_path / "coco-annotations" / "annotations" / "instances_val2017.json"
    assert capsys.readouterr().out.splitlines() == [
        f"coco-val2017 annotations: {wanted} (downloaded and verified)",
        f"coco-val2017 annotations: {wanted} (already present, nothing to do)",
    ]
    assert [path for path, _ in server.requests] == ["/coco/annotations_trainval2017.zip"]


def test_every_source_failing_is_one_line_naming_the_mirror_and_the_checksum(
    server: FileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.routes.pop("/zoo/fake.onnx")
    code = main(
        ["fetch", "model", "--model-name", "fake", "--dest", str(tmp_path), "--mirror", server.url("/m")]
    )

    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    (line,) = err.splitlines()
    source = sources.MODELS["fake"]
    assert line.startswith("ssd-eval: error: model fake: could not download fake.onnx")
    assert "SSD_EVAL_MIRROR or assets.mirror" in line and source.sha256 in line and "--model PATH" in line
