"""Matching detections of two runs: hand-counted pairs, misses, extras and differences."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ssd_eval.evaluation.agreement import (
    DiffStats,
    corners,
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
    # p99 of two values interpolates 99% of the way from the smaller to the larger (numpy's default):
    # score differences 0.05 and 0.1 -> 0.0995; box differences 0 and 2 px -> 1.98 px.
    assert summary.score_diff_p99 == pytest.approx(0.0995)
    assert summary.box_diff_px_p99 == pytest.approx(1.98)
    # Without a min_score every detection is visible: the visible counts are the counts above.
    assert summary.min_score == 0.0
    assert (summary.visible_reference, summary.visible_run) == (4, 4)
    assert (summary.visible_matched, summary.visible_extra, summary.visible_images_full) == (2, 2, 0)
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
    # Nothing matched: every visible count is a count of one side.
    assert dataclasses.astuple(a.visible(0.5)) == (0, 1, 0, 0, 1)  # reference, run, matched, missing, extra
    assert dataclasses.astuple(b.visible(0.5)) == (1, 0, 0, 1, 0)
    summary = summarize_agreement(
        [(a, pair_differences(empty, some, a, width=10, height=10))], iou_threshold=0.5
    )
    assert summary.raw_scores == DiffStats(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="cannot match image 4 with image 5"):
        match_detections(some, dets(5, []))


def test_iou_by_hand_non_square_and_offset():
    a = np.array([[2, 3, 8, 4]])  # x 2..10, y 3..7: area 32
    b = np.array(
        [
            [6, 5, 8, 6],  # x 6..14, y 5..11: overlap 4 x 2 = 8, union 32 + 48 - 8 = 72 -> 1/9
            [12, 3, 8, 4],  # beside it (y overlaps, x does not) -> 0, not negative
            [2, 10, 8, 4],  # below it (x overlaps, y does not) -> 0
            [2, 3, 4, 4],  # its left half -> 16 / 32 = 1/2
        ]
    )
    np.testing.assert_allclose(iou_matrix(a, b), [[1 / 9, 0.0, 0.0, 0.5]], rtol=0, atol=1e-15)
    np.testing.assert_allclose(iou_matrix(b, a), [[1 / 9], [0.0], [0.0], [0.5]], rtol=0, atol=1e-15)


def test_iou_of_sub_pixel_and_zero_area_boxes():
    # Boxes smaller than a pixel (a far-away object on a small image) have a real IoU too.
    small = np.array([[0.0, 0.0, 0.5, 0.5]])
    half = np.array([[0.0, 0.0, 0.5, 0.25]])
    assert iou_matrix(small, half)[0, 0] == 0.5  # 0.125 / 0.25
    # Zero-area boxes: 1 when identical, 0 otherwise (never a division by zero).
    points = np.array([[3.0, 3.0, 0.0, 0.0], [5.0, 5.0, 0.0, 0.0]])
    np.testing.assert_array_equal(iou_matrix(points[:1], points), [[1.0, 0.0]])


def test_iou_is_float64_whatever_the_input():
    a = np.array([[0, 0, 3, 3]], np.float32)
    b = np.array([[1, 0, 3, 3]], np.float32)
    iou = iou_matrix(a, b)
    assert iou.dtype == np.float64 and iou[0, 0] == 0.5  # 6 / 12
    assert iou_matrix([[0, 0, 3, 3]], [[1, 0, 3, 3]]).dtype == np.float64


def test_iou_widens_float32_boxes_before_adding_their_sides():
    # 2**24 + 1 is not a float32: x + w added in float32 would lose the box's last pixel (IoU 0).
    a = np.array([[2**24, 0, 1, 1]], np.float32)
    b = np.array([[2**24, 0, 1, 2]], np.float32)  # the same pixel column, twice as tall
    assert iou_matrix(a, b).tolist() == [[0.5]]  # 1 / (1 + 2 - 1)
    assert iou_matrix(b, a).tolist() == [[0.5]]


def test_iou_exactly_at_the_threshold_matches():
    reference = dets(2, [(0, 0, 10, 10, 1, 0.9)])
    run = dets(2, [(0, 0, 10, 5, 1, 0.9)])  # IoU 50 / 100 = 0.5 exactly
    agreement = match_detections(reference, run)
    assert agreement.pairs.tolist() == [[0, 0]] and agreement.image_id == 2
    assert match_detections(reference, run, iou_threshold=0.5000001).matched == 0


def test_ties_in_score_go_to_the_first_emitted():
    # 20 references elsewhere (category 2) at 0.5, then 20 identical references at 0.9 competing for
    # one run box: the first emitted of the 0.9 group (index 20) takes it.
    rows = [(100 + 20 * k, 0, 10, 10, 2, 0.5) for k in range(20)] + [(0, 0, 10, 10, 1, 0.9)] * 20
    reference = dets(1, rows)
    run = dets(1, [(0, 0, 10, 10, 1, 0.9)])
    assert match_detections(reference, run).pairs.tolist() == [[20, 0]]


def test_corners_and_normalized_pair_differences():
    assert corners(np.array([[1, 2, 3, 5]])).tolist() == [[1, 2, 4, 7]]
    assert corners([[1, 2, 3, 5]]).dtype == np.float64
    reference = dets(1, [(10, 5, 20, 10, 1, 0.8)])
    run = dets(1, [(13, 5, 20, 14, 1, 0.6)])  # IoU 17*10 / (200 + 280 - 170) = 0.548
    agreement = match_detections(reference, run)
    diff = pair_differences(reference, run, agreement, width=200, height=50)
    np.testing.assert_allclose(diff.ref_corners, [[0.05, 0.1, 0.15, 0.3]], rtol=0, atol=1e-15)
    np.testing.assert_allclose(diff.run_corners, [[0.065, 0.1, 0.165, 0.38]], rtol=0, atol=1e-15)
    assert diff.box_px.tolist() == [4.0]  # y2: 15 -> 19
    assert diff.ref_scores.tolist() == [0.8] and diff.run_scores.tolist() == [0.6]
    none = pair_differences(
        reference, dets(1, []), match_detections(reference, dets(1, [])), width=9, height=9
    )
    assert none.box_px.shape == (0,) and none.ref_corners.shape == (0, 4)


def test_diff_stats_by_hand():
    stats = DiffStats.of(np.array([0, 2, 4]), np.array([1, 3, 4]))  # integer inputs
    assert stats.count == 3
    assert (stats.abs_max, stats.abs_mean) == (1.0, pytest.approx(2 / 3))
    assert stats.rel_max == pytest.approx(1 / np.finfo(np.float64).eps)  # |1 - 0| / eps
    assert stats.rel_mean == pytest.approx((1 / np.finfo(np.float64).eps + 0.5) / 3)
    # Percentile 99 of 0..100 is 99 (not the maximum 100).
    ramp = DiffStats.of(np.full(101, 1.0), 1.0 + np.arange(101.0))
    assert ramp.abs_p99 == pytest.approx(99.0) and ramp.abs_max == 100.0
    assert ramp.rel_p99 == pytest.approx(99.0) and ramp.rel_max == 100.0
    assert ramp.abs_mean == pytest.approx(50.0) and ramp.rel_mean == pytest.approx(50.0)


def test_summary_over_images_with_and_without_pairs():
    ref1 = dets(1, [(0, 0, 10, 10, 1, 0.9)])
    run1 = dets(1, [(1, 0, 10, 10, 1, 0.7)])  # 1 px apart, scores 0.2 apart
    ref2 = dets(2, [(0, 0, 10, 10, 1, 0.9)])
    run2 = dets(2, [])
    items = []
    for ref, run in ((ref1, run1), (ref2, run2)):
        agreement = match_detections(ref, run)
        items.append((agreement, pair_differences(ref, run, agreement, width=100, height=100)))
    summary = summarize_agreement(items, iou_threshold=0.3)
    assert summary.iou_threshold == 0.3 and summary.images == 2 and summary.images_full_agreement == 1
    assert (summary.reference_detections, summary.run_detections) == (2, 1)
    assert (summary.matched, summary.missing, summary.extra) == (1, 1, 0)
    assert summary.box_diff_px_mean == 1.0 and summary.box_diff_px_max == 1.0  # image 2 adds no pair
    assert summary.score_diff_mean == pytest.approx(0.2) and summary.score_diff_max == pytest.approx(0.2)
    assert summary.raw_scores.count == 1 and summary.raw_boxes.count == 4
    assert summary.match_rate == 0.5


def test_summary_of_nothing():
    summary = summarize_agreement([], iou_threshold=0.5)
    assert summary.images == 0 and summary.match_rate == 1.0
    assert (summary.score_diff_mean, summary.score_diff_max) == (0.0, 0.0)
    assert (summary.box_diff_px_mean, summary.box_diff_px_max) == (0.0, 0.0)
    assert summary.raw_scores.count == 0 and summary.raw_boxes.count == 0
    assert (summary.score_diff_p99, summary.box_diff_px_p99) == (0.0, 0.0)


def test_visible_unmatched_counts_both_sides_from_the_minimum_score():
    from ssd_eval.evaluation.agreement import visible_unmatched

    reference = dets(1, [(0, 0, 10, 10, 1, 0.5), (50, 50, 10, 10, 1, 0.2)])
    run = dets(1, [(100, 100, 10, 10, 1, 0.5), (0, 0, 10, 10, 1, 0.6)])
    agreement = match_detections(reference, run, iou_threshold=0.5)
    # The reference's 0.2 box is missing from the run; the run's 0.5 box is extra.
    assert (agreement.missing.tolist(), agreement.extra.tolist()) == ([1], [0])
    assert visible_unmatched(reference, run, agreement, min_score=0.5) == 1  # 0.5 counts, 0.2 does not
    assert visible_unmatched(reference, run, agreement, min_score=0.2) == 2
    assert visible_unmatched(reference, run, agreement, min_score=0.6) == 0


def test_visible_counts_at_the_minimum_score_and_by_reference_index():
    # r0 (0.5) pairs with the run's second detection u1 (0.5); r1 (0.2) is missing; u0 (0.5) is extra.
    reference = dets(1, [(0, 0, 10, 10, 1, 0.5), (50, 50, 10, 10, 1, 0.2)])
    run = dets(1, [(100, 100, 10, 10, 1, 0.5), (0, 0, 10, 10, 1, 0.5)])
    agreement = match_detections(reference, run)
    assert agreement.pairs.tolist() == [[0, 1]]
    # A score equal to min_score is visible on either side; r1 is not. The pair counts by r0, whose
    # index is 0 (r1, the reference detection with index 1 like u1, is not visible).
    seen = agreement.visible(0.5)
    assert dataclasses.astuple(seen) == (1, 2, 1, 0, 1) and not seen.full
    assert dataclasses.astuple(agreement.visible(0.2)) == (2, 2, 1, 1, 1)
    nothing = agreement.visible(0.6)
    assert dataclasses.astuple(nothing) == (0, 0, 0, 0, 0) and nothing.full


def test_visible_compares_float32_scores_in_float64():
    # float32(0.7) is 0.699999988...: below a min_score of 0.7 on both sides, as its value says (compared
    # in float32, 0.7 would round to the same float32 and count).
    low = np.float32(0.7)
    box = np.array([[0, 0, 10, 10]], np.float32)
    reference = Detections(1, box, np.array([low]), np.array([1]))
    run = Detections(1, box, np.array([low]), np.array([1]))
    agreement = match_detections(reference, run)
    assert agreement.matched == 1
    assert dataclasses.astuple(agreement.visible(0.7)) == (0, 0, 0, 0, 0)
    assert dataclasses.astuple(agreement.visible(float(low))) == (1, 1, 1, 0, 0)
