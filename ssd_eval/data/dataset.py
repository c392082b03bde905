"""COCO ground truth and images: which images are evaluated, and their pixels as RGB.

Images are evaluated in ascending id order. The annotation file is read once; the evaluator reuses
the same parsed tree, so val2017's 25 MB JSON is never parsed twice.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from ssd_eval.config.run import PILLOW_MAX_IMAGE_PIXELS
from ssd_eval.data.annotation_checks import MAX_ID, check_annotation_data, exact_id, file_name_problem
from ssd_eval.data.categories import LabelMap, check_categories
from ssd_eval.errors import DatasetError
from ssd_eval.files import sha256_bytes

log = logging.getLogger(__name__)

Selection = Literal["annotated", "all"]


@dataclass(frozen=True)
class ImageRecord:
    """One image of the annotation file."""

    image_id: int
    file_name: str
    width: int
    height: int


@dataclass(frozen=True)
class Shard:
    """Part `index` (0-based) of `count` disjoint parts of the image list."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not (self.count >= 1 and 0 <= self.index < self.count):
            raise ValueError(f"shard index must be in [0, {self.count}), got {self.index}")

    def __str__(self) -> str:
        return f"{self.index + 1}/{self.count}"


@dataclass(frozen=True)
class IdList:
    """The image ids of a `dataset.image_ids` file, and the file's sha256."""

    path: Path
    ids: frozenset[int]
    sha256: str


# COCO's image ids are below 600,000; an id list of more lines than this is not one.
_MAX_ID_LIST_LINES = 10_000_000


def read_id_list(path: Path) -> IdList:
    """A `dataset.image_ids` file: whole numbers, one per line or as a JSON list ('#' starts a comment)."""
    try:
        if path.exists() and not path.is_file():  # a FIFO would block, a device never end
            raise DatasetError(f"dataset.image_ids: {path} is not a regular file: give a file of image ids")
        data = path.read_bytes()
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise DatasetError(
            f"dataset.image_ids: {path} not found: give a file of image ids, one per line"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"dataset.image_ids: {path} is not a readable text file: {exc}") from None
    stripped = text.strip()
    entries: Sequence[tuple[str, object]]  # (where in the file, the value found there)
    if stripped.startswith("["):
        try:
            loaded = json.loads(stripped)
        except (ValueError, RecursionError) as exc:  # ValueError: also a number of over 4300 digits
            raise DatasetError(f"dataset.image_ids: {path} is not a JSON list of ids: {exc}") from None
        # JSON text that starts with "[" is an array: a list, whatever it holds.
        entries = [(f"item {i}", value) for i, value in enumerate(loaded)]
    else:
        lines = ((n, line.partition("#")[0].strip()) for n, line in enumerate(text.splitlines(), start=1))
        entries = [(f"line {n}", line) for n, line in lines if line][:_MAX_ID_LIST_LINES]
    ids: set[int] = set()
    for at, value in entries:
        number = exact_id(value)  # the annotation checks' own rule and bound
        if number is None:
            raise DatasetError(
                f"dataset.image_ids: {path} {at}: {_short_repr(value)} is not an image id (a whole number "
                f"of magnitude at most {MAX_ID}, 2**53 - 1)"
            )
        ids.add(number)
    if not ids:
        raise DatasetError(f"dataset.image_ids: {path} lists no image ids")
    return IdList(path=path, ids=frozenset(ids), sha256=sha256_bytes(data))


def _short_repr(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class CocoGroundTruth:
    """A parsed COCO instances file and the image selection under evaluation."""

    annotation_file: Path
    image_dir: Path
    coco_json: Mapping[str, Any] = field(repr=False)
    images: tuple[ImageRecord, ...]  # the evaluated images, ascending id
    label_map: LabelMap = field(repr=False)
    selection: Selection
    total_images: int  # images in the file
    annotated_images: int  # images in the file with at least one annotation
    # The whole selection this run's images are part of (before any shard), and how it was chosen.
    whole_image_ids: tuple[int, ...] = ()
    limit: int | None = None
    shard: Shard | None = None
    id_list: IdList | None = None

    @property
    def image_ids(self) -> list[int]:
        return [record.image_id for record in self.images]

    def image_path(self, record: ImageRecord) -> Path:
        """The image's file inside the images folder (the annotation checks refused any other name;
        this second look keeps a hand-built ground truth to the same rule)."""
        problem = file_name_problem(record.file_name)
        if problem is not None:
            raise DatasetError(
                f"annotation file {self.annotation_file}: image {record.image_id}: the file name "
                f"{record.file_name!r} {problem}"
            )
        return self.image_dir / record.file_name


def read_annotation_file(path: Path) -> dict[str, Any]:
    """Parse a COCO instances JSON file, with one clear error if it is not one."""
    if path.exists() and not path.is_file():  # a folder, or a FIFO that would block the read
        raise DatasetError(
            f"annotation file {path} is not a regular file: set dataset.annotations to the JSON file"
        )
    if not path.is_file():
        raise DatasetError(
            f"annotation file {path} not found: set dataset.root / dataset.annotations in the config "
            "(or --data), or fetch COCO with `ssd-eval fetch data`"
        )
    try:
        with path.open("rb") as handle:
            data = json.load(handle)
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # ValueError: also a 4300-digit number
        raise DatasetError(f"annotation file {path} is not readable JSON: {exc}") from None
    except RecursionError:
        raise DatasetError(
            f"annotation file {path} is nested too deeply to be a COCO instances file"
        ) from None
    if not isinstance(data, dict):
        raise DatasetError(
            f"annotation file {path} is not a COCO instances file (top level is not an object)"
        )
    missing = [key for key in ("images", "annotations", "categories") if not isinstance(data.get(key), list)]
    if missing:
        raise DatasetError(
            f"annotation file {path} is not a COCO instances file: no {', '.join(repr(k) for k in missing)} "
            "list (use annotations/instances_val2017.json, not captions or keypoints)"
        )
    # One look at the first annotation tells a detection file from a panoptic or captions one; the
    # annotation checks below would name the missing keys of every entry, not what the file is.
    first = data["annotations"][0] if data["annotations"] else None
    if first is not None and not (isinstance(first, dict) and "bbox" in first and "category_id" in first):
        raise DatasetError(
            f"annotation file {path}: annotations[0] has no bbox/category_id: "
            "not a COCO instances (detection) file"
        )
    check_annotation_data(data, source=str(path))
    return data


def _image_records(data: Mapping[str, Any]) -> list[ImageRecord]:
    """The images[] entries (the annotation checks have made sure each has these four, well typed)."""
    return [
        ImageRecord(
            image_id=image["id"], file_name=image["file_name"], width=image["width"], height=image["height"]
        )
        for image in data["images"]
    ]


def select_images(
    records: Sequence[ImageRecord],
    annotated_ids: set[int],
    *,
    selection: Selection,
    limit: int | None = None,
    shard: Shard | None = None,
    only: frozenset[int] | None = None,
) -> tuple[ImageRecord, ...]:
    """The evaluated images: by protocol, only the listed ids (`only`), ascending id, first `limit`,
    then this shard's part."""
    chosen = sorted(
        (
            r
            for r in records
            if (selection == "all" or r.image_id in annotated_ids) and (only is None or r.image_id in only)
        ),
        key=lambda r: r.image_id,
    )
    if limit is not None:
        chosen = chosen[:limit]
    if shard is not None:
        # Round robin over the sorted ids: deterministic, and every shard gets a similar mix.
        chosen = chosen[shard.index :: shard.count]
    return tuple(chosen)


def open_ground_truth(
    annotation_file: Path,
    image_dir: Path,
    *,
    selection: Selection = "annotated",
    limit: int | None = None,
    shard: Shard | None = None,
    id_list: Path | None = None,
) -> CocoGroundTruth:
    """Read the annotation file, check its categories and choose the evaluated images."""
    data = read_annotation_file(annotation_file)
    label_map = check_categories(data["categories"], source=str(annotation_file))
    if not image_dir.is_dir():
        raise DatasetError(
            f"image folder {image_dir} not found: set dataset.root / dataset.images in the config (or --data)"
        )
    listed = read_id_list(id_list) if id_list is not None else None
    return _choose(
        annotation_file,
        image_dir,
        data,
        label_map,
        selection=selection,
        limit=limit,
        shard=shard,
        id_list=listed,
    )


def reselect(
    gt: CocoGroundTruth,
    *,
    selection: Selection,
    limit: int | None,
    shard: Shard | None,
    id_list: IdList | None,
) -> CocoGroundTruth:
    """The same annotation file (parsed once) with another choice of evaluated images."""
    return _choose(
        gt.annotation_file,
        gt.image_dir,
        gt.coco_json,
        gt.label_map,
        selection=selection,
        limit=limit,
        shard=shard,
        id_list=id_list,
    )


def _choose(
    annotation_file: Path,
    image_dir: Path,
    data: Mapping[str, Any],
    label_map: LabelMap,
    *,
    selection: Selection,
    limit: int | None,
    shard: Shard | None,
    id_list: IdList | None,
) -> CocoGroundTruth:
    """A parsed (and checked) annotation file with its evaluated images chosen."""
    records = _image_records(data)
    annotated_ids = {int(ann["image_id"]) for ann in data["annotations"]}
    if id_list is not None:
        unknown = sorted(id_list.ids - {r.image_id for r in records})
        if unknown:
            raise DatasetError(
                f"dataset.image_ids: {id_list.path} lists {len(unknown)} image id(s) that "
                f"{annotation_file} does not have (first: {unknown[0]}): list ids of that annotation file"
            )
    only = id_list.ids if id_list is not None else None
    whole = select_images(records, annotated_ids, selection=selection, limit=limit, only=only)
    images = select_images(records, annotated_ids, selection=selection, limit=limit, shard=shard, only=only)
    if not images:
        raise DatasetError(
            f"annotation file {annotation_file}: no images to evaluate (selection {selection!r}"
            + (", the id list's images" if id_list is not None else "")
            + ")"
        )
    return CocoGroundTruth(
        annotation_file=annotation_file,
        image_dir=image_dir,
        coco_json=data,
        images=images,
        label_map=label_map,
        selection=selection,
        total_images=len(records),
        annotated_images=len(annotated_ids & {r.image_id for r in records}),
        whole_image_ids=tuple(r.image_id for r in whole),
        limit=limit,
        shard=shard,
        id_list=id_list,
    )


def load_rgb(path: Path, *, max_pixels: int = PILLOW_MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode an image file to uint8 RGB pixels `[H, W, 3]` in stored-pixel orientation.

    EXIF orientation is deliberately NOT applied: COCO's boxes are in the stored pixel frame, and
    rotating the image would misplace every box of a rotated photo. An image of more than
    `max_pixels` pixels is refused from its header, before it is decoded.
    """
    with _open_image(path, max_pixels) as image:
        check_pixel_count(path, image.size, max_pixels)
        image.load()
        return to_rgb(image)


@contextlib.contextmanager
def _open_image(path: Path, max_pixels: int) -> Iterator[Image.Image]:
    """`Image.open` with its failures (missing, too large, corrupt) as one-line DatasetErrors."""
    try:
        with _open_regular_file(path) as handle, Image.open(handle) as image:
            yield image
    except FileNotFoundError:
        raise DatasetError(f"image {path} not found") from None
    except Image.DecompressionBombError as exc:
        raise _too_large(path, exc, max_pixels) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"image {path} is corrupt or not an image: {exc}") from None


@contextlib.contextmanager
def _open_regular_file(path: Path) -> Iterator[BinaryIO]:
    """`path` opened for reading if it is a regular file; a FIFO, a device or a folder named like an
    image is refused without waiting: O_NONBLOCK keeps a FIFO's open from blocking, and fstat looks at
    the very file opened (no window between a check and the open)."""
    try:
        handle = open(path, "rb", opener=_open_nonblocking)  # noqa: SIM115 - closed below or by the caller
    except IsADirectoryError:  # Python's own open refuses a folder before we can fstat it
        raise DatasetError(
            f"image {path} is a folder, not an image file: remove it or fix the file name"
        ) from None
    try:
        mode = os.fstat(handle.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise DatasetError(
                f"image {path} is {_file_kind(mode)}, not an image file: remove it or fix the file name"
            )
        os.set_blocking(handle.fileno(), True)
    except BaseException:
        handle.close()
        raise
    with handle:
        yield handle


def _open_nonblocking(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NONBLOCK)


def _file_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _too_large(path: Path, exc: Exception, max_pixels: int) -> DatasetError:
    """Pillow refused the image outright (more than twice its own limit, so more than any allowed)."""
    reason = str(exc).split(",")[0]  # "Image size (N pixels) exceeds limit of M pixels"
    return DatasetError(
        f"image {path} is too large: {reason}; dataset.max_image_pixels is {max_pixels:,} "
        "(a decompression bomb, or a genuine giant that cannot be evaluated); set dataset.on_bad_image: skip"
    )


def check_pixel_count(path: Path, size: tuple[int, int], max_pixels: int) -> None:
    """An image larger than `dataset.max_image_pixels` is a DatasetError (a decompression bomb, or a
    genuine giant that needs the limit raised)."""
    width, height = size
    if width * height > max_pixels:
        raise DatasetError(
            f"image {path} is {width}x{height} = {width * height:,} pixels, more than "
            f"dataset.max_image_pixels ({max_pixels:,}): raise that setting if the image is genuine, "
            "or set dataset.on_bad_image: skip"
        )


def probe_image(
    gt: CocoGroundTruth, record: ImageRecord, *, max_pixels: int = PILLOW_MAX_IMAGE_PIXELS
) -> None:
    """Check one evaluated image from its header alone (cheap: no decoding): it exists, Pillow knows
    its format, its size is the annotation file's and within `max_pixels`."""
    path = gt.image_path(record)
    with _open_image(path, max_pixels) as image:
        size = image.size
    check_pixel_count(path, size, max_pixels)
    _check_size(gt, record, path, size)


def _check_size(gt: CocoGroundTruth, record: ImageRecord, path: Path, size: tuple[int, int]) -> None:
    width, height = size
    if (width, height) != (record.width, record.height):
        # A re-encoded or EXIF-rotated copy: its boxes would not line up with the ground truth.
        raise DatasetError(
            f"image {path} is {width}x{height} but {gt.annotation_file.name} says "
            f"{record.width}x{record.height}: use the original COCO files (not a resized or rotated copy)"
        )


def to_rgb(image: Image.Image) -> np.ndarray:
    """Any Pillow mode (L, LA, P, RGBA, CMYK, I;16, ...) as uint8 RGB `[H, W, 3]`."""
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        # Pillow's own convert("RGB") clips 16-bit and float values at 255 instead of scaling them.
        values = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I") else 1.0
        gray = np.clip(np.rint(values * (255.0 / peak)), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode == "P":
        # Pillow's own choice, RGBA if the palette has transparency (straight to RGB it warns), else RGB
        image = image.convert()
    if image.mode != "RGB":
        image = image.convert("RGB")  # drops alpha as the reference evaluation's convert("RGB") does
    return np.asarray(image, dtype=np.uint8)


@dataclass(frozen=True)
class LoadedImage:
    """An image's pixels with the record that names it."""

    record: ImageRecord
    pixels: np.ndarray  # uint8 [H, W, 3] RGB


def load_checked(
    gt: CocoGroundTruth, record: ImageRecord, *, max_pixels: int = PILLOW_MAX_IMAGE_PIXELS
) -> LoadedImage:
    """Decode one evaluated image and check its size against the annotation file."""
    path = gt.image_path(record)
    pixels = load_rgb(path, max_pixels=max_pixels)
    height, width = pixels.shape[:2]
    _check_size(gt, record, path, (width, height))
    return LoadedImage(record=record, pixels=pixels)


def iter_images(gt: CocoGroundTruth, records: Sequence[ImageRecord] | None = None) -> Iterator[LoadedImage]:
    """Decode the evaluated images in order (errors raised as `DatasetError`)."""
    for record in gt.images if records is None else records:
        yield load_checked(gt, record)
