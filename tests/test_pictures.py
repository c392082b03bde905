"""The box pictures' decisions: which box is drawn as what, where labels go, how captions wrap.

No pixel is compared: the tests read the decisions the drawing follows (`side_boxes`,
`against_ground_truth`, `place_labels`, `wrap_text`, the Panel a drawing returns) and check that
files are produced.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ssd_eval.evaluation.agreement import match_detections
from ssd_eval.pipeline.decode import Detections
from ssd_eval.reports import pictures

NAMES = {1: "person", 18: "dog", 90: "toothbrush"}


def _dets(image_id: int, rows: list[tuple[float, float, float, float, int, float]]) -> Detections:
    boxes = np.asarray([r[:4] for r in rows], dtype=np.float64).reshape(-1, 4)
    return Detections(
        image_id,
        boxes,
        np.asarray([r[5] for r in rows], dtype=np.float64),
        np.asarray([r[4] for r in rows], dtype=np.int64),
    )


def _kinds(boxes: list[pictures.DrawnBox]) -> list[tuple[str, str]]:
    return [(b.kind, b.label) for b in boxes]


def test_comparison_sides_draw_matched_missing_and_extra():
    # Reference: a person (matched by the run), a dog the run lacks, a weak dog below min_score.
    ref = _dets(1, [(0, 0, 10, 10, 1, 0.9), (20, 20, 10, 10, 18, 0.8), (40, 40, 5, 5, 18, 0.1)])
    # Run: the same person, and a toothbrush the reference lacks.
    run = _dets(1, [(0, 0, 10, 10, 1, 0.85), (60, 0, 8, 8, 90, 0.7)])
    agreement = match_detections(ref, run)
    left = pictures.side_boxes(ref, agreement, side="reference", label_names=NAMES, min_score=0.3)
    right = pictures.side_boxes(run, agreement, side="run", label_names=NAMES, min_score=0.3)
    assert _kinds(left) == [("matched", ""), ("missing", "dog 0.80")]  # the 0.1 dog is not drawn
    assert _kinds(right) == [("matched", ""), ("extra", "toothbrush 0.70")]


def test_run_against_ground_truth_shows_what_the_model_misses():
    truth = _dets(3, [(0, 0, 20, 20, 1, 1.0), (50, 50, 20, 20, 18, 1.0)])
    # The person found, the dog missed (a detection 40 px away), a weak extra left out.
    found = _dets(3, [(1, 1, 20, 20, 1, 0.9), (90, 90, 20, 20, 18, 0.6), (0, 60, 5, 5, 90, 0.05)])
    boxes = pictures.against_ground_truth(found, truth, label_names=NAMES, min_score=0.3)
    assert _kinds(boxes) == [
        ("ground truth", ""),
        ("missing", "dog (missed)"),
        ("matched", ""),
        ("extra", "dog 0.60"),
    ]
    assert pictures.misses(found, truth, min_score=0.3) == 2
    assert pictures.misses(truth, truth, min_score=0.3) == 0


def test_ground_truth_is_drawn_first_and_unmatched_last():
    boxes = [
        pictures.DrawnBox((0, 0, 1, 1), "missing", "a", 0.5),
        pictures.DrawnBox((0, 0, 1, 1), "matched", "", 0.9),
        pictures.DrawnBox((0, 0, 1, 1), "ground truth"),
        pictures.DrawnBox((0, 0, 1, 1), "extra", "b", 0.4),
        pictures.DrawnBox((0, 0, 1, 1), "missing", "c", 0.9),
    ]
    order = [(b.kind, b.label) for b in pictures.draw_order(boxes)]
    assert order == [
        ("ground truth", ""),
        ("matched", ""),
        ("extra", "b"),
        ("missing", "a"),
        ("missing", "c"),
    ]


def _intersect(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_labels_of_a_dense_cluster_never_overlap():
    # 30 boxes stacked 3 px apart: every label wants the same place; none may overlap, all stay inside.
    boxes = [(100.0 + i * 3, 100.0 + i * 3, 160.0 + i * 3, 160.0 + i * 3) for i in range(30)]
    sizes = [(70, 16)] * len(boxes)
    places = pictures.place_labels(boxes, sizes, (400, 300))
    placed = [p for p in places if p is not None]
    assert len(placed) >= 3  # some fit around the cluster ...
    assert len(placed) < len(boxes)  # ... and the rest are thinned out, not stacked on top
    for a, b in itertools.combinations(placed, 2):
        assert not _intersect(a, b)
    for x1, y1, x2, y2 in placed:
        assert x1 >= 0 and x2 <= 400 and y1 >= 0 and y2 <= 300


def test_a_label_goes_above_its_box_when_free_else_inside_or_below():
    places = pictures.place_labels([(10, 50, 60, 90), (10, 50, 60, 90)], [(40, 12), (40, 12)], (200, 200))
    assert places[0] == (10, 38, 50, 50)  # above the top-left corner
    assert places[1] == (10, 50, 50, 62)  # taken: inside the box


def test_drawn_labels_do_not_overlap_and_the_count_left_out_is_told():
    pixels = np.full((300, 200, 3), 90, np.uint8)  # portrait
    ref = _dets(5, [(20 + i, 20 + i, 60, 60, 1, 0.9 - i / 100) for i in range(12)])
    run = Detections.empty(5)
    font = pictures.label_font(640)
    boxes = pictures.side_boxes(
        ref, match_detections(ref, run), side="reference", label_names=NAMES, min_score=0.3
    )
    panel = pictures.draw_panel(pixels, boxes, caption="cpu (reference), image 5", scale=640 / 300, font=font)
    for a, b in itertools.combinations(panel.labels, 2):
        assert not _intersect(a, b)
    assert panel.left_out == 12 - len(panel.labels) > 0
    assert f"{panel.left_out} label(s) left out" in " ".join(panel.caption)


def test_a_long_title_wraps_to_fit_a_portrait_panel():
    font = pictures.label_font(640)
    title = "ssd-12-int8.onnx on OpenVINOExecutionProvider, image 139: 17 missed or extra (boxes >= 0.3)"
    width = 300  # a portrait image drawn 640 px tall is about 300-430 px wide
    lines = pictures.wrap_text(title, font, width)
    assert len(lines) > 1 and " ".join(lines) == title
    assert all(pictures.text_size(line, font)[0] + 4 <= width for line in lines)
    # The drawn panel is exactly as wide as the image, its caption bar holding every line.
    panel = pictures.draw_panel(np.zeros((640, 300, 3), np.uint8), [], caption=title, scale=1.0, font=font)
    assert panel.image.width == 300 and panel.caption == tuple(lines)
    assert panel.image.height >= 640 + len(lines) * pictures.text_size("Ag", font)[1]


def test_a_word_wider_than_the_panel_is_cut():
    font = pictures.label_font(640)
    (line,) = pictures.wrap_text("x" * 200, font, 120)
    assert line.endswith("…") and pictures.text_size(line, font)[0] + 4 <= 120


@pytest.mark.parametrize("truth", [True, False])
def test_pictures_are_produced_with_a_legend(tmp_path, truth):
    pixels = np.full((90, 120, 3), 100, np.uint8)
    ref = _dets(1, [(4, 4, 30, 30, 1, 0.9)])
    run = _dets(1, [(60, 4, 20, 30, 1, 0.8)])
    image = pictures.draw_disagreement(
        pixels,
        ref,
        run,
        match_detections(ref, run),
        names=("cpu", "openvino"),
        label_names=NAMES,
        truth=ref if truth else None,
        max_side=320,
    )
    image.save(tmp_path / "d.jpg")
    assert image.width == 2 * 320 + pictures.GAP
    assert image.height > 240 + 40  # the image, its caption, the legend below
    single = pictures.draw_misses(pixels, run, ref, title="t", label_names=NAMES, max_side=320)
    single.save(tmp_path / "m.jpg")
    assert single.width == 320 and (tmp_path / "m.jpg").stat().st_size > 0


def test_a_matched_pair_is_drawn_on_both_sides_when_either_is_drawn():
    # The run's partner scores 0.2, under min_score: drawn all the same, so the pair shows on both sides.
    ref = _dets(2, [(0, 0, 10, 10, 1, 0.9), (30, 30, 10, 10, 1, 0.1)])
    run = _dets(2, [(0, 0, 10, 10, 1, 0.2), (30, 30, 10, 10, 1, 0.15)])
    agreement = match_detections(ref, run)
    right = pictures.side_boxes(run, agreement, side="run", label_names=NAMES, min_score=0.3)
    left = pictures.side_boxes(ref, agreement, side="reference", label_names=NAMES, min_score=0.3)
    assert _kinds(left) == _kinds(right) == [("matched", "")]  # the 0.1 / 0.15 pair is drawn on neither
    assert right[0].box == (0, 0, 10, 10)
