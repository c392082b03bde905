"""Compare finished run folders, wherever they ran: the one code path behind every comparison report.

Each folder is an ordinary run folder (`ssd-eval run`, a one-process comparison's `runs/<name>/`, or
`ssd-eval merge`). Its metrics.json gives the 12 COCO stats, per-category AP, latency, providers and
versions; its detection log gives the detections matched against the reference's
(`ssd_eval.evaluation.agreement`). Runs must share the image protocol and ground truth; another
model file, provider, machine or preprocessing is what a comparison is for, and is named.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ssd_eval.coco_stats import STAT_NAMES, is_undefined
from ssd_eval.config.compare import CompareSettings
from ssd_eval.config.run import RunConfig
from ssd_eval.config.schema import config_to_dict
from ssd_eval.config.strict_load import read_json_file
from ssd_eval.data.dataset import CocoGroundTruth, load_checked
from ssd_eval.engine.rescore import read_run
from ssd_eval.engine.run_folder import RunInfo, check_writable, load_run_config
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
from ssd_eval.evaluation.identity import Aspect, describe_differences
from ssd_eval.evaluation.scoring import CategoryScore, score
from ssd_eval.files import (
    DISAGREEMENTS_DIR,
    LOCK_FILE,
    PR_CURVES_FILE,
    RUNS_DIR,
    atomic_writer,
    own_folder,
    write_json_atomic,
)
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
    """One run folder as read back for a comparison, scored again from its detection log."""

    name: str
    folder: Path
    config: RunConfig
    info: RunInfo
    result: RunResult  # metrics.json, with the stats and per-category AP of the detection log
    detections: dict[int, Detections]
    gt: CocoGroundTruth
    warnings: tuple[str, ...] = ()  # e.g. a metrics.json that disagrees with the log


# Runs are compared on the same images of the same ground truth, decoded alike; another model file,
# provider, machine or preprocessing is what a comparison is for.
COMPARE_ASPECTS: tuple[Aspect, ...] = ("ground truth", "images", "shard", "decode")
_SAME = 1e-9  # scorers agree to 1e-12 (faster-coco-eval); a larger gap is another set of numbers


def load_finished_run(folder: Path, *, data: Path | None = None) -> FinishedRun:
    """A finished run folder: its config, identity, metrics.json and detections, its stats scored
    again from the detection log (metrics.json is only a record: the log is what was detected)."""
    if not folder.is_dir():
        raise ComparisonError(f"{folder} is not a run folder (no such folder)")
    metrics = folder / METRICS_FILE
    if not metrics.is_file():
        load_run_config(folder)  # a folder that is no run at all is refused as such (its one message)
        raise ComparisonError(
            f"{folder} has no {METRICS_FILE}: the run has not finished; finish it with "
            f"`ssd-eval run --resume {folder}` (if its log already holds every image, "
            f"`ssd-eval score {folder}` is enough)"
        )
    run = read_run(folder, data=data)
    rescore = f"rescore the run with `ssd-eval score {folder}`"
    recorded_json = read_json_file(metrics, advice=rescore)
    try:
        result = result_from_json(recorded_json, run.identity)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        raise OutputError(f"{metrics} is damaged; rescore the run with `ssd-eval score {folder}`") from None
    ordered = [run.detections[i] for i in run.gt.image_ids if i in run.detections]
    scores = score(
        run.gt.coco_json, ordered, image_ids=run.gt.image_ids, label_map=run.gt.label_map, backend="numpy"
    )
    warnings: list[str] = []
    recorded = result.stats
    if set(recorded) != set(scores.stats) or any(
        abs(recorded[k] - scores.stats[k]) > _SAME for k in scores.stats
    ):
        ap = recorded.get("AP")
        shown = f"AP {ap:.4f}" if isinstance(ap, float) else "its stats"
        warnings.append(
            f"{metrics} disagrees with its detection log ({shown} recorded, AP {scores.stats['AP']:.4f} "
            f"from the log): the comparison uses the log; re-score the run with `ssd-eval score {folder}`"
        )
        log.warning("%s", warnings[-1])
    result = replace(
        result,
        stats=scores.stats,
        per_category=scores.per_category,
        num_detections=scores.num_detections,
        skipped_images=tuple(run.skipped[i] for i in sorted(run.skipped)),
    )
    return FinishedRun(
        folder.name, folder, run.config, run.info, result, run.detections, run.gt, tuple(warnings)
    )


def check_comparable(runs: Sequence[FinishedRun]) -> None:
    """Refuse runs of other images, ground truth or decoding than the reference (the first)."""
    reference = runs[0]
    for run in runs[1:]:
        differences = run.result.identity.differences(reference.result.identity, COMPARE_ASPECTS)
        if differences:
            there = f"the reference {reference.folder}"
            raise ComparisonError(
                f"cannot compare {run.folder} with {reference.folder}: "
                f"{describe_differences(differences, str(run.folder), there)}; compare runs of the same "
                "images and ground truth (finish a run with `ssd-eval run --resume`, or point --data at "
                "the COCO root it used)"
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
    source = run.result.identity.source
    if not note and source is not None:
        note = f"imported: {source.describe()}"  # detections made elsewhere: say where
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
        # An undefined stat (-1) on either side has no delta: NaN, written as null in metrics.json.
        deltas={
            k: float("nan")
            if is_undefined(stats[k]) or is_undefined(ref_stats[k])
            else stats[k] - ref_stats[k]
            for k in STAT_NAMES
        },
        per_category=run.result.per_category,
        category_deltas=category_deltas(run.result.per_category, reference.result.per_category),
        agreement=(
            summarize_agreement(
                matched.items,
                iou_threshold=settings.agreement.iou_threshold,
                min_score=settings.agreement.min_score,
            )
            if matched is not None
            else None
        ),
        latency=_latency(run.result),
        num_detections=run.result.num_detections,
        wall_s=run.result.wall_s,
        worst_images=tuple((i, round(d, 6)) for i, d in matched.worst[:WORST_IMAGES]) if matched else (),
        versions=dict(run.result.versions),
        machine=dict(run.result.machine),
        warnings=(*run.result.warnings, *run.warnings),
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
    gt = ref.gt
    check_comparable(runs)
    check_writable(output)
    if (
        output.exists()
        and any(p.name not in (RUNS_DIR, LOCK_FILE) for p in output.iterdir())
        and not overwrite
    ):
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
        identity=ref.result.identity,
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
    from ssd_eval.reports.pictures import draw_disagreement, ground_truth_detections

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
            plan = plots.plot_plan(curves)
            if plan.scale is None:
                pictures["pr_curves"] = None
                pictures["pr_curves_absent"] = plan.reason
            else:
                path = folder / PR_CURVES_FILE
                title = f"{len(gt.images)} images, reference {result.reference}"
                plots.plot_pr_curves(curves, path, title=title, scale=plan.scale)
                pictures["pr_curves"] = path.name
                pictures["pr_curves_note"] = plan.reason
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
                image = draw_disagreement(
                    pixels,
                    reference.detections[image_id],
                    run.detections[image_id],
                    agreements[image_id],
                    names=(reference.name, run.name),
                    label_names=label_names,
                    truth=ground_truth_detections(gt.coco_json, image_id),
                    min_score=config.min_score,
                    max_side=config.max_side,
                )
                pictures_folder = own_folder(own_folder(folder / DISAGREEMENTS_DIR) / run.name)
                path = pictures_folder / f"{rank:02d}-{image_id}.jpg"
                with atomic_writer(path) as handle:
                    image.save(handle, format="JPEG", quality=90)
                files.append(str(path.relative_to(folder)))
            drawn[run.name] = files
        pictures["disagreements"] = drawn
        pictures["disagreement_min_score"] = config.min_score
    return pictures


def write_compare_metrics(path: Path, result: CompareResult) -> None:
    """The comparison's metrics.json, written atomically."""
    write_json_atomic(path, _finite(result.to_json()))


def _finite(value: Any) -> Any:
    """JSON has no infinity: relative differences against a zero reference are written as null."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
