"""The annotation file's checks: each fault named by JSON path and value, offences counted, in file order."""

from __future__ import annotations

import copy
import json

import pytest
from helpers import coco_categories

from ssd_eval.data.annotation_checks import check_annotation_data, find_offences
from ssd_eval.errors import DatasetError


def _valid() -> dict:
    images = [
        {"id": 1, "file_name": "1.jpg", "width": 640, "height": 480},
        {"id": 2, "file_name": "2.jpg", "width": 500, "height": 375},
        {"id": 3, "file_name": "3.jpg", "width": 427, "height": 640},  # no annotation
    ]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 20, 30, 40], "area": 1200, "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 18, "bbox": [0.5, 1.5, 0.0, 2.0], "area": 0.0, "iscrowd": 1},
        {"id": 3, "image_id": 2, "category_id": 90, "bbox": [-1, -2, 3, 4], "area": 12.0, "iscrowd": 0},
    ]
    return {"images": images, "annotations": anns, "categories": coco_categories()}


def _paths(data: dict) -> list[str]:
    return [o.path for o in find_offences(data)]


def test_a_valid_file_has_no_offence():
    data = _valid()
    assert find_offences(data) == []
    check_annotation_data(data, source="ann.json")
    # An empty but well-formed file is valid too (selection then finds no image; that is another error).
    assert find_offences({"images": [], "annotations": [], "categories": []}) == []


def _set(path: str, value):
    """A copy of the valid file with `section[index].key` set (value None: key removed)."""
    section, rest = path.split("[")
    index, key = rest.split("].")
    data = copy.deepcopy(_valid())
    item = data[section][int(index)]
    if value is None:
        del item[key]
    else:
        item[key] = value
    return data


UNIQUE = "ids must be unique"
IMAGE_REF = "expected the integer id of an image listed in `images`"
CATEGORY_REF = "expected the integer id of a category listed in `categories`"
PIXELS = "expected a positive integer (pixels, < 2**31)"
EXACT = "with |id| <= 9007199254740991 (2**53 - 1: exact in float64, as the scorers hold ids)"
FOUR = "expected four numbers [x, y, w, h]"
FINITE_BOX = "expected finite numbers ([x, y, w, h])"
SIZE = "width and height must be >= 0 ([x, y, w, h])"
AREA = "expected a finite number >= 0"
ANN_ID = (
    "an annotation id must be an integer in [1, 9007199254740991] (COCOeval reads id 0 as 'no match'; "
    "2**53 and above are not exact in float64)"
)


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        ("images[2].id", 1, f"listed twice (also images[0].id); {UNIQUE}"),
        ("images[2].id", "3", f"an image id must be an integer {EXACT}"),
        ("images[2].id", 3.0, f"an image id must be an integer {EXACT}"),
        ("images[2].id", 2**53, f"an image id must be an integer {EXACT}"),
        ("images[2].id", -(2**53), f"an image id must be an integer {EXACT}"),
        ("images[1].width", 2**31, PIXELS),
        ("images[0].width", "640", PIXELS),
        ("images[1].height", 0, PIXELS),
        ("images[0].file_name", None, "expected a file name"),
        ("images[0].file_name", "", "expected a file name"),
        ("annotations[2].id", 1, f"listed twice (also annotations[0].id); {UNIQUE}"),
        (
            "annotations[0].id",
            0,
            ANN_ID,
        ),
        ("annotations[0].id", 2**53, ANN_ID),
        ("annotations[1].image_id", "1", IMAGE_REF),
        ("annotations[1].image_id", 4, IMAGE_REF),
        ("annotations[2].category_id", 12, CATEGORY_REF),  # 12 is a gap in COCO
        ("annotations[2].category_id", True, CATEGORY_REF),
        ("annotations[0].bbox", [10, 20, 30], FOUR),
        ("annotations[0].bbox", [10, 20, "30", 40], FOUR),
        ("annotations[0].bbox", [10, 20, float("nan"), 40], FINITE_BOX),
        ("annotations[0].bbox", [10, 20, 30, float("inf")], FINITE_BOX),
        ("annotations[1].bbox", [10, 20, -1, 40], SIZE),
        ("annotations[1].bbox", [10, 20, 1, -0.5], SIZE),
        ("annotations[0].iscrowd", None, "expected 0 or 1"),
        ("annotations[0].iscrowd", 2, "expected 0 or 1"),
        ("annotations[0].area", None, AREA),
        ("annotations[0].area", -3, AREA),
        ("annotations[0].area", "1200", AREA),
        ("categories[3].id", "4", f"a category id must be an integer {EXACT}"),
        ("categories[0].name", 5, "expected a string"),
    ],
)
def test_each_fault_is_named_by_path_and_value(path, value, problem):
    data = _set(path, value)
    offences = find_offences(data)
    assert [o.path for o in offences] == [path]
    with pytest.raises(DatasetError) as caught:
        check_annotation_data(data, source="ann.json")
    shown = "is missing" if value is None else f"= {value!r}"
    assert str(caught.value) == (
        f"annotation file ann.json: {path} {shown}: {problem} (the only offence); "
        "fix the file, or use the original COCO instances_val2017.json"
    )


def test_values_on_the_bounds_are_valid():
    # A width of 1 pixel and a box of height 0 (a line) are valid; COCO has both kinds of entries.
    data = _set("images[0].width", 1)
    data["annotations"][0]["bbox"] = [1, 2, 3, 0]
    assert find_offences(data) == []


def test_an_entry_that_is_not_an_object():
    data = _valid()
    data["images"].append(7)
    (offence,) = find_offences(data)
    assert offence.describe() == "images[3] = 7: expected an object"


def test_duplicate_category_id_and_non_object_entries():
    data = _valid()
    data["categories"].append(dict(data["categories"][0]))  # person again, as entry 80
    data["annotations"].append("not an annotation")
    assert _paths(data) == ["annotations[3]", "categories[80].id"]


def test_all_ids_as_strings_counts_every_offence_and_names_the_first():
    data = json.loads(json.dumps(_valid()))
    for image in data["images"]:
        image["id"] = str(image["id"])
    for ann in data["annotations"]:
        ann["image_id"] = str(ann["image_id"])
    # 3 image ids and 3 annotation image ids: 6 offences, the first in file order is images[0].id.
    with pytest.raises(DatasetError, match=r"images\[0\]\.id = '1': .* \(6 offences in all\)"):
        check_annotation_data(data, source="ann.json")


def test_offences_come_in_file_order_images_annotations_categories():
    data = _valid()
    data["categories"][5]["id"] = "6"
    data["annotations"][2]["bbox"] = [1, 2, 3]
    data["annotations"][0]["area"] = None
    data["images"][1]["width"] = -5
    assert _paths(data) == [
        "images[1].width",
        "annotations[0].area",
        "annotations[2].bbox",
        "categories[5].id",
        # category 6 (bus) is no longer listed as an integer; no annotation refers to it here.
    ]


def test_values_beyond_int64_and_float64_are_offences_not_crashes():
    data = _valid()
    data["annotations"][0]["bbox"] = [10, 20, 10**400, 40]
    data["annotations"][1]["area"] = 10**400
    data["images"][0]["id"] = 2**70
    paths = _paths(data)
    # Image 1 is no longer listed, so the two annotations on it now refer to a missing image.
    assert paths == [
        "images[0].id",
        "annotations[0].bbox",
        "annotations[0].image_id",
        "annotations[1].area",
        "annotations[1].image_id",
    ]


def test_long_values_are_shortened_in_the_message():
    data = _valid()
    data["annotations"][0]["bbox"] = list(range(100))
    with pytest.raises(DatasetError) as caught:
        check_annotation_data(data, source="ann.json")
    assert "annotations[0].bbox = [0, 1, 2, 3" in str(caught.value)
    assert "99" not in str(caught.value) and "..." in str(caught.value)


def test_shortening_keeps_sixty_characters():
    from ssd_eval.data.annotation_checks import MISSING, _short

    assert repr(MISSING) == "missing"
    exactly = "x" * 58  # its repr, with the quotes, is 60 characters: shown whole
    assert _short(exactly) == repr(exactly)
    longer = "x" * 59  # repr 61 characters: 57 of them, then "..."
    assert _short(longer) == "'" + "x" * 56 + "..."
    assert len(_short(longer)) == 60


def test_offences_of_one_section_in_numeric_not_text_order():
    data = _valid()
    data["images"] = [{"id": k, "file_name": f"{k}.jpg", "width": 10, "height": 10} for k in range(1, 12)]
    data["annotations"] = []
    data["images"][10]["width"] = 0  # images[10]
    data["images"][2][
        "height"
    ] = -1  # images[2]: first in the file, though "images[10]" < "images[2]" as text
    assert _paths(data) == ["images[2].height", "images[10].width"]


def test_a_mixed_list_is_checked_value_by_value_with_the_same_bounds():
    # One width is a JSON true, so the widths are not all integers and are checked one by one:
    # true is refused (a bool is no pixel count), the width of exactly 1 is accepted.
    data = _valid()
    data["images"][0]["width"] = True
    data["images"][1]["width"] = 1
    assert _paths(data) == ["images[0].width"]
    # An integer beyond float64, negative or positive, is no finite area.
    data = _valid()
    data["annotations"][0]["area"] = -(10**400)
    data["annotations"][1]["area"] = 10**400
    assert _paths(data) == ["annotations[0].area", "annotations[1].area"]


def test_a_missing_key_beside_a_non_object_entry_is_named_missing():
    # With a non-object entry in the list the columns are read row by row; a key still reads as missing.
    data = _valid()
    data["images"].append(7)
    del data["images"][1]["file_name"]
    assert [o.describe() for o in find_offences(data)] == [
        "images[1].file_name is missing: expected a file name",
        "images[3] = 7: expected an object",
    ]


def test_every_box_of_five_numbers_is_refused():
    data = _valid()
    for ann in data["annotations"]:
        ann["bbox"] = [*ann["bbox"], 1]
    assert _paths(data) == [f"annotations[{i}].bbox" for i in range(3)]


def test_integers_checked_against_a_minimum_and_a_set_together():
    from ssd_eval.data.annotation_checks import _ints

    assert _ints([0, 1, 2, 3], minimum=1, members={0, 1, 3}).tolist() == [False, True, False, True]


MAX_ID = 9007199254740991  # 2**53 - 1


def test_ids_and_sides_on_their_upper_and_lower_bounds_are_valid():
    # All integers (the columnar path): the largest image and annotation ids, the widest image.
    data = _valid()
    data["images"][1]["id"] = MAX_ID
    data["images"][2]["id"] = -MAX_ID
    data["annotations"][2]["image_id"] = MAX_ID
    data["annotations"][1]["id"] = MAX_ID
    data["images"][0]["width"] = 2**31 - 1
    assert find_offences(data) == []
    # A JSON true among the widths sends the column down the value-by-value path: same bounds there.
    data["images"][1]["width"] = True
    data["images"][2]["width"] = 2**31 - 1
    assert _paths(data) == ["images[1].width"]


@pytest.mark.parametrize("category_id", [2**53, -(2**53)])
def test_a_category_id_beyond_two_to_the_53_is_refused(category_id):
    data = _set("categories[3].id", category_id)
    (offence,) = find_offences(data)
    assert offence.describe() == f"categories[3].id = {category_id}: a category id must be an integer {EXACT}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (5, 5),
        ("5", 5),
        ("-5", -5),
        ("0", 0),
        ("-0", 0),
        ("007", 7),
        ("0000000000000000005", 5),  # 19 digits of text, a small id
        (MAX_ID, MAX_ID),
        (str(MAX_ID), MAX_ID),
        (-MAX_ID, -MAX_ID),
        ("-9007199254740991", -MAX_ID),
        (2**53, None),
        ("9007199254740992", None),
        (-(2**53), None),
        ("-9007199254740992", None),
        ("", None),
        ("-", None),
        ("--5", None),  # once a ValueError from int() instead of None
        ("5-", None),
        ("+5", None),
        (" 5", None),
        ("5\n", None),
        ("1_000", None),
        ("\u0663", None),  # ARABIC-INDIC DIGIT THREE: a digit to str.isdigit, not an ASCII one
        ("\u00b2", None),  # SUPERSCRIPT TWO
        ("1" * 20, None),
        ("1" * 5000, None),  # past Python's 4300-digit limit of int(): still just None
        (True, None),
        (5.0, None),
        (None, None),
        ([5], None),
    ],
)
def test_exact_id_takes_integers_and_their_decimal_text_within_two_to_the_53(value, expected):
    from ssd_eval.data.annotation_checks import exact_id

    assert exact_id(value) == expected


FOLDER = "give a path relative to the images folder"


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("a\0b.jpg", "holds a NUL character"),
        ("a\\b.jpg", f"holds a backslash (a Windows path?): {FOLDER}, with /"),
        ("/data/a.jpg", f"is an absolute path: {FOLDER}"),
        ("C:", f"names a drive: {FOLDER}"),
        ("c:a.jpg", f"names a drive: {FOLDER}"),
        ("Z:/a.jpg", f"names a drive: {FOLDER}"),
        ("..", "goes up out of the images folder (..): give a path inside it"),
        ("a/../b.jpg", "goes up out of the images folder (..): give a path inside it"),
        (".", "names the images folder itself, not an image"),
        ("./", "names the images folder itself, not an image"),
        ("././/.", "names the images folder itself, not an image"),
    ],
)
def test_each_file_name_outside_the_images_folder_is_named_for_what_it_is(name, problem):
    from ssd_eval.data.annotation_checks import file_name_problem

    assert file_name_problem(name) == problem


@pytest.mark.parametrize(
    "name",
    [
        "a.jpg",
        "val2017/000000000139.jpg",
        "a/./b.jpg",
        "..a.jpg",  # dots in a name, not a step up
        "a b/.. c.jpg",
        "X",  # a name of one letter, no extension: still a file
        "1:a.jpg",  # a digit before the colon: no drive
        "\u00e9:a.jpg",  # a letter, but not an ASCII one: no drive either
    ],
)
def test_file_names_inside_the_images_folder_are_accepted(name):
    from ssd_eval.data.annotation_checks import file_name_problem

    assert file_name_problem(name) is None


def test_every_bad_file_name_is_an_offence_naming_its_image():
    data = _valid()
    data["images"][0]["file_name"] = "../1.jpg"
    data["images"][2]["file_name"] = "/3.jpg"
    assert [o.describe() for o in find_offences(data)] == [
        "images[0].file_name = '../1.jpg': image 1: the file name goes up out of the images folder (..): "
        "give a path inside it",
        "images[2].file_name = '/3.jpg': image 3: the file name is an absolute path: give a path relative "
        "to the images folder",
    ]


def test_two_images_naming_one_file_is_an_offence_naming_both():
    data = _valid()
    data["images"].insert(0, "not an image")  # entry 0 is no object: positions and indices differ
    data["images"][3]["file_name"] = "./1.jpg"  # image 3, the same file as image 1's 1.jpg
    assert [o.describe() for o in find_offences(data)] == [
        "images[0] = 'not an image': expected an object",
        "images[3].file_name = './1.jpg': image 3 names the same file as image 1 (images[1]): one set of "
        "pixels would be scored against two ground truths",
    ]


def test_one_image_listed_twice_is_the_ids_offence_not_the_file_names():
    data = _valid()
    data["images"][2] = dict(data["images"][0])
    assert [o.describe() for o in find_offences(data)] == [
        f"images[2].id = 1: listed twice (also images[0].id); {UNIQUE}"
    ]
