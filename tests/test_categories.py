"""The label -> COCO category table and the annotation file's category check, against hand-written facts.

The expectations are COCO's published category list (80 names, ids 1..90 with gaps at 12, 26, 29,
30, 45, 66, 68, 69, 71, 83), written here, not read from the module under test.
"""

from __future__ import annotations

import pytest

from ssd_eval.data.categories import canonical_label_map, check_categories, coco_categories_json
from ssd_eval.errors import DatasetError

GAPS = {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}


def test_canonical_table_by_hand():
    label_map = canonical_label_map()
    assert label_map.num_labels == 80
    ids = label_map.category_ids.tolist()
    assert ids[0] == -1  # background
    assert ids[1:] == [i for i in range(1, 91) if i not in GAPS]
    assert label_map.category_ids.dtype.name == "int64"
    names = label_map.names
    assert (names[0], names[11], names[79]) == ("person", "stop sign", "toothbrush")
    assert label_map.name_of(1) == "person"
    assert label_map.name_of(13) == "stop sign"
    assert label_map.name_of(90) == "toothbrush"
    assert label_map.name_of(67) == "dining table"


def test_categories_json_is_what_an_annotation_file_lists():
    cats = coco_categories_json()
    assert len(cats) == 80
    assert cats[0] == {"id": 1, "name": "person", "supercategory": ""}
    assert cats[-1] == {"id": 90, "name": "toothbrush", "supercategory": ""}


def _message(categories: list) -> str:
    with pytest.raises(DatasetError) as info:
        check_categories(categories, source="ann.json")
    return str(info.value)


TAIL = "; the model's labels 1..80 can only be mapped onto COCO's own category table"


def test_a_category_without_integer_id_or_string_name():
    cats = coco_categories_json()
    cats[3] = {"id": "4", "name": "motorcycle"}
    assert _message(cats) == (
        "ann.json: a category lacks an integer `id` or a string `name`: {'id': '4', 'name': 'motorcycle'}"
    )
    cats[3] = {"id": 4, "name": None}
    assert "lacks an integer `id` or a string `name`" in _message(cats)


def test_few_missing_categories_are_all_named():
    cats = coco_categories_json()[2:]  # person and bicycle missing
    assert _message(cats) == (
        "ann.json: categories are not the 80 COCO detection categories "
        "(missing categories 1 'person', 2 'bicycle')" + TAIL
    )


def test_many_differences_are_cut_at_five():
    cats = coco_categories_json()
    missing = cats[6:]  # 6 missing
    assert "(missing categories 1 'person', 2 'bicycle', 3 'car', 4 'motorcycle', 5 'airplane' ...)" in (
        _message(missing)
    )
    five = cats[5:]
    assert "5 'airplane')" in _message(five) and "..." not in _message(five)
    renamed = [{**c, "name": c["name"].upper()} for c in cats]
    message = _message(renamed)
    assert (
        "(names differ for 1: 'PERSON' (expected 'person'), 2: 'BICYCLE' (expected 'bicycle'), "
        "3: 'CAR' (expected 'car'), 4: 'MOTORCYCLE' (expected 'motorcycle'), "
        "5: 'AIRPLANE' (expected 'airplane') ...)" in message
    )
    five_renamed = [{**c, "name": c["name"].upper()} if c["id"] <= 5 else c for c in cats]
    assert "(expected 'airplane'))" in _message(five_renamed)


def test_extra_ids_and_every_kind_at_once():
    cats = coco_categories_json()
    extra = [*cats, {"id": 91, "name": "x"}, {"id": 12, "name": "street sign"}]
    assert _message(extra) == (
        "ann.json: categories are not the 80 COCO detection categories "
        "(unexpected category ids [12, 91])" + TAIL
    )
    many = [*cats, *({"id": 100 + k, "name": "x"} for k in range(7))]
    assert "unexpected category ids [100, 101, 102, 103, 104])" in _message(many)
    mixed = [c for c in cats if c["id"] != 90]
    mixed[0] = {**mixed[0], "name": "human"}
    mixed.append({"id": 91, "name": "hair brush"})
    assert _message(mixed) == (
        "ann.json: categories are not the 80 COCO detection categories (missing categories 90 'toothbrush'; "
        "names differ for 1: 'human' (expected 'person'); unexpected category ids [91])" + TAIL
    )


def test_a_correct_file_in_any_order_gives_the_canonical_map():
    cats = coco_categories_json()
    label_map = check_categories([cats[k] for k in (*range(40, 80), *range(40))], source="x")
    assert label_map.category_ids.tolist()[1:4] == [1, 2, 3]
    assert label_map.names[12] == "parking meter"


def test_six_renamed_categories_are_cut_at_five():
    cats = [{**c, "name": c["name"].upper()} if c["id"] <= 6 else c for c in coco_categories_json()]
    assert "(expected 'airplane') ...)" in _message(cats)
