"""The `numpy` scorer is pycocotools, bit for bit: IoU, precision/recall arrays, 12 stats, per-category AP.

Every comparison here is exact equality against pycocotools run on the same input (the brief asks
1e-12; the arrays are identical). The inputs are built to reach every rule of COCOeval: crowd boxes,
boxes outside an area range, more than 100 detections of a class in an image, tied scores, tied
IoUs, a ground-truth id 0, detections of unknown categories or of images not evaluated, images
without ground truth or without detections.
"""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import numpy as np
import pytest
from helpers import SHARED_SLICE
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ssd_eval.data.categories import check_categories
from ssd_eval.evaluation.array_cocoeval import box_iou, evaluate_bbox
from ssd_eval.evaluation.scoring import detections_to_rows, result_records, score
from ssd_eval.pipeline.decode import Detections
from ssd_eval.twin.fake_detections import make_fake_set


def _pycocotools(coco_json: dict[str, Any], rows: np.ndarray, image_ids: list[int]) -> COCOeval:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = json.loads(json.dumps(coco_json))  # pycocotools writes into the annotations
        gt.createIndex()
        dt = gt.loadRes(result_records(rows))
        evaluator = COCOeval(gt, dt, iouType="bbox")
        evaluator.params.imgIds = sorted(image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def _assert_identical(coco_json: dict[str, Any], rows: np.ndarray, image_ids: list[int]) -> np.ndarray:
    reference = _pycocotools(coco_json, rows, image_ids)
    ours = evaluate_bbox(coco_json, rows, image_ids)
    assert list(ours.cat_ids) == list(reference.params.catIds)
    assert ours.precision.shape == reference.eval["precision"].shape
    assert np.array_equal(ours.precision, reference.eval["precision"])
    assert np.array_equal(ours.recall, reference.eval["recall"])
    assert list(ours.stats) == [float(v) for v in reference.stats]  # exactly
    return reference.stats


def _jitter(rng: np.random.Generator, boxes: np.ndarray, scale: float) -> np.ndarray:
    out = boxes + rng.normal(0.0, scale, boxes.shape) * np.repeat(boxes[:, 2:], 2, axis=1)
    out[:, 2:] = np.abs(out[:, 2:]) + 0.5
    return out


def test_box_iou_is_maskapi_bbiou_bit_for_bit():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 50, (40, 4))
    dt = np.concatenate([_jitter(rng, gt, 0.2), rng.uniform(-5, 60, (60, 4))])
    dt[:5, 2:] = 0.0  # empty boxes
    dt[5:8] = gt[5:8]  # identical boxes
    dt[8, :2] = gt[8, :2] + gt[8, 2:]  # touching corners
    dt[9, 2] = -3.0  # a negative width
    crowd = rng.random(40) < 0.3
    ours = box_iou(dt[:, None, :], gt[None, :, :], crowd[None, :])
    theirs = mask_utils.iou(dt.tolist(), gt.tolist(), crowd.astype(np.uint8).tolist())
    assert (theirs > 0).sum() > 50
    assert np.array_equal(ours, theirs)


def _hard_case(seed: int) -> tuple[dict[str, Any], np.ndarray, list[int]]:
    """A generated set bent to reach every corner of COCOeval's rules."""
    fake = make_fake_set(90, detections_per_image=70, empty_images=4, seed=seed)
    coco = json.loads(json.dumps(fake.coco_json))
    rng = np.random.default_rng(seed)
    anns = coco["annotations"]
    for ann in anns[::9]:
        ann["iscrowd"] = 1  # crowd boxes: ignored, matched any number of times, union = detection area
    anns[3]["id"] = 0  # pycocotools records a match as the gt id: a match to id 0 counts as none
    first = anns[0]
    for k in range(3):  # the same box three times: tied IoUs, the last one wins
        anns.append({**first, "id": 100000 + k})
    rows = detections_to_rows(fake.detections)
    rows[:, 5] = np.round(rows[:, 5], 1)  # many tied scores
    # One image with 130 detections of one class on its boxes: the per-image cut at 100.
    image = first["image_id"]
    box = np.array(first["bbox"], dtype=np.float64)
    crowd_rows = np.zeros((130, 7))
    crowd_rows[:, 0] = image
    crowd_rows[:, 1:5] = _jitter(rng, np.repeat(box[None], 130, axis=0), 0.1)
    crowd_rows[:, 5] = rng.choice([0.3, 0.5, 0.7], 130)
    crowd_rows[:, 6] = first["category_id"]
    stray = rows[:4].copy()
    stray[:2, 6] = 12  # category 12 is not in COCO: left out
    stray[2:, 0] = coco["images"][-1]["id"]  # an image not evaluated below
    rows = np.concatenate([rows, crowd_rows, stray])
    image_ids = [im["id"] for im in coco["images"][:-1]]
    return coco, rows, image_ids


@pytest.mark.parametrize("seed", [1, 2])
def test_identical_to_pycocotools_on_a_set_built_to_reach_every_rule(seed):
    coco, rows, image_ids = _hard_case(seed)
    stats = _assert_identical(coco, rows, image_ids)
    assert 0.05 < stats[0] < 0.9  # a non-trivial result


def test_identical_to_pycocotools_on_a_generated_val2017_shaped_set():
    fake = make_fake_set(150, detections_per_image=120, empty_images=2, seed=5)
    _assert_identical(fake.coco_json, detections_to_rows(fake.detections), fake.image_ids)


def _box(image_id: int, box: list[float], score: float, category: int = 1) -> list[float]:
    return [image_id, *box, score, category]


def test_identical_on_hand_built_corner_cases():
    """Each image isolates one rule; the hand counts below say what pycocotools must give."""
    gt_boxes = {
        1: [[0, 0, 10, 10], [10, 0, 10, 10]],  # two boxes, both at IoU 0.5 to a wide detection
        2: [[50, 50, 40, 40]],  # found only by detections ranked past 100
        3: [[0, 0, 20, 20]],  # a false positive and the hit with the same score
    }
    anns = [
        {
            "id": len(gt_boxes) * 10 + n,
            "image_id": i,
            "category_id": 1,
            "bbox": b,
            "area": b[2] * b[3],
            "iscrowd": 0,
        }
        for n, (i, boxes) in enumerate(gt_boxes.items())
        for b in boxes
    ]
    for n, ann in enumerate(anns):
        ann["id"] = n + 1
    rows = [
        # Image 1: the wide one takes the LAST of the tied boxes, so the exact copy of the first still hits.
        _box(1, [0, 0, 20, 10], 0.9),
        _box(1, [0, 0, 10, 10], 0.8),
        # Image 3: equal scores keep their order: the miss ranks before the hit.
        _box(3, [100, 100, 5, 5], 0.5),
        _box(3, [0, 0, 20, 20], 0.5),
    ]
    rows += [_box(2, [200 + k, 200, 5, 5], 0.9) for k in range(100)]  # 100 misses first,
    rows += [_box(2, [50, 50, 40, 40], 0.8) for _ in range(20)]  # then hits past the cut at 100
    coco = {
        "images": [{"id": i, "width": 300, "height": 300} for i in gt_boxes],
        "categories": [{"id": 1, "name": "person"}],
        "annotations": anns,
    }
    table = np.array(rows, dtype=np.float64)
    stats = _assert_identical(coco, table, [1, 2, 3])
    # At IoU 0.5 image 1 gives two hits and image 3 one; image 2's box is never reached: recall 3/4.
    ours = evaluate_bbox(coco, table, [1, 2, 3])
    assert ours.recall[0, 0, 0, 2] == 0.75
    assert stats[8] == ours.stats[8]


def test_identical_without_detections_and_without_ground_truth():
    fake = make_fake_set(6, detections_per_image=5, empty_images=2, seed=4)
    rows = detections_to_rows(fake.detections)
    with_gt = sorted({a["image_id"] for a in fake.coco_json["annotations"]})
    without = [i for i in fake.image_ids if i not in with_gt]
    assert without
    _assert_identical(fake.coco_json, rows[np.isin(rows[:, 0], with_gt)], fake.image_ids)
    ours = evaluate_bbox(fake.coco_json, np.zeros((0, 7)), fake.image_ids)
    assert ours.stats == (0.0,) * 12  # every category with ground truth scores 0
    only_empty = evaluate_bbox(fake.coco_json, rows, without)
    assert only_empty.stats == (-1.0,) * 12  # pycocotools' "no ground truth anywhere"


@pytest.mark.skipif(not SHARED_SLICE.is_dir(), reason="the real COCO slice is not beside the project")
def test_identical_to_pycocotools_on_the_real_slice():
    coco = json.loads((SHARED_SLICE / "annotations" / "instances_val2017.json").read_text())
    assert any(a["iscrowd"] for a in coco["annotations"])  # the real thing: crowds, polygon areas
    rng = np.random.default_rng(7)
    cat_ids = [c["id"] for c in coco["categories"]]
    rows = []
    for ann in coco["annotations"]:
        for _ in range(3):
            box = _jitter(rng, np.array([ann["bbox"]], dtype=np.float64), 0.1)[0]
            cat = ann["category_id"] if rng.random() < 0.7 else rng.choice(cat_ids)
            rows.append([ann["image_id"], *box, rng.uniform(0.05, 1.0), cat])
    for image in coco["images"]:
        for _ in range(40):
            w, h = rng.uniform(5, 200, 2)
            x, y = rng.uniform(0, image["width"] - w), rng.uniform(0, image["height"] - h)
            rows.append([image["id"], x, y, w, h, rng.uniform(0.05, 0.6), rng.choice(cat_ids)])
    table = np.array(rows, dtype=np.float64)
    image_ids = sorted({a["image_id"] for a in coco["annotations"]})  # the annotated images
    assert len(image_ids) == 48
    _assert_identical(coco, table, image_ids)


def test_score_with_the_numpy_backend_equals_pycocotools_in_every_reported_number():
    fake = make_fake_set(60, detections_per_image=50, empty_images=2, seed=9)
    label_map = check_categories(fake.coco_json["categories"], source="generated")
    kwargs = {"image_ids": fake.image_ids, "label_map": label_map}
    ref = score(fake.coco_json, fake.detections, backend="pycocotools", **kwargs)
    ours = score(fake.coco_json, fake.detections, backend="numpy", **kwargs)
    assert ours.stats == ref.stats
    assert ours.per_category == ref.per_category  # AP, AP50, ground-truth and detection counts
    assert ours.num_detections == ref.num_detections == 60 * 50
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]" in ours.cocoeval_log
    summary = [line for line in ref.cocoeval_log.splitlines() if line.startswith(" Average")]
    assert ours.cocoeval_log.splitlines() == summary  # pycocotools' own summary lines


def test_a_perfect_detector_scores_one_and_a_miss_halves_recall():
    """Hand counts, independent of pycocotools: two 100x100 boxes, one found exactly."""
    coco = {
        "images": [{"id": 1, "width": 500, "height": 500}],
        "categories": [{"id": 1, "name": "person"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 100, 100], "area": 10000, "iscrowd": 0},
            {
                "id": 2,
                "image_id": 1,
                "category_id": 1,
                "bbox": [200, 200, 100, 100],
                "area": 10000,
                "iscrowd": 0,
            },
        ],
    }
    both = Detections(
        1,
        np.array([[0, 0, 100, 100], [200, 200, 100, 100]], float),
        np.array([0.9, 0.8]),
        np.ones(2, np.int64),
    )
    result = evaluate_bbox(coco, detections_to_rows([both]), [1])
    assert result.stats[0] == pytest.approx(1.0, abs=1e-12)  # precision is tp / (tp + fp + eps)
    assert result.stats[8] == 1.0  # AR@100
    one = Detections(1, np.array([[0, 0, 100, 100]], float), np.array([0.9]), np.ones(1, np.int64))
    result = evaluate_bbox(coco, detections_to_rows([one]), [1])
    assert result.stats[8] == 0.5  # one of two boxes found
    assert result.stats[3] == -1.0  # no small box anywhere


# --- hand counts at the edges (issue 22): expectations from COCO's definitions, then parity ----------
#
# COCO's rules, as its evaluation defines them: a ground-truth box is in an area range when
# lo <= area <= hi (both ends included: small is [0, 32**2], medium [32**2, 96**2]); a detection
# matches at threshold t when IoU >= t; detections of one (image, category) are ranked by score, ties
# kept in the order given, and only the first 100 count; over images, ties keep image-id order.
# AP at one threshold is the mean over 101 recall points of the best precision at that recall or beyond.
# Precision is tp / (tp + fp + eps) (eps = 2.2e-16), hence approx to 1e-12 for the hand counts.


def _one_category(boxes: dict[int, list[list[float]]]) -> dict[str, Any]:
    anns = [
        {"image_id": i, "category_id": 1, "bbox": b, "area": b[2] * b[3], "iscrowd": 0}
        for i, image_boxes in boxes.items()
        for b in image_boxes
    ]
    return {
        "images": [{"id": i, "width": 400, "height": 400} for i in boxes],
        "categories": [{"id": 1, "name": "person"}],
        "annotations": [{"id": n, **a} for n, a in enumerate(anns, start=1)],
    }


@pytest.mark.parametrize(
    ("side", "small", "medium", "large"),
    [
        (32, 1.0, 1.0, -1.0),  # area 1024 = 32**2: in small AND in medium (both ends included)
        (96, -1.0, 1.0, 1.0),  # area 9216 = 96**2: in medium AND in large
        (31, 1.0, -1.0, -1.0),  # below the boundary: small only
    ],
)
def test_a_box_exactly_on_an_area_boundary_counts_in_both_ranges(side, small, medium, large):
    coco = _one_category({1: [[10, 10, side, side]]})
    rows = np.array([_box(1, [10, 10, side, side], 0.9)])
    ours = evaluate_bbox(coco, rows, [1])
    # APs, APm, APl: a range without ground truth is -1 (undefined), one found exactly is 1.
    assert ours.stats[3:6] == pytest.approx((small, medium, large), abs=1e-12)
    _assert_identical(coco, rows, [1])


def test_an_iou_exactly_at_the_threshold_is_a_match():
    """IoU of [0,0,10,10] and [0,0,10,5] is 50 / 100 = 0.5 exactly: a hit at 0.50, a miss at 0.55 and
    above. AP50 = 1; AP = (1 + 9 * 0) / 10 = 0.1; AP75 = 0."""
    coco = _one_category({1: [[0, 0, 10, 10]]})
    rows = np.array([_box(1, [0, 0, 10, 5], 0.9)])
    ours = evaluate_bbox(coco, rows, [1])
    assert ours.stats[:3] == pytest.approx((0.1, 1.0, 0.0), abs=1e-12)
    _assert_identical(coco, rows, [1])
    # A hair below 0.5 (height 4.99: IoU 0.499) matches at no threshold.
    below = np.array([_box(1, [0, 0, 10, 4.99], 0.9)])
    assert evaluate_bbox(coco, below, [1]).stats[:3] == (0.0, 0.0, 0.0)
    _assert_identical(coco, below, [1])


def test_an_iou_exactly_at_075():
    """[0,0,100,100] against [0,0,100,75]: IoU 7500 / 10000 = 0.75, a hit at 0.50 .. 0.75 (6 of the 10
    thresholds): AP = 0.6, AP75 = 1."""
    coco = _one_category({1: [[0, 0, 100, 100]]})
    rows = np.array([_box(1, [0, 0, 100, 75], 0.9)])
    ours = evaluate_bbox(coco, rows, [1])
    assert (ours.stats[0], ours.stats[2]) == pytest.approx((0.6, 1.0), abs=1e-12)
    _assert_identical(coco, rows, [1])


@pytest.mark.parametrize(("hit_first", "ap"), [(True, 1.0), (False, 0.0)])
def test_ties_at_the_rank_100_cut_keep_the_order_given(hit_first, ap):
    """101 detections of one score for one box: the first 100 in the order given count. The hit listed
    first scores AP 1 (precision 1 at recall 1); listed 101st it is cut and AP is 0."""
    coco = _one_category({1: [[50, 50, 40, 40]]})
    misses = [_box(1, [300, 300 - k, 5, 5], 0.5) for k in range(100)]
    hit = _box(1, [50, 50, 40, 40], 0.5)
    rows = np.array([hit, *misses] if hit_first else [*misses, hit])
    ours = evaluate_bbox(coco, rows, [1])
    assert (ours.stats[0], ours.stats[8]) == pytest.approx((ap, ap), abs=1e-12)  # AP and AR100
    _assert_identical(coco, rows, [1])


@pytest.mark.parametrize(("hit_image", "ap"), [(1, 1.0), (2, 0.5)])
def test_ties_across_images_keep_image_id_order(hit_image, ap):
    """One box, in image `hit_image`; one detection per image, both scoring 0.5, the other a false
    positive. In image-id order the hit comes first (precision 1 at recall 1: AP 1) or second
    (precision 1/2 at recall 1, and the best precision at any recall is 1/2: AP 0.5)."""
    boxes: dict[int, list[list[float]]] = {1: [], 2: []}
    boxes[hit_image].append([10, 10, 50, 50])
    coco = _one_category(boxes)
    miss_image = 3 - hit_image
    rows = np.array([_box(miss_image, [200, 200, 50, 50], 0.5), _box(hit_image, [10, 10, 50, 50], 0.5)])
    ours = evaluate_bbox(coco, rows, [1, 2])
    assert ours.stats[0] == pytest.approx(ap, abs=1e-12)
    _assert_identical(coco, rows, [1, 2])


def test_a_box_of_zero_width_or_height_overlaps_nothing():
    """maskApi's bbIou: no overlap unless both the width and the height of the intersection are > 0. A
    flat detection inside a box has IoU 0, also against a crowd box (whose union is the detection's own
    area, 0 here) and against another flat box on the same line (a union of 0)."""
    flat = np.array([[5, 5, 0, 10], [5, 5, 10, 0]], dtype=np.float64)  # zero width, zero height
    gt = np.array([[0, 0, 20, 20], [0, 0, 20, 20], [5, 0, 0, 20], [0, 5, 20, 0]], dtype=np.float64)
    crowd = np.array([False, True, False, False])
    ours = box_iou(flat[:, None, :], gt[None, :, :], crowd[None, :])
    assert ours.tolist() == [[0.0] * 4, [0.0] * 4]
    theirs = mask_utils.iou(flat.tolist(), gt.tolist(), crowd.astype(np.uint8).tolist())
    assert np.array_equal(ours, theirs)


def test_ground_truth_of_other_images_and_categories_is_skipped_wherever_it_is_listed():
    """Annotations of an image not evaluated, and of a category the file does not list, come first: the
    evaluated image's box after them is still the ground truth (a perfect detection: AP 1)."""
    coco = _one_category({1: [[10, 10, 50, 50]], 2: [[0, 0, 30, 30]]})
    coco["annotations"] = [
        coco["annotations"][1],  # image 2, not evaluated
        {**coco["annotations"][0], "id": 9, "category_id": 7},  # category 7 is not in the file
        coco["annotations"][0],
    ]
    rows = np.array([_box(1, [10, 10, 50, 50], 0.9)])
    ours = evaluate_bbox(coco, rows, [1])
    assert (ours.stats[0], ours.stats[8]) == pytest.approx((1.0, 1.0), abs=1e-12)
    _assert_identical(coco, rows, [1])


def test_a_tie_between_two_boxes_goes_to_the_one_listed_last_in_every_image():
    """Each image: boxes A = [0,0,10,10] and B = [10,0,10,10] (B listed after A), crowd boxes far away
    between them (1 to 19 of them: ignored, never ground truth), a wide detection [0,0,20,10] (IoU
    exactly 0.5 with A and with B) scored 0.9 and a copy of A scored 0.8. The wide one takes B, the
    last of the tie, so the copy of A hits A. The images' annotations are listed last image first.

    Hand count over the 8 images (16 boxes): at IoU 0.50, 16 hits: AP 1. At 0.55 and above the wide
    detections (8 false positives, ranked first) miss, then 8 hits: precision 8/16 up to recall 1/2,
    51 of the 101 recall points. AP = (1 + 9 * 0.5 * 51/101) / 10; AR100 = (1 + 9 * 0.5) / 10."""
    images = list(range(1, 9))
    anns: list[dict[str, Any]] = []
    for image in reversed(images):
        fillers = [[200 + 10 * k, 200, 5, 5] for k in range(1 + (image * 5) % 19)]
        for box, crowd in [([0, 0, 10, 10], 0), *[(f, 1) for f in fillers], ([10, 0, 10, 10], 0)]:
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image,
                    "category_id": 1,
                    "bbox": box,
                    "area": 100,
                    "iscrowd": crowd,
                }
            )
    coco = {
        "images": [{"id": i, "width": 400, "height": 400} for i in images],
        "categories": [{"id": 1, "name": "person"}],
        "annotations": anns,
    }
    rows = np.array([r for i in images for r in (_box(i, [0, 0, 20, 10], 0.9), _box(i, [0, 0, 10, 10], 0.8))])
    ours = evaluate_bbox(coco, rows, images)
    assert ours.stats[1] == pytest.approx(1.0, abs=1e-12)  # AP50
    assert ours.stats[0] == pytest.approx((1 + 9 * 0.5 * 51 / 101) / 10, abs=1e-12)
    assert ours.stats[8] == pytest.approx((1 + 9 * 0.5) / 10, abs=1e-12)
    _assert_identical(coco, rows, images)


def test_a_detection_that_takes_one_box_takes_no_other():
    """Boxes A = [0,0,100,100], B = [0,0,100,60], C = [0,0,100,55]; detections copy A (0.9), then C
    (0.8), then B (0.7). The copy of A overlaps B (IoU 0.6) and C (0.55) too but takes A alone; the copy
    of C then takes C (IoU 1) and the copy of B takes B. A perfect detector: 1 at every threshold.
    AR1 = 1/3 (one detection per image); no small box (APs, ARs -1)."""
    coco = _one_category({1: [[0, 0, 100, 100], [0, 0, 100, 60], [0, 0, 100, 55]]})
    rows = np.array(
        [_box(1, [0, 0, 100, 100], 0.9), _box(1, [0, 0, 100, 55], 0.8), _box(1, [0, 0, 100, 60], 0.7)]
    )
    ours = evaluate_bbox(coco, rows, [1])
    expected = (1.0, 1.0, 1.0, -1.0, 1.0, 1.0, 1 / 3, 1.0, 1.0, -1.0, 1.0, 1.0)
    assert ours.stats == pytest.approx(expected, abs=1e-12)
    _assert_identical(coco, rows, [1])


def test_a_hit_in_area_all_only_is_counted():
    """Boxes of height 100 on one line, x from: X 65-165 and G 130-230 (area 50000: large), S 100-200
    (area 1024: small and medium). E0 (x 75-175, 0.9) overlaps X 0.82, S 0.6; E1 (= S, 0.8) overlaps
    S 1, G 0.54; D (x 160-260, 0.7) overlaps G 0.54 and nothing else above 0.5.
    In area "all" E0 takes X, E1 takes S, D takes G at IoU 0.50 only. In the other areas D matches
    nothing: S and G are taken there (E0 takes S, a regular box in small and medium; E1 then the ignored
    G there, and the regular G in large). D's only match, (all, 0.50), still counts.
    Hand count, area all: at 0.50 three hits (AP 1); at 0.55-0.80 (6 thresholds) E0 and E1 hit, D misses
    (recall 2/3: 67 of 101 points); at 0.85-0.95 (3) only E1 hits, after E0's miss (precision 1/2 up to
    recall 1/3: 34 points at 0.5)."""
    coco = _one_category({1: [[65, 0, 100, 100], [130, 0, 100, 100], [100, 0, 100, 100]]})
    for ann, area in zip(coco["annotations"], (50000, 50000, 1024), strict=True):
        ann["area"] = area
    rows = np.array(
        [_box(1, [75, 0, 100, 100], 0.9), _box(1, [100, 0, 100, 100], 0.8), _box(1, [160, 0, 100, 100], 0.7)]
    )
    ours = evaluate_bbox(coco, rows, [1])
    assert ours.stats[1] == pytest.approx(1.0, abs=1e-12)  # AP50
    assert ours.stats[2] == pytest.approx(67 / 101, abs=1e-12)  # AP75
    assert ours.stats[0] == pytest.approx((1 + 6 * 67 / 101 + 3 * 0.5 * 34 / 101) / 10, abs=1e-12)
    _assert_identical(coco, rows, [1])


def test_a_false_positive_exactly_on_an_area_boundary_counts_in_both_ranges():
    """An unmatched 32x32 detection (area 1024 = 32**2) ranked first is a false positive in small AND in
    medium (both ends of a range included). Small box [0,0,10,10] and medium box [100,100,50,100] are
    found next: per range a false positive then a hit, APs = APm = 1/2; over all, FP, TP, TP: 2/3."""
    coco = _one_category({1: [[0, 0, 10, 10], [100, 100, 50, 100]]})
    rows = np.array(
        [
            _box(1, [300, 300, 32, 32], 0.95),
            _box(1, [0, 0, 10, 10], 0.9),
            _box(1, [100, 100, 50, 100], 0.8),
        ]
    )
    ours = evaluate_bbox(coco, rows, [1])
    assert ours.stats[:6] == pytest.approx((2 / 3, 2 / 3, 2 / 3, 0.5, 0.5, -1.0), abs=1e-12)
    _assert_identical(coco, rows, [1])


def test_float32_rows_are_read_as_the_float64_numbers_they_hold():
    """loadRes computes a detection's area w * h in Python floats. w = 32 + 2**-18 and h = 32 - 2**-19
    are float32 numbers whose product, 1024 + 2**-14 - 2**-37, is above 32**2 (outside small) but rounds
    to 1024 (inside) in float32. Unmatched and ranked first, that detection is ignored in small, so the
    small box found next scores APs 1; over all it is a false positive first: AP 1/2."""
    coco = _one_category({1: [[0, 0, 10, 10]]})
    rows = np.array(
        [_box(1, [200, 200, 32 + 2**-18, 32 - 2**-19], 0.95), _box(1, [0, 0, 10, 10], 0.9)], dtype=np.float32
    )
    ours = evaluate_bbox(coco, rows, [1])
    assert (ours.stats[0], ours.stats[3]) == pytest.approx((0.5, 1.0), abs=1e-12)
    _assert_identical(coco, rows, [1])


def test_no_image_or_no_category_leaves_every_stat_undefined():
    fake = make_fake_set(4, detections_per_image=5, empty_images=0, seed=6)
    rows = detections_to_rows(fake.detections)
    ours = evaluate_bbox(fake.coco_json, rows, [])
    assert ours.stats == (-1.0,) * 12
    _assert_identical(fake.coco_json, rows, [])
    no_categories = {**fake.coco_json, "categories": []}
    ours = evaluate_bbox(no_categories, rows, fake.image_ids)
    assert ours.stats == (-1.0,) * 12 and ours.cat_ids == ()
    assert ours.precision.shape == (10, 101, 0, 4, 3)
    _assert_identical(no_categories, rows, fake.image_ids)


def test_a_tie_among_four_boxes_goes_to_the_last_listed_whatever_lies_between():
    """Each image: the four halves of [0,0,100,100] (IoU exactly 0.5 with the whole square, at most 1/3
    with each other), listed top, bottom, left, right at random places among 4-19 crowd boxes of 10-45 px
    in the square's corner (ignored; IoU 0.01-0.2 with the square). A detection of the whole square (0.9)
    takes the half listed last, the right one; copies of the four halves follow, the copy of the right
    half scored lowest (0.5), so it is the one false positive at IoU 0.50, ranked after every hit.

    Hand count over 12 images: at IoU 0.50, 48 hits then 12 false positives: AP 1. Above 0.50 the whole
    square misses (12 false positives first), then 48 hits: precision 48/60 at recall 1, AP 0.8.
    AP = (1 + 9 * 0.8) / 10; every half is found at every threshold: AR100 = 1."""
    rng = np.random.default_rng(11)
    halves = [[0, 0, 100, 50], [0, 50, 100, 50], [0, 0, 50, 100], [50, 0, 50, 100]]
    images = list(range(1, 13))
    anns: list[dict[str, Any]] = []
    rows = []
    for image in images:
        sides = rng.choice([10, 20, 30, 40, 45], int(rng.integers(4, 20))).tolist()
        listed: list[tuple[list[int], int]] = [([100 - s, 100 - s, s, s], 1) for s in sides]
        for at in sorted(rng.choice(len(listed) + 4, 4, replace=False).tolist()):
            listed.insert(at, (halves[len([b for b, crowd in listed if not crowd])], 0))
        for box, crowd in listed:
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image,
                    "category_id": 1,
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": crowd,
                }
            )
        rows.append(_box(image, [0, 0, 100, 100], 0.9))
        rows += [_box(image, half, score) for half, score in zip(halves, (0.8, 0.7, 0.6, 0.5), strict=True)]
    coco = {
        "images": [{"id": i, "width": 400, "height": 400} for i in images],
        "categories": [{"id": 1, "name": "person"}],
        "annotations": anns,
    }
    table = np.array(rows)
    ours = evaluate_bbox(coco, table, images)
    assert ours.stats[1] == pytest.approx(1.0, abs=1e-12)  # AP50
    assert ours.stats[0] == pytest.approx((1 + 9 * 0.8) / 10, abs=1e-12)
    assert ours.stats[8] == pytest.approx(1.0, abs=1e-12)  # AR100
    _assert_identical(coco, table, images)
