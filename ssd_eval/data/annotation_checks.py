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
_NUMBER = (int, float)
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


def _ints(values: list[Any], *, minimum: int | None = None, members: set[int] | None = None) -> np.ndarray:
    """Which values are JSON integers (not bools, not 1.0), >= minimum and in members."""
    if set(map(type, values)) <= {int}:
        with contextlib.suppress(OverflowError):  # beyond int64: checked one by one below
            array = np.array(values, dtype=np.int64)
            ok = array >= minimum if minimum is not None else np.ones(len(array), dtype=bool)
            if members is not None:
                ok &= np.isin(array, list(members))
            return ok
    return np.array(
        [
            type(v) is int and (minimum is None or v >= minimum) and (members is None or v in members)
            for v in values
        ],
        dtype=bool,
    )


def _numbers(values: list[Any]) -> np.ndarray:
    """Which values are finite JSON numbers >= 0."""
    if set(map(type, values)) <= {int, float}:
        with contextlib.suppress(OverflowError):
            array = np.array(values, dtype=np.float64).reshape(-1)
            return np.isfinite(array) & (array >= 0)
    return np.array(
        [type(v) in _NUMBER and v >= 0 and math.isfinite(_as_float(v)) for v in values], dtype=bool
    )


def _flags(values: list[Any]) -> np.ndarray:
    """Which values are 0 or 1 (`iscrowd`; JSON true/false accepted)."""
    return np.array([type(v) in (int, bool) and v in (0, 1) for v in values], dtype=bool)


def _file_names(values: list[Any]) -> np.ndarray:
    return np.array([type(v) is str and v != "" for v in values], dtype=bool)


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
        objects = [type(item) is dict for item in self.items]
        for index, ok in enumerate(objects):
            if not ok:
                self.add(index, "", self.items[index], "expected an object")
        self.rows = np.flatnonzero(np.array(objects, dtype=bool)).tolist()
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
        positions = np.flatnonzero(column.ok).tolist()
        first: dict[Any, int] = {}
        key = column.key
        for position, value in zip(positions, valid, strict=True):
            index = self.rows[position]
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
    image_ids = images.unique(images.require("id", _ints, "an image id must be an integer"))
    images.require("file_name", _file_names, "expected a file name")
    for key in ("width", "height"):
        images.require(key, partial(_ints, minimum=1), "expected a positive integer (pixels)")

    categories = _Table(data, 2, out)
    category_ids = categories.unique(categories.require("id", _ints, "a category id must be an integer"))
    categories.require(
        "name", lambda v: np.array([type(x) is str for x in v], dtype=bool), "expected a string"
    )

    anns = _Table(data, 1, out)
    anns.unique(
        anns.require(
            "id",
            partial(_ints, minimum=1),
            "an annotation id must be an integer >= 1 (COCOeval reads id 0 as 'no match')",
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
