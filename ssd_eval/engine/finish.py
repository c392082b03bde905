"""The end of every path that scores a run folder (run, resume, score, merge): score its detections
and write detections.json, cocoeval.txt and metrics.json."""

from __future__ import annotations

import logging
import stat
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from ssd_eval.config.run import RunConfig
from ssd_eval.config.schema import config_to_dict
from ssd_eval.data.dataset import CocoGroundTruth
from ssd_eval.engine.run_folder import RunInfo, read_history, write_gate_baseline, writing
from ssd_eval.evaluation.detection_log import write_results_json
from ssd_eval.evaluation.identity import RunIdentity
from ssd_eval.evaluation.scoring import score
from ssd_eval.files import COCOEVAL_LOG, DETECTION_LOG, METRICS_FILE, RESULTS_FILE, write_text_atomic
from ssd_eval.pipeline.decode import Detections
from ssd_eval.pipeline.output_contract import detection_count_warning
from ssd_eval.reports.baseline import Baseline
from ssd_eval.reports.results import (
    RunResult,
    SkippedImage,
    StageTiming,
    machine_info,
    package_versions,
    write_metrics,
)
from ssd_eval.reports.run_pictures import draw_run_pictures
from ssd_eval.reports.verdict import Evaluation, gate_run

log = logging.getLogger(__name__)


def _is_newer_own_file(path: Path, than: Path) -> bool:
    """`path` is a regular file (not a link) at least as new as `than` (or `than` is missing)."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(info.st_mode):
        return False
    try:
        return info.st_mtime >= than.stat().st_mtime
    except FileNotFoundError:
        return True


def finish_run(
    folder: Path,
    config: RunConfig,
    gt: CocoGroundTruth,
    detections: Mapping[int, Detections],
    skipped: Mapping[int, SkippedImage],
    info: RunInfo,
    *,
    identity: RunIdentity,
    timings: dict[str, StageTiming],
    wall_s: float,
    images_per_s: float,
    warnings: Sequence[str] = (),
) -> RunResult:
    """Score a run's detections and write detections.json, cocoeval.txt and metrics.json. `warnings`:
    what the caller found worth saying (an import's images without records), beside the run's own."""
    log.info("scoring %d images with %s", len(gt.images), config.scoring.backend)
    ordered = [detections[i] for i in gt.image_ids if i in detections]
    score_start = time.perf_counter()
    scores = score(
        gt.coco_json,
        ordered,
        image_ids=gt.image_ids,
        label_map=gt.label_map,
        backend=config.scoring.backend,
    )
    timings = {**timings, "score": StageTiming.from_samples([time.perf_counter() - score_start])}
    # The COCO results file is derived from the log: rewritten when the log is newer, or when what is
    # there is not a regular file of the folder's own (a link is replaced, never followed).
    results_file = folder / RESULTS_FILE
    if not _is_newer_own_file(results_file, folder / DETECTION_LOG):
        with writing(results_file):
            write_results_json(results_file, ordered)
    with writing(folder / COCOEVAL_LOG):
        write_text_atomic(folder / COCOEVAL_LOG, scores.cocoeval_log)
    too_many = detection_count_warning({d.image_id: len(d) for d in ordered})
    warnings = [*warnings, *([too_many] if too_many else [])]
    for warning in warnings:
        log.warning("WARNING: %s", warning)
    result = RunResult(
        run_dir=str(folder),
        stats=scores.stats,
        per_category=scores.per_category,
        identity=identity,
        model=info.model,
        providers_requested=info.providers_requested,
        providers_used=info.providers_used,
        provider_options=info.provider_options,
        num_detections=scores.num_detections,
        timings=timings,
        wall_s=round(wall_s, 3),
        images_per_s=round(images_per_s, 4),
        skipped_images=tuple(skipped[i] for i in sorted(skipped)),
        warnings=tuple(warnings),
        config=config_to_dict(config),
        versions=package_versions(),
        machine=machine_info(),
        history=read_history(folder),
        pictures=draw_run_pictures(
            folder,
            config.report,
            gt,
            detections,
            precision=scores.precision,
            title=f"{Path(info.model.path).name} on {', '.join(info.providers_used)}",
        ),
    )
    with writing(folder / METRICS_FILE):
        write_metrics(folder / METRICS_FILE, result)
    return result


def gate_scored_run(
    result: RunResult, config: RunConfig, baseline: Baseline | None, *, verb: str
) -> Evaluation:
    """The verdict of a scored run, written into its folder with a copy of the baseline it was held
    against (metrics.json's gate, junit.xml, summary.md, gate_baseline.json)."""
    write_gate_baseline(Path(result.run_dir), baseline)
    return gate_run(result, config, baseline, verb=verb)
