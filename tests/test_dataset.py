"""Images in id order, every mode to RGB, EXIF never applied, annotation files checked."""

from __future__ import annotations

import hashlib
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


# --- dataset.image_ids: every refusal is one whole line ---------------------------------------------

NOT_AN_ID = "is not an image id (a whole number of magnitude at most 9007199254740991, 2**53 - 1)"


def _id_list_refusal(path) -> str:
    from ssd_eval.data.dataset import read_id_list

    with pytest.raises(DatasetError) as info:
        read_id_list(path)
    return str(info.value)


def test_an_id_list_that_is_not_a_text_file_of_ids_is_refused_in_one_line(tmp_path):
    folder = tmp_path / "ids"
    folder.mkdir()
    assert _id_list_refusal(folder) == (
        f"dataset.image_ids: {folder} is not a regular file: give a file of image ids"
    )
    missing = tmp_path / "gone.txt"
    assert _id_list_refusal(missing) == (
        f"dataset.image_ids: {missing} not found: give a file of image ids, one per line"
    )
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(b"5\n\xff\n")
    assert _id_list_refusal(latin1) == (
        f"dataset.image_ids: {latin1} is not a readable text file: "
        "'utf-8' codec can't decode byte 0xff in position 2: invalid start byte"
    )
    cut = tmp_path / "cut.json"
    cut.write_text("[1, 2")
    assert _id_list_refusal(cut) == (
        f"dataset.image_ids: {cut} is not a JSON list of ids: "
        "Expecting ',' delimiter: line 1 column 6 (char 5)"
    )
    for text in ("# only a comment\n\n   \n", "[]"):
        empty = tmp_path / "empty.txt"
        empty.write_text(text)
        assert _id_list_refusal(empty) == f"dataset.image_ids: {empty} lists no image ids"


def test_an_id_list_reads_comments_lines_and_json_items(tmp_path):
    from ssd_eval.data.dataset import read_id_list

    lines = tmp_path / "ids.txt"
    lines.write_text("7 # seven # and a second '#'\n  -0  \n\n12\n")
    assert read_id_list(lines).ids == frozenset({7, 0, 12})
    items = tmp_path / "ids.json"
    items.write_text('  ["5", 6, -3]  ')
    assert read_id_list(items).ids == frozenset({5, 6, -3})
    twice = tmp_path / "twice.txt"
    twice.write_text("4\n--4\n")
    assert _id_list_refusal(twice) == f"dataset.image_ids: {twice} line 2: '--4' {NOT_AN_ID}"
    for value, shown in (("true", "True"), ("5.0", "5.0"), ("[5]", "[5]"), ('"x"', "'x'")):
        bad = tmp_path / "bad.json"
        bad.write_text(f"[1, {value}]")
        assert _id_list_refusal(bad) == f"dataset.image_ids: {bad} item 1: {shown} {NOT_AN_ID}"


def test_an_id_list_shows_a_bad_value_cut_at_forty_characters(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text("x" * 38 + "\n")  # its repr, with the quotes, is 40 characters: shown whole
    assert _id_list_refusal(path) == f"dataset.image_ids: {path} line 1: '{'x' * 38}' {NOT_AN_ID}"
    path.write_text("x" * 39 + "\n")  # repr of 41 characters: its first 37, then "..."
    assert _id_list_refusal(path) == f"dataset.image_ids: {path} line 1: '{'x' * 36}... {NOT_AN_ID}"


# --- the annotation file and the choice of images ---------------------------------------------------


def test_an_annotation_path_that_is_no_regular_file_or_is_nested_too_deeply(tmp_path):
    folder = tmp_path / "ann.json"
    folder.mkdir()
    with pytest.raises(DatasetError) as info:
        open_ground_truth(folder, tmp_path)
    assert str(info.value) == (
        f"annotation file {folder} is not a regular file: set dataset.annotations to the JSON file"
    )
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DatasetError) as info:
        open_ground_truth(deep, tmp_path)
    assert str(info.value) == f"annotation file {deep} is nested too deeply to be a COCO instances file"


def test_a_hand_built_ground_truth_keeps_to_the_file_name_rule(tmp_path):
    gt, _ = _probe_setup(tmp_path)
    record = ImageRecord(4, "../a.png", 20, 10)
    with pytest.raises(DatasetError) as info:
        gt.image_path(record)
    assert str(info.value) == (
        f"annotation file {tmp_path / 'ann.json'}: image 4: the file name '../a.png' goes up out of the "
        "images folder (..): give a path inside it"
    )


def _six_images(tmp_path):
    """Images 1..6; 1, 2, 3 and 5 annotated."""
    return _write_annotations(tmp_path, [_img(i) for i in range(1, 7)], [_ann(i) for i in (1, 2, 3, 5)])


def test_an_id_list_and_a_shard_keep_the_whole_listed_selection(tmp_path):
    from ssd_eval.data.dataset import IdList

    path, images = _six_images(tmp_path)
    listed = tmp_path / "ids.txt"
    listed.write_bytes(b"5\n2\n3\n6\n")  # 6 is not annotated: not evaluated under "annotated"
    gt = open_ground_truth(path, images, shard=Shard(1, 2), id_list=listed)
    assert gt.image_ids == [3]  # listed and annotated: 2 3 5 -> the second of two shards
    assert gt.whole_image_ids == (2, 3, 5)
    assert gt.id_list == IdList(
        path=listed, ids=frozenset({2, 3, 5, 6}), sha256=hashlib.sha256(b"5\n2\n3\n6\n").hexdigest()
    )
    assert (gt.total_images, gt.annotated_images, gt.shard, gt.limit) == (6, 4, Shard(1, 2), None)


def test_an_id_list_of_unannotated_images_says_so(tmp_path):
    path, images = _six_images(tmp_path)
    listed = tmp_path / "ids.txt"
    listed.write_text("4\n6\n")
    with pytest.raises(DatasetError) as info:
        open_ground_truth(path, images, id_list=listed)
    assert str(info.value) == (
        f"annotation file {path}: no images to evaluate (selection 'annotated', the id list's images)"
    )


def test_reselect_chooses_again_from_the_same_parsed_file(tmp_path):
    from ssd_eval.data.dataset import read_id_list, reselect

    path, images = _six_images(tmp_path)
    gt = open_ground_truth(path, images, limit=1)
    assert gt.image_ids == [1]
    again = reselect(gt, selection="all", limit=4, shard=Shard(0, 2), id_list=None)
    assert again.image_ids == [1, 3] and again.whole_image_ids == (1, 2, 3, 4)  # all: 1..4, then 1st of 2
    assert (again.selection, again.limit, again.shard, again.id_list) == ("all", 4, Shard(0, 2), None)
    assert (again.annotation_file, again.image_dir, again.total_images, again.annotated_images) == (
        path,
        images,
        6,
        4,
    )
    assert again.coco_json is gt.coco_json and again.label_map is gt.label_map  # parsed once
    listed = tmp_path / "ids.txt"
    listed.write_text("6\n4\n")
    ids = read_id_list(listed)
    only = reselect(gt, selection="all", limit=None, shard=None, id_list=ids)
    assert only.image_ids == [4, 6] and only.id_list == ids and only.whole_image_ids == (4, 6)


# --- opening an image and decoding it ---------------------------------------------------------------


def test_images_are_opened_without_blocking(tmp_path):
    """O_NONBLOCK is added to the flags Python asks for: a FIFO named like an image then fails fast."""
    import fcntl
    import os

    from ssd_eval.data.dataset import _open_nonblocking

    path = tmp_path / "a.png"
    path.write_bytes(b"x")
    fd = _open_nonblocking(str(path), os.O_RDONLY | os.O_CLOEXEC)
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        assert flags & os.O_NONBLOCK == os.O_NONBLOCK
        assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC == fcntl.FD_CLOEXEC
    finally:
        os.close(fd)


def test_float_gray_is_scaled_in_double_precision():
    # The float32 nearest 0.5 / 255 is 0.0019607844297, a hair above it: 255 times it is 0.50000003,
    # one grey level after rounding. In float32 arithmetic the product rounds to 0.5 exactly, then to 0.
    value = np.float32(0.5 / 255)
    assert float(value) > 0.5 / 255
    assert to_rgb(Image.fromarray(np.array([[value]], np.float32)))[0, 0].tolist() == [1, 1, 1]


def test_a_palette_image_without_transparency_keeps_its_colours():
    palette = Image.new("RGB", (2, 1), (200, 100, 50)).convert("P", palette=Image.Palette.ADAPTIVE)
    assert "transparency" not in palette.info
    assert to_rgb(palette).tolist() == [[[200, 100, 50], [200, 100, 50]]]
