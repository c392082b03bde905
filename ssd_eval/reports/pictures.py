"""Box pictures (Pillow): a comparison's disagreements, and a run's misses against the ground truth.

Every picture says what it shows with one vocabulary and legend: the ground truth as a thin cyan
outline; matched detections thin green, unlabelled; what is missing (a reference or ground-truth box
the other side lacks) red, and what is extra (a detection the other side lacks) amber, both thick and
labelled with name and score. Labels never overlap: each takes the first free place around its box
(above, inside, below), and a label with no free place is left out (the caption counts them).
Captions wrap to the panel's width, so a portrait image's title fits.

The decisions (which box is drawn how, where labels go, how a caption wraps) are plain functions
that the tests read; the drawing only follows them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ssd_eval.evaluation.agreement import ImageAgreement, match_detections
from ssd_eval.pipeline.decode import Detections

Kind = Literal["ground truth", "matched", "missing", "extra"]
Font = ImageFont.ImageFont | ImageFont.FreeTypeFont
Rect = tuple[float, float, float, float]  # x1, y1, x2, y2

COLOURS: dict[Kind, tuple[int, int, int]] = {
    "ground truth": (0, 220, 255),
    "matched": (40, 200, 80),
    "missing": (230, 40, 40),
    "extra": (255, 165, 0),
}
WIDTHS: dict[Kind, int] = {"ground truth": 1, "matched": 2, "missing": 3, "extra": 3}
# Backwards-compatible names: unmatched boxes of a disagreement picture are red on the reference side.
MATCHED = COLOURS["matched"]
UNMATCHED = COLOURS["missing"]
GAP = 6  # pixels between the panels of a comparison picture


@dataclass(frozen=True)
class DrawnBox:
    """One box of a picture: where (original image pixels, x y w h), drawn as what, labelled how."""

    box: tuple[float, float, float, float]
    kind: Kind
    label: str = ""  # empty: no label (ground truth and matched boxes)
    score: float = 1.0  # drawing order: the strongest last, on top


def label_font(drawn_side: int) -> Font:
    """A font legible on an image drawn `drawn_side` pixels wide: about 1/40 of it, at least 12 px."""
    size = max(12, round(drawn_side / 40))
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow < 10.1 or without FreeType: the fixed bitmap font
        return ImageFont.load_default()


_MEASURE = ImageDraw.Draw(Image.new("RGB", (1, 1)))


def text_size(text: str, font: Font) -> tuple[int, int]:
    """Width and height of a label's box (the text with 2 px of padding each side)."""
    left, top, right, bottom = _MEASURE.textbbox((0, 0), text, font=font)
    return int(right - left) + 4, int(bottom - top) + 4


def wrap_text(text: str, font: Font, width: int) -> list[str]:
    """`text` in lines no wider than `width` pixels (with 4 px margins), broken between words; a single
    word wider than that is cut with an ellipsis."""
    lines: list[str] = []
    for word in text.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and text_size(candidate, font)[0] + 4 <= width:
            lines[-1] = candidate
            continue
        while text_size(word, font)[0] + 4 > width and len(word) > 1:
            word = word[:-2] + "…"
        lines.append(word)
    return lines or [""]


def place_labels(
    boxes: Sequence[Rect], sizes: Sequence[tuple[int, int]], bounds: tuple[int, int]
) -> list[Rect | None]:
    """Where each box's label goes, in order (the first ones are placed first): above its top-left
    corner, else inside it, else below it, else above or below its right end, moved inside the image;
    the first place that overlaps no label placed before. None: no free place (the label is left out)."""
    width, height = bounds
    placed: list[Rect] = []
    result: list[Rect | None] = []
    for (x1, y1, x2, y2), (w, h) in zip(boxes, sizes, strict=True):
        spots = [(x1, y1 - h), (x1, y1), (x1, y2), (x2 - w, y1 - h), (x2 - w, y2), (x1, y2 - h)]
        chosen: Rect | None = None
        for x, y in spots:
            x = min(max(0.0, x), max(0.0, width - w))
            y = min(max(0.0, y), max(0.0, height - h))
            rect = (x, y, x + w, y + h)
            if not any(_overlap(rect, other) for other in placed):
                chosen = rect
                break
        if chosen is not None:
            placed.append(chosen)
        result.append(chosen)
    return result


def _overlap(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def ground_truth_detections(coco_json: Mapping[str, object], image_id: int) -> Detections:
    """An image's non-crowd ground-truth boxes as detections of score 1."""
    annotations = coco_json["annotations"]
    assert isinstance(annotations, list)
    mine = [a for a in annotations if a["image_id"] == image_id and not a.get("iscrowd", 0)]
    boxes = np.asarray([a["bbox"] for a in mine], dtype=np.float64).reshape(-1, 4)
    categories = np.asarray([a["category_id"] for a in mine], dtype=np.int64)
    return Detections(image_id, boxes, np.ones(len(mine)), categories)


def _box(row: np.ndarray) -> tuple[float, float, float, float]:
    x, y, w, h = (float(v) for v in row)
    return x, y, w, h


def _name(label_names: Mapping[int, str], category: int) -> str:
    return label_names.get(category, str(category))


def visible(detections: Detections, min_score: float) -> Detections:
    """The detections scoring at least `min_score` (those a picture draws)."""
    keep = np.flatnonzero(detections.scores >= min_score)
    return Detections(
        detections.image_id, detections.boxes[keep], detections.scores[keep], detections.category_ids[keep]
    )


def side_boxes(
    detections: Detections,
    agreement: ImageAgreement,
    *,
    side: Literal["reference", "run"],
    label_names: Mapping[int, str],
    min_score: float,
) -> list[DrawnBox]:
    """One side of a comparison: its matched detections green, the ones the other side lacks red
    (the reference's: missing in the run) or amber (the run's: extra). Drawn: what scores >= min_score,
    and a matched detection whose partner does (so that a pair is seen on both sides, not on one)."""
    column = 0 if side == "reference" else 1
    other = agreement.run_scores if side == "reference" else agreement.reference_scores
    partner_score = {
        int(pair[column]): float(other[pair[1 - column]]) if len(other) else 0.0 for pair in agreement.pairs
    }
    unmatched: Kind = "missing" if side == "reference" else "extra"
    drawn = []
    for index in range(len(detections)):
        score = float(detections.scores[index])
        box = _box(detections.boxes[index])
        if index in partner_score:
            if max(score, partner_score[index]) >= min_score:
                drawn.append(DrawnBox(box, "matched", score=score))
        elif score >= min_score:
            name = _name(label_names, int(detections.category_ids[index]))
            drawn.append(DrawnBox(box, unmatched, f"{name} {score:.2f}", score))
    return drawn


def against_ground_truth(
    detections: Detections,
    truth: Detections,
    *,
    label_names: Mapping[int, str],
    min_score: float,
    iou_threshold: float = 0.5,
) -> list[DrawnBox]:
    """A run against the ground truth: ground-truth boxes no detection (>= min_score) finds red and
    labelled, the others a thin outline; detections that match one green, the rest amber (extra)."""
    shown = visible(detections, min_score)
    agreement = match_detections(truth, shown, iou_threshold=iou_threshold)
    found = set(agreement.pairs[:, 0].tolist())
    drawn = []
    for index in range(len(truth)):
        box = _box(truth.boxes[index])
        if index in found:
            drawn.append(DrawnBox(box, "ground truth"))
        else:
            name = _name(label_names, int(truth.category_ids[index]))
            drawn.append(DrawnBox(box, "missing", f"{name} (missed)", 2.0))
    drawn += side_boxes(shown, agreement, side="run", label_names=label_names, min_score=min_score)
    return drawn


def miss_counts(
    detections: Detections, truth: Detections, *, min_score: float, iou_threshold: float = 0.5
) -> tuple[int, int]:
    """(ground-truth boxes no detection >= min_score finds, detections >= min_score matching none)."""
    agreement = match_detections(truth, visible(detections, min_score), iou_threshold=iou_threshold)
    return len(agreement.missing), len(agreement.extra)


def misses(detections: Detections, truth: Detections, *, min_score: float, iou_threshold: float = 0.5) -> int:
    """Ground-truth boxes missed plus extra detections (>= min_score): how wrong an image looks."""
    return sum(miss_counts(detections, truth, min_score=min_score, iou_threshold=iou_threshold))


def truth_outlines(truth: Detections) -> list[DrawnBox]:
    """The ground truth as thin outlines under a comparison's boxes."""
    return [DrawnBox(_box(b), "ground truth") for b in truth.boxes]


_ORDER: dict[Kind, int] = {"ground truth": 0, "matched": 1, "extra": 2, "missing": 3}


def draw_order(boxes: Sequence[DrawnBox]) -> list[DrawnBox]:
    """Ground truth first, then matched, then unmatched; within each, the strongest last (on top)."""
    return sorted(boxes, key=lambda b: (_ORDER[b.kind], b.score))


@dataclass(frozen=True)
class Panel:
    """A drawn panel and what its drawing decided (for the caption and the tests)."""

    image: Image.Image
    labels: tuple[Rect, ...]  # the labels' places, in panel-image pixels (below the caption)
    left_out: int  # labels with no free place
    caption: tuple[str, ...]  # the caption's lines


def draw_panel(
    pixels: np.ndarray, boxes: Sequence[DrawnBox], *, caption: str, scale: float, font: Font
) -> Panel:
    """The image scaled by `scale` with its boxes, under a caption wrapped to the panel's width."""
    height, width = pixels.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = (
        Image.fromarray(np.ascontiguousarray(pixels)).convert("RGB").resize(size, Image.Resampling.BILINEAR)
    )
    draw = ImageDraw.Draw(image)
    ordered = draw_order(boxes)
    for drawn in ordered:
        x, y, w, h = (v * scale for v in drawn.box)
        draw.rectangle([x, y, x + w, y + h], outline=COLOURS[drawn.kind], width=WIDTHS[drawn.kind])
    # Labels: the strongest unmatched first, so a crowded picture keeps the most telling ones.
    labelled = sorted((b for b in ordered if b.label), key=lambda b: (-_ORDER[b.kind], -b.score))
    rects: list[Rect] = [
        (b.box[0] * scale, b.box[1] * scale, (b.box[0] + b.box[2]) * scale, (b.box[1] + b.box[3]) * scale)
        for b in labelled
    ]
    sizes = [text_size(b.label, font) for b in labelled]
    places = place_labels(rects, sizes, size)
    for drawn, place in zip(labelled, places, strict=True):
        if place is None:
            continue
        draw.rectangle(list(place), fill=COLOURS[drawn.kind])
        left, top, _, _ = _MEASURE.textbbox((0, 0), drawn.label, font=font)
        draw.text((place[0] + 2 - left, place[1] + 2 - top), drawn.label, fill=(0, 0, 0), font=font)
    left_out = sum(p is None for p in places)
    text = caption + (f" ({left_out} label(s) left out where boxes crowd)" if left_out else "")
    lines = wrap_text(text, font, size[0])
    bar = _text_bar(lines, size[0], font)
    panel = Image.new("RGB", (size[0], size[1] + bar.height), (0, 0, 0))
    panel.paste(bar, (0, 0))
    panel.paste(image, (0, bar.height))
    return Panel(panel, tuple(p for p in places if p is not None), left_out, tuple(lines))


def _text_bar(lines: Sequence[str], width: int, font: Font) -> Image.Image:
    line_height = text_size("Ag", font)[1]
    bar = Image.new("RGB", (width, line_height * len(lines) + 6), (0, 0, 0))
    draw = ImageDraw.Draw(bar)
    for row, line in enumerate(lines):
        left, top, _, _ = _MEASURE.textbbox((0, 0), line, font=font)
        draw.text((4 - left, 3 + row * line_height - top), line, fill=(255, 255, 255), font=font)
    return bar


def legend(width: int, font: Font, entries: Sequence[tuple[Kind, str]]) -> Image.Image:
    """A white bar with a swatch and a word per kind of box, wrapped onto as many rows as it needs."""
    swatch = text_size("Ag", font)[1]
    rows: list[list[tuple[Kind, str]]] = [[]]
    used = 4
    for kind, text in entries:
        need = swatch + 4 + text_size(text, font)[0] + 12
        if rows[-1] and used + need > width:
            rows.append([])
            used = 4
        rows[-1].append((kind, text))
        used += need
    bar = Image.new("RGB", (width, (swatch + 6) * len(rows) + 4), (255, 255, 255))
    draw = ImageDraw.Draw(bar)
    for row, items in enumerate(rows):
        x, y = 4, 4 + row * (swatch + 6)
        for kind, text in items:
            draw.rectangle(
                [x, y + 2, x + swatch - 4, y + swatch - 2], outline=COLOURS[kind], width=max(2, WIDTHS[kind])
            )
            left, top, _, _ = _MEASURE.textbbox((0, 0), text, font=font)
            draw.text((x + swatch + 2 - left, y + 2 - top), text, fill=(0, 0, 0), font=font)
            x += swatch + 4 + text_size(text, font)[0] + 12
    return bar


def _stack(panels: Sequence[Image.Image], bottom: Image.Image | None) -> Image.Image:
    width = sum(p.width for p in panels) + GAP * (len(panels) - 1)
    height = max(p.height for p in panels) + (bottom.height if bottom is not None else 0)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    x = 0
    for panel in panels:
        canvas.paste(panel, (x, 0))
        x += panel.width + GAP
    if bottom is not None:
        canvas.paste(bottom, (0, height - bottom.height))
    return canvas


def draw_disagreement(
    pixels: np.ndarray,
    reference: Detections,
    run: Detections,
    agreement: ImageAgreement,
    *,
    names: tuple[str, str],
    label_names: Mapping[int, str],
    truth: Detections | None = None,
    min_score: float = 0.3,
    max_side: int = 640,
) -> Image.Image:
    """The reference's boxes (left) and the run's (right) on one image, drawn `max_side` pixels a side,
    over the ground truth's outlines, with a legend below. Only boxes scoring >= `min_score` are drawn."""
    height, width = pixels.shape[:2]
    scale = max_side / max(height, width)  # small images are enlarged, so labels stay in proportion
    font = label_font(max_side)
    outlines = truth_outlines(truth) if truth is not None else []
    image_id = agreement.image_id
    left = draw_panel(
        pixels,
        outlines
        + side_boxes(reference, agreement, side="reference", label_names=label_names, min_score=min_score),
        caption=f"{names[0]} (reference), image {image_id}",
        scale=scale,
        font=font,
    )
    right = draw_panel(
        pixels,
        outlines + side_boxes(run, agreement, side="run", label_names=label_names, min_score=min_score),
        caption=f"{names[1]}, image {image_id}",
        scale=scale,
        font=font,
    )
    entries: list[tuple[Kind, str]] = [
        ("matched", "matched"),
        ("missing", f"missing: {names[0]} has it, {names[1]} not"),
        ("extra", f"extra: {names[1]} has it, {names[0]} not"),
    ]
    if truth is not None:
        entries.insert(0, ("ground truth", "ground truth"))
    width_all = left.image.width + right.image.width + GAP
    key = legend(width_all, font, entries)
    text = f"Boxes scoring >= {min_score}, and the partners they are matched with (same category, IoU)."
    note = _text_bar(wrap_text(text, font, width_all), width_all, font)
    return _stack([left.image, right.image], _stack([key], note))


def draw_misses(
    pixels: np.ndarray,
    detections: Detections,
    truth: Detections,
    *,
    title: str,
    label_names: Mapping[int, str],
    min_score: float = 0.3,
    max_side: int = 640,
    iou_threshold: float = 0.5,
) -> Image.Image:
    """A run's detections (>= min_score) on one image against its ground truth, with a legend."""
    height, width = pixels.shape[:2]
    scale = max_side / max(height, width)
    font = label_font(max_side)
    boxes = against_ground_truth(
        detections, truth, label_names=label_names, min_score=min_score, iou_threshold=iou_threshold
    )
    panel = draw_panel(pixels, boxes, caption=title, scale=scale, font=font)
    key = legend(
        panel.image.width,
        font,
        [
            ("ground truth", "ground truth (found)"),
            ("matched", "detection matching it"),
            ("missing", "ground truth missed"),
            ("extra", f"extra detection (scores >= {min_score})"),
        ],
    )
    return _stack([panel.image], key)
