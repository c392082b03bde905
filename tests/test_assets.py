"""assets.sources and assets.fetch: the sources table, the cache, models, COCO val2017, on a local server."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import os
import re
import shutil
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from http_server import FileServer, closed_port_url
from PIL import Image

from ssd_eval.assets import download as download_module
from ssd_eval.assets import fetch as assets
from ssd_eval.assets import sources
from ssd_eval.assets.fetch import (
    ALREADY_PRESENT,
    DOWNLOADED,
    EXTRACTED,
    annotations_archive,
    cache_home,
    downloads_allowed,
    ensure_coco_val2017,
    ensure_coco_val2017_annotations,
    ensure_model,
    extract_members,
    fetch,
    fetch_annotations,
    fetch_dataset,
    fetch_model,
    resolve_mirror,
    urls_with_mirror,
)
from ssd_eval.assets.sources import ArchiveSource, DatasetSource, ModelSource, get_source
from ssd_eval.errors import AssetError

MODEL_BYTES = b"not really onnx " * 4096
IMAGE_NAMES = ("000000000139.jpg", "000000000285.jpg", "000000000632.jpg")


@pytest.fixture
def server() -> Iterator[FileServer]:
    with FileServer() as running:
        yield running


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SSD_EVAL_OFFLINE", "SSD_EVAL_MIRROR", "SSD_EVAL_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)


def model_source(server: FileServer, *urls: str) -> ModelSource:
    """A fake model served at /zoo/fake.onnx (or at `urls`)."""
    served = server.add("/zoo/fake.onnx", MODEL_BYTES)
    return ModelSource(
        name="fake",
        filename="fake.onnx",
        sha256=hashlib.sha256(MODEL_BYTES).hexdigest(),
        size=len(MODEL_BYTES),
        urls=urls or (served,),
        published_ap=0.5,
        description="a test model",
    )


def tiny_jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (seed * 40, 80, 120)).save(buffer, "JPEG")
    return buffer.getvalue()


def make_zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def images_zip(extra: dict[str, bytes] | None = None) -> bytes:
    entries = {"val2017/": b""} | {f"val2017/{name}": tiny_jpeg(i) for i, name in enumerate(IMAGE_NAMES)}
    return make_zip(entries | (extra or {}))


def annotations_zip() -> bytes:
    instances = {"images": [{"id": 139, "file_name": IMAGE_NAMES[0]}], "annotations": [], "categories": []}
    return make_zip(
        {
            "annotations/instances_val2017.json": json.dumps(instances).encode(),
            "annotations/instances_train2017.json": b"{}",
            "annotations/captions_val2017.json": b"{}",
        }
    )


def archive(server: FileServer, filename: str, data: bytes, members: tuple[str, ...]) -> ArchiveSource:
    url = server.add(f"/coco/{filename}", data)
    return ArchiveSource(
        name=filename.removesuffix(".zip"),
        filename=filename,
        md5=hashlib.md5(data).hexdigest(),
        size=len(data),
        urls=(url,),
        members=members,
    )


def dataset_source(server: FileServer, images: bytes | None = None) -> DatasetSource:
    return DatasetSource(
        name="coco-val2017",
        folder="coco",
        archives=(
            archive(server, "val2017.zip", images or images_zip(), ("val2017/",)),
            archive(
                server,
                "annotations_trainval2017.zip",
                annotations_zip(),
                ("annotations/instances_val2017.json",),
            ),
        ),
        annotations="annotations/instances_val2017.json",
        images="val2017",
        image_count=len(IMAGE_NAMES),
        description="a tiny COCO",
    )


def files_under(root: Path) -> list[str]:
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())


# --- the table and the settings -----------------------------------------------------------------


def test_the_table_knows_the_zoo_models_and_coco() -> None:
    ssd10 = get_source("ssd-10")
    assert isinstance(ssd10, ModelSource)
    assert ssd10.sha256 == "80013dd940efc1462c616143b461ef35885bcc1706e0670b66623293b4b52c59"
    assert ssd10.size == 80_363_696 and ssd10.published_ap == 0.195
    assert ssd10.urls[0] == (
        "https://huggingface.co/onnxmodelzoo/legacy_models/resolve/main/"
        "validated/vision/object_detection_segmentation/ssd/model/ssd-10.onnx"
    )
    assert (
        "validated/vision" in ssd10.urls[1]
        and "/vision/" in ssd10.urls[2]
        and "validated" not in ssd10.urls[2]
    )
    for name in sources.MODELS:
        source = sources.MODELS[name]
        assert len(source.sha256) == 64 and source.size > 0 and source.urls
        assert all(url.endswith(source.filename) for url in source.urls)
    coco = get_source("coco-val2017")
    assert isinstance(coco, DatasetSource) and coco.image_count == 5000
    sizes = {archive.filename: (archive.size, archive.md5) for archive in coco.archives}
    assert sizes == {
        "val2017.zip": (815_585_330, "442b8da7639aecaf257c1dceb8ba8c80"),
        "annotations_trainval2017.zip": (252_907_541, "f4bbac642086de4f52a3fdda2de5fa2c"),
    }


def test_the_tables_cannot_be_changed_in_place() -> None:
    with pytest.raises(TypeError):
        sources.MODELS["mine"] = sources.MODELS["ssd-10"]  # type: ignore[index]


def test_an_unknown_name_lists_the_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    models = "ssd-10, ssd-12, ssd-12-int8, ssd-12-qdq"  # docs/fetching.md's table
    with pytest.raises(AssetError) as excinfo:
        get_source("ssd-99")
    assert str(excinfo.value) == f"unknown asset 'ssd-99': known are {models}, coco-val2017"
    with pytest.raises(AssetError) as excinfo:
        ensure_model("nope", cache=Path("unused"), allow_download=False)
    assert str(excinfo.value) == f"unknown model 'nope': known models are {models}"
    with pytest.raises(AssetError) as excinfo:
        sources.get_dataset_source("coco-2014")
    assert str(excinfo.value) == "unknown data set 'coco-2014': known data sets are coco-val2017"
    coco = sources.DATASETS["coco-val2017"]
    monkeypatch.setattr(sources, "DATASETS", {"coco-val2017": coco, "coco-val2014": coco})
    with pytest.raises(AssetError) as excinfo:
        sources.get_dataset_source("coco-2014")
    assert (
        str(excinfo.value) == "unknown data set 'coco-2014': known data sets are coco-val2017, coco-val2014"
    )


def test_cache_home_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_home() == tmp_path / "home" / ".cache" / "ssd_eval"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_home() == tmp_path / "xdg" / "ssd_eval"
    monkeypatch.setenv("SSD_EVAL_HOME", str(tmp_path / "env"))
    assert cache_home() == tmp_path / "env"
    assert cache_home(tmp_path / "configured") == tmp_path / "configured"
    assert cache_home("~/x") == tmp_path / "home" / "x"
    assert cache_home("") == tmp_path / "env"  # an empty setting is no setting


@pytest.mark.parametrize(
    ("env", "configured", "allowed"),
    [
        (None, True, True),
        (None, False, False),
        ("1", True, False),
        ("TRUE", True, False),
        ("yes", True, False),
        ("0", True, True),
        ("no", False, False),
    ],
)
def test_downloads_allowed(
    monkeypatch: pytest.MonkeyPatch, env: str | None, configured: bool, allowed: bool
) -> None:
    if env is not None:
        monkeypatch.setenv("SSD_EVAL_OFFLINE", env)
    assert downloads_allowed(configured) is allowed
    if configured:  # the default: the config allows downloads
        assert downloads_allowed() is allowed


# --- models --------------------------------------------------------------------------------------


def test_a_model_is_downloaded_into_the_cache_and_stamped(server: FileServer, tmp_path: Path) -> None:
    source = model_source(server)

    result = fetch_model(source, cache=tmp_path, allow_download=True, progress=False)

    assert result == (source.name, tmp_path / "models" / "fake.onnx", DOWNLOADED)
    assert result.path.read_bytes() == MODEL_BYTES
    assert files_under(tmp_path) == ["models/fake.onnx", "models/fake.onnx.verified"]


def test_a_second_call_makes_no_request_and_does_not_hash_again(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = model_source(server)
    fetch_model(source, cache=tmp_path, allow_download=True, progress=False)
    requests = len(server.requests)

    def no_hashing(*_: object) -> str:
        raise AssertionError("the stamp should have spared this hash")

    monkeypatch.setattr(assets, "hash_file", no_hashing)
    monkeypatch.setattr(download_module._Digests, "of_file", no_hashing)  # nor does the download check
    result = fetch_model(source, cache=tmp_path, allow_download=False, progress=False)

    assert result.status == ALREADY_PRESENT
    assert len(server.requests) == requests


def test_a_model_put_there_by_hand_is_hashed_once(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = model_source(server)
    path = tmp_path / "models" / "fake.onnx"
    path.parent.mkdir()
    path.write_bytes(MODEL_BYTES)
    hashed: list[Path] = []
    real_hash = download_module._Digests.of_file  # every hash of a file, the download's checks included

    def counting_hash(file: Path, algorithms: Iterable[str]) -> download_module._Digests:
        hashed.append(file)
        return real_hash(file, algorithms)

    monkeypatch.setattr(download_module._Digests, "of_file", counting_hash)

    for _ in range(3):
        assert fetch_model(source, cache=tmp_path, allow_download=False).status == ALREADY_PRESENT

    assert hashed == [path]
    assert server.requests == []


def test_a_model_whose_download_finished_before_the_rename_is_moved_into_place(
    server: FileServer, tmp_path: Path
) -> None:
    source = model_source(server)
    path = tmp_path / "models" / "fake.onnx"
    path.parent.mkdir()
    (tmp_path / "models" / "fake.onnx.part").write_bytes(MODEL_BYTES)

    result = fetch_model(source, cache=tmp_path, allow_download=True, progress=False)

    assert result == ("fake", path, ALREADY_PRESENT)  # nothing was transferred
    assert path.read_bytes() == MODEL_BYTES and server.requests == []
    assert files_under(tmp_path) == ["models/fake.onnx", "models/fake.onnx.verified"]


def test_the_mirror_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_mirror("https://mirror.example/ssdX/") == "https://mirror.example/ssdX"
    assert resolve_mirror("file:///shared/drive//") == "file:///shared/drive"
    assert resolve_mirror(None) is None and resolve_mirror("") is None
    monkeypatch.setenv("SSD_EVAL_MIRROR", "https://env.example/m/")
    assert resolve_mirror(None) == "https://env.example/m"
    assert resolve_mirror("https://given.example") == "https://given.example"
    assert urls_with_mirror("a.zip", ("https://origin/a.zip",), "https://given.example/") == (
        "https://given.example/a.zip",
        "https://origin/a.zip",
    )


def test_a_changed_model_is_noticed_despite_its_stamp(server: FileServer, tmp_path: Path) -> None:
    source = model_source(server)
    path = fetch_model(source, cache=tmp_path, allow_download=True, progress=False).path
    path.write_bytes(b"X" * len(MODEL_BYTES))  # same size, new content and mtime
    os.utime(path, ns=(1, 1))

    result = fetch_model(source, cache=tmp_path, allow_download=True, progress=False)

    assert result.status == DOWNLOADED
    assert path.read_bytes() == MODEL_BYTES


def test_air_gapped_error_names_the_full_path_the_url_and_the_checksum(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = model_source(server)
    monkeypatch.setenv("SSD_EVAL_OFFLINE", "1")

    with pytest.raises(AssetError) as excinfo:
        fetch_model(source, cache=tmp_path, allow_download=downloads_allowed(), progress=False)

    message = str(excinfo.value)
    assert str(tmp_path / "models" / "fake.onnx") in message
    assert source.urls[0] in message and source.sha256 in message and "SSD_EVAL_OFFLINE=1" in message
    assert server.requests == []


def test_ensure_model_by_name_uses_the_table(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "MODELS", {"fake": model_source(server)})
    path = ensure_model("fake", cache=tmp_path, allow_download=True, progress=False)
    assert path == tmp_path / "models" / "fake.onnx"


def test_the_mirror_is_tried_first(server: FileServer, tmp_path: Path) -> None:
    server.add("/mirror/fake.onnx", MODEL_BYTES)
    source = model_source(server)

    fetch_model(source, cache=tmp_path, allow_download=True, mirror=server.url("/mirror/"), progress=False)

    assert [path for path, _ in server.requests] == ["/mirror/fake.onnx"]


def test_the_mirror_can_come_from_the_environment(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.add("/mirror/fake.onnx", MODEL_BYTES)
    monkeypatch.setenv("SSD_EVAL_MIRROR", server.url("/mirror"))

    fetch_model(model_source(server), cache=tmp_path, allow_download=True, progress=False)

    assert [path for path, _ in server.requests] == ["/mirror/fake.onnx"]


def test_a_mirror_without_the_file_falls_back_to_the_sources(server: FileServer, tmp_path: Path) -> None:
    source = model_source(server, closed_port_url("/zoo/fake.onnx"), server.url("/zoo/fake.onnx"))

    fetch_model(source, cache=tmp_path, allow_download=True, mirror=server.url("/mirror"), progress=False)

    assert [path for path, _ in server.requests] == ["/mirror/fake.onnx", "/zoo/fake.onnx"]


# --- COCO ----------------------------------------------------------------------------------------


def test_coco_is_downloaded_and_only_the_needed_members_extracted(server: FileServer, tmp_path: Path) -> None:
    source = dataset_source(server)

    result = fetch_dataset(source, cache=tmp_path, allow_download=True, progress=False)

    root = tmp_path / "coco"
    assert result == ("coco-val2017", root, DOWNLOADED)
    assert files_under(root) == ["annotations/instances_val2017.json", *(f"val2017/{n}" for n in IMAGE_NAMES)]
    assert (root / "val2017" / IMAGE_NAMES[1]).read_bytes() == tiny_jpeg(1)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["coco", "downloads"]  # no staging folder left
    assert files_under(tmp_path / "downloads") == ["annotations_trainval2017.zip", "val2017.zip"]


def test_a_second_coco_call_does_nothing(
    server: FileServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = dataset_source(server)
    fetch_dataset(source, cache=tmp_path, allow_download=True, progress=False)
    requests = len(server.requests)

    with caplog.at_level(logging.INFO, logger="ssd_eval.assets.fetch"):
        result = fetch_dataset(source, cache=tmp_path, allow_download=True, progress=False)

    assert result.status == ALREADY_PRESENT
    assert len(server.requests) == requests
    assert "already there" in caplog.text


def test_archives_in_the_cache_are_extracted_offline(server: FileServer, tmp_path: Path) -> None:
    source = dataset_source(server)
    fetch_dataset(source, cache=tmp_path, allow_download=True, progress=False)
    requests = len(server.requests)
    for path in sorted((tmp_path / "coco").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (tmp_path / "coco").rmdir()

    result = fetch_dataset(source, cache=tmp_path, allow_download=False, progress=False)

    assert result.status == EXTRACTED
    assert len(server.requests) == requests


def test_coco_offline_error_names_each_missing_archive_and_where_it_goes(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSD_EVAL_OFFLINE", "yes")
    source = dataset_source(server)

    with pytest.raises(AssetError) as excinfo:
        fetch_dataset(source, cache=tmp_path, allow_download=downloads_allowed(), progress=False)

    message = str(excinfo.value)
    for item in source.archives:
        assert str(tmp_path / "downloads" / item.filename) in message
        assert item.urls[0] in message and item.md5 in message
    assert server.requests == []


def test_a_zip_slip_member_is_refused(server: FileServer, tmp_path: Path) -> None:
    evil = images_zip({"val2017/../../evil.jpg": b"gotcha"})
    source = dataset_source(server, images=evil)
    cache = tmp_path / "cache"

    with pytest.raises(AssetError, match=r"'val2017/\.\./\.\./evil\.jpg' that would be written outside"):
        fetch_dataset(source, cache=cache, allow_download=True, progress=False)

    assert not list(tmp_path.rglob("evil.jpg"))
    assert sorted(path.name for path in cache.iterdir()) == ["downloads"]  # no root, no staging


@pytest.mark.parametrize(
    "name",
    [
        "../evil.txt",
        "/tmp/evil.txt",
        "C:/evil.txt",
        "a/../../evil.txt",
        "..\\evil.txt",  # Windows separators are separators
        "a\\..\\..\\evil.txt",
        "a/../b.txt",  # `..` anywhere, even one that would stay inside
    ],
)
def test_extract_members_refuses_paths_outside_the_target(tmp_path: Path, name: str) -> None:
    zipped = tmp_path / "a.zip"
    zipped.write_bytes(make_zip({name: b"x"}))
    with pytest.raises(AssetError, match="outside"):
        extract_members(zipped, (name,), tmp_path / "target")


def test_extract_members_takes_folders_and_exact_names_only(tmp_path: Path) -> None:
    zipped = tmp_path / "a.zip"
    zipped.write_bytes(
        make_zip({"keep/a.txt": b"a", "keep/sub/b.txt": b"b", "keeper.txt": b"no", "x.txt": b"x"})
    )
    written = extract_members(zipped, ("keep/", "x.txt"), tmp_path / "t")
    assert files_under(tmp_path / "t") == ["keep/a.txt", "keep/sub/b.txt", "x.txt"]
    assert len(written) == 3


def test_a_corrupt_zip_is_a_clear_error(tmp_path: Path) -> None:
    zipped = tmp_path / "a.zip"
    zipped.write_bytes(b"not a zip")
    with pytest.raises(AssetError, match="not a readable zip"):
        extract_members(zipped, ("x",), tmp_path / "t")


def test_archives_with_the_wrong_image_count_leave_no_root(server: FileServer, tmp_path: Path) -> None:
    short = make_zip({f"val2017/{IMAGE_NAMES[0]}": tiny_jpeg(0)})
    source = dataset_source(server, images=short)

    with pytest.raises(AssetError) as excinfo:
        fetch_dataset(source, cache=tmp_path, allow_download=True, progress=False)

    downloads = tmp_path / "downloads"
    assert str(excinfo.value) == (
        "coco-val2017: the archives hold 1 images in val2017/ (expected 3) and an "
        f"annotations/instances_val2017.json: delete {downloads / 'val2017.zip'} and "
        f"{downloads / 'annotations_trainval2017.zip'} and fetch again"
    )
    assert not (tmp_path / "coco").exists()


def test_archives_without_the_annotation_file_say_so(server: FileServer, tmp_path: Path) -> None:
    source = dataset_source(server)
    empty = make_zip({"annotations/captions_val2017.json": b"{}"})
    broken = replace(
        source,
        archives=(
            source.archives[0],
            archive(server, "annotations_trainval2017.zip", empty, source.archives[1].members),
        ),
    )

    with pytest.raises(AssetError) as excinfo:
        fetch_dataset(broken, cache=tmp_path, allow_download=True, progress=False)

    downloads = tmp_path / "downloads"
    assert str(excinfo.value) == (
        "coco-val2017: the archives hold 3 images in val2017/ (expected 3) and no "
        f"annotations/instances_val2017.json: delete {downloads / 'val2017.zip'} and "
        f"{downloads / 'annotations_trainval2017.zip'} and fetch again"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["downloads"]


def test_an_incomplete_coco_folder_is_never_overwritten(server: FileServer, tmp_path: Path) -> None:
    (tmp_path / "coco" / "val2017").mkdir(parents=True)
    (tmp_path / "coco" / "val2017" / IMAGE_NAMES[0]).write_bytes(tiny_jpeg(0))

    with pytest.raises(AssetError, match=r"exists but is incomplete .*1 of 3 images"):
        fetch_dataset(dataset_source(server), cache=tmp_path, allow_download=True, progress=False)

    assert server.requests == []


def test_ensure_coco_val2017_uses_the_table(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "DATASETS", {"coco-val2017": dataset_source(server)})
    root = ensure_coco_val2017(cache=tmp_path, allow_download=True, progress=False)
    assert (root / "annotations" / "instances_val2017.json").is_file()


def test_fetch_all_reports_each_asset(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "MODELS", {"fake": model_source(server)})
    monkeypatch.setattr(sources, "DATASETS", {"coco-val2017": dataset_source(server)})

    first = fetch("all", cache=tmp_path, model_name="fake", progress=False)
    second = fetch("all", cache=tmp_path, model_name="fake", allow_download=False, progress=False)

    assert [(item.name, item.status) for item in first] == [
        ("fake", DOWNLOADED),
        ("coco-val2017", DOWNLOADED),
    ]
    assert [item.status for item in second] == [ALREADY_PRESENT, ALREADY_PRESENT]
    with pytest.raises(AssetError, match="choose one of model, data, annotations, all"):
        fetch("everything", cache=tmp_path)


# --- every source failing: one line naming the mirror setting, the checksum and the way around it ----


def test_a_model_nobody_serves_names_the_mirror_setting_the_checksum_and_model_path(
    server: FileServer, tmp_path: Path
) -> None:
    source = model_source(server, closed_port_url("/zoo/fake.onnx"))

    with pytest.raises(AssetError) as excinfo:
        fetch_model(source, cache=tmp_path, allow_download=True, mirror=server.url("/mirror"), progress=False)

    message = str(excinfo.value)
    path = tmp_path / "models" / "fake.onnx"
    assert message.startswith(f"model fake: could not download fake.onnx to {path}: every source failed: ")
    assert f"{server.url('/mirror/fake.onnx')} (HTTP 404" in message and "(cannot connect" in message
    assert "set a mirror that has fake.onnx (--mirror URL, SSD_EVAL_MIRROR or assets.mirror)" in message
    assert f"put fake.onnx ({source.size:,} bytes, sha256 {source.sha256}) at {path} by hand" in message
    assert message.endswith("or run with --model PATH to use a model file you have")
    assert "\n" not in message


def test_an_archive_nobody_serves_names_the_mirror_setting_the_checksum_and_data_root(
    server: FileServer, tmp_path: Path
) -> None:
    source = dataset_source(server)
    server.routes.pop("/coco/val2017.zip")

    with pytest.raises(AssetError) as excinfo:
        fetch_dataset(source, cache=tmp_path, allow_download=True, progress=False)

    message = str(excinfo.value)
    images = source.archives[0]
    assert message.startswith("coco-val2017: could not download val2017.zip to ")
    assert "SSD_EVAL_MIRROR or assets.mirror" in message and f"md5 {images.md5}" in message
    assert "--data ROOT" in message and "\n" not in message
    assert not (tmp_path / "coco").exists()


def test_a_trickling_mirror_is_abandoned_for_the_origin(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.add("/mirror/fake.onnx", MODEL_BYTES, trickle_after=1000, trickle_every=0.05)
    monkeypatch.setenv("SSD_EVAL_MIN_RATE", "10000")
    monkeypatch.setenv("SSD_EVAL_RATE_WINDOW", "0.5")

    result = fetch_model(
        model_source(server),
        cache=tmp_path,
        allow_download=True,
        mirror=server.url("/mirror"),
        progress=False,
    )

    assert result.status == DOWNLOADED and result.path.read_bytes() == MODEL_BYTES
    (resumed,) = server.ranges("/zoo/fake.onnx")
    assert resumed is not None and resumed.startswith("bytes=")  # the origin continued the mirror's bytes


def test_a_wrong_archive_in_the_cache_is_downloaded_again_and_says_so(
    server: FileServer, tmp_path: Path
) -> None:
    source = dataset_source(server)
    (tmp_path / "downloads").mkdir()
    for item in source.archives:
        (tmp_path / "downloads" / item.filename).write_bytes(b"x" * 10)

    result = fetch_dataset(source, cache=tmp_path, allow_download=True, progress=False)

    assert result.status == DOWNLOADED  # not "extracted from the archives already in the cache"


# --- the annotation file alone ------------------------------------------------------------------


def test_annotations_alone_fetch_only_their_archive_and_extract_only_the_file(
    server: FileServer, tmp_path: Path
) -> None:
    source = dataset_source(server)

    result = fetch_annotations(source, cache=tmp_path, allow_download=True, progress=False)

    wanted = tmp_path / "coco-annotations" / "annotations" / "instances_val2017.json"
    assert result == ("coco-val2017 annotations", wanted, DOWNLOADED)
    assert [path for path, _ in server.requests] == ["/coco/annotations_trainval2017.zip"]
    assert files_under(tmp_path / "coco-annotations") == ["annotations/instances_val2017.json"]
    assert json.loads(wanted.read_text())["images"][0]["id"] == 139
    assert sorted(path.name for path in tmp_path.iterdir()) == ["coco-annotations", "downloads"]

    again = fetch_annotations(source, cache=tmp_path, allow_download=False, progress=False)
    assert again.status == ALREADY_PRESENT and len(server.requests) == 1


def test_annotations_then_data_download_the_annotations_archive_once(
    server: FileServer, tmp_path: Path
) -> None:
    source = dataset_source(server)
    fetch_annotations(source, cache=tmp_path, allow_download=True, progress=False)

    result = fetch_dataset(source, cache=tmp_path, allow_download=True, progress=False)

    assert result.status == DOWNLOADED
    assert sorted(path for path, _ in server.requests) == [
        "/coco/annotations_trainval2017.zip",
        "/coco/val2017.zip",
    ]


def test_annotations_come_from_the_full_data_set_when_it_is_there(server: FileServer, tmp_path: Path) -> None:
    source = dataset_source(server)
    fetch_dataset(source, cache=tmp_path, allow_download=True, progress=False)
    requests = len(server.requests)

    result = fetch_annotations(source, cache=tmp_path, allow_download=False, progress=False)

    assert result.path == tmp_path / "coco" / "annotations" / "instances_val2017.json"
    assert result.status == ALREADY_PRESENT and len(server.requests) == requests
    assert not (tmp_path / "coco-annotations").exists()


def test_annotations_from_an_archive_in_the_cache_are_extracted_offline(
    server: FileServer, tmp_path: Path
) -> None:
    source = dataset_source(server)
    annotations = source.archives[1]
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / annotations.filename).write_bytes(
        server.routes["/coco/" + annotations.filename].body
    )

    result = fetch_annotations(source, cache=tmp_path, allow_download=False, progress=False)

    assert result.status == EXTRACTED and result.path.is_file()
    assert server.connections == 0


def test_an_annotations_archive_without_the_file_leaves_no_folder(server: FileServer, tmp_path: Path) -> None:
    source = dataset_source(server)
    empty = make_zip({"annotations/captions_val2017.json": b"{}"})
    broken = replace(
        source,
        archives=(
            source.archives[0],
            archive(server, "annotations_trainval2017.zip", empty, source.archives[1].members),
        ),
    )

    with pytest.raises(AssetError) as excinfo:
        fetch_annotations(broken, cache=tmp_path, allow_download=True, progress=False)

    assert str(excinfo.value) == (
        "coco-val2017: the archives hold no annotations/instances_val2017.json: delete "
        f"{tmp_path / 'downloads' / 'annotations_trainval2017.zip'} and fetch again"
    )
    assert not (tmp_path / "coco-annotations").exists()


def test_ensure_coco_val2017_annotations_gives_a_root_for_dataset_annotations(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "DATASETS", {"coco-val2017": dataset_source(server)})

    root = ensure_coco_val2017_annotations(cache=tmp_path, allow_download=True, progress=False)

    assert root == tmp_path / "coco-annotations"
    assert (root / "annotations" / "instances_val2017.json").is_file()
    assert annotations_archive(sources.DATASETS["coco-val2017"]).filename == "annotations_trainval2017.zip"


# --- every entry point: the mirror first, a progress bar unless told not to ----------------------

ENTRY_POINTS: dict[str, tuple[Callable[..., object], tuple[str, ...]]] = {
    "ensure_model": (
        lambda cache, **options: ensure_model("fake", cache=cache, allow_download=True, **options),
        ("fake.onnx",),
    ),
    "fetch_model": (
        lambda cache, **options: fetch_model(
            sources.MODELS["fake"], cache=cache, allow_download=True, **options
        ),
        ("fake.onnx",),
    ),
    "ensure_coco_val2017": (
        lambda cache, **options: ensure_coco_val2017(cache=cache, allow_download=True, **options),
        ("val2017.zip", "annotations_trainval2017.zip"),
    ),
    "ensure_coco_val2017_annotations": (
        lambda cache, **options: ensure_coco_val2017_annotations(cache=cache, allow_download=True, **options),
        ("annotations_trainval2017.zip",),
    ),
    "fetch_dataset": (
        lambda cache, **options: fetch_dataset(
            sources.DATASETS["coco-val2017"], cache=cache, allow_download=True, **options
        ),
        ("val2017.zip", "annotations_trainval2017.zip"),
    ),
    "fetch_annotations": (
        lambda cache, **options: fetch_annotations(
            sources.DATASETS["coco-val2017"], cache=cache, allow_download=True, **options
        ),
        ("annotations_trainval2017.zip",),
    ),
    "fetch model": (
        lambda cache, **options: fetch("model", cache=cache, model_name="fake", **options),
        ("fake.onnx",),
    ),
    "fetch data": (
        lambda cache, **options: fetch("data", cache=cache, **options),
        ("val2017.zip", "annotations_trainval2017.zip"),
    ),
    "fetch annotations": (
        lambda cache, **options: fetch("annotations", cache=cache, **options),
        ("annotations_trainval2017.zip",),
    ),
    "fetch all": (
        lambda cache, **options: fetch("all", cache=cache, model_name="fake", **options),
        ("fake.onnx", "val2017.zip", "annotations_trainval2017.zip"),
    ),
}


@pytest.mark.parametrize("progress", [None, False])  # None: the default, a bar on stderr
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_every_entry_point_tries_the_mirror_first_and_shows_progress_unless_told_not_to(
    server: FileServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    entry: str,
    progress: bool | None,
) -> None:
    monkeypatch.setattr(sources, "MODELS", {"fake": model_source(server)})
    monkeypatch.setattr(sources, "DATASETS", {"coco-val2017": dataset_source(server)})
    for path in list(server.routes):  # the mirror has every file
        server.add("/mirror/" + path.rsplit("/", 1)[-1], server.routes[path].body)
    call, files = ENTRY_POINTS[entry]

    call(tmp_path, mirror=server.url("/mirror"), **({} if progress is None else {"progress": progress}))

    assert sorted(path for path, _ in server.requests) == sorted(f"/mirror/{name}" for name in files)
    err = capsys.readouterr().err
    for name in files:  # the bar's label is the file's name (not a longer name ending in it)
        assert bool(re.search(rf"(?<![\w.]){re.escape(name)}", err)) is (progress is None), (name, err)


# --- the model's stamp and the offline line ---------------------------------------------------------


def test_the_stamp_records_size_mtime_and_sha256(server: FileServer, tmp_path: Path) -> None:
    source = model_source(server)

    path = fetch_model(source, cache=tmp_path, allow_download=True, progress=False).path

    stamp = json.loads((tmp_path / "models" / "fake.onnx.verified").read_text(encoding="utf-8"))
    assert stamp == {
        "size": 65_536,  # 16 bytes x 4096
        "mtime_ns": path.stat().st_mtime_ns,
        "sha256": hashlib.sha256(MODEL_BYTES).hexdigest(),
    }


def test_offline_without_the_model_is_one_whole_line(server: FileServer, tmp_path: Path) -> None:
    source = model_source(server)
    path = tmp_path / "models" / "fake.onnx"

    with pytest.raises(AssetError) as excinfo:
        fetch_model(source, cache=tmp_path, allow_download=False)

    assert str(excinfo.value) == (
        f"model fake: {path} is missing; downloads are off (--offline, or assets.download: false): put "
        f"fake.onnx (65,536 bytes, sha256 {source.sha256}) from {source.urls[0]} at {path}, or run with "
        "--model PATH to use a model file you have, or drop --offline (and assets.download: false) where "
        "downloads work"
    )
    assert server.connections == 0


def test_offline_without_the_archives_is_one_whole_line_naming_both(
    server: FileServer, tmp_path: Path
) -> None:
    source = dataset_source(server)
    images, annotations = source.archives
    downloads = tmp_path / "downloads"

    with pytest.raises(AssetError) as excinfo:
        fetch_dataset(source, cache=tmp_path, allow_download=False)

    assert str(excinfo.value) == (
        f"coco-val2017: {tmp_path / 'coco'} is missing; downloads are off (--offline, or assets.download: "
        f"false): {downloads / 'val2017.zip'} is missing: put val2017.zip ({images.size:,} bytes, md5 "
        f"{images.md5}) from {images.urls[0]} there; {downloads / 'annotations_trainval2017.zip'} is "
        f"missing: put annotations_trainval2017.zip ({annotations.size:,} bytes, md5 {annotations.md5}) from "
        f"{annotations.urls[0]} there; or run with --data ROOT (dataset.root) to use an extracted COCO "
        "folder, or drop --offline (and assets.download: false) where downloads work"
    )
    assert server.connections == 0


def test_a_data_set_whose_archives_lack_the_annotation_file_is_refused(server: FileServer) -> None:
    source = dataset_source(server)

    with pytest.raises(AssetError) as excinfo:
        annotations_archive(replace(source, archives=source.archives[:1]))

    assert str(excinfo.value) == (
        "coco-val2017: no archive lists annotations/instances_val2017.json among its members"
    )


# --- an incomplete data set folder, and extraction ------------------------------------------------


@pytest.mark.parametrize(
    ("annotations", "images", "held"),
    [
        (True, 0, "an annotations/instances_val2017.json, 0 of 3 images"),  # no val2017/ folder at all
        (True, 2, "an annotations/instances_val2017.json, 2 of 3 images"),
        (False, 1, "no annotations/instances_val2017.json, 1 of 3 images"),
    ],
)
def test_an_incomplete_coco_folder_says_what_it_holds(
    server: FileServer, tmp_path: Path, annotations: bool, images: int, held: str
) -> None:
    root = tmp_path / "coco"
    root.mkdir()
    if annotations:
        (root / "annotations").mkdir()
        (root / "annotations" / "instances_val2017.json").write_text("{}")
    if images:
        (root / "val2017").mkdir()
    for name in IMAGE_NAMES[:images]:
        (root / "val2017" / name).write_bytes(tiny_jpeg(0))

    with pytest.raises(AssetError) as excinfo:
        fetch_dataset(dataset_source(server), cache=tmp_path, allow_download=True, progress=False)

    assert str(excinfo.value) == (
        f"coco-val2017: {root} exists but is incomplete ({held} in val2017/): delete it and run again, "
        "or set dataset.root to a complete COCO folder"
    )
    assert server.requests == []


def test_a_data_set_folder_nested_in_the_cache_is_created(server: FileServer, tmp_path: Path) -> None:
    source = replace(dataset_source(server), folder="shared/datasets/coco")

    result = fetch_dataset(source, cache=tmp_path, allow_download=True, progress=False)

    root = tmp_path / "shared" / "datasets" / "coco"
    assert result == ("coco-val2017", root, DOWNLOADED)
    assert files_under(root) == ["annotations/instances_val2017.json", *(f"val2017/{n}" for n in IMAGE_NAMES)]


def test_archives_are_extracted_beside_the_root_then_renamed(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    targets: list[Path] = []
    real = assets.extract_members

    def recording(archive: Path, members: tuple[str, ...], target: Path) -> list[Path]:
        targets.append(target)
        return real(archive, members, target)

    monkeypatch.setattr(assets, "extract_members", recording)

    fetch_dataset(dataset_source(server), cache=tmp_path, allow_download=True, progress=False)

    (staging,) = set(targets)  # one hidden folder beside coco/ (same file system: the rename is atomic)
    assert staging.parent == tmp_path and re.fullmatch(r"\.coco\..+\.partial", staging.name)
    assert not staging.exists()


def _no_space(*_: object, **__: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_no_room_for_the_extraction_folder_is_one_line(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = dataset_source(server)
    monkeypatch.setattr(assets.tempfile, "mkdtemp", _no_space)

    with pytest.raises(AssetError) as excinfo:
        fetch_dataset(source, cache=tmp_path, allow_download=True, progress=False)

    assert (
        str(excinfo.value) == f"coco-val2017: cannot create a folder in {tmp_path} (No space left on device)"
    )


def test_a_disk_filling_up_while_extracting_is_one_line_and_leaves_no_folder(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = dataset_source(server)
    monkeypatch.setattr(assets.shutil, "copyfileobj", _no_space)

    with pytest.raises(AssetError) as excinfo:
        fetch_dataset(source, cache=tmp_path, allow_download=True, progress=False)

    assert str(excinfo.value) == (
        f"coco-val2017: extracting into {tmp_path} failed (No space left on device): free some space or "
        "choose another cache folder, then run again"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["downloads"]


def _rename_loses_the_race(
    monkeypatch: pytest.MonkeyPatch, other: Callable[[Path, Path], None], error: OSError
) -> list[Path]:
    """`os.rename(staging, root)` fails with `error` after `other(staging, root)`, the other process's
    work, has run; returns the staging folders it was asked to move."""
    moved: list[Path] = []

    def rename(staging: str | Path, root: str | Path) -> None:
        moved.append(Path(staging))
        other(Path(staging), Path(root))
        raise error

    monkeypatch.setattr(assets.os, "rename", rename)
    return moved


def _same_extraction(staging: Path, root: Path) -> None:
    shutil.copytree(staging, root)


def test_a_data_set_another_process_extracted_first_is_kept(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _rename_loses_the_race(monkeypatch, _same_extraction, OSError(errno.ENOTEMPTY, "Directory not empty"))

    result = fetch_dataset(dataset_source(server), cache=tmp_path, allow_download=True, progress=False)

    assert result == ("coco-val2017", tmp_path / "coco", DOWNLOADED)
    assert files_under(tmp_path / "coco") == [
        "annotations/instances_val2017.json",
        *(f"val2017/{n}" for n in IMAGE_NAMES),
    ]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["coco", "downloads"]


def test_annotations_another_process_extracted_first_are_kept(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _rename_loses_the_race(monkeypatch, _same_extraction, OSError(errno.ENOTEMPTY, "Directory not empty"))

    result = fetch_annotations(dataset_source(server), cache=tmp_path, allow_download=True, progress=False)

    wanted = tmp_path / "coco-annotations" / "annotations" / "instances_val2017.json"
    assert result == ("coco-val2017 annotations", wanted, DOWNLOADED)
    assert files_under(tmp_path / "coco-annotations") == ["annotations/instances_val2017.json"]


def test_an_incomplete_folder_another_process_left_is_an_error(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def annotations_only(staging: Path, root: Path) -> None:
        (root / "annotations").mkdir(parents=True)
        (root / "annotations" / "instances_val2017.json").write_text("{}")

    _rename_loses_the_race(monkeypatch, annotations_only, OSError(errno.ENOTEMPTY, "Directory not empty"))

    with pytest.raises(AssetError) as excinfo:
        fetch_dataset(dataset_source(server), cache=tmp_path, allow_download=True, progress=False)

    assert str(excinfo.value) == (
        f"coco-val2017: {tmp_path / 'coco'} exists but is incomplete (an annotations/instances_val2017.json, "
        "0 of 3 images in val2017/): delete it and run again, or set dataset.root to a complete COCO folder"
    )


def test_a_rename_that_fails_with_nothing_there_is_one_line(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    moved = _rename_loses_the_race(
        monkeypatch, lambda staging, root: None, OSError(errno.EACCES, "Permission denied")
    )

    with pytest.raises(AssetError) as excinfo:
        fetch_dataset(dataset_source(server), cache=tmp_path, allow_download=True, progress=False)

    (staging,) = moved
    assert str(excinfo.value) == (
        f"coco-val2017: cannot move {staging} to {tmp_path / 'coco'} ([Errno 13] Permission denied)"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["downloads"]


# --- extract_members --------------------------------------------------------------------------------


def test_a_member_outside_the_target_is_refused_in_one_line(tmp_path: Path) -> None:
    zipped = tmp_path / "a.zip"
    target = tmp_path / "target"
    name = f"{target}/inside.txt"  # absolute: refused, even though it names a place inside the target
    zipped.write_bytes(make_zip({name: b"x"}))

    with pytest.raises(AssetError) as excinfo:
        extract_members(zipped, (name,), target)

    assert str(excinfo.value) == (
        f"{zipped} has a member {name!r} that would be written outside {target}: refusing to extract it; "
        "delete the archive and fetch it from a trusted source"
    )
    assert not target.exists()


def test_folder_entries_in_any_order_are_created(tmp_path: Path) -> None:
    zipped = tmp_path / "a.zip"
    # A folder's entry before its parent's, and a folder's entry after a file already made it.
    zipped.write_bytes(make_zip({"keep/sub/": b"", "keep/sub/a.txt": b"a", "keep/": b""}))
    target = tmp_path / "t"

    written = extract_members(zipped, ("keep/",), target)

    assert written == [target / "keep" / "sub", target / "keep" / "sub" / "a.txt", target / "keep"]
    assert (
        files_under(target) == ["keep/sub/a.txt"] and (target / "keep" / "sub" / "a.txt").read_bytes() == b"a"
    )
