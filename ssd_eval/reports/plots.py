"""Pictures for a comparison: PR curves per run (matplotlib, optional) and disagreement images (Pillow).

matplotlib is an optional extra (`pip install 'ssd_eval[plots]'`); without it the PR curves are
skipped and the report says so. The disagreement images need only Pillow: the reference's boxes on
the left, the run's on the right, drawn at a fixed size with labels scaled to it; unmatched boxes
(missing on the left, extra on the right) are red and labelled, matched ones thin green.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ssd_eval.evaluation.agreement import ImageAgreement
from ssd_eval.evaluation.scoring import detections_to_rows
from ssd_eval.files import atomic_writer
from ssd_eval.pipeline.decode import Detections

MATPLOTLIB_MISSING = "matplotlib is not installed (pip install 'ssd_eval[plots]')"

MATCHED = (40, 200, 80)
UNMATCHED = (230, 40, 40)


def matplotlib_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


@dataclass(frozen=True)
class PrCurve:
    """Precision at 101 recall points, averaged over the categories with ground truth."""

    recall: np.ndarray  # [101]
    precision_50: np.ndarray  # IoU 0.50
    precision_75: np.ndarray  # IoU 0.75
    precision_mean: np.ndarray  # averaged over IoU 0.50:0.95


def pr_curve(
    coco_json: Mapping[str, object], detections: Sequence[Detections], *, image_ids: Sequence[int]
) -> PrCurve:
    """COCOeval's precision array (area all, 100 detections) reduced to curves."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rows = detections_to_rows(detections)
    recall = np.linspace(0.0, 1.0, 101)
    if not len(rows):
        zero = np.zeros_like(recall)
        return PrCurve(recall, zero, zero, zero)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = dict(coco_json)
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(rows), iouType="bbox")
        evaluator.params.imgIds = sorted(int(i) for i in image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
    precision = np.asarray(evaluator.eval["precision"])[:, :, :, 0, -1]  # [iou, recall, category]
    valid = (precision > -1).all(axis=(0, 1))
    precision = precision[:, :, valid] if valid.any() else np.zeros((10, 101, 1))
    return PrCurve(
        recall=recall,
        precision_50=precision[0].mean(axis=1),
        precision_75=precision[5].mean(axis=1),
        precision_mean=precision.mean(axis=(0, 2)),
    )


FLAT_PRECISION = 0.01  # below this everywhere, a PR plot is a line on the axis: nothing to see


def all_flat(curves: Mapping[str, PrCurve]) -> bool:
    """True when no run reaches precision FLAT_PRECISION at any recall (a plot would say nothing)."""
    return all(
        float(max(c.precision_50.max(initial=0.0), c.precision_mean.max(initial=0.0))) < FLAT_PRECISION
        for c in curves.values()
    )


def plot_pr_curves(curves: Mapping[str, PrCurve], path: Path, *, title: str) -> None:
    """One plot, a colour per run: precision over recall, mean over IoU .50:.95 (solid) and at .50 (dashed).

    Later runs are drawn thinner on top of earlier ones, so identical curves stay visible as one line
    inside another instead of hiding each other.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7.5, 5.5))
    count = len(curves)
    for index, (name, curve) in enumerate(curves.items()):
        width = 1.2 + 2.4 * (count - 1 - index) / max(1, count - 1)
        (line,) = axis.plot(
            curve.recall, curve.precision_mean, linewidth=width, label=f"{name}, IoU 0.50:0.95"
        )
        axis.plot(
            curve.recall,
            curve.precision_50,
            linewidth=width,
            linestyle="--",
            color=line.get_color(),
            label=f"{name}, IoU 0.50",
        )
    axis.set(xlabel="recall", ylabel="precision (mean over categories)", xlim=(0, 1), ylim=(0, 1.02))
    axis.set_title(f"Precision-recall: {title}", fontsize=11)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=9)
    figure.tight_layout()
    try:
        with atomic_writer(path) as handle:
            figure.savefig(handle, format="png", dpi=100)
    finally:
        plt.close(figure)


def label_font(drawn_side: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """A font legible on an image drawn `drawn_side` pixels wide: about 1/40 of it, at least 12 px."""
    size = max(12, round(drawn_side / 40))
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow < 10.1 or without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _label(
    draw: ImageDraw.ImageDraw,
    xy: tuple[float, float],
    text: str,
    color: tuple[int, int, int],
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
) -> None:
    """White text on a filled box of the box's colour, inside the image."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    width, height = right - left + 4, bottom - top + 4
    image_width, image_height = draw.im.size
    x = min(max(0.0, xy[0]), max(0.0, image_width - width))
    y = xy[1] - height if xy[1] - height >= 0 else min(xy[1], max(0.0, image_height - height))
    draw.rectangle([x, y, x + width, y + height], fill=color)
    draw.text((x + 2 - left, y + 2 - top), text, fill=(255, 255, 255), font=font)


def _panel(
    pixels: np.ndarray,
    detections: Detections,
    matched: set[int],
    *,
    caption: str,
    label_names: Mapping[int, str],
    min_score: float,
    scale: float,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
) -> Image.Image:
    """One side: matched boxes thin green without labels, unmatched ones thick red with name and score."""
    height, width = pixels.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = Image.fromarray(np.ascontiguousarray(pixels)).resize(size, Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image)
    order = np.argsort(detections.scores)  # strongest drawn last, on top
    shown = [int(i) for i in order if float(detections.scores[i]) >= min_score]
    for index in [i for i in shown if i in matched] + [i for i in shown if i not in matched]:
        x, y, w, h = (detections.boxes[index] * scale).tolist()
        if index in matched:
            draw.rectangle([x, y, x + w, y + h], outline=MATCHED, width=2)
            continue
        draw.rectangle([x, y, x + w, y + h], outline=UNMATCHED, width=3)
        category = int(detections.category_ids[index])
        name = label_names.get(category, str(category))
        _label(draw, (x, y), f"{name} {float(detections.scores[index]):.2f}", UNMATCHED, font)
    bar = Image.new("RGB", (size[0], _text_height(caption, font) + 8), (0, 0, 0))
    ImageDraw.Draw(bar).text((4, 3), caption, fill=(255, 255, 255), font=font)
    panel = Image.new("RGB", (size[0], size[1] + bar.height), (0, 0, 0))
    panel.paste(bar, (0, 0))
    panel.paste(image, (0, bar.height))
    return panel


def _text_height(text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> int:
    return int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), text, font=font)[3])


def draw_disagreement(
    pixels: np.ndarray,
    reference: Detections,
    run: Detections,
    agreement: ImageAgreement,
    *,
    names: tuple[str, str],
    label_names: Mapping[int, str],
    min_score: float = 0.3,
    max_side: int = 640,
) -> Image.Image:
    """The reference's boxes (left) and the run's (right) on one image, drawn `max_side` pixels a side.

    Red, labelled: what one side has and the other lacks (missing on the left, extra on the right);
    green: matched. Only boxes scoring at least `min_score` are drawn.
    """
    height, width = pixels.shape[:2]
    scale = max_side / max(height, width)  # small images are enlarged, so labels stay in proportion
    font = label_font(max_side)
    ref_matched = set(agreement.pairs[:, 0].tolist())
    run_matched = set(agreement.pairs[:, 1].tolist())
    image_id = agreement.image_id
    left = _panel(
        pixels,
        reference,
        ref_matched,
        caption=f"{names[0]} (reference), image {image_id}: red = not in {names[1]}",
        label_names=label_names,
        min_score=min_score,
        scale=scale,
        font=font,
    )
    right = _panel(
        pixels,
        run,
        run_matched,
        caption=f"{names[1]}: red = not in {names[0]}; boxes scoring >= {min_score}",
        label_names=label_names,
        min_score=min_score,
        scale=scale,
        font=font,
    )
    canvas = Image.new("RGB", (left.width + right.width + 6, left.height), (255, 255, 255))
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width + 6, 0))
    return canvas
