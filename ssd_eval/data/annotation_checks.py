"""Checks on a parsed COCO instances file, run when it is read, before the first image.

pycocotools trusts its input, and several malformed files score a wrong number without a word: an
image listed twice is evaluated (and its detections scored) twice, ids stored as strings match
nothing, an annotation with id 0 counts as "unmatched" inside COCOeval (its detection becomes a
false positive), a negative or non-finite box bends IoU. Other faults (no `iscrowd`, no `area`, a
string `images[].id`) crash COCOeval only after every image was inferred.

The checks are columnar (one tight pass per field, numpy for the box arithmetic), about 40 ms on a
val2017-sized file. `find_offences` lists every offence in file order; `check_annotation_data`
raises one `DatasetError` naming the first and counting them all.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from ssd_eval.errors import DatasetError


class _Missing:
    def __repr__(self) -> str:
        return "missing"


MISSING: Any = _Missing()

# Ids are held exactly in float64 by pycocotools, the numpy scorer and faster-coco-eval (image ids in
# the results rows, annotation ids in the match tables): an integer at or above 2**53 rounds onto its
# neighbour there, and two images (or annotations) collide. COCO's image ids are below 600,000, its
# annotation ids below 10**12 (crowd annotations reach 900100087038).
MAX_ID = 2**53 - 1
ID_RANGE = f"with |id| <= {MAX_ID} (2**53 - 1: exact in float64, as the scorers hold ids)"
# Image sides: an int32 count of pixels (Pillow's own limit is 2**31 - 1 pixels a side).
MAX_SIDE = 2**31 - 1
_NUMBER = (int, float)
# An id's decimal text: ASCII digits only (str.isdigit also takes '²' and '٣'); at most 20 of them, which
# keeps int() far from Python's 4300-digit limit (anything past 16 digits is beyond MAX_ID anyway).
_DECIMAL = re.compile(r"-?[0-9]{1,20}")
_SECTIONS = ("images", "annotations", "categories")


@dataclass(frozen=True, order=True)
class Offence:
    """One fault of an annotation file: where (JSON path), the value found, and what is expected."""

    section: int  # position of the list in _SECTIONS (orders offences as the file does)
    index: int
    path: str  # e.g. annotations[17].bbox
    value: Any = field(compare=False)
    problem: str = field(compare=False)

    def describe(self) -> str:
        shown = _short(self.value)  # repr(MISSING) is "missing"
        verb = "is" if self.value is MISSING else "="
        return f"{self.path} {verb} {shown}: {self.problem}"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _ints(
    values: list[Any],
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    members: set[int] | None = None,
) -> np.ndarray:
    """Which values are JSON integers (not bools, not 1.0), in [minimum, maximum] and in members."""
    if set(map(type, values)) <= {int}:
        with contextlib.suppress(OverflowError):  # beyond int64: checked one by one below
            array = np.array(values, dtype=np.int64)
            ok = array >= minimum if minimum is not None else np.ones(len(array), dtype=bool)
            if maximum is not None:
                ok &= array <= maximum
            if members is not None:
                ok &= np.isin(array, list(members))
            return ok
    return np.array(
        [
            type(v) is int
            and (minimum is None or v >= minimum)
            and (maximum is None or v <= maximum)
            and (members is None or v in members)
            for v in values
        ],
        dtype=bool,
    )


def _numbers(values: list[Any]) -> np.ndarray:
    """Which values are finite JSON numbers >= 0."""
    if set(map(type, values)) <= {int, float}:
        with contextlib.suppress(OverflowError):
            array = np.array(values, dtype=np.float64)
            return np.isfinite(array) & (array >= 0)
    return np.array(
        [type(v) in _NUMBER and v >= 0 and math.isfinite(_as_float(v)) for v in values], dtype=bool
    )


def _flags(values: list[Any]) -> np.ndarray:
    """Which values are 0 or 1 (`iscrowd`; JSON true/false accepted)."""
    return np.array([type(v) in (int, bool) and v in (0, 1) for v in values], dtype=bool)


def _file_names(values: list[Any]) -> np.ndarray:
    return np.array([type(v) is str and v != "" for v in values], dtype=bool)


def exact_id(value: object) -> int | None:
    """An id read back from a file (a JSON integer, or its decimal text), if it is one the scorers hold
    exactly (|id| <= MAX_ID); None otherwise (a bool, a float, any other text)."""
    if isinstance(value, str):
        value = int(value) if _DECIMAL.fullmatch(value) else None
    if type(value) is int and -MAX_ID <= value <= MAX_ID:
        return value
    return None


def file_name_problem(name: str) -> str | None:
    """Why an image's `file_name` does not name a file inside the images folder (None: it does).

    The rules are lexical, so they hold before any file is opened: a relative POSIX path without `..`,
    a backslash, a drive or a NUL. A symlink inside the images folder is followed (data sets are
    often symlink farms; whoever made the folder chose its links, an annotation file cannot).
    """
    if "\0" in name:
        return "holds a NUL character"
    if "\\" in name:
        return "holds a backslash (a Windows path?): give a path relative to the images folder, with /"
    if name.startswith("/"):
        return "is an absolute path: give a path relative to the images folder"
    if len(name) >= 2 and name[1] == ":" and name[0].isascii() and name[0].isalpha():
        return "names a drive: give a path relative to the images folder"
    if ".." in name.split("/"):
        return "goes up out of the images folder (..): give a path inside it"
    if name.strip("/.") == "":
        return "names the images folder itself, not an image"
    return None


def _normal_file_name(name: str) -> str:
    """The file a (valid) file_name names, relative to the images folder: a/./b.jpg is a/b.jpg."""
    return posixpath.normpath(name)


def _box_shapes(values: list[Any]) -> np.ndarray:
    """Which values are lists of four JSON numbers (the numbers' values are checked apart)."""
    if (
        set(map(type, values)) <= {list}
        and set(map(len, values)) <= {4}
        and set(map(type, itertools.chain.from_iterable(values))) <= {int, float}
    ):
        return np.ones(len(values), dtype=bool)
    return np.array(
        [type(b) is list and len(b) == 4 and all(type(v) in _NUMBER for v in b) for b in values],
        dtype=bool,
    )


class _Table:
    """One list of the file (images, annotations or categories), read column by column."""

    def __init__(self, data: Mapping[str, Any], section: int, out: list[Offence]) -> None:
        self.name = _SECTIONS[section]
        self.section = section
        self.items: Sequence[Any] = data[self.name]
        self.out = out
        self.rows: list[int] = []  # the positions of the entries that are objects
        for index, item in enumerate(self.items):
            if type(item) is dict:
                self.rows.append(index)
            else:
                self.add(index, "", item, "expected an object")
        self.all_objects = len(self.rows) == len(self.items)

    def add(self, index: int, key: str, value: Any, problem: str) -> None:
        path = f"{self.name}[{index}]" + (f".{key}" if key else "")
        self.out.append(Offence(self.section, index, path, value, problem))

    def column(self, key: str) -> list[Any]:
        """`key` of every object row (MISSING where absent), aligned with `self.rows`."""
        if self.all_objects:
            return [item.get(key, MISSING) for item in self.items]
        items = self.items
        return [items[i].get(key, MISSING) for i in self.rows]

    def require(self, key: str, test: Callable[[list[Any]], np.ndarray], problem: str) -> _Column:
        """The column `key`; the values that fail `test` become offences."""
        values = self.column(key)
        ok = test(values)
        for position in np.flatnonzero(~ok).tolist():
            self.add(self.rows[position], key, values[position], problem)
        return _Column(key, values, ok)

    def unique(self, column: _Column) -> set[Any]:
        """The set of the column's valid values; every repeat after the first is an offence."""
        valid = column.valid()
        values = set(valid)
        if len(values) == len(valid):
            return values
        first: dict[Any, int] = {}
        key = column.key
        for position in np.flatnonzero(column.ok).tolist():
            index, value = self.rows[position], column.values[position]
            seen = first.setdefault(value, index)
            if seen != index:
                self.add(
                    index, key, value, f"listed twice (also {self.name}[{seen}].{key}); ids must be unique"
                )
        return values


@dataclass(frozen=True)
class _Column:
    """One field of every object row, and which values passed their check."""

    key: str
    values: list[Any]
    ok: np.ndarray

    def valid(self) -> list[Any]:
        if self.ok.all():
            return self.values
        return [self.values[p] for p in np.flatnonzero(self.ok).tolist()]


def find_offences(data: Mapping[str, Any]) -> list[Offence]:
    """Every offence of a COCO instances tree whose three lists exist, in file order."""
    out: list[Offence] = []
    images = _Table(data, 0, out)
    image_ids = images.unique(
        images.require(
            "id",
            partial(_ints, minimum=-MAX_ID, maximum=MAX_ID),
            f"an image id must be an integer {ID_RANGE}",
        )
    )
    _check_file_names(images, images.require("file_name", _file_names, "expected a file name"))
    for key in ("width", "height"):
        images.require(
            key, partial(_ints, minimum=1, maximum=MAX_SIDE), "expected a positive integer (pixels, < 2**31)"
        )

    categories = _Table(data, 2, out)
    category_ids = categories.unique(
        categories.require(
            "id",
            partial(_ints, minimum=-MAX_ID, maximum=MAX_ID),
            f"a category id must be an integer {ID_RANGE}",
        )
    )
    categories.require(
        "name", lambda v: np.array([type(x) is str for x in v], dtype=bool), "expected a string"
    )

    anns = _Table(data, 1, out)
    anns.unique(
        anns.require(
            "id",
            partial(_ints, minimum=1, maximum=MAX_ID),
            f"an annotation id must be an integer in [1, {MAX_ID}] (COCOeval reads id 0 as 'no match'; "
            "2**53 and above are not exact in float64)",
        ),
    )
    anns.require(
        "image_id",
        partial(_ints, members=image_ids),
        "expected the integer id of an image listed in `images`",
    )
    anns.require(
        "category_id",
        partial(_ints, members=category_ids),
        "expected the integer id of a category listed in `categories`",
    )
    anns.require("iscrowd", _flags, "expected 0 or 1")
    anns.require("area", _numbers, "expected a finite number >= 0")
    _check_boxes(anns)
    out.sort()
    return out


def _check_file_names(images: _Table, column: _Column) -> None:
    """Each file name names a file inside the images folder, and no two images name the same file."""
    ids = images.column("id")
    first: dict[str, int] = {}
    for position in np.flatnonzero(column.ok).tolist():
        index, name = images.rows[position], column.values[position]
        image_id = ids[position]
        problem = file_name_problem(name)
        if problem is not None:
            images.add(index, "file_name", name, f"image {_short(image_id)}: the file name {problem}")
            continue
        seen = first.setdefault(_normal_file_name(name), position)
        if seen != position and ids[seen] != image_id:  # one image listed twice is the id's offence
            images.add(
                index,
                "file_name",
                name,
                f"image {_short(image_id)} names the same file as image {_short(ids[seen])} "
                f"(images[{images.rows[seen]}]): one set of pixels would be scored against two ground truths",
            )


def _check_boxes(anns: _Table) -> None:
    """bbox: four finite numbers x, y, w, h with w, h >= 0 (types in a pass, values in numpy)."""
    column = anns.require("bbox", _box_shapes, "expected four numbers [x, y, w, h]")
    shaped = column.valid()
    if not shaped:
        return
    try:
        boxes = np.array(shaped, dtype=np.float64)
    except OverflowError:  # an integer beyond float64: as good as infinite
        boxes = np.array([[_as_float(v) for v in box] for box in shaped], dtype=np.float64)
    finite = np.asarray(np.isfinite(boxes).all(axis=1))
    positive = (boxes[:, 2] >= 0) & (boxes[:, 3] >= 0)
    positions = np.flatnonzero(column.ok)
    for row in np.flatnonzero(~(finite & positive)).tolist():
        index, box = anns.rows[int(positions[row])], shaped[row]
        problem = "expected finite numbers" if not finite[row] else "width and height must be >= 0"
        anns.add(index, "bbox", box, f"{problem} ([x, y, w, h])")


def _as_float(value: float) -> float:
    """float(value); an integer beyond float64 is as good as infinite (only finiteness is read)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf


def check_annotation_data(data: Mapping[str, Any], *, source: str) -> None:
    """Raise one `DatasetError` naming the first offence of the file and how many there are."""
    offences = find_offences(data)
    if not offences:
        return
    count = len(offences)
    more = "the only offence" if count == 1 else f"{count} offences in all"
    raise DatasetError(
        f"annotation file {source}: {offences[0].describe()} ({more}); "
        "fix the file, or use the original COCO instances_val2017.json"
    )
