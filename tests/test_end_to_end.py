"""The whole pipeline through the CLI on tiny models with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TINY_GT, TINY_IMAGES
from helpers import SHARED_SLICE, Det, ground_truth_dets, make_coco, save_table_detector, write_config

from ssd_eval.cli import main

# pycocotools computes precision as tp / (tp + fp + eps): a category with one ground-truth box
# scores 1 / (1 + 2.2e-16) = 0.9999999999999998 at best. "Exactly 1.0" means to that eps.
ONE = pytest.approx(1.0, abs=1e-12)


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def _run(tmp_path: Path, root: Path, dets: dict, name: str = "run", **sections) -> tuple[int, dict]:
    model = save_table_detector(tmp_path / f"{name}.onnx", root, dets)
    config = write_config(tmp_path / f"{name}.yaml", model, root, **sections)
    code = main(["--config", str(config), "--run-name", name, "--quiet"])
    run_dir = tmp_path / "results" / name
    return code, _metrics(run_dir) if (run_dir / "metrics.json").exists() else {}


def test_perfect_detector_scores_ap_exactly_one(tmp_path, tiny_coco):
    code, metrics = _run(tmp_path, tiny_coco, TINY_GT)
    assert code == 0
    assert metrics["stats"]["AP"] == ONE
    assert metrics["stats"]["AP50"] == ONE
    assert metrics["stats"]["AR100"] == ONE
    assert metrics["protocol"]["num_images"] == 5  # image 11 has no annotations
    assert metrics["num_detections"] == 7
    by_name = {c["name"]: c for c in metrics["per_category"]}
    assert by_name["person"]["ap"] == ONE and by_name["person"]["num_gt"] == 4
    assert by_name["toothbrush"]["ap"] == ONE
    assert by_name["cat"]["ap"] is None  # no ground truth


def test_selection_all_includes_unannotated_images(tmp_path, tiny_coco):
    false_positive = {**TINY_GT, 11: [Det(1, 1, 10, 10, 1, score=0.95)]}
    code, annotated = _run(tmp_path, tiny_coco, false_positive, name="annotated")
    code_all, everything = _run(tmp_path, tiny_coco, false_positive, name="all", dataset={"selection": "all"})
    assert code == code_all == 0
    assert annotated["protocol"]["num_images"] == 5 and everything["protocol"]["num_images"] == 6
    assert annotated["stats"]["AP"] == ONE
    # On all images the top-scoring person detection is a false positive: person precision is 4/5
    # at every recall (hand count: envelope [0, 1/2, 2/3, 3/4, 4/5] -> 0.8 everywhere);
    # dog and toothbrush stay 1.0.
    assert everything["stats"]["AP"] == pytest.approx((0.8 + 1.0 + 1.0) / 3, abs=1e-12)


def test_shuffled_category_list_gives_the_same_result(tmp_path):
    order = list(range(80))[::-1]
    plain = make_coco(tmp_path / "plain", TINY_IMAGES, TINY_GT)
    shuffled = make_coco(tmp_path / "shuffled", TINY_IMAGES, TINY_GT, category_order=order)
    missing_one = {**TINY_GT, 2: []}
    _, a = _run(tmp_path, plain, missing_one, name="plain")
    _, b = _run(tmp_path, shuffled, missing_one, name="shuffled")
    assert a["stats"] == b["stats"]
    assert a["stats"]["AP"] < 1.0


@pytest.mark.skipif(not SHARED_SLICE.is_dir(), reason="the real COCO slice is not beside the project")
def test_real_coco_slice_perfect_detector(tmp_path):
    """50 real val2017 images, their official annotations, a detector that emits the ground truth."""
    dets = ground_truth_dets(SHARED_SLICE)
    model = save_table_detector(tmp_path / "gt.onnx", SHARED_SLICE, dets, input_size=64)
    config = write_config(tmp_path / "real.yaml", model, SHARED_SLICE)
    assert main(["--config", str(config), "--run-name", "real", "--quiet", "--selection", "all"]) == 0
    metrics = _metrics(tmp_path / "results" / "real")
    assert metrics["protocol"]["num_images"] == 50
    assert metrics["protocol"]["annotated_images"] == 48
    assert metrics["stats"]["AP"] == ONE
    assert metrics["num_detections"] == 382 - 5  # the 5 crowd annotations are not detections
