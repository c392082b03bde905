"""COCOeval through `scoring.score`: a perfect detector and hand-counted perturbations."""

from __future__ import annotations

import numpy as np
import pytest

from ssd_eval.coco_stats import STAT_NAMES
from ssd_eval.data.categories import canonical_label_map, coco_categories_json
from ssd_eval.evaluation.scoring import score
from ssd_eval.pipeline.decode import Detections

ONE = pytest.approx(1.0, abs=1e-12)  # pycocotools' precision is tp / (tp + fp + eps)

# Two images; four 100x100 persons (category 1), one 100x100 car (category 3).
GT_BOXES = {
    1: [(10, 10, 100, 100, 1), (200, 10, 100, 100, 1), (10, 200, 100, 100, 3)],
    2: [(50, 50, 100, 100, 1), (300, 300, 100, 100, 1)],
}


def _coco() -> dict:
    anns = []
    for image_id, boxes in GT_BOXES.items():
        for x, y, w, h, cat in boxes:
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": cat,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    images = [{"id": i, "file_name": f"{i}.jpg", "width": 500, "height": 500} for i in GT_BOXES]
    return {"images": images, "annotations": anns, "categories": coco_categories_json()}


def _dets(rows: dict[int, list[tuple]]) -> list[Detections]:
    out = []
    for image_id, items in rows.items():
        boxes = np.array([r[:4] for r in items], dtype=np.float64).reshape(-1, 4)
        scores = np.array([r[5] for r in items], dtype=np.float64)
        cats = np.array([r[4] for r in items], dtype=np.int64)
        out.append(Detections(image_id, boxes, scores, cats))
    return out


def _perfect(score_of=lambda i: 0.9) -> dict[int, list[tuple]]:
    return {i: [(*b, score_of(k)) for k, b in enumerate(boxes)] for i, boxes in GT_BOXES.items()}


def _score(rows: dict[int, list[tuple]]):
    return score(_coco(), _dets(rows), image_ids=sorted(GT_BOXES), label_map=canonical_label_map())


def _ap(result, name: str) -> float | None:
    return next(c.ap for c in result.per_category if c.name == name)


def test_perfect_detector_scores_one():
    result = _score(_perfect())
    assert result.stats["AP"] == ONE and result.stats["AP50"] == ONE and result.stats["AR100"] == ONE
    assert list(result.stats) == list(STAT_NAMES)
    assert result.num_detections == 5


def test_missing_detection():
    rows = _perfect()
    del rows[2][1]  # one of four persons missed
    result = _score(rows)
    # person: precision 1 up to recall 3/4 -> 76 of COCO's 101 recall points (0.00..0.75) -> 76/101.
    assert _ap(result, "person") == pytest.approx(76 / 101, abs=1e-12)
    assert _ap(result, "car") == ONE
    assert result.stats["AP"] == pytest.approx((76 / 101 + 1) / 2, abs=1e-12)


def test_extra_false_positive_ranked_first():
    rows = _perfect()
    rows[1].append((400, 400, 50, 50, 1, 0.99))  # a person where there is none, above every true one
    result = _score(rows)
    # person ranking: FP, TP, TP, TP, TP -> precision 0, 1/2, 2/3, 3/4, 4/5; the interpolated
    # (right-max) envelope is 4/5 at every recall point -> AP 0.8.
    assert _ap(result, "person") == pytest.approx(0.8, abs=1e-12)


def test_extra_false_positive_ranked_last_costs_nothing():
    rows = _perfect()
    rows[1].append((400, 400, 50, 50, 1, 0.01))
    assert _ap(_score(rows), "person") == ONE


def test_wrong_class():
    rows = _perfect()
    x, y, w, h, _, _s = rows[2][0]
    rows[2][0] = (x, y, w, h, 3, 0.5)  # a person called a car, scored below the real car
    result = _score(rows)
    # person: 3 of 4 found -> 76/101; car: TP (0.9) then FP (0.5) -> precision 1 up to recall 1 -> 1.0.
    assert _ap(result, "person") == pytest.approx(76 / 101, abs=1e-12)
    assert _ap(result, "car") == ONE


def test_shifted_box():
    rows = _perfect(score_of=lambda k: 0.9 - 0.1 * k)
    x, y, w, h, c, _ = rows[2][1]
    rows[2][1] = (x + 16, y, w, h, c, 0.1)  # IoU 84*100 / (116*100) = 0.724, the lowest-scored person
    result = _score(rows)
    # IoU thresholds 0.50..0.70 (5 of 10): a match -> AP 1; 0.75..0.95 (5): FP ranked last and a
    # missed person -> precision 1 up to recall 3/4 -> 76/101.
    assert _ap(result, "person") == pytest.approx((5 * 1 + 5 * 76 / 101) / 10, abs=1e-12)
    assert result.stats["AP50"] == ONE


def test_zero_detections_score_zero_not_crash():
    result = _score({})
    assert result.stats["AP"] == 0.0 and result.num_detections == 0


def test_restricted_to_evaluated_images():
    rows = _perfect()
    del rows[2]  # image 2 not detected at all ...
    result = score(_coco(), _dets(rows), image_ids=[1], label_map=canonical_label_map())
    assert result.stats["AP"] == ONE  # ... but only image 1 is evaluated
    assert next(c.num_gt for c in result.per_category if c.name == "person") == 2


def test_cocoeval_printout_is_kept():
    assert "Average Precision" in _score(_perfect()).cocoeval_log


def test_result_records_are_plain_python_numbers():
    from ssd_eval.evaluation.scoring import detections_to_rows, result_records

    assert detections_to_rows([]).shape == (0, 7)
    rows = detections_to_rows(_dets({7: [(1.5, 2, 3, 4, 18, 0.25)], 9: [(0, 0, 1, 1, 90, 0.5)]}))
    records = result_records(rows)
    assert records == [
        {"image_id": 7, "bbox": [1.5, 2.0, 3.0, 4.0], "score": 0.25, "category_id": 18, "segmentation": []},
        {"image_id": 9, "bbox": [0.0, 0.0, 1.0, 1.0], "score": 0.5, "category_id": 90, "segmentation": []},
    ]
    assert type(records[0]["image_id"]) is int and type(records[0]["category_id"]) is int


def test_pycocotools_is_the_default_scorer(monkeypatch):
    import pycocotools.cocoeval

    used = []

    class Spy(pycocotools.cocoeval.COCOeval):
        def evaluate(self):
            used.append("pycocotools")
            super().evaluate()

    monkeypatch.setattr(pycocotools.cocoeval, "COCOeval", Spy)
    assert _score(_perfect()).stats["AP"] == ONE
    assert used == ["pycocotools"]


def test_a_missing_faster_coco_eval_names_the_install(monkeypatch):
    import sys

    from ssd_eval.errors import ConfigError

    monkeypatch.setitem(sys.modules, "faster_coco_eval", None)  # import fails
    with pytest.raises(ConfigError) as info:
        score(_coco(), [], image_ids=[1], label_map=canonical_label_map(), backend="faster-coco-eval")
    assert str(info.value) == (
        "scoring.backend 'faster-coco-eval' needs the faster-coco-eval package: "
        "pip install faster-coco-eval (or 'ssd_eval[fast]'), or use backend: pycocotools"
    )


def test_per_class_ap_counts_up_to_100_detections_per_image():
    # The car of image 1 is found only by the 11th car detection in score order; ten misses rank
    # above it. Within 100 detections per image (COCO's maxDets for AP) the car's precision at its
    # only recall point is 1/11, so AP = 1/11 at every recall threshold; within 10 it would be 0.
    misses = [(400 + k, 400, 10, 10, 3, 0.9 - 0.01 * k) for k in range(10)]
    rows = _perfect()
    rows[1] = [r for r in rows[1] if r[4] != 3] + misses + [(10, 200, 100, 100, 3, 0.5)]
    result = _score(rows)
    assert _ap(result, "car") == pytest.approx(1 / 11, abs=1e-12)
    assert _ap(result, "person") == ONE


def test_precision_is_the_curve_at_area_all_and_100_detections():
    # The scene of the test above: the car is found only by its 11th detection. COCO's precision array
    # is [10 IoU thresholds, 101 recall points, 80 categories] at area "all" and maxDets 100: for the car
    # (category 3, the third of the 80) 1/11 at every threshold and recall point; within 10 detections it
    # would be 0, and at area "small" (no small box here) -1. Bicycle (no ground truth) is -1 throughout.
    misses = [(400 + k, 400, 10, 10, 3, 0.9 - 0.01 * k) for k in range(10)]
    rows = _perfect()
    rows[1] = [r for r in rows[1] if r[4] != 3] + misses + [(10, 200, 100, 100, 3, 0.5)]
    precision = _score(rows).precision
    assert precision is not None and precision.shape == (10, 101, 80)
    person, bicycle, car = precision[:, :, 0], precision[:, :, 1], precision[:, :, 2]
    assert np.allclose(person, 1.0, rtol=0, atol=1e-12)
    assert (bicycle == -1.0).all()
    assert np.allclose(car, 1 / 11, rtol=0, atol=1e-12)


def test_faster_coco_eval_printout_is_kept():
    # faster-coco-eval prints through logging unless given print_function=print: its summary must reach
    # the printout the report keeps, as pycocotools' does.
    pytest.importorskip("faster_coco_eval")
    result = score(
        _coco(),
        _dets(_perfect()),
        image_ids=[1, 2],
        label_map=canonical_label_map(),
        backend="faster-coco-eval",
    )
    lines = result.cocoeval_log.splitlines()
    assert " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000" in lines
    assert " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000" in lines
