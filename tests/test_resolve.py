"""engine.resolve: a config's model and data turned into files, given paths as they are, known sources
fetched into the configured cache through the configured mirror (a local HTTP server stands in)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from http_server import FileServer
from test_assets import dataset_source, model_source

import ssd_eval.twin.synthetic
from ssd_eval.assets import sources
from ssd_eval.config.run import RunConfig, config_from_dict
from ssd_eval.engine.resolve import ResolvedAssets, resolve_assets, resolve_data
from ssd_eval.errors import AssetError, ConfigError


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FileServer]:
    """The fake model and data set, at their sources and under /mirror/; the environment's cache is
    `home/`, another folder than the ones the configs name."""
    for name in ("SSD_EVAL_OFFLINE", "SSD_EVAL_MIRROR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SSD_EVAL_HOME", str(tmp_path / "home"))
    with FileServer() as running:
        monkeypatch.setattr(sources, "MODELS", {"fake": model_source(running)})
        monkeypatch.setattr(sources, "DATASETS", {"coco-val2017": dataset_source(running)})
        for path in list(running.routes):
            running.add("/mirror/" + path.rsplit("/", 1)[-1], running.routes[path].body)
        yield running


def config(tmp_path: Path, **sections: dict[str, Any]) -> RunConfig:
    return config_from_dict(sections, base_dir=tmp_path)


def shows_a_bar_for(name: str, err: str) -> bool:
    return bool(re.search(rf"(?<![\w.]){re.escape(name)}", err))


def test_a_model_path_and_a_data_root_are_used_as_given(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSD_EVAL_OFFLINE", "1")  # a fetch would fail, and make no request
    given = config(
        tmp_path,
        model={"path": "models/mine.onnx"},
        dataset={"root": "my-coco", "annotations": "labels/val.json", "images": "pictures"},
    )

    assert resolve_assets(given) == ResolvedAssets(
        model=tmp_path / "models" / "mine.onnx",
        model_source=None,
        annotation_file=tmp_path / "my-coco" / "labels" / "val.json",
        image_dir=tmp_path / "my-coco" / "pictures",
    )
    assert resolve_data(given) == (
        tmp_path / "my-coco" / "labels" / "val.json",
        tmp_path / "my-coco" / "pictures",
    )
    assert server.connections == 0


@pytest.mark.parametrize("progress", [None, False])  # None: the default, a progress bar
def test_a_known_model_is_fetched_into_the_configured_cache_through_the_configured_mirror(
    server: FileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], progress: bool | None
) -> None:
    given = config(
        tmp_path,
        model={"source": "fake"},
        dataset={"root": "coco"},
        assets={"cache": "cache", "mirror": server.url("/mirror")},
    )

    resolved = resolve_assets(given, **({} if progress is None else {"progress": progress}))

    assert resolved.model == tmp_path / "cache" / "models" / "fake.onnx"
    assert resolved.model_source == "fake"
    assert [path for path, _ in server.requests] == ["/mirror/fake.onnx"]
    assert shows_a_bar_for("fake.onnx", capsys.readouterr().err) is (progress is None)


@pytest.mark.parametrize("progress", [None, False])
def test_coco_is_fetched_into_the_configured_cache_through_the_configured_mirror(
    server: FileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], progress: bool | None
) -> None:
    given = config(
        tmp_path,
        model={"path": "m.onnx"},
        dataset={"source": "coco-val2017"},
        assets={"cache": "cache", "mirror": server.url("/mirror")},
    )

    annotation_file, image_dir = resolve_data(given, **({} if progress is None else {"progress": progress}))

    root = tmp_path / "cache" / "coco"
    assert (annotation_file, image_dir) == (root / "annotations" / "instances_val2017.json", root / "val2017")
    assert sorted(path for path, _ in server.requests) == [
        "/mirror/annotations_trainval2017.zip",
        "/mirror/val2017.zip",
    ]
    err = capsys.readouterr().err
    assert shows_a_bar_for("val2017.zip", err) is (progress is None)
    assert shows_a_bar_for("annotations_trainval2017.zip", err) is (progress is None)


def test_downloads_off_in_the_config_make_no_request(server: FileServer, tmp_path: Path) -> None:
    given = config(tmp_path, model={"source": "fake"}, dataset={"root": "coco"}, assets={"download": False})

    with pytest.raises(AssetError, match=r"downloads are off \(--offline, or assets.download: false\)"):
        resolve_assets(given, progress=False)

    assert server.connections == 0


def test_a_twin_is_found_in_the_cache_by_its_size(server: FileServer, tmp_path: Path) -> None:
    twin = tmp_path / "cache" / "twins" / "ssd-twin-1200-s0-v1.onnx"  # seed 0 (tests/test_twin.py's name)
    twin.parent.mkdir(parents=True)
    twin.write_bytes(b"a twin built earlier")
    given = config(
        tmp_path, model={"source": "twin-1200"}, dataset={"root": "coco"}, assets={"cache": "cache"}
    )

    resolved = resolve_assets(given, progress=False)

    assert (resolved.model, resolved.model_source) == (twin, "twin-1200")
    assert server.connections == 0


def test_a_twin_without_a_size_is_refused_in_one_line(server: FileServer, tmp_path: Path) -> None:
    given = config(tmp_path, model={"source": "twin-big"}, dataset={"root": "coco"})

    with pytest.raises(ConfigError) as excinfo:
        resolve_assets(given, progress=False)

    assert str(excinfo.value) == "model.source 'twin-big': a twin is named twin-<image size>, e.g. twin-1200"


def test_a_synthetic_data_set_is_made_in_the_configured_cache(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[tuple[str, Path]] = []

    def synthetic(source: str, *, cache: Path) -> Path:
        made.append((source, cache))
        return cache / "synthetic" / source

    monkeypatch.setattr(ssd_eval.twin.synthetic, "ensure_synthetic_dataset", synthetic)
    given = config(
        tmp_path, model={"path": "m.onnx"}, dataset={"source": "synthetic-600"}, assets={"cache": "c"}
    )

    annotation_file, image_dir = resolve_data(given, progress=False)

    root = tmp_path / "c" / "synthetic" / "synthetic-600"
    assert (annotation_file, image_dir) == (root / "annotations" / "instances_val2017.json", root / "val2017")
    assert made == [("synthetic-600", tmp_path / "c")]


def test_an_unknown_data_set_is_refused_in_one_line(server: FileServer, tmp_path: Path) -> None:
    given = config(tmp_path, model={"path": "m.onnx"}, dataset={"source": "coco-2014"})

    with pytest.raises(ConfigError) as excinfo:
        resolve_data(given, progress=False)

    assert str(excinfo.value) == (
        "dataset.source 'coco-2014' is not known (known: coco-val2017, synthetic-<size>)"
    )
    assert server.connections == 0
