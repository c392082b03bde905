"""The real assets (`ssd_eval.assets.sources`) fetched once into a cache and verified.

`ensure_model` / `ensure_coco_val2017` return a verified local path, downloading only what is
missing (`ssd_eval.assets.download` does the transfers). Layout of the cache:

    <cache>/models/ssd-10.onnx               (+ ssd-10.onnx.verified: size, mtime, sha256 once checked)
    <cache>/downloads/val2017.zip            the archives, kept so that re-extracting needs no network
    <cache>/coco/annotations/instances_val2017.json
    <cache>/coco/val2017/*.jpg
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from ssd_eval.assets.download import download, hash_file
from ssd_eval.assets.sources import (
    DEFAULT_DATASET,
    DEFAULT_MODEL,
    ArchiveSource,
    DatasetSource,
    ModelSource,
    get_dataset_source,
    get_model_source,
)
from ssd_eval.errors import AssetError

log = logging.getLogger(__name__)

ENV_HOME = "SSD_EVAL_HOME"
ENV_MIRROR = "SSD_EVAL_MIRROR"
ENV_OFFLINE = "SSD_EVAL_OFFLINE"
FETCH_TARGETS = ("model", "data", "all")

DOWNLOADED = "downloaded"
EXTRACTED = "extracted"  # the archives were already in the cache: only unpacked
ALREADY_PRESENT = "already present"


class Fetched(NamedTuple):
    """What `fetch` did for one asset."""

    name: str
    path: Path
    status: str  # DOWNLOADED, EXTRACTED or ALREADY_PRESENT


# --- settings ------------------------------------------------------------------------------------


def cache_home(configured: str | Path | None = None) -> Path:
    """The cache root: `configured`, else $SSD_EVAL_HOME, $XDG_CACHE_HOME/ssd_eval, ~/.cache/ssd_eval."""
    if configured is not None and str(configured):
        return Path(configured).expanduser()
    if os.environ.get(ENV_HOME):
        return Path(os.environ[ENV_HOME]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "ssd_eval"
    return Path.home() / ".cache" / "ssd_eval"


def _offline_by_env() -> bool:
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in ("1", "true", "yes")


def downloads_allowed(configured: bool = True) -> bool:
    """False when $SSD_EVAL_OFFLINE is 1/true/yes or the config says `download: false`."""
    return configured and not _offline_by_env()


def _why_offline() -> str:
    if _offline_by_env():
        return f"{ENV_OFFLINE}={os.environ.get(ENV_OFFLINE)}"
    return "--offline, or assets.download: false"


def resolve_mirror(mirror: str | None = None) -> str | None:
    """The mirror base URL: the argument, else $SSD_EVAL_MIRROR, else none."""
    value = mirror if mirror else os.environ.get(ENV_MIRROR)
    return value.rstrip("/") if value else None


def urls_with_mirror(filename: str, urls: Iterable[str], mirror: str | None) -> tuple[str, ...]:
    """`{mirror}/{filename}` first (when there is a mirror), then the source's own URLs."""
    base = resolve_mirror(mirror)
    return ((f"{base}/{filename}",) if base else ()) + tuple(urls)


# --- models --------------------------------------------------------------------------------------


def model_path(source: ModelSource, cache: Path) -> Path:
    """Where the cache keeps a model."""
    return cache / "models" / source.filename


def ensure_model(
    name: str, *, cache: Path, allow_download: bool, mirror: str | None = None, progress: bool = True
) -> Path:
    """The verified local file of the known model `name`, downloaded into `cache` if missing."""
    source = get_model_source(name)
    return fetch_model(
        source, cache=cache, allow_download=allow_download, mirror=mirror, progress=progress
    ).path


def fetch_model(
    source: ModelSource,
    *,
    cache: Path,
    allow_download: bool,
    mirror: str | None = None,
    progress: bool = True,
) -> Fetched:
    """Make `<cache>/models/<filename>` a verified copy of `source`; say whether it was downloaded."""
    path = model_path(source, cache)
    if _model_is_verified(path, source):
        log.info("%s: %s is already there", source.name, path)
        return Fetched(source.name, path, ALREADY_PRESENT)
    if not allow_download:
        raise AssetError(_model_offline_message(source, path))
    urls = urls_with_mirror(source.filename, source.urls, mirror)
    download(urls, path, sha256=source.sha256, size=source.size, progress=progress)
    _write_stamp(path, source.sha256)
    return Fetched(source.name, path, DOWNLOADED)


def _model_offline_message(source: ModelSource, path: Path) -> str:
    state = "is not the expected file (its size or sha256 differ)" if path.exists() else "is missing"
    return (
        f"model {source.name}: {path} {state} and downloads are off ({_why_offline()}): "
        f"put {source.filename} ({source.size:,} bytes, sha256 {source.sha256}) from {source.urls[0]} "
        f"at {path}, or run `ssd-eval fetch model --model-name {source.name}` where downloads work"
    )


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _model_is_verified(path: Path, source: ModelSource) -> bool:
    """Right size always; sha256 hashed once, then remembered in a stamp keyed by size and mtime."""
    if not path.is_file():
        return False
    if path.stat().st_size != source.size:
        log.warning("%s has %d bytes, expected %d", path, path.stat().st_size, source.size)
        return False
    if _stamp_matches(path, source.sha256):
        return True
    log.info("%s: checking the sha256 of %s (once)", source.name, path)
    if hash_file(path, "sha256") != source.sha256.lower():
        log.warning("%s does not match the sha256 of %s", path, source.name)
        return False
    _write_stamp(path, source.sha256)
    return True


def _stamp_record(path: Path, sha256: str) -> dict[str, object]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256}


def _stamp_matches(path: Path, sha256: str) -> bool:
    try:
        recorded = json.loads(_stamp_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(recorded == _stamp_record(path, sha256))


def _write_stamp(path: Path, sha256: str) -> None:
    stamp = _stamp_path(path)
    temporary = stamp.with_name(stamp.name + ".tmp")
    temporary.write_text(json.dumps(_stamp_record(path, sha256)) + "\n", encoding="utf-8")
    os.replace(temporary, stamp)


# --- data sets -----------------------------------------------------------------------------------


def ensure_coco_val2017(
    *, cache: Path, allow_download: bool, mirror: str | None = None, progress: bool = True
) -> Path:
    """The COCO val2017 root (`annotations/instances_val2017.json`, `val2017/*.jpg`) in `cache`."""
    source = get_dataset_source(DEFAULT_DATASET)
    return fetch_dataset(
        source, cache=cache, allow_download=allow_download, mirror=mirror, progress=progress
    ).path


def dataset_root(source: DatasetSource, cache: Path) -> Path:
    """Where the cache keeps an extracted data set."""
    return cache / source.folder


def archive_path(archive: ArchiveSource, cache: Path) -> Path:
    """Where the cache keeps a downloaded archive."""
    return cache / "downloads" / archive.filename


def fetch_dataset(
    source: DatasetSource,
    *,
    cache: Path,
    allow_download: bool,
    mirror: str | None = None,
    progress: bool = True,
) -> Fetched:
    """Make `<cache>/<folder>` hold the data set, downloading and extracting only what is missing."""
    root = dataset_root(source, cache)
    if _dataset_is_complete(source, root):
        log.info("%s: %s is already there", source.name, root)
        return Fetched(source.name, root, ALREADY_PRESENT)
    missing = [archive for archive in source.archives if not archive_path(archive, cache).is_file()]
    if missing and not allow_download:
        raise AssetError(_dataset_offline_message(source, missing, cache))
    archives = [
        download(
            urls_with_mirror(archive.filename, archive.urls, mirror),
            archive_path(archive, cache),
            md5=archive.md5,
            size=archive.size,
            progress=progress,
        )
        for archive in source.archives
    ]
    _extract_dataset(source, archives, root)
    return Fetched(source.name, root, DOWNLOADED if missing else EXTRACTED)


def _dataset_is_complete(source: DatasetSource, root: Path) -> bool:
    """The annotation file and every image are there; a partial folder is an error, never overwritten."""
    if not root.exists():
        return False
    annotations = root / source.annotations
    count = _count_images(root / source.images)
    if annotations.is_file() and count == source.image_count:
        return True
    raise AssetError(
        f"{source.name}: {root} exists but is incomplete ({'an' if annotations.is_file() else 'no'} "
        f"{source.annotations}, {count} of {source.image_count} images in {source.images}/): "
        f"delete it and run again, or set dataset.root to a complete COCO folder"
    )


def _count_images(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    with os.scandir(folder) as entries:
        return sum(1 for entry in entries if entry.name.lower().endswith(".jpg"))


def _dataset_offline_message(source: DatasetSource, missing: list[ArchiveSource], cache: Path) -> str:
    wanted = "; ".join(
        f"put {archive.filename} ({archive.size:,} bytes, md5 {archive.md5}) from {archive.urls[0]} "
        f"at {archive_path(archive, cache)}"
        for archive in missing
    )
    return (
        f"{source.name}: {dataset_root(source, cache)} is missing and downloads are off ({_why_offline()}): "
        f"{wanted}; or set dataset.root to an extracted COCO folder"
    )


def _extract_dataset(source: DatasetSource, archives: list[Path], root: Path) -> None:
    """Unpack the needed members into a temporary folder beside `root`, check it, rename it into place."""
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".partial", dir=root.parent))
    except OSError as exc:
        raise AssetError(
            f"{source.name}: cannot create a folder in {root.parent} ({exc.strerror or exc})"
        ) from exc
    try:
        for archive, path in zip(source.archives, archives, strict=True):
            log.info("%s: extracting %s from %s", source.name, ", ".join(archive.members), path.name)
            extract_members(path, archive.members, staging)
        _check_extracted(source, staging, archives)
        _move_into_place(staging, root, source)
    except OSError as exc:
        raise AssetError(
            f"{source.name}: extracting into {root.parent} failed ({exc.strerror or exc}): "
            "free some space or choose another cache folder, then run again"
        ) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_extracted(source: DatasetSource, staging: Path, archives: list[Path]) -> None:
    count = _count_images(staging / source.images)
    has_annotations = (staging / source.annotations).is_file()
    if not has_annotations or count != source.image_count:
        raise AssetError(
            f"{source.name}: the archives hold {count} images in {source.images}/ (expected "
            f"{source.image_count}) and {'an' if has_annotations else 'no'} {source.annotations}: "
            f"delete {' and '.join(str(path) for path in archives)} and fetch again"
        )


def _move_into_place(staging: Path, root: Path, source: DatasetSource) -> None:
    """Rename the staging folder onto `root`; if another process got there first, keep theirs."""
    try:
        os.rename(staging, root)
    except OSError as exc:
        if _dataset_is_complete(source, root):  # raises when what is there is incomplete
            log.info("%s: another process extracted %s first", source.name, root)
            return
        raise AssetError(f"{source.name}: cannot move {staging} to {root} ({exc})") from exc
    log.info("%s: extracted into %s", source.name, root)


def extract_members(archive: Path, members: Iterable[str], target: Path) -> list[Path]:
    """Extract the members of a zip that are `members` (or under a `members` folder) into `target`.

    A member whose path would land outside `target` (absolute, `..`, drive letter) is an error.
    """
    wanted = tuple(members)
    written: list[Path] = []
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if not _is_wanted(info.filename, wanted):
                    continue
                destination = _safe_destination(target, info.filename, archive)
                written.append(destination)
                _extract_one(zf, info, destination)
    except zipfile.BadZipFile as exc:
        raise AssetError(f"{archive} is not a readable zip ({exc}): delete it and fetch again") from exc
    return written


def _is_wanted(name: str, wanted: tuple[str, ...]) -> bool:
    return any(name == item or (item.endswith("/") and name.startswith(item)) for item in wanted)


def _safe_destination(target: Path, name: str, archive: Path) -> Path:
    """`target/name`, refusing any member that would escape `target` (zip-slip)."""
    pure = PurePosixPath(name.replace("\\", "/"))
    parts = [part for part in pure.parts if part not in ("", ".")]
    escapes = pure.is_absolute() or ".." in parts or any(":" in part for part in parts)
    destination = target.joinpath(*parts)
    if escapes or not destination.resolve().is_relative_to(target.resolve()):
        raise AssetError(
            f"{archive} has a member {name!r} that would be written outside {target}: "
            "refusing to extract it; delete the archive and fetch it from a trusted source"
        )
    return destination


def _extract_one(zf: zipfile.ZipFile, info: zipfile.ZipInfo, destination: Path) -> None:
    if info.is_dir():
        destination.mkdir(parents=True, exist_ok=True)
        return
    destination.parent.mkdir(parents=True, exist_ok=True)
    with zf.open(info) as source, destination.open("wb") as out:
        shutil.copyfileobj(source, out, length=1 << 20)


# --- the CLI's entry point -----------------------------------------------------------------------


def fetch(
    what: str,
    *,
    cache: Path,
    model_name: str = DEFAULT_MODEL,
    allow_download: bool = True,
    mirror: str | None = None,
    progress: bool = True,
) -> list[Fetched]:
    """Fetch `model`, `data` or `all` into `cache`; one `Fetched` per asset, in that order."""
    if what not in FETCH_TARGETS:
        raise AssetError(f"cannot fetch {what!r}: choose one of {', '.join(FETCH_TARGETS)}")
    results: list[Fetched] = []
    if what in ("model", "all"):
        model = get_model_source(model_name)
        results.append(
            fetch_model(model, cache=cache, allow_download=allow_download, mirror=mirror, progress=progress)
        )
    if what in ("data", "all"):
        dataset = get_dataset_source(DEFAULT_DATASET)
        results.append(
            fetch_dataset(
                dataset, cache=cache, allow_download=allow_download, mirror=mirror, progress=progress
            )
        )
    return results
