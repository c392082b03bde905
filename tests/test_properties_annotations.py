"""Property-based: random valid and broken annotation files thrown at the checks.

Valid files never raise and score exactly as the same tree scored without reading it through the
checks; every broken file (one fault planted in a valid one) is a DatasetError, exit code 2.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssd_eval.data import annotation_checks
from ssd_eval.data.annotation_checks import find_offences
from ssd_eval.data.categories import COCO_CATEGORIES, canonical_label_map, coco_categories_json
from ssd_eval.data.dataset import open_ground_truth
from ssd_eval.errors import EXIT_USAGE, DatasetError
from ssd_eval.evaluation.scoring import score
from ssd_eval.pipeline.decode import Detections

CATEGORY_IDS = [cid for cid, _ in COCO_CATEGORIES]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

numbers = st.one_of(st.integers(-1000, 1000), st.floats(-1000, 1000, allow_nan=False, allow_infinity=False))
sizes = st.one_of(st.integers(0, 800), st.floats(0, 800, allow_nan=False, allow_infinity=False))


@st.composite
def valid_files(draw: st.DrawFn) -> dict:
    """A COCO instances tree that satisfies every check (ids in any order, crowd boxes, zero sizes)."""
    image_ids = draw(st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=8, unique=True))
    images = [
        {
            "id": i,
            "file_name": f"{index}.jpg",
            "width": draw(st.integers(1, 1000)),
            "height": draw(st.integers(1, 1000)),
        }
        for index, i in enumerate(image_ids)
    ]
    count = draw(st.integers(0, 25))
    ann_ids = draw(st.lists(st.integers(1, 2**40), min_size=count, max_size=count, unique=True))
    anns = []
    for ann_id in ann_ids:
        w, h = draw(sizes), draw(sizes)
        anns.append(
            {
                "id": ann_id,
                "image_id": draw(st.sampled_from(image_ids)),
                "category_id": draw(st.sampled_from(CATEGORY_IDS)),
                "bbox": [draw(numbers), draw(numbers), w, h],
                "area": draw(sizes),
                "iscrowd": draw(st.sampled_from([0, 0, 0, 1])),
            }
        )
    categories = coco_categories_json()
    order = draw(st.permutations(range(len(categories))))
    return {"images": images, "annotations": anns, "categories": [categories[i] for i in order]}


# One fault planted in a valid file: (description, function(data, draw) -> None).
BAD_VALUES = st.one_of(
    st.text(max_size=3),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=True),
    st.lists(st.integers(), max_size=5),
)


IMAGE_FAULTS = ["image id", "duplicate image", "image size", "category id", "duplicate category"]
ANNOTATION_FAULTS = [
    "annotation id",
    "duplicate annotation",
    "image_id",
    "category_id",
    "bbox",
    "area",
    "iscrowd",
]


@st.composite
def broken_files(draw: st.DrawFn, fault: str) -> dict:
    """A valid file with the named fault planted in it."""
    data = draw(valid_files().filter(lambda d: fault in IMAGE_FAULTS or d["annotations"]))
    images, anns = data["images"], data["annotations"]
    ann = draw(st.sampled_from(anns)) if anns else None
    if fault == "image id":
        image = draw(st.sampled_from(images))
        image["id"] = draw(st.one_of(BAD_VALUES, st.just(str(image["id"])), st.just(float(image["id"]))))
    elif fault == "duplicate image":
        images.insert(draw(st.integers(0, len(images))), dict(draw(st.sampled_from(images))))
    elif fault == "image size":
        image = draw(st.sampled_from(images))
        image[draw(st.sampled_from(["width", "height"]))] = draw(st.one_of(BAD_VALUES, st.integers(-5, 0)))
    elif fault == "category id":
        category = draw(st.sampled_from(data["categories"]))
        category["id"] = draw(st.one_of(st.just(str(category["id"])), st.just(float(category["id"]))))
    elif fault == "duplicate category":
        data["categories"].append(dict(draw(st.sampled_from(data["categories"]))))
    elif fault == "annotation id":
        assert ann is not None
        ann["id"] = draw(st.one_of(BAD_VALUES, st.integers(-5, 0), st.just(str(ann["id"]))))
    elif fault == "duplicate annotation":
        anns.append(copy.deepcopy(draw(st.sampled_from(anns))))
    elif fault == "image_id":
        assert ann is not None
        known = {image["id"] for image in images}
        ann["image_id"] = draw(
            st.one_of(
                BAD_VALUES, st.just(str(ann["image_id"])), st.integers().filter(lambda i: i not in known)
            )
        )
    elif fault == "category_id":
        assert ann is not None
        ann["category_id"] = draw(
            st.one_of(BAD_VALUES, st.just(str(ann["category_id"])), st.sampled_from([0, 12, 26, 91, -1]))
        )
    elif fault == "bbox":
        assert ann is not None
        ann["bbox"] = draw(
            st.one_of(
                BAD_VALUES.filter(lambda v: not isinstance(v, list) or len(v) != 4),
                st.lists(numbers, min_size=0, max_size=3),
                st.lists(numbers, min_size=5, max_size=6),
                st.tuples(numbers, numbers, st.floats(-100, -1e-9), sizes).map(list),
                st.tuples(numbers, numbers, sizes, st.floats(-100, -1e-9)).map(list),
                st.tuples(numbers, st.sampled_from([math.nan, math.inf, -math.inf]), sizes, sizes).map(list),
                st.tuples(numbers, numbers, st.text(max_size=2), sizes).map(list),
            )
        )
    elif fault in ("area", "iscrowd"):
        assert ann is not None
        if draw(st.booleans()):
            del ann[fault]
        elif fault == "area":
            ann["area"] = draw(st.one_of(st.text(max_size=2), st.floats(-100, -1e-9), st.just(math.nan)))
        else:
            ann["iscrowd"] = draw(st.one_of(st.text(max_size=2), st.integers(2, 5), st.integers(-5, -1)))
    return data


def _write(tmp_path: Path, data: dict) -> tuple[Path, Path]:
    (tmp_path / "img").mkdir(exist_ok=True)
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return path, tmp_path / "img"


def _perfect(data: dict) -> list[Detections]:
    """The non-crowd annotations as detections, grouped by image."""
    by_image: dict[int, list[dict]] = {}
    for ann in data["annotations"]:
        if not ann["iscrowd"]:
            by_image.setdefault(ann["image_id"], []).append(ann)
    return [
        Detections(
            image_id,
            np.array([a["bbox"] for a in anns], dtype=np.float64),
            np.full(len(anns), 0.9),
            np.array([a["category_id"] for a in anns], dtype=np.int64),
        )
        for image_id, anns in by_image.items()
    ]


@settings(SETTINGS, max_examples=20)  # two COCOeval runs per example
@given(data=valid_files())
def test_valid_files_pass_unchanged_and_score_as_without_the_checks(tmp_path_factory, data):
    before = copy.deepcopy(data)
    assert find_offences(data) == []
    assert data == before  # the checks read, never write
    path, images = _write(tmp_path_factory.mktemp("valid"), data)
    gt = open_ground_truth(path, images, selection="all")
    assert gt.coco_json == json.loads(path.read_text())
    ids = [image["id"] for image in data["images"]]
    checked = score(gt.coco_json, _perfect(data), image_ids=gt.image_ids, label_map=gt.label_map)
    unchecked = score(
        json.loads(path.read_text()), _perfect(data), image_ids=ids, label_map=canonical_label_map()
    )
    assert checked.stats == unchecked.stats


@pytest.mark.parametrize("fault", IMAGE_FAULTS + ANNOTATION_FAULTS)
@settings(SETTINGS, max_examples=15)
@given(data=st.data())
def test_every_broken_file_is_a_dataset_error_with_exit_code_2(tmp_path_factory, fault, data):
    data = data.draw(broken_files(fault))
    offences = find_offences(data)
    assert offences, "a planted fault went unseen"
    path, images = _write(tmp_path_factory.mktemp("broken"), data)
    try:
        open_ground_truth(path, images, selection="all")
    except DatasetError as exc:
        assert exc.exit_code == EXIT_USAGE
        message = str(exc)
        assert "\n" not in message and message.startswith(f"annotation file {path}: ")
        assert offences[0].path in message
        assert ("the only offence" if len(offences) == 1 else f"{len(offences)} offences in all") in message
    else:
        raise AssertionError("a broken file was accepted")


mixed = st.one_of(
    st.integers(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.booleans(),
    st.text(max_size=2),
    st.none(),
    st.just(annotation_checks.MISSING),
)


@SETTINGS
@given(values=st.lists(mixed, max_size=30), minimum=st.sampled_from([None, 1]))
def test_columnar_integer_check_agrees_with_one_value_at_a_time(values, minimum):
    members = {v for v in values[::2] if type(v) is int} | {5}

    def one(v: object) -> bool:
        return type(v) is int and (minimum is None or v >= minimum) and v in members

    assert annotation_checks._ints(values, minimum=minimum, members=members).tolist() == [
        one(v) for v in values
    ]


@SETTINGS
@given(values=st.lists(mixed, max_size=30))
def test_columnar_number_check_agrees_with_one_value_at_a_time(values):
    def one(v: object) -> bool:
        if type(v) not in (int, float):
            return False
        try:
            return math.isfinite(float(v)) and v >= 0  # type: ignore[arg-type]
        except OverflowError:
            return False

    assert annotation_checks._numbers(values).tolist() == [one(v) for v in values]


@SETTINGS
@given(values=st.lists(st.one_of(st.lists(mixed, max_size=5), mixed), max_size=20))
def test_columnar_box_shape_check_agrees_with_one_value_at_a_time(values):
    def one(v: object) -> bool:
        return type(v) is list and len(v) == 4 and all(type(x) in (int, float) for x in v)

    assert annotation_checks._box_shapes(values).tolist() == [one(v) for v in values]
