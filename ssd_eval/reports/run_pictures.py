"""A run's own pictures (`report` in a run config): its PR curve, and its worst images against the
ground truth, so that a user sees what the model misses.

Drawn at the end of every path that scores a run folder (run, resume, score, merge) and recorded in
metrics.json's `pictures`; summary.md names them. A picture that cannot be drawn (matplotlib
missing, an unreadable image) is a warning and a line in the report, never a failed run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ssd_eval.config.run import ReportConfig
from ssd_eval.data.dataset import CocoGroundTruth, load_checked
from ssd_eval.errors import DatasetError
from ssd_eval.files import PICTURES_DIR, PR_CURVE_FILE, atomic_writer, own_folder
from ssd_eval.pipeline.decode import Detections
from ssd_eval.reports import pictures, plots

log = logging.getLogger(__name__)


def worst_images(
    gt: CocoGroundTruth, detections: Mapping[int, Detections], *, min_score: float, count: int
) -> list[tuple[int, int]]:
    """(image id, missed ground-truth boxes + extra detections) of the `count` most wrong images, worst
    first (ties by id); images without a single miss are left out."""
    scored = []
    for image_id in gt.image_ids:
        found = detections.get(image_id)
        if found is None:  # skipped: its ground truth is missed, but there is no picture to draw
            continue
        truth = pictures.ground_truth_detections(gt.coco_json, image_id)
        wrong = pictures.misses(found, truth, min_score=min_score)
        if wrong:
            scored.append((image_id, wrong))
    return sorted(scored, key=lambda item: (-item[1], item[0]))[:count]


def draw_run_pictures(
    folder: Path,
    config: ReportConfig,
    gt: CocoGroundTruth,
    detections: Mapping[int, Detections],
    *,
    precision: np.ndarray | None,
    title: str,
) -> dict[str, Any]:
    """Draw what `config` asks into `folder`: what was drawn (names relative to the folder), or why not."""
    drawn: dict[str, Any] = {}
    if config.pr_curve:
        drawn.update(_pr_curve(folder, precision, title=f"{title}, {len(gt.images)} images"))
    if config.pictures:
        label_names = {int(c["id"]): str(c["name"]) for c in gt.coco_json["categories"]}
        records = {r.image_id: r for r in gt.images}
        files: list[str] = []
        not_drawn: list[str] = []
        worst = worst_images(gt, detections, min_score=config.min_score, count=config.pictures)
        _clear_pictures(folder)  # the pictures are of the detections scored now, not of an earlier scoring
        for rank, (image_id, _) in enumerate(worst, start=1):
            try:
                pixels = load_checked(gt, records[image_id]).pixels
            except DatasetError as exc:
                log.warning("picture of image %d not drawn: %s", image_id, exc)
                not_drawn.append(f"image {image_id}: {exc}")
                continue
            truth = pictures.ground_truth_detections(gt.coco_json, image_id)
            missed, extra = pictures.miss_counts(detections[image_id], truth, min_score=config.min_score)
            image = pictures.draw_misses(
                pixels,
                detections[image_id],
                truth,
                title=f"{title}, image {image_id}: {missed} of {len(truth)} ground-truth boxes missed, "
                f"{extra} extra detections",
                label_names=label_names,
                min_score=config.min_score,
                max_side=config.max_side,
            )
            path = own_folder(folder / PICTURES_DIR) / f"{rank:02d}-{image_id}.jpg"
            with atomic_writer(path) as handle:  # a link planted at `path` is replaced, never followed
                image.save(handle, format="JPEG", quality=85)
            files.append(str(path.relative_to(folder)))
        if not_drawn:
            # Said in the report: "none" would read as "nothing is missed" (give --data with the images).
            drawn["worst_images_not_drawn"] = not_drawn
        drawn["worst_images"] = files
        drawn["min_score"] = config.min_score
    return drawn


def _clear_pictures(folder: Path) -> None:
    """Remove the pictures an earlier scoring drew (a link under the folder's name goes, unfollowed)."""
    pictures_folder = folder / PICTURES_DIR
    if pictures_folder.is_symlink():
        pictures_folder.unlink()
    elif pictures_folder.is_dir():
        for old in pictures_folder.glob("*.jpg"):
            old.unlink()


def _pr_curve(folder: Path, precision: np.ndarray | None, *, title: str) -> dict[str, Any]:
    if not plots.matplotlib_available():
        log.warning("PR curve skipped: %s", plots.MATPLOTLIB_MISSING)
        return {"pr_curve": None, "pr_curve_note": plots.MATPLOTLIB_MISSING}
    if precision is None:
        return {"pr_curve": None, "pr_curve_note": "the scorer kept no precision array"}
    curves = {"this run": plots.curve_from_precision(precision)}
    plan = plots.plot_plan(curves)
    if plan.scale is None:
        return {"pr_curve": None, "pr_curve_note": plan.reason}
    plots.plot_pr_curves(curves, folder / PR_CURVE_FILE, title=title, scale=plan.scale)
    return {"pr_curve": PR_CURVE_FILE, "pr_curve_note": plan.reason}
