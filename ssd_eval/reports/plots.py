"""Pictures for a comparison: PR curves per run (matplotlib, optional) and disagreement images (Pillow).

matplotlib is an optional extra (`pip install 'ssd_eval[plots]'`); without it the PR curves are
skipped and the report says so. The disagreement images need only Pillow: the reference's boxes on
the left, the run's on the right; unmatched boxes (missing on the left, extra on the right) are red,
matched ones green.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ssd_eval.evaluation.agreement import ImageAgreement
from ssd_eval.evaluation.scoring import detections_to_rows
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


def plot_pr_curves(curves: Mapping[str, PrCurve], path: Path, *, title: str) -> None:
    """One PNG: PR curves of every run at IoU 0.50 and averaged over 0.50:0.95."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for name, curve in curves.items():
        axes[0].plot(curve.recall, curve.precision_50, label=name)
        axes[1].plot(curve.recall, curve.precision_mean, label=name)
    for axis, subtitle in zip(axes, ("IoU 0.50", "mean over IoU 0.50:0.95"), strict=True):
        axis.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=subtitle)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(f"Precision-recall (mean over categories): {title}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _panel(
    pixels: np.ndarray,
    detections: Detections,
    matched: set[int],
    *,
    caption: str,
    label_names: Mapping[int, str],
    min_score: float,
    scale: float,
) -> Image.Image:
    height, width = pixels.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = Image.fromarray(np.ascontiguousarray(pixels)).resize(size, Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image)
    order = np.argsort(detections.scores)  # strongest drawn last, on top
    for index in order:
        score = float(detections.scores[index])
        if score < min_score:
            continue
        x, y, w, h = (detections.boxes[index] * scale).tolist()
        color = MATCHED if int(index) in matched else UNMATCHED
        draw.rectangle([x, y, x + w, y + h], outline=color, width=2)
        name = label_names.get(int(detections.category_ids[index]), str(int(detections.category_ids[index])))
        draw.text((x + 2, y + 1), f"{name} {score:.2f}", fill=color)
    draw.rectangle([0, 0, size[0], 14], fill=(0, 0, 0))
    draw.text((3, 1), caption, fill=(255, 255, 255))
    return image


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
    """The reference's boxes (left) and the run's (right) on one image; unmatched in red."""
    height, width = pixels.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    ref_matched = set(agreement.pairs[:, 0].tolist())
    run_matched = set(agreement.pairs[:, 1].tolist())
    left = _panel(
        pixels,
        reference,
        ref_matched,
        caption=f"{names[0]} (reference): {len(agreement.missing)} missing in {names[1]}",
        label_names=label_names,
        min_score=min_score,
        scale=scale,
    )
    right = _panel(
        pixels,
        run,
        run_matched,
        caption=f"{names[1]}: {len(agreement.extra)} extra; image {agreement.image_id}, score >= {min_score}",
        label_names=label_names,
        min_score=min_score,
        scale=scale,
    )
    canvas = Image.new("RGB", (left.width + right.width + 6, left.height), (255, 255, 255))
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width + 6, 0))
    return canvas
