"""The run identity: what a run is, by content, and the differences between two, in words.

Expectations are written by hand: the digests are recomputed here with hashlib from the rule the
docstrings state (ascending ids, comma-separated), not read from the package.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import pytest
from helpers import Det, TinyImage, make_coco

from ssd_eval.config.run import DecodeConfig, ExpectedConfig, GateConfig, PreprocessConfig
from ssd_eval.data.dataset import Shard, open_ground_truth, read_id_list
from ssd_eval.errors import DatasetError
from ssd_eval.evaluation.identity import (
    IdentityFormatError,
    RunIdentity,
    gate_rules,
    ground_truth_digest,
    identity_from_json,
    ids_digest,
    run_identity,
    with_ground_truth,
)

IMAGES = tuple(TinyImage(5 + 2 * i, 30 + i, 20 + i) for i in range(6))
GT = {im.image_id: [Det(1, 2, 10, 8, 1)] for im in IMAGES}


@pytest.fixture
def coco(tmp_path: Path) -> Path:
    return make_coco(tmp_path / "coco", IMAGES, GT)


def _annotations(root: Path) -> Path:
    return root / "annotations" / "instances_val2017.json"


def _identity(root: Path, **kwargs) -> RunIdentity:
    gt = open_ground_truth(_annotations(root), root / "val2017", **kwargs)
    return run_identity(
        gt,
        model_sha256="AB" * 32,
        model_name="m.onnx",
        provider="cpu",
        preprocess=PreprocessConfig(),
        input_size=(1200, 1200),
        decode=DecodeConfig(),
        scorer="pycocotools",
        rules=gate_rules(ExpectedConfig(value=0.195), GateConfig(), None),
    )


def test_ids_digest_is_the_sha256_of_the_sorted_ids():
    assert ids_digest([7, 5, 9]) == hashlib.sha256(b"5,7,9").hexdigest()
    assert ids_digest([]) == hashlib.sha256(b"").hexdigest()


def test_identity_records_the_selection_and_the_part(coco):
    whole = _identity(coco)
    assert whole.model_sha256 == "ab" * 32  # lower case: sha256 compare case-insensitively
    assert whole.images.image_ids == (5, 7, 9, 11, 13, 15)
    assert whole.images.count == whole.images.whole_count == 6
    assert whole.images.digest == hashlib.sha256(b"5,7,9,11,13,15").hexdigest()
    part = _identity(coco, limit=4, shard=Shard(1, 2))
    # limit 4 -> 5, 7, 9, 11; shard 2/2 of those (round robin) -> 7, 11
    assert part.images.image_ids == (7, 11)
    assert part.images.whole_count == 4
    assert part.images.whole_digest == hashlib.sha256(b"5,7,9,11").hexdigest()
    assert part.images.shard == "2/2"
    assert part.images.subset == "limit 4"


def test_another_copy_of_the_same_annotations_is_the_same_ground_truth(coco, tmp_path):
    data = json.loads(_annotations(coco).read_text())
    copy_root = tmp_path / "copy"
    (copy_root / "annotations").mkdir(parents=True)
    (copy_root / "val2017").mkdir()
    # Other bytes, same content: reversed lists, areas written as floats, keys reordered.
    shuffled = {
        "categories": list(reversed(data["categories"])),
        "annotations": [dict(reversed(a.items())) | {"area": float(a["area"])} for a in data["annotations"]],
        "images": list(reversed(data["images"])),
    }
    _annotations(copy_root).write_text(json.dumps(shuffled, indent=1))
    mine, theirs = _identity(coco), _identity(copy_root)
    assert mine.ground_truth.annotation_sha256 != theirs.ground_truth.annotation_sha256
    assert mine.differences(theirs) == ()


def test_an_edited_box_or_category_is_another_ground_truth(coco):
    data = json.loads(_annotations(coco).read_text())
    ids = [im.image_id for im in IMAGES]
    base = ground_truth_digest(data, ids)
    moved = copy.deepcopy(data)
    moved["annotations"][2]["bbox"][0] += 0.5
    renamed = copy.deepcopy(data)
    renamed["categories"][0]["name"] = "human"
    crowd = copy.deepcopy(data)
    crowd["annotations"][0]["iscrowd"] = 1
    digests = {ground_truth_digest(d, ids) for d in (moved, renamed, crowd)}
    assert base not in digests and len(digests) == 3
    # Only the evaluated images count: an edit elsewhere does not change the digest of images 5 and 7.
    assert ground_truth_digest(moved, [5, 7]) == ground_truth_digest(data, [5, 7])


def test_differences_name_each_fact_in_words(coco):
    whole = _identity(coco)
    limited = _identity(coco, limit=2)
    (difference,) = limited.differences(whole)  # the ids' digest follows from the limit: not named twice
    assert difference.describe("this command", "the run") == (
        "dataset.limit is 2 in this command but null in the run"
    )
    shard = _identity(coco, shard=Shard(0, 3))
    assert [d.key for d in shard.differences(whole)] == ["shard"]
    assert shard.differences(whole)[0].describe("a", "b") == (
        "shard is shard 1/3 in a but the whole selection (no shard) in b"
    )
    assert shard.differences(whole, ("ground truth", "images")) == ()
    other = RunIdentity(
        **{**whole.__dict__, "clip_boxes": True, "provider": "openvino", "rules": {"expected.value": 0.2}}
    )
    keys = [d.key for d in other.differences(whole)]
    assert keys[:2] == ["provider", "decode.clip_boxes"]
    assert "expected.value" in keys and "expected.tolerance" in keys
    assert other.differences(whole, ("model", "images")) == ()


def test_the_whole_of_a_shard_is_the_run_without_the_shard(coco, tmp_path):
    listed = tmp_path / "ids.txt"
    listed.write_text("13\n5\n7\n9\n11\n")
    whole = _identity(coco, id_list=listed, limit=4)
    assert whole.images.image_ids == (5, 7, 9, 11)  # the list's ids, ascending, the first 4
    assert whole.images.limit == 4
    assert whole.images.id_list_sha256 == hashlib.sha256(listed.read_bytes()).hexdigest()
    part = _identity(coco, id_list=listed, limit=4, shard=Shard(1, 2))
    assert part.images.image_ids == (7, 11)  # shard 2/2, round robin
    # What `merge` makes of its shards: the ids in any order.
    assert part.whole([11, 5, 9, 7]) == whole


def test_run_identity_records_the_settings_it_is_given(coco):
    gt = open_ground_truth(_annotations(coco), coco / "val2017")
    identity = run_identity(
        gt,
        model_sha256="AB" * 32,
        model_name="m.onnx",
        provider="cpu",
        preprocess=PreprocessConfig(backend="opencv", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)),
        input_size=(300, 400),
        decode=DecodeConfig(score_threshold=0.05, clip_boxes=True),
        scorer="array",
        rules={"expected.value": 0.2},
        annotation_sha256="f" * 64,
    )
    assert (identity.preprocess, identity.input_size, identity.mean, identity.std) == (
        "opencv",
        (300, 400),
        (0.5, 0.5, 0.5),
        (0.25, 0.25, 0.25),
    )
    assert (identity.score_threshold, identity.clip_boxes, identity.scorer) == (0.05, True, "array")
    assert identity.ground_truth.annotation_sha256 == "f" * 64  # the sha256 the caller already has
    # Without it, the annotation file's bytes are read.
    file_sha256 = hashlib.sha256(_annotations(coco).read_bytes()).hexdigest()
    assert _identity(coco).ground_truth.annotation_sha256 == file_sha256


def test_with_ground_truth_is_the_run_scored_elsewhere(coco, tmp_path):
    whole = _identity(coco)
    fewer = tmp_path / "fewer"
    make_coco(fewer, IMAGES[:-1], GT)
    gt = open_ground_truth(_annotations(fewer), fewer / "val2017")
    keys = [d.key for d in whole.differences(with_ground_truth(whole, gt))]
    # The annotations of other images cannot be compared: the images are named, not the digest.
    assert keys == ["images"]
    same = open_ground_truth(_annotations(coco), coco / "val2017")
    assert whole.differences(with_ground_truth(whole, same)) == ()
    edited = tmp_path / "edited"
    make_coco(edited, IMAGES, {**GT, 9: [Det(1, 2, 10, 9, 1)]})
    gt = open_ground_truth(_annotations(edited), edited / "val2017")
    (difference,) = whole.differences(with_ground_truth(whole, gt))
    assert difference.key == "ground truth" and difference.aspect == "ground truth"


def test_identity_json_round_trip_and_damage(coco):
    identity = _identity(coco, limit=5)
    data = json.loads(json.dumps(identity.to_json()))
    assert identity_from_json(data) == identity
    compact = identity_from_json(json.loads(json.dumps(identity.to_json(with_ids=False))))
    assert compact.images.image_ids == () and compact.differences(identity) == ()
    for key, value, message in (
        ("schema", "other/1", "not a run identity"),
        ("model_sha256", "xyz", "model_sha256: not a sha256"),
        ("input_size", [1200], r"input_size: expected \[height, width\]"),
        ("clip_boxes", "no", "clip_boxes: missing or not true or false"),
        ("mean", [0.5, 0.5], "mean: expected 3 numbers"),
    ):
        with pytest.raises(IdentityFormatError, match=message):
            identity_from_json({**data, key: value})
    tampered = copy.deepcopy(data)
    tampered["images"]["image_ids"] = [5, 7, 9, 11, 99]
    with pytest.raises(IdentityFormatError, match=r"do not match images\.count and images\.digest"):
        identity_from_json(tampered)


def test_gate_rules_name_the_baseline_by_content_and_leave_out_required():
    rules = gate_rules(None, GateConfig(required=True, min_ap=0.2), "c" * 64)
    assert rules["gate.min_ap"] == 0.2 and rules["gate.baseline"] == "c" * 64
    assert rules["expected"] is None
    assert "gate.required" not in rules


def test_id_list_files(tmp_path, coco):
    listed = tmp_path / "ids.txt"
    listed.write_text("# the CI subset\n11\n5  # a comment\n\n9\n")
    ids = read_id_list(listed)
    assert ids.ids == {5, 9, 11}
    assert ids.sha256 == hashlib.sha256(listed.read_bytes()).hexdigest()
    gt = open_ground_truth(_annotations(coco), coco / "val2017", id_list=listed)
    assert gt.image_ids == [5, 9, 11]
    as_json = tmp_path / "ids.json"
    as_json.write_text("[13, 7]")
    assert open_ground_truth(_annotations(coco), coco / "val2017", id_list=as_json).image_ids == [7, 13]
    bad = tmp_path / "bad.txt"
    bad.write_text("5\nseven\n")
    with pytest.raises(
        DatasetError, match=r"^dataset.image_ids: .*bad.txt line 2: 'seven' is not an image id"
    ):
        read_id_list(bad)
    unknown = tmp_path / "unknown.txt"
    unknown.write_text("5\n404\n")
    with pytest.raises(DatasetError, match=r"lists 1 image id\(s\) that .* does not have \(first: 404\)"):
        open_ground_truth(_annotations(coco), coco / "val2017", id_list=unknown)
    with pytest.raises(DatasetError, match="not found"):
        read_id_list(tmp_path / "nothere.txt")
