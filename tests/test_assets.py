"""assets.sources and assets.fetch: the sources table, the cache, models, COCO val2017, on a local server."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from http_server import FileServer, closed_port_url
from PIL import Image

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


def test_an_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(AssetError, match=r"ssd-10.*coco-val2017"):
        get_source("ssd-99")
    with pytest.raises(AssetError, match="unknown model 'nope': known models are ssd-10"):
        ensure_model("nope", cache=Path("unused"), allow_download=False)


def test_cache_home_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_home() == tmp_path / "home" / ".cache" / "ssd_eval"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_home() == tmp_path / "xdg" / "ssd_eval"
    monkeypatch.setenv("SSD_EVAL_HOME", str(tmp_path / "env"))
    assert cache_home() == tmp_path / "env"
    assert cache_home(tmp_path / "configured") == tmp_path / "configured"
    assert cache_home("~/x") == tmp_path / "home" / "x"


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
    real_hash = assets.hash_file

    def counting_hash(file: Path, algorithm: str = "sha256") -> str:
        hashed.append(file)
        return real_hash(file, algorithm)

    monkeypatch.setattr(assets, "hash_file", counting_hash)

    for _ in range(3):
        assert fetch_model(source, cache=tmp_path, allow_download=False).status == ALREADY_PRESENT

    assert hashed == [path]
    assert server.requests == []


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


@pytest.mark.parametrize("name", ["../evil.txt", "/tmp/evil.txt", "C:/evil.txt", "a/../../evil.txt"])
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

    with pytest.raises(AssetError, match="1 images in val2017/ \\(expected 3\\)"):
        fetch_dataset(source, cache=tmp_path, allow_download=True, progress=False)

    assert not (tmp_path / "coco").exists()


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

    with pytest.raises(
        AssetError, match=r"the archives hold no annotations/instances_val2017\.json: delete "
    ):
        fetch_annotations(broken, cache=tmp_path, allow_download=True, progress=False)

    assert not (tmp_path / "coco-annotations").exists()


def test_ensure_coco_val2017_annotations_gives_a_root_for_dataset_annotations(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "DATASETS", {"coco-val2017": dataset_source(server)})

    root = ensure_coco_val2017_annotations(cache=tmp_path, allow_download=True, progress=False)

    assert root == tmp_path / "coco-annotations"
    assert (root / "annotations" / "instances_val2017.json").is_file()
    assert annotations_archive(sources.DATASETS["coco-val2017"]).filename == "annotations_trainval2017.zip"
