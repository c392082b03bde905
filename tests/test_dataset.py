"""Images in id order, every mode to RGB, EXIF never applied, annotation files checked."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
from PIL import Image

from ssd_eval.data.categories import canonical_label_map, check_categories, coco_categories_json
from ssd_eval.data.dataset import (
    ImageRecord,
    Shard,
    iter_images,
    load_rgb,
    open_ground_truth,
    select_images,
    to_rgb,
)
from ssd_eval.errors import DatasetError


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "1", "I;16", "I", "F"])
def test_every_mode_becomes_uint8_rgb(mode):
    image = Image.new("RGB", (5, 4), (200, 100, 50)).convert("L" if mode in ("I;16", "I", "F") else mode)
    if mode == "I;16":
        image = Image.fromarray(np.full((4, 5), 51400, np.uint16))
    rgb = to_rgb(image)
    assert rgb.shape == (4, 5, 3) and rgb.dtype == np.uint8


def test_sixteen_bit_gray_is_scaled_not_clipped():
    # Scaled by 255 / 65535 (= 1 / 257): 64379 / 257 = 250.502 -> 251 (by 255 / 65536 it would be 250).
    image = Image.fromarray(np.array([[0, 32896, 64379, 65535]], np.uint16))
    assert to_rgb(image)[0, :, 0].tolist() == [0, 128, 251, 255]


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
    with pytest.raises(DatasetError) as info:
        open_ground_truth(tmp_path / "ann.json", tmp_path)
    assert str(info.value) == (
        f"annotation file {tmp_path / 'ann.json'} not found: set dataset.root / dataset.annotations in "
        "the config (or --data), or fetch COCO with `ssd-eval fetch data`"
    )
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


def test_shard_bounds_and_name():
    assert str(Shard(0, 3)) == "1/3" and str(Shard(2, 3)) == "3/3"
    assert str(Shard(0, 1)) == "1/1"  # one shard of one: the whole run
    for index, count in ((3, 3), (-1, 3), (0, 0)):
        with pytest.raises(ValueError, match=rf"^shard index must be in \[0, {count}\), got {index}$"):
            Shard(index, count)


def _write_annotations(tmp_path, images, annotations, image_dir=True):
    path = tmp_path / "ann.json"
    data = {"images": images, "annotations": annotations, "categories": coco_categories_json()}
    path.write_text(json.dumps(data))
    if image_dir:
        (tmp_path / "img").mkdir(exist_ok=True)
    return path, tmp_path / "img"


def _img(image_id, w=30, h=20):
    return {"id": image_id, "file_name": f"{image_id}.png", "width": w, "height": h}


_ANN_IDS = iter(range(1, 10**6))


def _ann(image_id):
    return {
        "id": next(_ANN_IDS),
        "image_id": image_id,
        "bbox": [0, 0, 1, 1],
        "category_id": 1,
        "area": 1,
        "iscrowd": 0,
    }


def test_ground_truth_counts_and_records(tmp_path):
    # 4 images, 3 of them annotated (image 3 twice).
    path, images = _write_annotations(
        tmp_path, [_img(7, 31, 17), _img(3), _img(5), _img(9)], [_ann(3), _ann(3), _ann(7), _ann(9)]
    )
    gt = open_ground_truth(path, images)
    assert gt.image_ids == [3, 7, 9]
    assert (gt.total_images, gt.annotated_images, gt.selection) == (4, 3, "annotated")
    assert gt.images[1] == ImageRecord(7, "7.png", 31, 17)
    assert gt.image_path(gt.images[1]) == images / "7.png"
    assert gt.coco_json["images"][0]["id"] == 7  # the parsed tree, kept for the evaluator
    assert gt.label_map.category_ids[80] == 90
    every = open_ground_truth(path, images, selection="all", limit=3, shard=Shard(1, 2))
    assert every.image_ids == [5] and every.selection == "all"  # all: 3 5 7 9 -> first 3 -> 2nd of 2
    assert (every.annotation_file, every.image_dir) == (path, images)  # named in later messages
    assert open_ground_truth(path, images, limit=2).image_ids == [3, 7]


def test_ground_truth_errors(tmp_path):
    path, images = _write_annotations(tmp_path, [_img(1)], [])
    with pytest.raises(DatasetError, match=r"ann\.json: no images to evaluate \(selection 'annotated'\)$"):
        open_ground_truth(path, images)
    path, _ = _write_annotations(tmp_path, [_img(1)], [_ann(1)])
    with pytest.raises(
        DatasetError, match=r"^image folder .*nothere not found: set dataset.root / dataset.images"
    ):
        open_ground_truth(path, tmp_path / "nothere")
    path, images = _write_annotations(tmp_path, [_img(1), {"id": 2, "file_name": "2.png", "width": 3}], [])
    with pytest.raises(DatasetError, match=r"ann\.json: images\[1\]\.height is missing"):
        open_ground_truth(path, images)
    path, images = _write_annotations(tmp_path, [_img(1), {**_img(2), "width": "wide"}], [])
    with pytest.raises(DatasetError, match=r"images\[1\]\.width = 'wide'"):
        open_ground_truth(path, images)


def test_annotation_file_shape_errors(tmp_path):
    path = tmp_path / "ann.json"
    path.write_text("[]")
    with pytest.raises(
        DatasetError, match=r"ann\.json is not a COCO instances file \(top level is not an object\)$"
    ):
        open_ground_truth(path, tmp_path)
    path.write_text('{"images": {}}')
    with pytest.raises(
        DatasetError, match=r"no 'images', 'annotations', 'categories' list \(use annotations/"
    ):
        open_ground_truth(path, tmp_path)
    path.write_bytes(b'{"images": "\xff\xfe"}')
    with pytest.raises(DatasetError, match=r"ann\.json is not readable JSON"):
        open_ground_truth(path, tmp_path)
    path.write_text(json.dumps({"images": [], "annotations": ["x"], "categories": []}))
    with pytest.raises(DatasetError, match=r"annotations\[0\] has no bbox/category_id"):
        open_ground_truth(path, tmp_path)
    path.write_text(json.dumps({"images": [], "annotations": [{"bbox": [0, 0, 1, 1]}], "categories": []}))
    with pytest.raises(DatasetError, match=r"annotations\[0\] has no bbox/category_id"):
        open_ground_truth(path, tmp_path)
    # A panoptic-like first entry (category_id, no bbox): the whole line.
    path.write_text(json.dumps({"images": [], "annotations": [{"category_id": 1}], "categories": []}))
    with pytest.raises(DatasetError) as info:
        open_ground_truth(path, tmp_path)
    assert str(info.value) == (
        f"annotation file {path}: annotations[0] has no bbox/category_id: "
        "not a COCO instances (detection) file"
    )


def test_only_the_first_annotation_tells_the_kind_of_file_the_checks_name_the_rest(tmp_path):
    good = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2], "area": 4, "iscrowd": 0}
    data = {
        "images": [{"id": 1, "file_name": "1.png", "width": 4, "height": 4}],
        "annotations": [good, {key: value for key, value in good.items() if key != "bbox"} | {"id": 2}],
        "categories": coco_categories_json(),
    }
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError) as info:
        open_ground_truth(path, tmp_path)
    assert str(info.value).startswith(f"annotation file {path}: annotations[1].bbox is missing: ")


def test_a_bad_category_table_names_the_annotation_file(tmp_path):
    data = {"images": [], "annotations": [], "categories": coco_categories_json()[:-1]}
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=rf"^{re.escape(str(path))}: .*missing categories 90 'toothbrush'"):
        open_ground_truth(path, tmp_path)


def test_gray_modes_scale_to_eight_bits():
    # 32-bit integer (mode I) is scaled like 16-bit: 65535 -> 255; float (mode F) from [0, 1].
    assert to_rgb(Image.fromarray(np.array([[0, 257, 65535]], np.int32))).tolist() == [
        [[0, 0, 0], [1, 1, 1], [255, 255, 255]]
    ]
    floats = Image.fromarray(np.array([[0.0, 0.5, 1.0, 2.0, -1.0]], np.float32))
    assert floats.mode == "F"
    assert to_rgb(floats)[0, :, 1].tolist() == [0, 128, 255, 255, 0]


def test_colour_modes_keep_their_colours():
    assert to_rgb(Image.new("L", (2, 1), 77))[0, 0].tolist() == [77, 77, 77]
    rgba = Image.new("RGBA", (2, 1), (10, 20, 30, 0))  # alpha dropped, colour not premultiplied
    assert to_rgb(rgba)[0, 1].tolist() == [10, 20, 30]
    palette = Image.new("RGB", (2, 1), (200, 100, 50)).convert("P", palette=Image.Palette.ADAPTIVE)
    palette.info["transparency"] = 0
    assert to_rgb(palette)[0, 0].tolist() == [200, 100, 50]
    # Per-entry transparency (bytes, as PNG's tRNS): Pillow warns when it goes to RGB directly.
    palette.info["transparency"] = bytes([0] + [255] * 255)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert to_rgb(palette)[0, 0].tolist() == [200, 100, 50]
    assert to_rgb(Image.new("RGB", (2, 1), (1, 2, 3))).dtype == np.uint8


def test_iter_images_in_order_and_from_a_given_list(tmp_path):
    path, images = _write_annotations(tmp_path, [_img(2, 5, 4), _img(1, 6, 3)], [_ann(1), _ann(2)])
    Image.new("RGB", (5, 4), (1, 1, 1)).save(images / "2.png")
    Image.new("RGB", (6, 3), (2, 2, 2)).save(images / "1.png")
    gt = open_ground_truth(path, images)
    loaded = list(iter_images(gt))
    assert [x.record.image_id for x in loaded] == [1, 2]
    assert loaded[0].pixels.shape == (3, 6, 3) and loaded[0].pixels[0, 0].tolist() == [2, 2, 2]
    assert [x.record.image_id for x in iter_images(gt, [gt.images[1]])] == [2]


def _probe_setup(tmp_path, size=(20, 10), record_size=(20, 10)):
    from ssd_eval.data.categories import canonical_label_map
    from ssd_eval.data.dataset import CocoGroundTruth

    Image.new("RGB", size, (9, 9, 9)).save(tmp_path / "a.png")
    record = ImageRecord(1, "a.png", *record_size)
    gt = CocoGroundTruth(
        annotation_file=tmp_path / "ann.json",
        image_dir=tmp_path,
        coco_json={},
        images=(record,),
        label_map=canonical_label_map(),
        selection="annotated",
        total_images=1,
        annotated_images=1,
    )
    return gt, record


def test_probe_checks_the_header_only(tmp_path):
    from ssd_eval.data.dataset import load_checked, probe_image

    gt, record = _probe_setup(tmp_path)
    assert probe_image(gt, record, max_pixels=200) is None  # 20 x 10 = 200: at the limit is allowed
    with pytest.raises(DatasetError) as info:
        probe_image(gt, record, max_pixels=199)
    assert str(info.value) == (
        f"image {tmp_path / 'a.png'} is 20x10 = 200 pixels, more than dataset.max_image_pixels (199): "
        "raise that setting if the image is genuine, or set dataset.on_bad_image: skip"
    )
    with pytest.raises(DatasetError) as decoded:
        load_checked(gt, record, max_pixels=199)
    assert str(decoded.value) == str(info.value)  # decoding refuses it with the same line, naming the file
    gt, record = _probe_setup(tmp_path, record_size=(10, 20))
    with pytest.raises(DatasetError, match=r"a\.png is 20x10 but ann\.json says 10x20: use the original"):
        probe_image(gt, record)
    (tmp_path / "a.png").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match=r"a\.png is corrupt or not an image"):
        probe_image(gt, record)
    (tmp_path / "a.png").unlink()
    with pytest.raises(DatasetError, match=r"^image .*a\.png not found$"):
        probe_image(gt, record)


def test_a_decompression_bomb_is_refused_with_the_setting_named(tmp_path, monkeypatch):
    from ssd_eval.data.dataset import load_rgb, probe_image

    gt, record = _probe_setup(tmp_path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)  # Pillow refuses more than twice this: 200 > 100
    expected = (
        f"image {tmp_path / 'a.png'} is too large: Image size (200 pixels) exceeds limit of 100 pixels; "
        "dataset.max_image_pixels is 1,000 (a decompression bomb, or a genuine giant that cannot be "
        "evaluated); set dataset.on_bad_image: skip"
    )
    for call in (
        lambda: probe_image(gt, record, max_pixels=1000),
        lambda: load_rgb(tmp_path / "a.png", max_pixels=1000),
    ):
        with pytest.raises(DatasetError) as info:
            call()
        assert str(info.value) == expected


def test_an_id_list_takes_every_id_the_annotation_checks_take(tmp_path):
    """One rule for ids (issue 18): a negative image id passes the annotation checks, so an id list may
    name it; the bound is the magnitude 2**53 - 1 on both."""
    from ssd_eval.data.dataset import read_id_list

    path = tmp_path / "ids.txt"
    path.write_text(f"-5\n7\n{2**53 - 1}\n{-(2**53 - 1)}\n")
    assert read_id_list(path).ids == frozenset({-5, 7, 2**53 - 1, -(2**53 - 1)})


def test_a_non_regular_image_file_is_named_for_what_it_is():
    import stat

    from ssd_eval.data.dataset import _file_kind

    assert _file_kind(stat.S_IFDIR) == "a folder"
    assert _file_kind(stat.S_IFIFO) == "a FIFO (named pipe)"
    assert _file_kind(stat.S_IFCHR) == "a character device"
    assert _file_kind(stat.S_IFBLK) == "a block device"
    assert _file_kind(stat.S_IFSOCK) == "a socket"
    assert _file_kind(stat.S_IFLNK) == "not a regular file"
