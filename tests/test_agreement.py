"""Matching detections of two runs: hand-counted pairs, misses, extras and differences."""

from __future__ import annotations

import numpy as np
import pytest

from ssd_eval.evaluation.agreement import (
    DiffStats,
    disagreement,
    iou_matrix,
    match_detections,
    pair_differences,
    summarize_agreement,
)
from ssd_eval.pipeline.decode import Detections


def dets(image_id: int, rows: list[tuple[float, float, float, float, int, float]]) -> Detections:
    """Detections from (x, y, w, h, category, score) rows."""
    array = np.asarray([r[:4] for r in rows], dtype=np.float64).reshape(-1, 4)
    return Detections(
        image_id,
        array,
        np.asarray([r[5] for r in rows], dtype=np.float64),
        np.asarray([r[4] for r in rows], dtype=np.int64),
    )


def test_iou_by_hand():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 0, 10, 10], [0, 0, 10, 10], [20, 20, 5, 5], [0, 0, 0, 0]])
    # overlap 5x10 = 50, union 100 + 100 - 50 = 150 -> 1/3; identical -> 1; disjoint -> 0.
    np.testing.assert_allclose(iou_matrix(a, b), [[1 / 3, 1.0, 0.0, 0.0]])
    # Two identical zero-area boxes agree.
    assert iou_matrix(np.zeros((1, 4)), np.zeros((1, 4)))[0, 0] == 1.0


def test_identical_detections_agree_fully():
    d = dets(3, [(0, 0, 10, 10, 1, 0.9), (20, 20, 10, 10, 18, 0.5), (0, 0, 10, 10, 18, 0.3)])
    agreement = match_detections(d, d)
    assert agreement.full and agreement.matched == 3
    assert agreement.pairs.tolist() == [[0, 0], [1, 1], [2, 2]]
    diff = pair_differences(d, d, agreement, width=100, height=50)
    assert diff.box_px.tolist() == [0, 0, 0]
    summary = summarize_agreement([(agreement, diff)], iou_threshold=0.5)
    assert summary.raw_scores.abs_max == 0 and summary.raw_boxes.rel_max == 0
    assert summary.match_rate == 1.0
    assert disagreement(d, d, agreement) == 0.0


def test_hand_counted_matching():
    reference = dets(
        1,
        [
            (0, 0, 10, 10, 1, 0.9),  # r0: matched by a box shifted 2 px (IoU 80/120 = 0.667)
            (50, 50, 10, 10, 1, 0.8),  # r1: the run moved it 6 px (IoU 40/160 = 0.25): missing
            (0, 0, 10, 10, 18, 0.7),  # r2: the run calls it category 17: missing
            (30, 0, 10, 10, 2, 0.6),  # r3: matched exactly, score 0.6 -> 0.5
        ],
    )
    run = dets(
        1,
        [
            (30, 0, 10, 10, 2, 0.5),  # u0 <- r3
            (2, 0, 10, 10, 1, 0.95),  # u1 <- r0
            (56, 50, 10, 10, 1, 0.8),  # u2: extra
            (0, 0, 10, 10, 17, 0.7),  # u3: extra (wrong category)
        ],
    )
    agreement = match_detections(reference, run, iou_threshold=0.5)
    assert agreement.pairs.tolist() == [[0, 1], [3, 0]]
    assert agreement.missing.tolist() == [1, 2]
    assert agreement.extra.tolist() == [2, 3]
    diff = pair_differences(reference, run, agreement, width=100, height=50)
    # r0/u1: x1 and x2 both 2 px apart; r3/u0: identical.
    np.testing.assert_allclose(diff.box_px, [2.0, 0.0])
    summary = summarize_agreement([(agreement, diff)], iou_threshold=0.5)
    assert (summary.matched, summary.missing, summary.extra) == (2, 2, 2)
    assert summary.images_full_agreement == 0
    assert summary.score_diff_mean == pytest.approx((0.05 + 0.1) / 2)
    assert summary.score_diff_max == pytest.approx(0.1)
    assert summary.box_diff_px_mean == pytest.approx(1.0)
    assert summary.box_diff_px_max == pytest.approx(2.0)
    # Raw boxes (normalized corners, 8 values): two differ by 2/100; one reference value is 0 (x1 of r0).
    assert summary.raw_boxes.count == 8
    assert summary.raw_boxes.abs_max == pytest.approx(0.02)
    assert summary.raw_boxes.abs_mean == pytest.approx(0.04 / 8)
    assert summary.raw_boxes.rel_max > 1e12  # 0.02 / epsilon: Polygraphy's convention for a zero reference
    # Raw scores: |0.95 - 0.9| / 0.9 and |0.5 - 0.6| / 0.6.
    assert summary.raw_scores.rel_max == pytest.approx(0.1 / 0.6)
    assert summary.raw_scores.rel_mean == pytest.approx((0.05 / 0.9 + 0.1 / 0.6) / 2)
    # Disagreement: unmatched scores 0.8 + 0.7 (missing) + 0.8 + 0.7 (extra) + pair differences 0.05 + 0.1.
    assert disagreement(reference, run, agreement) == pytest.approx(3.15)


def test_greedy_order_and_threshold():
    # Two reference boxes compete for one run box: the higher-scoring reference detection wins it.
    reference = dets(1, [(0, 0, 10, 10, 1, 0.3), (1, 0, 10, 10, 1, 0.9)])
    run = dets(1, [(0, 0, 10, 10, 1, 0.5)])
    agreement = match_detections(reference, run)
    assert agreement.pairs.tolist() == [[1, 0]] and agreement.missing.tolist() == [0]
    # IoU 0.667 matches at 0.5 but not at 0.7.
    shifted = dets(1, [(2, 0, 10, 10, 1, 0.9)])
    single = dets(1, [(0, 0, 10, 10, 1, 0.9)])
    assert match_detections(single, shifted, iou_threshold=0.5).matched == 1
    assert match_detections(single, shifted, iou_threshold=0.7).matched == 0


def test_empty_sides():
    empty = Detections.empty(4)
    some = dets(4, [(0, 0, 5, 5, 1, 0.5)])
    a = match_detections(empty, some)
    assert a.matched == 0 and a.extra.tolist() == [0] and a.missing.size == 0
    b = match_detections(some, empty)
    assert b.missing.tolist() == [0] and b.extra.size == 0
    summary = summarize_agreement(
        [(a, pair_differences(empty, some, a, width=10, height=10))], iou_threshold=0.5
    )
    assert summary.raw_scores == DiffStats(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="cannot match image 4 with image 5"):
        match_detections(some, dets(5, []))
