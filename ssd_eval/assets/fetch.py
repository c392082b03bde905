"""The real assets (`ssd_eval.assets.sources`) fetched once into a cache and verified.

`ensure_model` / `ensure_coco_val2017` / `ensure_coco_val2017_annotations` return a verified local
path, downloading only what is missing (`ssd_eval.assets.download` does the transfers; every file goes
through `_get`, and with downloads off `download.obtain` makes no request at all). Layout of the cache:

    <cache>/models/ssd-10.onnx               (+ ssd-10.onnx.verified: size, mtime, sha256 once checked)
    <cache>/downloads/val2017.zip            the archives, kept so that re-extracting needs no network
    <cache>/coco/annotations/instances_val2017.json
    <cache>/coco/val2017/*.jpg
    <cache>/coco-annotations/annotations/instances_val2017.json   (`fetch annotations`, no images)
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from ssd_eval.assets.download import DownloadFailed, DownloadsOff, Obtained, hash_file, obtain
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
from ssd_eval.files import write_text_atomic

log = logging.getLogger(__name__)

ENV_HOME = "SSD_EVAL_HOME"
ENV_MIRROR = "SSD_EVAL_MIRROR"
ENV_OFFLINE = "SSD_EVAL_OFFLINE"
FETCH_TARGETS = ("model", "data", "annotations", "all")

DOWNLOADED = "downloaded"
EXTRACTED = "extracted"  # the archives were already in the cache: only unpacked
ALREADY_PRESENT = "already present"

_MIRROR_SETTING = f"--mirror URL, {ENV_MIRROR} or assets.mirror"
_USE_MODEL = "or run with --model PATH to use a model file you have"
_USE_DATA = "or run with --data ROOT (dataset.root) to use an extracted COCO folder"


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


def _how_to_go_online() -> str:
    if _offline_by_env():
        return f"unset {ENV_OFFLINE} where downloads work"
    return "drop --offline (and assets.download: false) where downloads work"


def resolve_mirror(mirror: str | None = None) -> str | None:
    """The mirror base URL: the argument, else $SSD_EVAL_MIRROR, else none."""
    value = mirror if mirror else os.environ.get(ENV_MIRROR)
    return value.rstrip("/") if value else None


def urls_with_mirror(filename: str, urls: Iterable[str], mirror: str | None) -> tuple[str, ...]:
    """`{mirror}/{filename}` first (when there is a mirror), then the source's own URLs."""
    base = resolve_mirror(mirror)
    return ((f"{base}/{filename}",) if base else ()) + tuple(urls)


def _checksum(sha256: str | None, md5: str | None) -> str:
    return f"sha256 {sha256}" if sha256 else f"md5 {md5}"


def _get(
    label: str,
    filename: str,
    urls: Sequence[str],
    dest: Path,
    *,
    size: int,
    sha256: str | None = None,
    md5: str | None = None,
    allow_download: bool,
    mirror: str | None,
    progress: bool,
    instead: str,
) -> Obtained:
    """Every file of the cache comes through here: the mirror first, then the source's URLs.

    Downloads off: `obtain` makes no request and raises `DownloadsOff` (the caller words it, as it
    may gather several). Every source failing is one line naming the mirror setting, the checksum and
    `instead` (the flag that makes the file unnecessary).
    """
    try:
        return obtain(
            urls_with_mirror(filename, urls, mirror),
            dest,
            sha256=sha256,
            md5=md5,
            size=size,
            allow_download=allow_download,
            progress=progress,
        )
    except DownloadFailed as exc:
        raise AssetError(
            f"{label}: {exc.summary}. Check the network (or proxy settings), set a mirror that has "
            f"{filename} ({_MIRROR_SETTING}), put {filename} ({size:,} bytes, {_checksum(sha256, md5)}) "
            f"at {dest} by hand, {instead}"
        ) from exc


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
    label = f"model {source.name}"
    try:
        got = _get(
            label,
            source.filename,
            source.urls,
            path,
            size=source.size,
            sha256=source.sha256,
            allow_download=allow_download,
            mirror=mirror,
            progress=progress,
            instead=_USE_MODEL,
        )
    except DownloadsOff as exc:
        raise AssetError(
            f"{label}: {exc.dest} {exc.state}; downloads are off ({_why_offline()}): put "
            f"{source.filename} ({source.size:,} bytes, sha256 {source.sha256}) from {source.urls[0]} at "
            f"{path}, {_USE_MODEL}, or {_how_to_go_online()}"
        ) from None
    _write_stamp(path, source.sha256)
    return Fetched(source.name, path, DOWNLOADED if got.downloaded else ALREADY_PRESENT)


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
        recorded = json.loads(_stamp_path(path).read_bytes())  # JSON bytes: UTF-8, whatever the locale
    except (OSError, ValueError):
        return False
    return bool(recorded == _stamp_record(path, sha256))


def _write_stamp(path: Path, sha256: str) -> None:
    write_text_atomic(_stamp_path(path), json.dumps(_stamp_record(path, sha256)) + "\n")


# --- data sets -----------------------------------------------------------------------------------


def ensure_coco_val2017(
    *, cache: Path, allow_download: bool, mirror: str | None = None, progress: bool = True
) -> Path:
    """The COCO val2017 root (`annotations/instances_val2017.json`, `val2017/*.jpg`) in `cache`."""
    source = get_dataset_source(DEFAULT_DATASET)
    return fetch_dataset(
        source, cache=cache, allow_download=allow_download, mirror=mirror, progress=progress
    ).path


def ensure_coco_val2017_annotations(
    *, cache: Path, allow_download: bool, mirror: str | None = None, progress: bool = True
) -> Path:
    """A root holding COCO val2017's `annotations/instances_val2017.json`, without needing the images.

    The full data set's root when it is in the cache, else `<cache>/coco-annotations`, filled from
    the annotations archive alone (what scoring and merging need: 253 MB instead of 1 GB).
    """
    source = get_dataset_source(DEFAULT_DATASET)
    root, _ = _fetch_annotations(
        source, cache=cache, allow_download=allow_download, mirror=mirror, progress=progress
    )
    return root


def dataset_root(source: DatasetSource, cache: Path) -> Path:
    """Where the cache keeps an extracted data set."""
    return cache / source.folder


def annotations_root(source: DatasetSource, cache: Path) -> Path:
    """Where the cache keeps a data set's annotation file fetched without its images."""
    return cache / f"{source.folder}-annotations"


def archive_path(archive: ArchiveSource, cache: Path) -> Path:
    """Where the cache keeps a downloaded archive."""
    return cache / "downloads" / archive.filename


def annotations_archive(source: DatasetSource) -> ArchiveSource:
    """The archive of `source` that holds its annotation file."""
    for archive in source.archives:
        if _is_wanted(source.annotations, archive.members):
            return archive
    raise AssetError(f"{source.name}: no archive lists {source.annotations} among its members")


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
    got = _get_archives(
        source.name,
        source.archives,
        root,
        cache=cache,
        allow_download=allow_download,
        mirror=mirror,
        progress=progress,
    )
    pieces = [(item.path, archive.members) for archive, item in zip(source.archives, got, strict=True)]
    _extract(source, pieces, root, images=True)
    return Fetched(source.name, root, DOWNLOADED if any(item.downloaded for item in got) else EXTRACTED)


def fetch_annotations(
    source: DatasetSource,
    *,
    cache: Path,
    allow_download: bool,
    mirror: str | None = None,
    progress: bool = True,
) -> Fetched:
    """Make the annotation file of `source` available without its images; `path` is the file."""
    root, status = _fetch_annotations(
        source, cache=cache, allow_download=allow_download, mirror=mirror, progress=progress
    )
    return Fetched(f"{source.name} annotations", root / source.annotations, status)


def _fetch_annotations(
    source: DatasetSource, *, cache: Path, allow_download: bool, mirror: str | None, progress: bool
) -> tuple[Path, str]:
    full = dataset_root(source, cache)
    if _has_every_file(source, full):
        log.info("%s: %s is already there", source.name, full / source.annotations)
        return full, ALREADY_PRESENT
    root = annotations_root(source, cache)
    if (root / source.annotations).is_file():
        log.info("%s: %s is already there", source.name, root / source.annotations)
        return root, ALREADY_PRESENT
    archive = annotations_archive(source)
    (got,) = _get_archives(
        f"{source.name} annotations",
        (archive,),
        root / source.annotations,
        cache=cache,
        allow_download=allow_download,
        mirror=mirror,
        progress=progress,
    )
    _extract(source, [(got.path, (source.annotations,))], root, images=False)
    return root, DOWNLOADED if got.downloaded else EXTRACTED


def _get_archives(
    label: str,
    archives: Sequence[ArchiveSource],
    target: Path,
    *,
    cache: Path,
    allow_download: bool,
    mirror: str | None,
    progress: bool,
) -> list[Obtained]:
    """Each archive, verified in the cache; with downloads off, one line naming every one not there."""
    got: list[Obtained] = []
    offline: list[tuple[ArchiveSource, DownloadsOff]] = []
    for archive in archives:
        try:
            got.append(
                _get(
                    label,
                    archive.filename,
                    archive.urls,
                    archive_path(archive, cache),
                    size=archive.size,
                    md5=archive.md5,
                    allow_download=allow_download,
                    mirror=mirror,
                    progress=progress,
                    instead=_USE_DATA,
                )
            )
        except DownloadsOff as exc:
            offline.append((archive, exc))
    if offline:
        wanted = "; ".join(
            f"{exc.dest} {exc.state}: put {archive.filename} ({archive.size:,} bytes, md5 {archive.md5}) "
            f"from {archive.urls[0]} there"
            for archive, exc in offline
        )
        raise AssetError(
            f"{label}: {target} is missing; downloads are off ({_why_offline()}): {wanted}; "
            f"{_USE_DATA}, or {_how_to_go_online()}"
        )
    return got


def _has_every_file(source: DatasetSource, root: Path) -> bool:
    return (root / source.annotations).is_file() and _count_images(root / source.images) == source.image_count


def _dataset_is_complete(source: DatasetSource, root: Path) -> bool:
    """The annotation file and every image are there; a partial folder is an error, never overwritten."""
    if not root.exists():
        return False
    if _has_every_file(source, root):
        return True
    annotations = root / source.annotations
    count = _count_images(root / source.images)
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


def _extract(
    source: DatasetSource, pieces: Sequence[tuple[Path, tuple[str, ...]]], root: Path, *, images: bool
) -> None:
    """Unpack `(archive, members)` into a temporary folder beside `root`, check it, rename it into place.

    `images`: the whole data set; else the annotation file alone.
    """
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".partial", dir=root.parent))
    except OSError as exc:
        raise AssetError(
            f"{source.name}: cannot create a folder in {root.parent} ({exc.strerror or exc})"
        ) from exc
    try:
        for path, members in pieces:
            log.info("%s: extracting %s from %s", source.name, ", ".join(members), path.name)
            extract_members(path, members, staging)
        _check_extracted(source, staging, [path for path, _ in pieces], images=images)
        _move_into_place(staging, root, source, images=images)
    except OSError as exc:
        raise AssetError(
            f"{source.name}: extracting into {root.parent} failed ({exc.strerror or exc}): "
            "free some space or choose another cache folder, then run again"
        ) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_extracted(source: DatasetSource, staging: Path, archives: list[Path], *, images: bool) -> None:
    count = _count_images(staging / source.images)
    has_annotations = (staging / source.annotations).is_file()
    if has_annotations and (not images or count == source.image_count):
        return
    held = (
        f"hold {count} images in {source.images}/ (expected {source.image_count}) and "
        f"{'an' if has_annotations else 'no'} {source.annotations}"
        if images
        else f"hold no {source.annotations}"
    )
    raise AssetError(
        f"{source.name}: the archives {held}: delete {' and '.join(str(path) for path in archives)} "
        "and fetch again"
    )


def _move_into_place(staging: Path, root: Path, source: DatasetSource, *, images: bool) -> None:
    """Rename the staging folder onto `root`; if another process got there first, keep theirs."""
    try:
        os.rename(staging, root)
    except OSError as exc:
        # _dataset_is_complete raises when what is there is incomplete
        there = _dataset_is_complete(source, root) if images else (root / source.annotations).is_file()
        if there:
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
    parts = pure.parts  # never "" or ".": PurePosixPath drops them
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
    """Fetch `model`, `data`, `annotations` (no images) or `all` into `cache`; one `Fetched` per asset."""
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
    if what == "annotations":
        dataset = get_dataset_source(DEFAULT_DATASET)
        results.append(
            fetch_annotations(
                dataset, cache=cache, allow_download=allow_download, mirror=mirror, progress=progress
            )
        )
    return results
