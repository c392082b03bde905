"""Precision-recall curves of a run or of a comparison's runs (matplotlib, optional).

matplotlib is an optional extra (`pip install 'ssd_eval[plots]'`); without it the curves are skipped
and the report says so. Where precision stays low (a weak or random-weight model) the precision axis
is logarithmic, so the curve is still seen; where it is zero at every recall there is no curve, and
the report says why in one line. The box pictures are in `ssd_eval.reports.pictures`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ssd_eval.evaluation.scoring import detections_to_rows
from ssd_eval.files import atomic_writer
from ssd_eval.pipeline.decode import Detections

MATPLOTLIB_MISSING = "matplotlib is not installed (pip install 'ssd_eval[plots]')"


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
    return curve_from_precision(np.asarray(evaluator.eval["precision"])[:, :, :, 0, -1])


def curve_from_precision(precision: np.ndarray) -> PrCurve:
    """COCOeval's precision [IoU, recall, category] (area all, 100 detections; -1 where a category has
    no ground truth) as curves averaged over the categories with ground truth."""
    valid = (precision > -1).all(axis=(0, 1))
    precision = precision[:, :, valid] if valid.any() else np.zeros((10, 101, 1))
    return PrCurve(
        recall=np.linspace(0.0, 1.0, 101),
        precision_50=precision[0].mean(axis=1),
        precision_75=precision[5].mean(axis=1),
        precision_mean=precision.mean(axis=(0, 2)),
    )


LOW_PRECISION = 0.05  # below this everywhere, a linear axis shows a line on the floor: log scale


@dataclass(frozen=True)
class PlotPlan:
    """How a PR plot is drawn: on a linear or logarithmic precision axis, or not at all, and why."""

    scale: str | None  # "linear", "log", or None (no curve)
    reason: str = ""  # why the axis is logarithmic, or why there is no curve


def _peak(curve: PrCurve) -> float:
    return float(max(curve.precision_50.max(initial=0.0), curve.precision_mean.max(initial=0.0)))


def plot_plan(curves: Mapping[str, PrCurve]) -> PlotPlan:
    """Linear when some run reaches LOW_PRECISION; logarithmic when precision is low but not zero;
    no plot when every run's precision is zero at every recall (nothing matched at IoU 0.5)."""
    peak = max((_peak(c) for c in curves.values()), default=0.0)
    if peak <= 0.0:
        return PlotPlan(
            None,
            "no detection matches a ground-truth box at IoU 0.50 or above: precision is 0 at every recall",
        )
    if peak < LOW_PRECISION:
        return PlotPlan(
            "log",
            f"precision stays below {LOW_PRECISION} (highest {peak:.2g}): the precision axis is logarithmic",
        )
    return PlotPlan("linear")


def plot_pr_curves(curves: Mapping[str, PrCurve], path: Path, *, title: str, scale: str = "linear") -> None:
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
    if scale == "log":
        # Zeros (recall never reached) cannot be drawn on a log axis: the floor is a decade below the
        # smallest precision drawn.
        positive = [v for c in curves.values() for v in (*c.precision_50, *c.precision_mean) if v > 0]
        axis.set_yscale("log")
        axis.set_ylim(min(positive) / 10, 1.02)
        title += " (log scale: precision is low)"
    axis.set_title(f"Precision-recall: {title}", fontsize=11)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=9)
    figure.tight_layout()
    try:
        with atomic_writer(path) as handle:  # a link planted at `path` is replaced, never followed
            figure.savefig(handle, format="png", dpi=100)
    finally:
        plt.close(figure)
