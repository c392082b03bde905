"""One evaluation run: config -> dataset -> preprocess -> session -> decode -> evaluator -> result.

Everything that can be checked cheaply (config, paths, output folder, model signature, annotation
file) is checked before the first image is decoded. Detections are appended to the run folder as
they are produced, so an interrupted run loses nothing and continues with `resume`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from pathlib import Path

import numpy as np

from ssd_eval.config.run import RunConfig, run_name_problem
from ssd_eval.config.schema import config_to_dict
from ssd_eval.data.dataset import CocoGroundTruth, ImageRecord, Shard, load_checked, open_ground_truth
from ssd_eval.engine.run_folder import (
    COCOEVAL_LOG,
    DETECTION_LOG,
    RESULTS_FILE,
    SKIPPED_LOG,
    RunInfo,
    append_skipped,
    check_run_folder_free,
    check_writable,
    locked_run_folder,
    parse_shard,
    prepare_run_folder,
    read_run_info,
    write_run_info,
)
from ssd_eval.errors import ConfigError, DatasetError, ModelError
from ssd_eval.evaluation.detection_log import (
    DetectionLog,
    read_detection_log,
    truncate_torn_tail,
    write_results_json,
)
from ssd_eval.evaluation.scoring import score
from ssd_eval.pipeline.decode import Detections, decode_image
from ssd_eval.pipeline.feeder import default_workers, ordered_map
from ssd_eval.pipeline.graph_preprocess import GraphPreprocessor
from ssd_eval.pipeline.output_contract import detection_count_warning
from ssd_eval.pipeline.preprocess import HostPreprocessor, Normalization
from ssd_eval.pipeline.session import ProviderSession
from ssd_eval.reports.results import (
    METRICS_FILE,
    Protocol,
    RunResult,
    SkippedImage,
    StageTiming,
    describe_model,
    machine_info,
    package_versions,
    write_metrics,
)

log = logging.getLogger(__name__)

ProgressFactory = Callable[[int, int, str], "Progress"]


class Progress:
    """What the runner tells about its progress; the CLI supplies a tqdm-backed one."""

    def __init__(self, total: int = 0, initial: int = 0, description: str = "") -> None:
        """A silent progress report."""

    def update(self, count: int = 1) -> None:
        """`count` more images are done."""

    def close(self) -> None:
        """The loop is over."""


@dataclass(frozen=True)
class RunOptions:
    """How to run, beyond the config: where the run folder is and whether it continues."""

    resume: bool = False
    shard: Shard | None = None
    progress: ProgressFactory = Progress
    config_name: str = "run"
    # Told the run folder once it is locked (the CLI names it when the run is interrupted).
    on_folder: Callable[[Path], None] | None = None


@dataclass(frozen=True)
class ResolvedAssets:
    """Concrete files for the model and data named by a config."""

    model: Path
    model_source: str | None
    annotation_file: Path
    image_dir: Path


@dataclass
class _StageClock:
    """Per-image seconds of each stage (mutable; lives only inside one run)."""

    samples: dict[str, list[float]] = field(
        default_factory=lambda: {"read": [], "preprocess": [], "infer": [], "decode": [], "write": []}
    )

    def add(self, stage: str, seconds: float) -> None:
        # read/preprocess are per-image work in the feeder threads; `wait` is the time inference
        # waited for them (near zero when the feed keeps up); `preprocess_graph` the in-graph part.
        self.samples.setdefault(stage, []).append(seconds)

    def summary(self) -> dict[str, StageTiming]:
        timings = {stage: StageTiming.from_samples(values) for stage, values in self.samples.items()}
        # The first inference includes provider warm-up (allocation, kernel selection): report it apart.
        infer = self.samples["infer"]
        timings["infer_first"] = StageTiming.from_samples(infer[:1])
        timings["infer_steady"] = StageTiming.from_samples(infer[1:])
        return timings


def resolve_assets(config: RunConfig, *, progress: bool = True) -> ResolvedAssets:
    """Model and data files for a config, fetching known sources into the cache when allowed."""
    if config.model.path is not None:
        model, model_source = config.model.path, None
    else:
        model, model_source = _model_from_source(config, progress=progress), config.model.source
    root = config.dataset.root
    if root is None:
        root = _data_from_source(config, progress=progress)
    return ResolvedAssets(
        model=model,
        model_source=model_source,
        annotation_file=root / config.dataset.annotations,
        image_dir=root / config.dataset.images,
    )


def resolve_data(config: RunConfig, *, progress: bool = True) -> tuple[Path, Path]:
    """The annotation file and image folder of a config (no model involved)."""
    root = config.dataset.root
    if root is None:
        root = _data_from_source(config, progress=progress)
    return root / config.dataset.annotations, root / config.dataset.images


def _cache_dir(config: RunConfig) -> Path:
    from ssd_eval.assets.fetch import cache_home

    return cache_home(config.assets.cache)


def _model_from_source(config: RunConfig, *, progress: bool) -> Path:
    source = str(config.model.source)
    cache = _cache_dir(config)
    if source.startswith("twin-"):
        from ssd_eval.twin.model import ensure_twin

        size_text = source.removeprefix("twin-")
        if not size_text.isdigit():
            raise ConfigError(f"model.source {source!r}: a twin is named twin-<image size>, e.g. twin-1200")
        return ensure_twin(int(size_text), 0, cache / "twins")
    from ssd_eval.assets.fetch import downloads_allowed, ensure_model

    return ensure_model(
        source,
        cache=cache,
        allow_download=downloads_allowed(config.assets.download),
        mirror=config.assets.mirror,
        progress=progress,
    )


def _data_from_source(config: RunConfig, *, progress: bool) -> Path:
    source = str(config.dataset.source)
    cache = _cache_dir(config)
    if source.startswith("synthetic-"):
        from ssd_eval.twin.synthetic import ensure_synthetic_dataset

        return ensure_synthetic_dataset(source, cache=cache)
    if source != "coco-val2017":
        raise ConfigError(f"dataset.source {source!r} is not known (known: coco-val2017, synthetic-<size>)")
    from ssd_eval.assets.fetch import downloads_allowed, ensure_coco_val2017

    return ensure_coco_val2017(
        cache=cache,
        allow_download=downloads_allowed(config.assets.download),
        mirror=config.assets.mirror,
        progress=progress,
    )


def run_folder(config: RunConfig, options: RunOptions) -> Path:
    """`<output.dir>/<run_name>`; the default name says what ran and when."""
    base = config.output.dir if config.output.dir is not None else Path.cwd() / "results"
    name = config.output.run_name
    if name is None:
        provider = config.providers[0].name.lower().removesuffix("executionprovider")
        shard = f"-shard{options.shard.index + 1}of{options.shard.count}" if options.shard else ""
        name = f"{options.config_name}-{provider}{shard}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    problem = run_name_problem(name)
    if problem is not None:
        raise ConfigError(f"output.run_name (or --run-name): {problem}")
    return base / name


def run_evaluation(config: RunConfig, options: RunOptions | None = None) -> RunResult:
    """Evaluate the configured model on the configured images and write the run folder."""
    options = options or RunOptions()
    folder = run_folder(config, options)
    check_writable(folder)
    check_run_folder_free(folder, config, resume=options.resume)
    with locked_run_folder(folder):
        if options.on_folder is not None:
            options.on_folder(folder)
        return _run_locked(folder, config, options)


def _run_locked(folder: Path, config: RunConfig, options: RunOptions) -> RunResult:
    """The run itself, while this process holds the run folder's lock."""
    previous = read_run_info(folder) if options.resume else None
    if previous is not None and previous.shard is not None:
        if options.shard is None:
            options = replace(options, shard=parse_shard(previous.shard))
        elif str(options.shard) != previous.shard:
            raise ConfigError(
                f"--shard {options.shard} differs from the shard {previous.shard} that {folder} was "
                f"started with: resume it with --shard {previous.shard} (or without --shard)"
            )
    assets = resolve_assets(config)
    wall_start = time.perf_counter()
    with ProviderSession(
        assets.model,
        config.providers,
        config.session,
        input_name=config.model.input,
        outputs=config.model.outputs,
    ) as session:
        signature = session.signature
        assert signature is not None  # set by activate()
        input_size = _input_size(config, signature.input_height, signature.input_width, assets.model)
        gt = open_ground_truth(
            assets.annotation_file,
            assets.image_dir,
            selection=config.dataset.selection,
            limit=config.dataset.limit,
            shard=options.shard,
        )
        model_info = describe_model(assets.model, assets.model_source)
        if previous is not None and previous.model.sha256 != model_info.sha256:
            raise ModelError(
                f"{folder} was started with model sha256 {previous.model.sha256[:12]}… but "
                f"{assets.model} has sha256 {model_info.sha256[:12]}…: resume with the same model file, "
                "or start a new run"
            )
        prepare_run_folder(folder, config, resume=options.resume)
        info = RunInfo(
            model=model_info,
            input_size=input_size,
            shard=str(options.shard) if options.shard else None,
            providers_requested=tuple(p.name for p in config.providers),
            providers_used=session.providers_used,
            provider_options=session.provider_options_used,
        )
        write_run_info(folder, info)
        detections, skipped, clock = _infer_all(config, options, session, gt, input_size, folder)
    timings = clock.summary()
    wall = time.perf_counter() - wall_start
    inferred = len(clock.samples["infer"])
    return finish_run(
        folder,
        config,
        gt,
        detections,
        skipped,
        info,
        timings=timings,
        wall_s=wall,
        images_per_s=inferred / wall if wall > 0 else 0.0,
    )


def finish_run(
    folder: Path,
    config: RunConfig,
    gt: CocoGroundTruth,
    detections: Mapping[int, Detections],
    skipped: Mapping[int, SkippedImage],
    info: RunInfo,
    *,
    timings: dict[str, StageTiming],
    wall_s: float,
    images_per_s: float,
) -> RunResult:
    """Score a run's detections and write detections.json, cocoeval.txt and metrics.json."""
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
    # The COCO results file is derived from the log: rewritten only when the log is newer.
    results_file, log_file = folder / RESULTS_FILE, folder / DETECTION_LOG
    log_mtime = log_file.stat().st_mtime if log_file.is_file() else 0.0
    if not results_file.is_file() or results_file.stat().st_mtime < log_mtime:
        write_results_json(results_file, ordered)
    (folder / COCOEVAL_LOG).write_text(scores.cocoeval_log, encoding="utf-8")
    warnings = [w for w in (detection_count_warning({d.image_id: len(d) for d in ordered}),) if w]
    for warning in warnings:
        log.warning("WARNING: %s", warning)
    result = RunResult(
        run_dir=str(folder),
        stats=scores.stats,
        per_category=scores.per_category,
        protocol=Protocol.of(
            gt,
            dataset=config.dataset,
            decode=config.decode,
            preprocess=config.preprocess,
            shard=info.shard,
            input_size=info.input_size,
        ),
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
    )
    write_metrics(folder / METRICS_FILE, result)
    return result


def _input_size(config: RunConfig, height: int | None, width: int | None, model: Path) -> tuple[int, int]:
    if config.preprocess.size is not None:
        if height is not None and width is not None and (height, width) != (config.preprocess.size,) * 2:
            raise ConfigError(
                f"preprocess.size {config.preprocess.size} does not match the input of {model} "
                f"({height}x{width}); remove preprocess.size to use the model's own size"
            )
        return config.preprocess.size, config.preprocess.size
    if height is None or width is None:
        raise ConfigError(f"model {model} has a symbolic input size: set preprocess.size in the config")
    return height, width


@dataclass(frozen=True)
class Prepared:
    """One image after the workers: its host-side model input, or the error that stopped it."""

    record: ImageRecord
    tensor: np.ndarray | None
    error: DatasetError | None
    read_s: float
    preprocess_s: float


def prepare_image(gt: CocoGroundTruth, host: HostPreprocessor, record: ImageRecord) -> Prepared:
    """Decode and preprocess one image (runs in a feeder thread); a bad image becomes a value."""
    start = time.perf_counter()
    try:
        pixels = load_checked(gt, record).pixels
    except DatasetError as exc:
        return Prepared(record, None, exc, time.perf_counter() - start, 0.0)
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    tensor = host(pixels)
    return Prepared(record, tensor, None, read_s, time.perf_counter() - start)


def _infer_all(
    config: RunConfig,
    options: RunOptions,
    session: ProviderSession,
    gt: CocoGroundTruth,
    input_size: tuple[int, int],
    folder: Path,
) -> tuple[dict[int, Detections], dict[int, SkippedImage], _StageClock]:
    """Run every pending image through preprocess -> infer -> decode, appending to the detection log.

    Decoding and host preprocessing run in feeder threads ahead of inference; results arrive in
    image order, so the log is always a prefix of the run in order.
    """
    log_path = folder / DETECTION_LOG
    if options.resume:
        truncate_torn_tail(log_path)
    evaluated = set(gt.image_ids)
    detections = {i: d for i, d in read_detection_log(log_path).items() if i in evaluated}
    # Skipped images are tried again on resume: the file may have been fixed in between.
    skipped: dict[int, SkippedImage] = {}
    (folder / SKIPPED_LOG).unlink(missing_ok=True)
    pending = [r for r in gt.images if r.image_id not in detections]
    if detections:
        log.info("resuming %s: %d of %d images already done", folder, len(detections), len(gt.images))
    norm = Normalization.from_mean_std(config.preprocess.mean, config.preprocess.std)
    host = HostPreprocessor(config.preprocess.backend, input_size, norm)
    graph = (
        GraphPreprocessor.for_session(
            input_size,
            norm,
            resize=config.preprocess.backend == "onnx-resize",
            providers=session.providers_used,
            session=config.session,
            provider_configs=config.providers,
        )
        if host.in_graph
        else None
    )
    workers = config.preprocess.workers if config.preprocess.workers is not None else default_workers()
    log.debug("preprocess backend %s, %d feeder worker(s)", host.backend, workers)
    clock = _StageClock()
    progress = options.progress(len(gt.images), len(detections), "evaluating")
    feed = ordered_map(partial(prepare_image, gt, host), pending, workers=workers)
    try:
        with DetectionLog(log_path) as det_log, contextlib.closing(feed):
            while True:
                start = time.perf_counter()
                item = next(feed, None)
                clock.add("wait", time.perf_counter() - start)
                if item is None:
                    break
                record = item.record
                clock.add("read", item.read_s)
                if item.error is not None or item.tensor is None:
                    if config.dataset.on_bad_image == "stop":
                        raise DatasetError(
                            f"{item.error} (stopped; {len(detections)} images done so far are kept in "
                            f"{folder}: fix the image and continue with --resume {folder}, or set "
                            "dataset.on_bad_image: skip)"
                        ) from None
                    skipped[record.image_id] = SkippedImage(
                        record.image_id, record.file_name, str(item.error)
                    )
                    append_skipped(folder / SKIPPED_LOG, skipped[record.image_id])
                    log.warning(
                        "SKIPPED image %d (%s): its ground truth counts as missed: %s",
                        record.image_id,
                        record.file_name,
                        item.error,
                    )
                    progress.update()
                    continue
                clock.add("preprocess", item.preprocess_s)
                tensor = item.tensor
                if graph is not None:
                    tensor, graph_s = graph(tensor)
                    clock.add("preprocess_graph", graph_s)
                raw, infer_s = session.infer(tensor)
                clock.add("infer", infer_s)
                start = time.perf_counter()
                dets = decode_image(raw, record, gt.label_map, config.decode)
                clock.add("decode", time.perf_counter() - start)
                start = time.perf_counter()
                det_log.append(dets)
                clock.add("write", time.perf_counter() - start)
                detections[record.image_id] = dets
                progress.update()
    finally:
        progress.close()
    if skipped:
        log.warning(
            "%d image(s) were skipped; their ground truth counts as missed (see metrics.json)", len(skipped)
        )
    return detections, skipped, clock
