"""Compare finished run folders, wherever they ran: the one code path behind every comparison report.

Each folder is an ordinary run folder (`ssd-eval run`, a one-process comparison's `runs/<name>/`, or
`ssd-eval merge`). Its metrics.json gives the 12 COCO stats, per-category AP, latency, providers and
versions; its detection log gives the detections matched against the reference's
(`ssd_eval.evaluation.agreement`). Runs must share the image protocol and ground truth; another
model file, provider, machine or preprocessing is what a comparison is for, and is named.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ssd_eval.coco_stats import STAT_NAMES
from ssd_eval.config.compare import CompareSettings
from ssd_eval.config.run import RunConfig
from ssd_eval.config.schema import config_to_dict
from ssd_eval.data.dataset import CocoGroundTruth, load_checked
from ssd_eval.engine.rescore import require_run_info, scoring_ground_truth, with_overrides
from ssd_eval.engine.run_folder import DETECTION_LOG, RunInfo, check_writable, load_run_config, parse_shard
from ssd_eval.errors import ComparisonError, DatasetError, OutputError
from ssd_eval.evaluation.agreement import (
    ImageAgreement,
    PairDifferences,
    disagreement,
    match_detections,
    pair_differences,
    summarize_agreement,
    visible_unmatched,
)
from ssd_eval.evaluation.detection_log import read_detection_log
from ssd_eval.evaluation.scoring import CategoryScore
from ssd_eval.pipeline.decode import Detections
from ssd_eval.reports.comparison import CategoryDelta, CompareResult, RunReport
from ssd_eval.reports.results import (
    METRICS_FILE,
    RunResult,
    SkippedImage,
    StageTiming,
    machine_info,
    package_versions,
    result_from_json,
)

log = logging.getLogger(__name__)

WORST_IMAGES = 10  # images listed per run in the report, worst disagreement first


@dataclass(frozen=True)
class FinishedRun:
    """One run folder as read back for a comparison."""

    name: str
    folder: Path
    config: RunConfig
    info: RunInfo
    result: RunResult
    detections: dict[int, Detections]


def load_finished_run(folder: Path, *, data: Path | None = None) -> FinishedRun:
    """A finished run folder: its config, run info, metrics.json and detections."""
    if not folder.is_dir():
        raise ComparisonError(f"{folder} is not a run folder (no such folder)")
    config = with_overrides(load_run_config(folder), backend=None, data=data)
    info = require_run_info(folder)
    metrics = folder / METRICS_FILE
    if not metrics.is_file():
        raise ComparisonError(
            f"{folder} has no {METRICS_FILE}: the run has not finished; finish it with "
            f"`ssd-eval run --resume {folder}` (or score it with `ssd-eval score {folder}`)"
        )
    try:
        result = result_from_json(json.loads(metrics.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise OutputError(f"{metrics} is damaged; rescore the run with `ssd-eval score {folder}`") from None
    # Every reader of a run's detections goes through detection_log's one function.
    detections = read_detection_log(folder / DETECTION_LOG)
    return FinishedRun(folder.name, folder, config, info, result, detections)


def _protocol_key(run: FinishedRun) -> dict[str, Any]:
    """What must be equal for two runs to be compared: which images, scored how."""
    p = run.result.protocol
    return {
        "selection": p.selection,
        "limit": p.limit,
        "shard": p.shard,
        "images scored": p.num_images,
        "images in the annotation file": p.total_images,
        "annotated images": p.annotated_images,
        "decode.clip_boxes": p.clip_boxes,
        "decode.score_threshold": p.score_threshold,
    }


def _evaluated_ids(run: FinishedRun) -> set[int]:
    return set(run.detections) | {s.image_id for s in run.result.skipped_images}


def check_comparable(runs: Sequence[FinishedRun], gt: CocoGroundTruth) -> None:
    """Refuse runs of another image protocol or ground truth than the reference (the first)."""
    reference = runs[0]
    want = _protocol_key(reference)
    want_gt = {c.category_id: c.num_gt for c in reference.result.per_category}
    for run in runs[1:]:
        for key, value in _protocol_key(run).items():
            if value != want[key]:
                raise ComparisonError(
                    f"cannot compare {run.folder} with {reference.folder}: {key} is {value!r} there but "
                    f"{want[key]!r} in the reference; compare runs of the same image protocol"
                )
        got_gt = {c.category_id: c.num_gt for c in run.result.per_category}
        if got_gt != want_gt:
            differ = sorted(k for k in set(got_gt) | set(want_gt) if got_gt.get(k) != want_gt.get(k))
            raise ComparisonError(
                f"cannot compare {run.folder} with {reference.folder}: their ground truth differs "
                f"(ground-truth box counts of category {differ[0]}: {got_gt.get(differ[0])} vs "
                f"{want_gt.get(differ[0])}); compare runs scored on the same annotation file"
            )
    wanted = set(gt.image_ids)
    for run in runs:
        evaluated = _evaluated_ids(run)
        if evaluated != wanted:
            odd = sorted(evaluated ^ wanted)
            raise ComparisonError(
                f"cannot compare {run.folder}: its evaluated images differ from the annotation file's "
                f"selection here ({len(odd)} differ, first: image {odd[0]}); finish the run with "
                f"`ssd-eval run --resume {run.folder}`, or point --data at the COCO root it used"
            )


def category_deltas(
    per_category: Sequence[CategoryScore], reference: Sequence[CategoryScore]
) -> tuple[CategoryDelta, ...]:
    """AP deltas of the categories with an AP on both sides, worst (most negative) first."""
    ref = {c.category_id: c for c in reference}
    deltas = []
    for c in per_category:
        r = ref.get(c.category_id)
        if r is None or r.ap is None or c.ap is None:
            continue
        deltas.append(CategoryDelta(c.category_id, c.name, c.num_gt, r.ap, c.ap, c.ap - r.ap))
    return tuple(sorted(deltas, key=lambda d: (d.delta, d.category_id)))


@dataclass(frozen=True)
class _Matched:
    """One run matched image by image with the reference."""

    items: list[tuple[ImageAgreement, PairDifferences]]
    worst: list[tuple[int, float]]  # images with a visible disagreement, worst first


def _match(
    reference: FinishedRun, run: FinishedRun, gt: CocoGroundTruth, settings: CompareSettings
) -> _Matched:
    items = []
    scored: list[tuple[int, float]] = []
    for record in gt.images:
        ref_dets = reference.detections.get(record.image_id)
        run_dets = run.detections.get(record.image_id)
        if ref_dets is None or run_dets is None:  # skipped by either: no detections to match
            continue
        agreement = match_detections(ref_dets, run_dets, iou_threshold=settings.agreement.iou_threshold)
        items.append(
            (
                agreement,
                pair_differences(ref_dets, run_dets, agreement, width=record.width, height=record.height),
            )
        )
        # Only a detection one side has and the other lacks, strong enough to be drawn, is worth a look.
        if visible_unmatched(ref_dets, run_dets, agreement, min_score=settings.pictures.min_score):
            scored.append((record.image_id, disagreement(ref_dets, run_dets, agreement)))
    worst = sorted(scored, key=lambda item: (-item[1], item[0]))
    return _Matched(items, worst)


def _latency(result: RunResult) -> dict[str, StageTiming]:
    """Steady-state inference (the first, warm-up inference apart) and decoding, from metrics.json."""
    names = {"infer": "infer_steady", "infer_first": "infer_first", "decode": "decode"}
    return {key: result.timings[stage] for key, stage in names.items() if stage in result.timings}


def _report(
    run: FinishedRun,
    reference: FinishedRun,
    matched: _Matched | None,
    settings: CompareSettings,
    note: str,
) -> RunReport:
    stats, ref_stats = run.result.stats, reference.result.stats
    requested = run.config.providers[0] if run.config.providers else None
    return RunReport(
        name=run.name,
        status="ran",
        provider=requested.name if requested else "",
        provider_options=dict(requested.options) if requested else {},
        note=note,
        run_dir=str(run.folder),
        providers_used=run.info.providers_used,
        provider_options_used=run.info.provider_options,
        model=run.info.model,
        preprocess=run.result.protocol.preprocess,
        input_size=run.info.input_size,
        stats=dict(stats),
        deltas={k: stats[k] - ref_stats[k] for k in STAT_NAMES},
        per_category=run.result.per_category,
        category_deltas=category_deltas(run.result.per_category, reference.result.per_category),
        agreement=(
            summarize_agreement(matched.items, iou_threshold=settings.agreement.iou_threshold)
            if matched is not None
            else None
        ),
        latency=_latency(run.result),
        num_detections=run.result.num_detections,
        worst_images=tuple((i, round(d, 6)) for i, d in matched.worst[:WORST_IMAGES]) if matched else (),
        versions=dict(run.result.versions),
        machine=dict(run.result.machine),
        warnings=tuple(run.result.warnings),
    )


def _unique_names(runs: Sequence[FinishedRun]) -> None:
    seen: dict[str, Path] = {}
    for run in runs:
        if run.name in seen:
            raise ComparisonError(
                f"two runs are named {run.name!r} ({seen[run.name]} and {run.folder}): a run is named by "
                "its folder, so rename one folder"
            )
        seen[run.name] = run.folder


def _order(runs: list[FinishedRun], reference: str | None) -> list[FinishedRun]:
    """The reference first (the first folder unless `--reference NAME`), then the others in order."""
    if reference is None:
        return runs
    for run in runs:
        if run.name == reference:
            return [run] + [r for r in runs if r is not run]
    names = ", ".join(r.name for r in runs)
    raise ComparisonError(f"--reference {reference!r} is none of the compared runs ({names})")


def compare_runs(
    folders: Sequence[Path],
    output: Path,
    *,
    settings: CompareSettings,
    reference: str | None = None,
    data: Path | None = None,
    notes: Mapping[str, str] | None = None,
    skipped_runs: Sequence[RunReport] = (),
    overwrite: bool = False,
) -> CompareResult:
    """Compare finished run folders with the reference; write the comparison's metrics.json and pictures."""
    start = time.perf_counter()
    if len(folders) + len(skipped_runs) < 2:
        raise ComparisonError("give at least two run folders: the reference and a run to compare with it")
    runs = _order([load_finished_run(Path(f), data=data) for f in folders], reference)
    _unique_names(runs)
    ref = runs[0]
    gt = scoring_ground_truth(ref.config, parse_shard(ref.info.shard) if ref.info.shard else None)
    check_comparable(runs, gt)
    check_writable(output)
    if output.exists() and any(p.name != "runs" for p in output.iterdir()) and not overwrite:
        raise OutputError(
            f"comparison folder {output} already exists: choose another --run-name or --output "
            "(or set output.overwrite: true)"
        )
    output.mkdir(parents=True, exist_ok=True)
    notes = notes or {}
    matched = {run.name: _match(ref, run, gt, settings) for run in runs[1:]}
    reports = [_report(ref, ref, None, settings, notes.get(ref.name, ""))]
    reports += [_report(run, ref, matched[run.name], settings, notes.get(run.name, "")) for run in runs[1:]]
    skipped_images: dict[int, SkippedImage] = {}
    for run in runs:
        skipped_images.update({s.image_id: s for s in run.result.skipped_images})
    result = CompareResult(
        out_dir=str(output),
        reference=ref.name,
        runs=(*reports, *skipped_runs),
        protocol=ref.result.protocol,
        iou_threshold=settings.agreement.iou_threshold,
        skipped_images=tuple(skipped_images[i] for i in sorted(skipped_images)),
        settings=config_to_dict(settings),
        versions=package_versions(),
        machine=machine_info(),
    )
    result = replace(result, pictures=_pictures(settings, gt, runs, matched, result, output))
    result = replace(result, wall_s=round(time.perf_counter() - start, 3))
    write_compare_metrics(output / METRICS_FILE, result)
    return result


def _pictures(
    settings: CompareSettings,
    gt: CocoGroundTruth,
    runs: Sequence[FinishedRun],
    matched: Mapping[str, _Matched],
    result: CompareResult,
    folder: Path,
) -> dict[str, Any]:
    """PR curves of every run on one plot (matplotlib, optional); the images with a visible disagreement."""
    from ssd_eval.reports import plots

    pictures: dict[str, Any] = {}
    config = settings.pictures
    if config.pr_curves:
        if plots.matplotlib_available():
            curves = {
                run.name: plots.pr_curve(
                    gt.coco_json,
                    [run.detections[i] for i in gt.image_ids if i in run.detections],
                    image_ids=gt.image_ids,
                )
                for run in runs
            }
            if plots.all_flat(curves):
                pictures["pr_curves"] = None
                pictures["pr_curves_absent"] = (
                    f"every run's precision is below {plots.FLAT_PRECISION} at every recall (a flat line)"
                )
            else:
                path = folder / "pr_curves.png"
                title = f"{len(gt.images)} images, reference {result.reference}"
                plots.plot_pr_curves(curves, path, title=title)
                pictures["pr_curves"] = path.name
        else:
            pictures["pr_curves"] = None
            pictures["pr_curves_absent"] = plots.MATPLOTLIB_MISSING
            log.warning("PR curves skipped: %s", plots.MATPLOTLIB_MISSING)
    if config.disagreements:
        reference = runs[0]
        label_names = {int(c["id"]): str(c["name"]) for c in gt.coco_json["categories"]}
        records = {r.image_id: r for r in gt.images}
        drawn: dict[str, list[str]] = {}
        for run in runs[1:]:
            agreements = {a.image_id: a for a, _ in matched[run.name].items}
            files = []
            for rank, (image_id, _) in enumerate(matched[run.name].worst[: config.disagreements], start=1):
                try:
                    pixels = load_checked(gt, records[image_id]).pixels
                except DatasetError as exc:
                    log.warning("disagreement picture of image %d not drawn: %s", image_id, exc)
                    continue
                image = plots.draw_disagreement(
                    pixels,
                    reference.detections[image_id],
                    run.detections[image_id],
                    agreements[image_id],
                    names=(reference.name, run.name),
                    label_names=label_names,
                    min_score=config.min_score,
                    max_side=config.max_side,
                )
                path = folder / "disagreements" / run.name / f"{rank:02d}-{image_id}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                image.save(path, quality=90)
                files.append(str(path.relative_to(folder)))
            drawn[run.name] = files
        pictures["disagreements"] = drawn
        pictures["disagreement_min_score"] = config.min_score
    return pictures


def write_compare_metrics(path: Path, result: CompareResult) -> None:
    """The comparison's metrics.json, written atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_finite(result.to_json()), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def _finite(value: Any) -> Any:
    """JSON has no infinity: relative differences against a zero reference are written as null."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
