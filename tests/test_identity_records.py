"""identity.json records read back, the differences between two identities in words, an imported run's
source in one line, and the ground truth's digest: direct calls on records written out by hand.

identity.json is read back from run folders (and baselines) that anyone may have copied, edited or
damaged, so every malformed record is refused in one line naming the key; the lines are asserted whole.
Digests are recomputed here with hashlib from the rules docs/identity.md states, not read from the package.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from dataclasses import replace
from typing import Any

import pytest

from ssd_eval.config.run import ExpectedConfig, GateConfig
from ssd_eval.evaluation.identity import (
    NOT_KNOWN,
    DetectionSource,
    Difference,
    GroundTruthIdentity,
    IdentityFormatError,
    ImageSelection,
    RunIdentity,
    describe_differences,
    flat_rules,
    gate_rules,
    ground_truth_digest,
    identity_from_json,
)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


MODEL, GT_CONTENT, GT_FILE, ID_LIST = "ab" * 32, "c" * 64, "d" * 64, "e" * 64
RULES = {"expected.value": 0.195, "gate.baseline": None, "gate.baseline_stats": ["AP", "AP50"]}

# Shard 1/2 of a `--limit 4` run of an id list: the whole selection is images 5, 7, 9, 11, the shard
# (round robin) 5 and 9.
RECORD: dict[str, Any] = {
    "schema": "ssd_eval.identity/1",
    "model_sha256": MODEL,
    "model_name": "ssd-10.onnx",
    "provider": "CPUExecutionProvider",
    "ground_truth": {
        "content_digest": GT_CONTENT,
        "annotation_sha256": GT_FILE,
        "total_images": 6,
        "annotated_images": 5,
    },
    "images": {
        "selection": "annotated",
        "limit": 4,
        "id_list_sha256": ID_LIST,
        "whole_count": 4,
        "whole_digest": sha("5,7,9,11"),
        "shard": "1/2",
        "count": 2,
        "digest": sha("5,9"),
        "image_ids": [5, 9],
    },
    "preprocess": "pillow",
    "input_size": [1200, 900],
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
    "score_threshold": 0.05,
    "clip_boxes": True,
    "scorer": "pycocotools",
    "rules": RULES,
}
RUN = RunIdentity(
    model_sha256=MODEL,
    model_name="ssd-10.onnx",
    provider="CPUExecutionProvider",
    ground_truth=GroundTruthIdentity(GT_CONTENT, GT_FILE, total_images=6, annotated_images=5),
    images=ImageSelection(
        selection="annotated",
        limit=4,
        id_list_sha256=ID_LIST,
        whole_count=4,
        whole_digest=sha("5,7,9,11"),
        shard="1/2",
        count=2,
        digest=sha("5,9"),
        image_ids=(5, 9),
    ),
    preprocess="pillow",
    input_size=(1200, 900),
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    score_threshold=0.05,
    clip_boxes=True,
    scorer="pycocotools",
    rules=RULES,
)

# An MLPerf accuracy log imported with `ssd-eval import` (docs/import.md): model and preprocessing not
# known, ssd_eval's own decode (no cut, no clipping), images 5 and 9 of the file.
SOURCE_RECORD: dict[str, Any] = {
    "format": "mlperf",
    "file_name": "mlperf_log_accuracy.json",
    "file_sha256": "f" * 64,
    "producer": "TensorRT 8.6 fp16",
    "image_order": "annotated",
    "ignore_extra": True,
    "extra_ignored": 3,
    "repeats_ignored": 2,
    "partial": True,
}
IMPORTED_RECORD: dict[str, Any] = {
    **RECORD,
    "model_sha256": "not known",
    "model_name": "",
    "provider": "imported",
    "images": {
        **RECORD["images"],
        "limit": None,
        "id_list_sha256": None,
        "whole_count": 2,
        "whole_digest": sha("5,9"),
        "shard": None,
    },
    "preprocess": "not known",
    "input_size": None,
    "mean": None,
    "std": None,
    "score_threshold": 0.0,
    "clip_boxes": False,
    "source": SOURCE_RECORD,
}
SOURCE = DetectionSource(
    format="mlperf",
    file_name="mlperf_log_accuracy.json",
    file_sha256="f" * 64,
    producer="TensorRT 8.6 fp16",
    image_order="annotated",
    ignore_extra=True,
    extra_ignored=3,
    repeats_ignored=2,
    partial=True,
)
IMPORTED = replace(
    RUN,
    model_sha256=NOT_KNOWN,
    model_name="",
    provider="imported",
    images=replace(
        RUN.images, limit=None, id_list_sha256=None, whole_count=2, whole_digest=sha("5,9"), shard=None
    ),
    preprocess=NOT_KNOWN,
    input_size=None,
    mean=None,
    std=None,
    score_threshold=0.0,
    clip_boxes=False,
    source=SOURCE,
)

MISSING = object()  # the key is left out of the record


def damaged(record: dict[str, Any], path: tuple[str, ...], value: object) -> dict[str, Any]:
    """A deep copy of `record` with the key at `path` set to `value` (or removed: MISSING)."""
    out = copy.deepcopy(record)
    parent = out
    for key in path[:-1]:
        parent = parent[key]
    if value is MISSING:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return out


def refusal(record: object) -> str:
    with pytest.raises(IdentityFormatError) as caught:
        identity_from_json(record)
    return str(caught.value)


# identity.json read back


@pytest.mark.parametrize(("record", "identity"), [(RECORD, RUN), (IMPORTED_RECORD, IMPORTED)])
def test_a_record_reads_back_as_written(record, identity):
    assert identity_from_json(copy.deepcopy(record)) == identity
    assert identity.to_json() == record
    assert identity_from_json(json.loads(json.dumps(identity.to_json()))) == identity


def test_only_an_imported_identity_has_a_source_key():
    assert "source" not in RUN.to_json()
    assert IMPORTED.to_json()["source"] == SOURCE_RECORD


def test_a_record_without_the_ids_keeps_their_digest_only():
    compact = RUN.to_json(with_ids=False)
    assert compact["images"]["image_ids"] == []
    read = identity_from_json(compact)
    assert read.images.image_ids == () and read.images.digest == sha("5,9") and read.images.count == 2


def test_what_a_record_may_leave_out_or_write_otherwise():
    absent = copy.deepcopy(RECORD)
    for key in ("limit", "id_list_sha256", "shard"):
        del absent["images"][key]
    read = identity_from_json(absent)
    assert (read.images.limit, read.images.id_list_sha256, read.images.shard) == (None, None, None)
    # A sha256 in capitals is the same sha256; ids in any order are the same ids; an input of one pixel
    # is an input size; 0 is a score threshold.
    loose = damaged(RECORD, ("model_sha256",), MODEL.upper())
    loose["ground_truth"]["content_digest"] = GT_CONTENT.upper()
    loose["images"]["image_ids"] = [9, 5]
    loose["input_size"] = [1, 1]
    loose["score_threshold"] = 0
    read = identity_from_json(loose)
    assert read == replace(RUN, input_size=(1, 1), score_threshold=0.0)
    assert isinstance(read.score_threshold, float)


def test_an_imported_record_may_know_its_preprocessing():
    known = {**IMPORTED_RECORD, "input_size": [300, 300], "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    read = identity_from_json(known)
    assert (read.input_size, read.mean, read.std) == ((300, 300), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    # Its input size not known: what it does record is kept.
    partly = {**IMPORTED_RECORD, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    read = identity_from_json(partly)
    assert (read.input_size, read.mean, read.std) == (None, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    # An input size known, the normalisation must be too.
    assert refusal({**known, "mean": None}) == "mean: expected 3 numbers"
    assert refusal({**known, "std": None}) == "std: expected 3 numbers"


def test_only_an_imported_record_may_leave_its_preprocessing_unknown():
    assert refusal({**RECORD, "input_size": None}) == "input_size: missing or not a list"
    assert refusal({**RECORD, "mean": None}) == "mean: expected 3 numbers"
    assert refusal({**RECORD, "std": None}) == "std: expected 3 numbers"


SIZE = "input_size: expected [height, width], whole numbers >= 1"
NOT_SHA = "not a sha256 (64 hexadecimal digits)"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("ground_truth",), "x", "ground_truth: missing or not an object"),
        (("images",), MISSING, "images: missing or not an object"),
        (("images", "image_ids"), "5,9", "images.image_ids: missing or not a list"),
        (("images", "image_ids"), [5, "9"], "images.image_ids: expected whole numbers"),
        (("images", "image_ids"), [5, True], "images.image_ids: expected whole numbers"),
        (("images", "image_ids"), [5, 11], "images.image_ids: do not match images.count and images.digest"),
        (("images", "image_ids"), [5], "images.image_ids: do not match images.count and images.digest"),
        (("source",), "mlperf", "source: expected an object (where imported detections came from)"),
        (("input_size",), [1200], SIZE),
        (("input_size",), [1200, 900, 3], SIZE),
        (("input_size",), [0, 900], SIZE),
        (("input_size",), [1200, -900], SIZE),
        (("input_size",), [1200.0, 900], SIZE),
        (("input_size",), [True, 900], SIZE),
        (("input_size",), ["1200", 900], SIZE),
        (("rules",), ["expected.value"], "rules: missing or not an object"),
        (("images", "selection"), 1, "images.selection: missing or not a string"),
        (("images", "limit"), "4", "images.limit: not a whole number or null"),
        (("images", "limit"), True, "images.limit: not a whole number or null"),
        (("images", "id_list_sha256"), ID_LIST[:-1], f"images.id_list_sha256: {NOT_SHA}"),
        # A JSON number of 64 digits is no sha256, though its decimal text has the length and digits of one.
        (("images", "id_list_sha256"), 10**63, f"images.id_list_sha256: {NOT_SHA}"),
        (("images", "whole_count"), MISSING, "images.whole_count: missing or not a whole number"),
        (("images", "whole_digest"), MISSING, "images.whole_digest: missing or not a string"),
        (("images", "whole_digest"), "z" * 64, f"images.whole_digest: {NOT_SHA}"),
        (("images", "shard"), 1, "images.shard: not a string or null"),
        (("images", "count"), True, "images.count: missing or not a whole number"),
        (("images", "count"), 2.0, "images.count: missing or not a whole number"),
        (("images", "digest"), MISSING, "images.digest: missing or not a string"),
        (("images", "digest"), sha("5,9")[:-1], f"images.digest: {NOT_SHA}"),
        (("model_sha256",), MODEL[:-1], f"model_sha256: {NOT_SHA}"),
        (("model_sha256",), "g" * 64, f"model_sha256: {NOT_SHA}"),
        (("model_sha256",), None, "model_sha256: missing or not a string"),
        (("model_name",), MISSING, "model_name: missing or not a string"),
        (("provider",), ["cpu"], "provider: missing or not a string"),
        (("ground_truth", "content_digest"), MISSING, "ground_truth.content_digest: missing or not a string"),
        (("ground_truth", "content_digest"), GT_CONTENT + "c", f"ground_truth.content_digest: {NOT_SHA}"),
        (("ground_truth", "annotation_sha256"), 5, "ground_truth.annotation_sha256: missing or not a string"),
        (
            ("ground_truth", "annotation_sha256"),
            "sha256:" + GT_FILE,
            f"ground_truth.annotation_sha256: {NOT_SHA}",
        ),
        (("ground_truth", "total_images"), "6", "ground_truth.total_images: missing or not a whole number"),
        (
            ("ground_truth", "annotated_images"),
            5.0,
            "ground_truth.annotated_images: missing or not a whole number",
        ),
        (("preprocess",), None, "preprocess: missing or not a string"),
        (("mean",), [0.5, 0.5], "mean: expected 3 numbers"),
        (("mean",), "0.5", "mean: expected 3 numbers"),
        (("mean",), [math.inf, 0.5, 0.5], "mean: expected 3 finite numbers"),
        (("mean",), [True, 0.5, 0.5], "mean: expected 3 finite numbers"),
        (("mean",), ["0.5", 0.5, 0.5], "mean: expected 3 finite numbers"),
        (("std",), [0.2, 0.2], "std: expected 3 numbers"),
        (("std",), [0.2, 0.2, math.nan], "std: expected 3 finite numbers"),
        (("score_threshold",), "0.05", "score_threshold: missing or not a number"),
        (("score_threshold",), False, "score_threshold: missing or not a number"),
        (("clip_boxes",), 1, "clip_boxes: missing or not true or false"),
        (("scorer",), MISSING, "scorer: missing or not a string"),
    ],
)
def test_a_damaged_record_is_refused_naming_the_key(path, value, message):
    assert refusal(damaged(RECORD, path, value)) == message


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("format", MISSING, "source.format: missing or not a string"),
        ("file_name", 7, "source.file_name: missing or not a string"),
        ("file_sha256", MISSING, "source.file_sha256: missing or not a string"),
        ("file_sha256", "f" * 40, f"source.file_sha256: {NOT_SHA}"),
        ("producer", 8.6, "source.producer: not a string or null"),
        ("image_order", 1, "source.image_order: not a string or null"),
        ("ignore_extra", "yes", "source.ignore_extra: missing or not true or false"),
        ("extra_ignored", True, "source.extra_ignored: missing or not a whole number"),
        ("repeats_ignored", "2", "source.repeats_ignored: missing or not a whole number"),
        ("partial", 1, "source.partial: missing or not true or false"),
    ],
)
def test_a_damaged_source_is_refused_naming_the_key(key, value, message):
    assert refusal(damaged(IMPORTED_RECORD, ("source", key), value)) == message


def test_what_is_not_a_run_identity():
    line = 'not a run identity (expected "schema": "ssd_eval.identity/1")'
    assert refusal([RECORD]) == line
    assert refusal({**RECORD, "schema": "ssd_eval.identity/2"}) == line


def test_a_source_without_producer_or_image_order():
    record = {**IMPORTED_RECORD, "source": {**SOURCE_RECORD, "producer": None}}
    del record["source"]["image_order"]
    assert identity_from_json(record).source == replace(SOURCE, producer=None, image_order=None)


# An imported run's source, in one line (resume refusals, comparisons, summaries)


def test_an_imported_source_in_one_line():
    assert SOURCE.describe() == (
        "MLPerf accuracy log mlperf_log_accuracy.json (sha256 ffffffffffff…) from TensorRT 8.6 fp16, "
        "image order annotated (3 records of other images ignored; 2 repeated entries ignored; covers part "
        "of the selection: scored on the images it covers)"
    )
    bare = DetectionSource(
        "coco-results", "results.json", "0123456789abcdef" * 4, None, None, False, 0, 0, False
    )
    assert bare.describe() == "COCO results file results.json (sha256 0123456789ab…)"
    # --ignore-extra is said even when it left nothing out; each note alone.
    assert replace(bare, ignore_extra=True).describe() == (
        "COCO results file results.json (sha256 0123456789ab…) (0 records of other images ignored)"
    )
    assert replace(bare, format="mlperf", repeats_ignored=1).describe() == (
        "MLPerf accuracy log results.json (sha256 0123456789ab…) (1 repeated entry ignored)"
    )
    assert replace(bare, partial=True).describe() == (
        "COCO results file results.json (sha256 0123456789ab…) (covers part of the selection: scored on the "
        "images it covers)"
    )


# Differences in words


WHOLE = replace(
    RUN,
    images=replace(RUN.images, shard=None, count=4, digest=sha("5,7,9,11"), image_ids=(5, 7, 9, 11)),
    rules={"expected.value": 0.195},
)


def _selection(whole: tuple[int, ...], **changes: object) -> ImageSelection:
    digest = sha(",".join(map(str, whole)))
    return replace(
        WHOLE.images,
        whole_count=len(whole),
        whole_digest=digest,
        count=len(whole),
        digest=digest,
        image_ids=whole,
        **changes,
    )


def test_each_setting_that_differs_is_named_in_words():
    other = replace(
        WHOLE,
        model_sha256="b" * 64,
        provider="OpenVINOExecutionProvider",
        preprocess="opencv",
        input_size=(300, 400),
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        score_threshold=0.3,
        clip_boxes=False,
        scorer="array",
    )
    assert describe_differences(WHOLE.differences(other), "the run", "this command") == "; ".join(
        [
            "model sha256 is sha256 abababababab… in the run but sha256 bbbbbbbbbbbb… in this command",
            "provider is 'CPUExecutionProvider' in the run but 'OpenVINOExecutionProvider' in this command",
            "preprocess.backend is 'pillow' in the run but 'opencv' in this command",
            "input size is 1200x900 in the run but 300x400 in this command",
            "preprocess.mean is [0.485, 0.456, 0.406] in the run but [0.5, 0.5, 0.5] in this command",
            "preprocess.std is [0.229, 0.224, 0.225] in the run but [0.25, 0.25, 0.25] in this command",
            "decode.score_threshold is 0.05 in the run but 0.3 in this command",
            "decode.clip_boxes is true in the run but false in this command",
            "scoring.backend is 'pycocotools' in the run but 'array' in this command",
        ]
    )


def test_what_an_import_does_not_know_is_said():
    ran = replace(WHOLE, images=IMPORTED.images)
    assert describe_differences(
        IMPORTED.differences(ran, ("model", "preprocess")), "the import", "the run"
    ) == (
        "; ".join(
            [
                "model sha256 is not known in the import but sha256 abababababab… in the run",
                "preprocess.backend is not known in the import but 'pillow' in the run",
                "input size is not known in the import but 1200x900 in the run",
                "preprocess.mean is not known in the import but [0.485, 0.456, 0.406] in the run",
                "preprocess.std is not known in the import but [0.229, 0.224, 0.225] in the run",
            ]
        )
    )


def test_a_model_not_known_is_no_model_not_even_another_unknown_one():
    # Two imports of detections from models nobody named: not the same model. Only the model: their
    # preprocessing, not known either, is no difference.
    assert IMPORTED.differences(IMPORTED) == (Difference("model sha256", "model", NOT_KNOWN, NOT_KNOWN),)
    named = replace(IMPORTED, model_sha256=MODEL)
    assert named.differences(named) == ()


def test_rule_values_in_words():
    mine = replace(WHOLE, rules={"expected.value": 0.195, "gate.baseline": GT_CONTENT, "gate.metric": "AP"})
    theirs = replace(
        WHOLE,
        rules={
            "expected.value": 0.2,
            "gate.baseline": None,
            "gate.baseline_stats": ["AP", "AP50"],
            "gate.metric": "AP",
        },
    )
    assert describe_differences(mine.differences(theirs), "a", "b") == (
        "expected.value is 0.195 in a but 0.2 in b; "
        "gate.baseline is sha256 cccccccccccc… in a but null in b; "
        "gate.baseline_stats is null in a but ['AP', 'AP50'] in b"
    )
    # Only a sha256 (64 lower-case hexadecimal digits) is shortened: any other value is shown whole.
    mine, theirs = replace(WHOLE, rules={"note": "AB" * 32}), replace(WHOLE, rules={"note": "X" * 64})
    (difference,) = mine.differences(theirs)
    assert difference.describe("a", "b") == f"note is '{'AB' * 32}' in a but '{'X' * 64}' in b"


def test_the_ground_truth_is_named_by_its_content_only():
    edited = replace(WHOLE, ground_truth=replace(WHOLE.ground_truth, content_digest=ID_LIST))
    (difference,) = WHOLE.differences(edited)
    assert difference.describe("a", "b") == (
        "ground truth is annotations with content sha256 cccccccccccc… in a but annotations with content "
        "sha256 eeeeeeeeeeee… in b"
    )
    # The file's bytes are context: another copy of the same annotations is the same ground truth.
    copied = replace(WHOLE, ground_truth=replace(WHOLE.ground_truth, annotation_sha256=ID_LIST))
    assert WHOLE.differences(copied) == ()


def test_the_images_follow_from_the_selection_or_the_id_list():
    # Another selection chooses other images, whose annotations differ too: only the selection is named.
    everything = replace(
        WHOLE,
        images=_selection((5, 7, 9, 11, 13), selection="all"),
        ground_truth=replace(WHOLE.ground_truth, content_digest="1" * 64),
    )
    assert describe_differences(WHOLE.differences(everything), "a", "b") == (
        "dataset.selection is 'annotated' in a but 'all' in b"
    )
    no_list = replace(WHOLE, images=_selection((5, 7, 9, 11, 13, 15), id_list_sha256=None))
    assert describe_differences(WHOLE.differences(no_list), "a", "b") == (
        "dataset.image_ids is sha256 eeeeeeeeeeee… in a but null in b"
    )


def test_only_the_aspects_asked_for_are_compared():
    other = replace(WHOLE, provider="cpu", images=_selection((5, 7)))
    assert WHOLE.differences(other, ("provider",)) == (
        Difference("provider", "provider", "'CPUExecutionProvider'", "'cpu'"),
    )
    assert WHOLE.differences(other, ("model", "decode")) == ()


# The ground truth's digest

CATEGORIES = [{"id": 3, "name": "car"}, {"id": 1, "name": "person"}]
IMAGES = [
    {"id": 7, "width": 640, "height": 480, "file_name": "000000000007.jpg"},
    {"id": 5, "width": 320, "height": 240, "file_name": "000000000005.jpg"},
    {"id": 9, "width": 100, "height": 100, "file_name": "000000000009.jpg"},
]
ANNOTATIONS = [
    {"id": 2, "image_id": 7, "category_id": 3, "bbox": [10, 20, 30.5, 40], "area": 1220, "iscrowd": 0},
    {"id": 1, "image_id": 5, "category_id": 1, "bbox": [1, 2, 3, 4]},  # no area, no crowd flag
    {"id": 3, "image_id": 9, "category_id": 1, "bbox": [0, 0, 5, 5], "area": 25, "iscrowd": 1},
]
COCO = {"categories": CATEGORIES, "images": IMAGES, "annotations": ANNOTATIONS}


def test_the_ground_truth_digest_is_the_recorded_one():
    # The digest is recorded in every identity.json and measured baseline: its text must not change, or
    # every recorded run becomes "another ground truth". Categories (id, name), the images (id, width,
    # height, file name) and their annotations (image, id, category, box, area, crowd), sorted, as
    # compact JSON; a missing area is 0 and a missing crowd flag is 0.
    text = (
        '[[[1,"person"],[3,"car"]],'
        '[[5,320,240,"000000000005.jpg"],[7,640,480,"000000000007.jpg"]],'
        "[[5,1,1,[1.0,2.0,3.0,4.0],0.0,0],[7,2,3,[10.0,20.0,30.5,40.0],1220.0,0]]]"
    )
    assert ground_truth_digest(COCO, [7, 5]) == sha(text)


def _edited(section: str, index: int, **changes: object) -> dict[str, Any]:
    data = copy.deepcopy(COCO)
    data[section][index].update(changes)
    return data


def test_what_the_ground_truth_digest_covers():
    base = ground_truth_digest(COCO, [5, 7])
    # A missing area or crowd flag is the same as 0, a crowd flag of 1 is not.
    assert ground_truth_digest(_edited("annotations", 1, area=0.0, iscrowd=0), [5, 7]) == base
    assert ground_truth_digest(_edited("annotations", 1, iscrowd=1), [5, 7]) != base
    assert ground_truth_digest(_edited("annotations", 1, area=12), [5, 7]) != base
    # Each image's size and file name count, for the selected images only.
    for edit in ({"width": 641}, {"height": 481}, {"file_name": "7.jpg"}):
        assert ground_truth_digest(_edited("images", 0, **edit), [5, 7]) != base
        assert ground_truth_digest(_edited("images", 0, **edit), [5, 9]) == ground_truth_digest(COCO, [5, 9])
    assert ground_truth_digest(_edited("annotations", 2, bbox=[1, 1, 5, 5]), [5, 7]) == base


# The gate's rules, flat


def test_flat_rules_are_dotted_keys_with_lists():
    tree = {"gate": {"min_ap": 0.2, "baseline_stats": ("AP", "AP50"), "deep": {"x": [1]}}, "expected": None}
    assert flat_rules(tree) == {
        "gate.min_ap": 0.2,
        "gate.baseline_stats": ["AP", "AP50"],  # a tuple as JSON reads it back: a list
        "gate.deep.x": [1],
        "expected": None,
    }


def test_gate_rules_read_back_from_json_are_the_same_rules():
    rules = gate_rules(
        ExpectedConfig(value=0.195), GateConfig(baseline_stats=("AP",), required=True), GT_CONTENT
    )
    assert rules == {
        "expected.value": 0.195,
        "expected.tolerance": 0.003,
        "expected.metric": "AP",
        "expected.model_sha256": None,
        "expected.selection": None,
        "gate.metric": "AP",
        "gate.min_ap": None,
        "gate.baseline": GT_CONTENT,
        "gate.max_baseline_drop": None,
        "gate.max_class_baseline_drop": None,
        "gate.baseline_stats": ["AP"],
        "gate.baseline_tolerance": 0.001,
        "gate.class_min_gt": 1,
        "gate.any_model": False,
    }
    assert json.loads(json.dumps(rules)) == rules
    assert gate_rules(None, GateConfig(), None)["expected"] is None
