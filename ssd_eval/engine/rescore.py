"""Re-score a run folder from its detection log, without a model or an inference session.

`ssd-eval score RUN_DIR` reads `detections.jsonl`, `skipped.jsonl` and `run_info.json`, scores
with the run's scorer (or another one) and rewrites `metrics.json`; the stats equal the run's own
exactly, because the log holds bit-identical floats in the same order.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from ssd_eval.config.run import RunConfig
from ssd_eval.data.dataset import CocoGroundTruth, Shard, open_ground_truth
from ssd_eval.engine.resolve import resolve_data
from ssd_eval.engine.run_folder import (
    DETECTION_LOG,
    SKIPPED_LOG,
    RunInfo,
    load_run_config,
    parse_shard,
    read_run_info,
    read_skipped,
)
from ssd_eval.engine.runner import finish_run
from ssd_eval.errors import OutputError
from ssd_eval.evaluation.detection_log import read_detection_log
from ssd_eval.evaluation.scoring import ScoringBackend
from ssd_eval.pipeline.decode import Detections
from ssd_eval.reports.results import METRICS_FILE, RunResult, SkippedImage, StageTiming

log = logging.getLogger(__name__)


def with_overrides(config: RunConfig, *, backend: ScoringBackend | None, data: Path | None) -> RunConfig:
    """The run's config with another scorer and/or another COCO root (paths differ across machines)."""
    replace = dataclasses.replace
    if backend is not None:
        config = replace(config, scoring=replace(config.scoring, backend=backend))
    if data is not None:
        config = replace(config, dataset=replace(config.dataset, root=data.absolute(), source=None))
    return config


def require_run_info(folder: Path) -> RunInfo:
    info = read_run_info(folder)
    if info is None:
        raise OutputError(
            f"{folder} has no run_info.json: the run never reached its first image (or an older "
            "ssd_eval wrote it); rerun it"
        )
    return info


def scoring_ground_truth(config: RunConfig, shard: Shard | None) -> CocoGroundTruth:
    """The run's evaluated images from its annotation file; the images themselves are not needed."""
    annotation_file, image_dir = resolve_data(config)
    # Scoring reads no pixels: a machine that only has the annotation file can score and merge.
    folder = image_dir if image_dir.is_dir() else annotation_file.parent
    return open_ground_truth(
        annotation_file,
        folder,
        selection=config.dataset.selection,
        limit=config.dataset.limit,
        shard=shard,
    )


def check_complete(
    folder: Path, gt: CocoGroundTruth, detections: dict[int, Detections], skipped: dict[int, SkippedImage]
) -> None:
    missing = [i for i in gt.image_ids if i not in detections and i not in skipped]
    if missing:
        raise OutputError(
            f"{folder}: {len(missing)} of {len(gt.images)} images have no detections yet (first: image "
            f"{missing[0]}): finish the run with `ssd-eval run --resume {folder}`"
        )


def previous_timings(folder: Path) -> tuple[dict[str, StageTiming], float, float]:
    """Timings, wall time and throughput of the run's last metrics.json (empty if none)."""
    path = folder / METRICS_FILE
    if not path.is_file():
        return {}, 0.0, 0.0
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        timings = {k: StageTiming(**v) for k, v in data["timings"].items() if k != "score"}
        return timings, float(data["wall_s"]), float(data["images_per_s"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        log.warning("%s is damaged; its timings are not carried over", path)
        return {}, 0.0, 0.0


def rescore_run(
    folder: Path, *, backend: ScoringBackend | None = None, data: Path | None = None
) -> RunResult:
    """Score a finished run folder again and rewrite its metrics.json."""
    config = with_overrides(load_run_config(folder), backend=backend, data=data)
    info = require_run_info(folder)
    gt = scoring_ground_truth(config, parse_shard(info.shard) if info.shard else None)
    detections = read_detection_log(folder / DETECTION_LOG)
    skipped = read_skipped(folder / SKIPPED_LOG)
    check_complete(folder, gt, detections, skipped)
    timings, wall_s, images_per_s = previous_timings(folder)
    return finish_run(
        folder,
        config,
        gt,
        detections,
        skipped,
        info,
        timings=timings,
        wall_s=wall_s,
        images_per_s=images_per_s,
    )
