"""Images in id order, every mode to RGB, EXIF never applied, annotation files checked."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from ssd_eval.data.categories import canonical_label_map, check_categories, coco_categories_json
from ssd_eval.data.dataset import ImageRecord, Shard, load_rgb, open_ground_truth, select_images, to_rgb
from ssd_eval.errors import DatasetError


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "1", "I;16", "I", "F"])
def test_every_mode_becomes_uint8_rgb(mode):
    image = Image.new("RGB", (5, 4), (200, 100, 50)).convert("L" if mode in ("I;16", "I", "F") else mode)
    if mode == "I;16":
        image = Image.fromarray(np.full((4, 5), 51400, np.uint16))
    rgb = to_rgb(image)
    assert rgb.shape == (4, 5, 3) and rgb.dtype == np.uint8


def test_sixteen_bit_gray_is_scaled_not_clipped():
    image = Image.fromarray(np.array([[0, 32896, 65535]], np.uint16))
    assert to_rgb(image)[0, :, 0].tolist() == [0, 128, 255]


def test_exif_orientation_is_not_applied(tmp_path):
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :10] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    Image.fromarray(pixels).save(path, exif=exif, quality=95)
    loaded = load_rgb(path)
    assert loaded.shape == (20, 40, 3)  # stored orientation, as COCO's boxes
    assert loaded[:, :8].mean() > 200 and loaded[:, 12:].mean() < 50


def test_corrupt_and_missing_images_name_the_file(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DatasetError, match=r"bad.jpg is corrupt or not an image"):
        load_rgb(bad)
    with pytest.raises(DatasetError, match=r"gone.jpg not found"):
        load_rgb(tmp_path / "gone.jpg")


def test_truncated_jpeg_is_corrupt(tmp_path):
    path = tmp_path / "cut.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:400])
    with pytest.raises(DatasetError, match=r"cut\.jpg"):
        load_rgb(path)


def _records(*ids: int) -> list[ImageRecord]:
    return [ImageRecord(i, f"{i}.jpg", 10, 10) for i in ids]


def test_selection_order_limit_and_shards():
    records = _records(30, 10, 20, 40, 50)
    annotated = {10, 30, 50}
    assert [r.image_id for r in select_images(records, annotated, selection="annotated")] == [10, 30, 50]
    assert [r.image_id for r in select_images(records, annotated, selection="all")] == [10, 20, 30, 40, 50]
    assert [r.image_id for r in select_images(records, annotated, selection="all", limit=2)] == [10, 20]
    shards = [select_images(records, annotated, selection="all", shard=Shard(k, 2)) for k in range(2)]
    assert [r.image_id for r in shards[0]] == [10, 30, 50] and [r.image_id for r in shards[1]] == [20, 40]


def _annotations(tmp_path, data) -> tuple:
    (tmp_path / "img").mkdir(exist_ok=True)
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return path, tmp_path / "img"


def test_annotation_file_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"ann.json not found: set dataset.root"):
        open_ground_truth(tmp_path / "ann.json", tmp_path)
    path, images = _annotations(tmp_path, {"images": [], "annotations": []})
    with pytest.raises(DatasetError, match=r"not a COCO instances file: no 'categories' list"):
        open_ground_truth(path, images)
    path, images = _annotations(
        tmp_path, {"images": [], "annotations": [{"caption": "a cat"}], "categories": coco_categories_json()}
    )
    with pytest.raises(DatasetError, match=r"annotations\[0\] has no bbox/category_id"):
        open_ground_truth(path, images)
    path.write_text("{not json")
    with pytest.raises(DatasetError, match=r"ann.json is not readable JSON"):
        open_ground_truth(path, images)


def test_categories_checked_by_name_independent_of_order():
    cats = coco_categories_json()
    shuffled = check_categories(cats[::-1], source="x")
    assert shuffled.category_ids.tolist() == canonical_label_map().category_ids.tolist()
    assert shuffled.names == canonical_label_map().names
    cats[11] = {**cats[11], "name": "stop signal"}
    with pytest.raises(DatasetError, match=r"names differ for 13: 'stop signal' \(expected 'stop sign'\)"):
        check_categories(cats, source="x")
    with pytest.raises(DatasetError, match=r"missing categories 90 'toothbrush'"):
        check_categories(coco_categories_json()[:-1], source="x")


def test_label_map_is_the_canonical_sorted_table():
    label_map = canonical_label_map()
    assert (
        label_map.category_ids[1] == 1
        and label_map.category_ids[12] == 13
        and label_map.category_ids[80] == 90
    )
    assert label_map.names[0] == "person" and label_map.names[79] == "toothbrush"
