"""Compare runs (providers, provider options, model variants) against one reference run.

Each image is decoded and preprocessed once and fed to every session; every run's detections are
scored with the same ground truth and matched to the reference's (`ssd_eval.evaluation.agreement`). The
result holds per run: the 12 COCO stats and their deltas, per-category AP deltas (worst first),
detection agreement, Polygraphy-style raw-output differences, latency and the providers that ran.
A run whose provider is unavailable is an error, or with `skip_unavailable` recorded as skipped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ssd_eval.coco_stats import STAT_NAMES
from ssd_eval.config.compare import CompareConfig, RunSpec, run_name
from ssd_eval.config.run import run_name_problem
from ssd_eval.config.schema import config_to_dict
from ssd_eval.data.dataset import CocoGroundTruth, load_checked, open_ground_truth
from ssd_eval.engine.run_folder import check_writable
from ssd_eval.engine.runner import Progress, ProgressFactory, prepare_image, resolve_assets
from ssd_eval.errors import ConfigError, DatasetError, OutputError, ProviderError
from ssd_eval.evaluation.agreement import (
    ImageAgreement,
    PairDifferences,
    disagreement,
    match_detections,
    pair_differences,
    summarize_agreement,
)
from ssd_eval.evaluation.detection_log import write_results_json
from ssd_eval.evaluation.scoring import CategoryScore, score
from ssd_eval.pipeline.decode import Detections, decode_image
from ssd_eval.pipeline.feeder import default_workers, ordered_map
from ssd_eval.pipeline.preprocess import HostPreprocessor, Normalization
from ssd_eval.pipeline.session import (
    PROVIDER_ALIASES,
    ProviderSession,
    canonical_provider_name,
    resolve_provider,
)
from ssd_eval.reports.comparison import CategoryDelta, CompareResult, RunReport
from ssd_eval.reports.gate import GateReport
from ssd_eval.reports.results import (
    METRICS_FILE,
    Protocol,
    SkippedImage,
    StageTiming,
    describe_model,
    machine_info,
    package_versions,
)

log = logging.getLogger(__name__)

COMPARE_CONFIG_FILE = "compare.yaml"


@dataclass(frozen=True)
class CompareOptions:
    """How to run a comparison beyond its config."""

    progress: ProgressFactory = Progress
    config_name: str = "compare"


@dataclass
class _Side:
    """One run while the loop goes (mutable; lives only inside `run_comparison`)."""

    spec: RunSpec
    name: str
    model: Path
    model_source: str | None
    session: ProviderSession | None = None
    skip_reason: str = ""
    detections: dict[int, Detections] = field(default_factory=dict)
    infer_s: list[float] = field(default_factory=list)
    decode_s: list[float] = field(default_factory=list)
    matches: list[tuple[ImageAgreement, PairDifferences]] = field(default_factory=list)
    disagreements: list[tuple[int, float]] = field(default_factory=list)


def compare_folder(config: CompareConfig, options: CompareOptions) -> Path:
    base = config.output.dir if config.output.dir is not None else Path.cwd() / "results"
    name = config.output.run_name or f"{options.config_name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    problem = run_name_problem(name)
    if problem is not None:
        raise ConfigError(f"output.run_name (or --run-name): {problem}")
    return base / name


def _provider_problem(spec: RunSpec, available: Sequence[str], all_known: Sequence[str]) -> str | None:
    """Why a run's provider cannot run here (None: available). An unknown name is always an error."""
    if canonical_provider_name(spec.provider.name, all_known) is None:
        aliases = ", ".join(sorted(PROVIDER_ALIASES))
        raise ProviderError(
            f"unknown execution provider {spec.provider.name!r}; short names: {aliases}; "
            f"available here: {', '.join(available)}"
        )
    try:
        resolve_provider(spec.provider.name, available=available, all_known=all_known)
    except ProviderError as exc:
        return str(exc)
    return None


def _unavailable(side: _Side, reason: str, *, skip: bool, key: str) -> None:
    if not skip:
        hint = "" if key == "reference" else "; or set skip_unavailable: true to record it as skipped"
        raise ProviderError(f"{key} ({side.name}): {reason}{hint}")
    log.warning("run %s skipped: %s", side.name, reason)
    side.skip_reason = reason


def run_comparison(config: CompareConfig, options: CompareOptions | None = None) -> CompareResult:
    """Run every configured session over the same images and compare each with the reference."""
    import onnxruntime as ort

    options = options or CompareOptions()
    folder = compare_folder(config, options)
    check_writable(folder)
    if folder.exists() and any(folder.iterdir()) and not config.output.overwrite:
        raise OutputError(
            f"comparison folder {folder} already exists: choose another --run-name "
            "or set output.overwrite: true"
        )
    sides: list[_Side] = []
    root: tuple[Path, Path] | None = None
    for spec in config.all_runs:
        assets = resolve_assets(config.run_config(spec))
        root = root or (assets.annotation_file, assets.image_dir)
        sides.append(_Side(spec, run_name(spec), assets.model, assets.model_source))
    assert root is not None  # there is always a reference
    available, all_known = ort.get_available_providers(), ort.get_all_providers()
    for index, side in enumerate(sides):
        key = "reference" if index == 0 else f"runs[{index - 1}]"
        problem = _provider_problem(side.spec, available, all_known)
        if problem is not None:
            _unavailable(side, problem, skip=config.skip_unavailable and index > 0, key=key)
    wall_start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        for index, side in enumerate(sides):
            if side.skip_reason:
                continue
            session = ProviderSession(
                side.model,
                (side.spec.provider,),
                config.session,
                input_name=(side.spec.model or config.model).input,
                outputs=(side.spec.model or config.model).outputs,
            )
            try:
                session.activate()
            except ProviderError as exc:
                key = "reference" if index == 0 else f"runs[{index - 1}]"
                _unavailable(side, str(exc), skip=config.skip_unavailable and index > 0, key=key)
                continue
            stack.callback(session.deactivate)
            side.session = session
        active = [s for s in sides if s.session is not None]
        input_size = _common_input_size(config, active)
        gt = open_ground_truth(
            root[0], root[1], selection=config.dataset.selection, limit=config.dataset.limit
        )
        try:
            folder.mkdir(parents=True, exist_ok=True)
            import yaml

            (folder / COMPARE_CONFIG_FILE).write_text(
                yaml.safe_dump(config_to_dict(config), sort_keys=False), encoding="utf-8"
            )
        except OSError as exc:
            raise OutputError(f"cannot write the comparison folder {folder}: {exc.strerror}") from None
        skipped = _loop(config, options, gt, active, input_size)
    wall = time.perf_counter() - wall_start
    reports = _reports(config, gt, sides, folder)
    result = CompareResult(
        out_dir=str(folder),
        reference=sides[0].name,
        runs=reports,
        protocol=Protocol.of(
            gt,
            dataset=config.dataset,
            decode=config.decode,
            preprocess=config.preprocess,
            shard=None,
            input_size=input_size,
        ),
        iou_threshold=config.agreement.iou_threshold,
        skipped_images=tuple(skipped),
        wall_s=round(wall, 3),
        config=config_to_dict(config),
        versions=package_versions(),
        machine=machine_info(),
    )
    result = replace(result, pictures=_pictures(config, gt, sides, result, folder))
    write_compare_metrics(folder / METRICS_FILE, result)
    return result


def _common_input_size(config: CompareConfig, active: Sequence[_Side]) -> tuple[int, int]:
    """The one input size every session accepts (the same tensor goes to all)."""
    sizes: dict[str, tuple[int | None, int | None]] = {}
    for side in active:
        signature = side.session.signature if side.session else None
        if signature is not None:
            sizes[side.name] = (signature.input_height, signature.input_width)
    if config.preprocess.size is not None:
        wanted = (config.preprocess.size, config.preprocess.size)
        for name, size in sizes.items():
            if None not in size and size != wanted:
                raise ConfigError(
                    f"preprocess.size {config.preprocess.size} does not match the input of run {name} "
                    f"({size[0]}x{size[1]}); remove preprocess.size to use the models' own size"
                )
        return wanted
    fixed = {name: s for name, s in sizes.items() if None not in s}
    if not fixed:
        raise ConfigError("the models have a symbolic input size: set preprocess.size in the config")
    distinct = set(fixed.values())
    if len(distinct) > 1:
        listed = ", ".join(f"{n} {s[0]}x{s[1]}" for n, s in fixed.items())
        raise ConfigError(
            f"the compared models take different input sizes ({listed}): one tensor is fed to every "
            "run, so compare models of the same input size"
        )
    height, width = distinct.pop()
    assert height is not None and width is not None
    return height, width


def _loop(
    config: CompareConfig,
    options: CompareOptions,
    gt: CocoGroundTruth,
    active: Sequence[_Side],
    input_size: tuple[int, int],
) -> list[SkippedImage]:
    """Every image: decode + preprocess once, infer + decode per run, match each run to the reference."""
    norm = Normalization.from_mean_std(config.preprocess.mean, config.preprocess.std)
    host = HostPreprocessor(config.preprocess.backend, input_size, norm)
    reference = active[0]
    skipped: list[SkippedImage] = []
    progress = options.progress(len(gt.images), 0, f"comparing {len(active)} runs")
    # The same feeder threads as a run: decode + preprocess ahead of inference, in image order.
    workers = config.preprocess.workers if config.preprocess.workers is not None else default_workers()
    feed = ordered_map(partial(prepare_image, gt, host), gt.images, workers=workers)
    try:
        with contextlib.closing(feed):
            for item in feed:
                record = item.record
                if item.error is not None or item.tensor is None:
                    if config.dataset.on_bad_image == "stop":
                        raise item.error or DatasetError(f"image {record.file_name} could not be prepared")
                    skipped.append(SkippedImage(record.image_id, record.file_name, str(item.error)))
                    log.warning(
                        "SKIPPED image %d: its ground truth counts as missed: %s", record.image_id, item.error
                    )
                    progress.update()
                    continue
                tensor = item.tensor
                for side in active:
                    assert side.session is not None
                    raw, seconds = side.session.infer(tensor)
                    side.infer_s.append(seconds)
                    start = time.perf_counter()
                    side.detections[record.image_id] = decode_image(raw, record, gt.label_map, config.decode)
                    side.decode_s.append(time.perf_counter() - start)
                ref_dets = reference.detections[record.image_id]
                for side in active[1:]:
                    run_dets = side.detections[record.image_id]
                    agreement = match_detections(
                        ref_dets, run_dets, iou_threshold=config.agreement.iou_threshold
                    )
                    diffs = pair_differences(
                        ref_dets, run_dets, agreement, width=record.width, height=record.height
                    )
                    side.matches.append((agreement, diffs))
                    side.disagreements.append((record.image_id, disagreement(ref_dets, run_dets, agreement)))
                progress.update()
    finally:
        progress.close()
    return skipped


def _latency(side: _Side) -> dict[str, StageTiming]:
    # The first inference includes provider warm-up (allocation, compilation): reported apart.
    return {
        "infer": StageTiming.from_samples(side.infer_s[1:] if len(side.infer_s) > 1 else side.infer_s),
        "infer_first": StageTiming.from_samples(side.infer_s[:1]),
        "decode": StageTiming.from_samples(side.decode_s),
    }


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


def _reports(
    config: CompareConfig, gt: CocoGroundTruth, sides: Sequence[_Side], folder: Path
) -> tuple[RunReport, ...]:
    reports: list[RunReport] = []
    ref_scores = None
    for index, side in enumerate(sides):
        base = RunReport(
            name=side.name,
            status="ran" if side.session is not None else "skipped",
            provider=side.spec.provider.name,
            provider_options=dict(side.spec.provider.options),
            note=side.spec.note,
            skip_reason=side.skip_reason,
        )
        if side.session is None:
            reports.append(base)
            continue
        detections = [side.detections[i] for i in gt.image_ids if i in side.detections]
        scores = score(gt.coco_json, detections, image_ids=gt.image_ids, label_map=gt.label_map)
        run_dir = folder / "runs" / side.name
        run_dir.mkdir(parents=True, exist_ok=True)
        write_results_json(run_dir / "detections.json", detections)
        (run_dir / "cocoeval.txt").write_text(scores.cocoeval_log, encoding="utf-8")
        if index == 0:
            ref_scores = scores
        assert ref_scores is not None
        worst = sorted(side.disagreements, key=lambda item: (-item[1], item[0]))
        reports.append(
            replace(
                base,
                providers_used=side.session.providers_used,
                provider_options_used=side.session.provider_options_used,
                model=describe_model(side.model, side.model_source),
                stats=scores.stats,
                deltas={k: scores.stats[k] - ref_scores.stats[k] for k in STAT_NAMES},
                per_category=scores.per_category,
                category_deltas=category_deltas(scores.per_category, ref_scores.per_category),
                agreement=(
                    summarize_agreement(side.matches, iou_threshold=config.agreement.iou_threshold)
                    if index > 0
                    else None
                ),
                latency=_latency(side),
                num_detections=scores.num_detections,
                worst_images=tuple((i, round(d, 6)) for i, d in worst[:10] if d > 0),
            )
        )
    return tuple(reports)


def _pictures(
    config: CompareConfig, gt: CocoGroundTruth, sides: Sequence[_Side], result: CompareResult, folder: Path
) -> dict[str, Any]:
    """PR curves (matplotlib, optional) and the images where runs disagree most (Pillow)."""
    from ssd_eval.reports import plots

    pictures: dict[str, Any] = {}
    ran = [s for s in sides if s.session is not None]
    if config.pictures.pr_curves:
        if plots.matplotlib_available():
            curves = {
                s.name: plots.pr_curve(
                    gt.coco_json,
                    [s.detections[i] for i in gt.image_ids if i in s.detections],
                    image_ids=gt.image_ids,
                )
                for s in ran
            }
            path = folder / "pr_curves.png"
            plots.plot_pr_curves(curves, path, title=f"{len(gt.images)} images, reference {result.reference}")
            pictures["pr_curves"] = path.name
        else:
            pictures["pr_curves"] = None
            pictures["pr_curves_absent"] = plots.MATPLOTLIB_MISSING
            log.warning("PR curves skipped: %s", plots.MATPLOTLIB_MISSING)
    if config.pictures.disagreements:
        drawn: dict[str, list[str]] = {}
        reference = ran[0]
        label_names = {int(c["id"]): str(c["name"]) for c in gt.coco_json["categories"]}
        for side in ran[1:]:
            report = result.run(side.name)
            files = []
            for rank, (image_id, _) in enumerate(
                report.worst_images[: config.pictures.disagreements], start=1
            ):
                record = next(r for r in gt.images if r.image_id == image_id)
                agreement = next(a for a, _ in side.matches if a.image_id == image_id)
                image = plots.draw_disagreement(
                    load_checked(gt, record).pixels,
                    reference.detections[image_id],
                    side.detections[image_id],
                    agreement,
                    names=(reference.name, side.name),
                    label_names=label_names,
                    min_score=config.pictures.min_score,
                    max_side=config.pictures.max_side,
                )
                path = folder / "disagreements" / side.name / f"{rank:02d}-{image_id}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                image.save(path, quality=90)
                files.append(str(path.relative_to(folder)))
            drawn[side.name] = files
        pictures["disagreements"] = drawn
    return pictures


def record_compare_gate(result: CompareResult, report: GateReport) -> CompareResult:
    updated = replace(result, gate=report.to_json())
    write_compare_metrics(Path(result.out_dir) / METRICS_FILE, updated)
    return updated


def write_compare_metrics(path: Path, result: CompareResult) -> None:
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
