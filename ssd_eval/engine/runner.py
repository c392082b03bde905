"""One evaluation run: config -> dataset -> preprocess -> session -> decode -> evaluator -> result.

Everything that can be checked cheaply (config, paths, output folder, model signature, annotation
file) is checked before the first image is decoded. Detections are appended to the run folder as
they are produced, so an interrupted run loses nothing and continues with `resume`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from pathlib import Path

from ssd_eval.config.run import RunConfig, run_name_problem
from ssd_eval.data.dataset import CocoGroundTruth, Shard, open_ground_truth
from ssd_eval.engine.finish import finish_run, gate_scored_run
from ssd_eval.engine.resolve import ResolvedAssets, resolve_assets
from ssd_eval.engine.run_folder import (
    RunInfo,
    append_history,
    append_skipped,
    check_run_folder_free,
    check_writable,
    derived_identity,
    load_run_config,
    locked_run_folder,
    parse_shard,
    prepare_run_folder,
    read_history,
    read_identity,
    read_run_info,
    run_baseline,
    write_identity,
    write_run_info,
)
from ssd_eval.errors import ConfigError, DatasetError, ModelError, OutputError, ProviderError
from ssd_eval.evaluation.detection_log import (
    DetectionLog,
    read_detection_log,
    truncate_torn_tail,
)
from ssd_eval.evaluation.identity import RunIdentity, describe_differences
from ssd_eval.files import DETECTION_LOG, SKIPPED_LOG
from ssd_eval.pipeline.decode import Detections, decode_image
from ssd_eval.pipeline.feeder import default_workers, ordered_map
from ssd_eval.pipeline.graph_preprocess import GraphPreprocessor
from ssd_eval.pipeline.prepare import Prepared, prepare_image
from ssd_eval.pipeline.preprocess import HostPreprocessor, Normalization
from ssd_eval.pipeline.session import InferenceFailed, ProviderSession
from ssd_eval.reports.results import (
    RunResult,
    RunTimes,
    SkippedImage,
    StageTiming,
    describe_model,
    provenance,
    utc_now,
)
from ssd_eval.reports.verdict import Evaluation, Invocation

# What a run's history records as its command when it was started from Python, not the CLI.
LIBRARY_COMMAND = ("python", "-c", "ssd_eval.evaluate(...)")

log = logging.getLogger(__name__)

# With on_bad_image: skip, onnxruntime failing on this many images before any ran is a model fault.
_MODEL_FAULT_AFTER = 3

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
    resume_hint: str | None = None  # how to continue after a stop; None: `--resume <run folder>`
    # Told each run folder once it is locked (the CLI names it when the run is interrupted).
    on_folder: Callable[[Path], None] | None = None
    # The command line recorded in the run's history; () for a call from Python.
    command: tuple[str, ...] = ()


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


def evaluate_run(config: RunConfig, options: RunOptions | None = None) -> Evaluation:
    """Evaluate the configured model on the configured images and write the run folder, gated: metrics.json
    with its verdict, junit.xml, summary.md and gate_baseline.json (the baseline is read before any model
    loads). `ssd_eval.evaluate` resolves its arguments into a config and calls this. Without
    `options.command` the history records this call: `("python", "ssd_eval.engine.runner...", <config>)`."""
    options = options or RunOptions()
    if not options.command:
        call = Invocation.of_call(
            "ssd_eval.engine.runner.run_evaluation",
            config.source_file if config.source_file is not None else "<RunConfig>",
            resume=options.resume,
            shard=options.shard,
        )
        options = replace(options, command=call.command)
    baseline = run_baseline(config, run_folder(config, options), resume=options.resume)
    gated: list[Evaluation] = []

    def gate(index: int, result: RunResult) -> None:  # while the run still holds its folder's lock
        gated.append(gate_scored_run(result, config, baseline, verb="run"))

    run_sessions([config], options, on_finished=gate)
    return gated[0]


def run_evaluation(config: RunConfig, options: RunOptions | None = None) -> RunResult:
    """`evaluate_run`, returning the run's result (metrics.json, with its gate)."""
    return evaluate_run(config, options).result


@dataclass(frozen=True)
class SessionsOutcome:
    """What `run_sessions` produced: a result per config that ran, a reason per config that could not."""

    results: dict[int, RunResult]
    unavailable: dict[int, str]


def _never_skip(index: int, error: ProviderError) -> str:
    raise error


@dataclass
class _Target:
    """One session writing one run folder while the loop goes (mutable; lives only inside one loop)."""

    config: RunConfig
    folder: Path
    session: ProviderSession
    info: RunInfo
    identity: RunIdentity
    graph: GraphPreprocessor | None = None
    detections: dict[int, Detections] = field(default_factory=dict)
    skipped: dict[int, SkippedImage] = field(default_factory=dict)
    clock: _StageClock = field(default_factory=_StageClock)
    failed_inferences: int = 0  # images onnxruntime failed on


def _common_shard(folders: Sequence[Path], options: RunOptions) -> RunOptions:
    """On resume, the shard the run folders were started with (a different --shard is an error)."""
    if not options.resume:
        return options
    for folder in folders:
        previous = read_run_info(folder)
        if previous is None or previous.shard is None:
            continue
        if options.shard is None:
            options = replace(options, shard=parse_shard(previous.shard))
        elif str(options.shard) != previous.shard:
            raise ConfigError(
                f"--shard {options.shard} differs from the shard {previous.shard} that {folder} was "
                f"started with: resume it with --shard {previous.shard} (or without --shard)"
            )
    return options


def run_sessions(
    configs: Sequence[RunConfig],
    options: RunOptions | None = None,
    *,
    on_unavailable: Callable[[int, ProviderError], str] = _never_skip,
    on_finished: Callable[[int, RunResult], None] | None = None,
) -> SessionsOutcome:
    """Run one or more sessions over the same images, each writing its own ordinary run folder.

    Every image is decoded and preprocessed once and the same tensor is fed to every session, so the
    configs must agree on dataset and preprocessing (a comparison's do). Each folder resumes on its
    own: an image is inferred only by the sessions whose log lacks it. `on_unavailable(index, error)`
    decides about a session whose provider fails to load: raise, or return the reason to skip it.
    `on_finished(index, result)` is called for each scored run while its folder is still locked (the
    gate's files are written then).
    """
    options = options or RunOptions()
    folders = [run_folder(config, options) for config in configs]
    for config, folder in zip(configs, folders, strict=True):
        recorded = read_identity(folder) if options.resume else None
        if recorded is not None and recorded.source is not None:
            raise ConfigError(
                f"--resume {folder}: its detections were imported ({recorded.source.describe()}), not "
                "inferred here: there is nothing to resume; import the file again (ssd-eval import)"
            )
        check_writable(folder)
        check_run_folder_free(folder, config, resume=options.resume)
    with contextlib.ExitStack() as locks:
        for folder in folders:
            # A folder a resume names is used as named (links and all); any other is the run's own.
            create = not (options.resume and folder.is_dir())
            locks.enter_context(locked_run_folder(folder, create=create))
            if options.on_folder is not None:
                options.on_folder(folder)
        outcome = _run_locked(configs, folders, options, on_unavailable)
        for index, result in outcome.results.items():
            if on_finished is not None:
                on_finished(index, result)
        return outcome


def _run_locked(
    configs: Sequence[RunConfig],
    folders: Sequence[Path],
    options: RunOptions,
    on_unavailable: Callable[[int, ProviderError], str],
) -> SessionsOutcome:
    """The sessions themselves, while this process holds every run folder's lock."""
    options = _common_shard(folders, options)
    assets = [resolve_assets(config) for config in configs]
    started = utc_now()
    wall_start = time.perf_counter()
    unavailable: dict[int, str] = {}
    targets: dict[int, _Target] = {}
    with contextlib.ExitStack() as stack:
        sessions: dict[int, ProviderSession] = {}
        for index, (config, asset) in enumerate(zip(configs, assets, strict=True)):
            session = ProviderSession(
                asset.model,
                config.providers,
                config.session,
                input_name=config.model.input,
                outputs=config.model.outputs,
            )
            try:
                session.activate()
            except ProviderError as exc:
                unavailable[index] = on_unavailable(index, exc)
                continue
            stack.callback(session.deactivate)
            sessions[index] = session
        if not sessions:
            return SessionsOutcome({}, unavailable)
        input_size = _shared_input_size(configs, assets, sessions)
        first = configs[min(sessions)]
        gt = open_ground_truth(
            assets[min(sessions)].annotation_file,
            assets[min(sessions)].image_dir,
            selection=first.dataset.selection,
            limit=first.dataset.limit,
            shard=options.shard,
            id_list=first.dataset.image_ids,
        )
        for index, session in sessions.items():
            targets[index] = _start_target(
                configs[index], folders[index], assets[index], session, input_size, options, gt
            )
        try:
            _infer_all(first, options, list(targets.values()), gt, input_size)
        except BaseException:
            # Interrupted or stopped: what was inferred is kept, and so is what it cost.
            _record_parts(targets.values(), options, started, time.perf_counter() - wall_start, "stopped")
            raise
        _record_parts(targets.values(), options, started, time.perf_counter() - wall_start, "finished")
    results = {}
    for index, target in targets.items():
        times = RunTimes.of(read_history(target.folder))
        results[index] = finish_run(
            target.folder,
            target.config,
            gt,
            target.detections,
            target.skipped,
            target.info,
            identity=target.identity,
            timings=times.timings,
            wall_s=times.wall_s,
            images_per_s=times.images_per_s,
        )
    return SessionsOutcome(results, unavailable)


def _record_parts(
    targets: Iterable[_Target], options: RunOptions, started: str, wall_s: float, outcome: str
) -> None:
    """One history entry per run folder for this part of its inference (a run, or a resume of it)."""
    for target in targets:
        entry = provenance(
            started,
            options.command or LIBRARY_COMMAND,
            verb="resume" if options.resume else "run",
            outcome=outcome,
            images_inferred=len(target.clock.samples["infer"]),
            wall_s=wall_s,
            timings=target.clock.summary(),
            folder=target.folder.name,
        )
        with contextlib.suppress(OutputError):  # a full disk must not hide the error that stopped the run
            append_history(target.folder, entry)


def _start_target(
    config: RunConfig,
    folder: Path,
    assets: ResolvedAssets,
    session: ProviderSession,
    input_size: tuple[int, int],
    options: RunOptions,
    gt: CocoGroundTruth,
) -> _Target:
    """Check that a resumed folder is continued as it started, create the run folder and write its
    run_info.json and (once) identity.json."""
    model_info = describe_model(assets.model, assets.model_source)
    previous = read_run_info(folder) if options.resume else None
    if previous is not None and previous.model.sha256.lower() != model_info.sha256.lower():
        raise ModelError(
            f"{folder} was started with model sha256 {previous.model.sha256[:12]}… but "
            f"{assets.model} has sha256 {model_info.sha256[:12]}…: resume with the same model file, "
            "or start a new run"
        )
    info = RunInfo(
        model=model_info,
        input_size=input_size,
        shard=str(options.shard) if options.shard else None,
        providers_requested=tuple(p.name for p in config.providers),
        providers_used=session.providers_used,
        provider_options=session.provider_options_used,
    )
    recorded = _recorded_identity(folder, previous, gt) if options.resume else None
    if not options.resume:
        prepare_run_folder(folder, config, resume=False)  # an overwritten run's files go first
    identity = derived_identity(folder, config, info, gt, legacy=False)
    if recorded is not None:
        # Checked before anything is written: a refused resume leaves the folder as it was.
        differences = identity.differences(recorded)
        if differences:
            raise ConfigError(
                f"--resume {folder}: {describe_differences(differences, 'this command', 'the run')}: "
                "continue the run as it started (without the flags or config changes that differ), "
                "or start a new run"
            )
        identity = recorded
    if options.resume:
        prepare_run_folder(folder, config, resume=True)
    write_run_info(folder, info)
    if recorded is None or read_identity(folder) is None:
        write_identity(folder, identity)
    return _Target(config, folder, session, info, identity)


def _recorded_identity(folder: Path, previous: RunInfo | None, gt: CocoGroundTruth) -> RunIdentity | None:
    """What a resumed folder is: its identity.json, else (an older folder) what its config.yaml and
    run_info.json say; None for a folder that never reached its first image."""
    recorded = read_identity(folder)
    if recorded is not None or previous is None:
        return recorded
    return derived_identity(folder, load_run_config(folder), previous, gt)


def _shared_input_size(
    configs: Sequence[RunConfig], assets: Sequence[ResolvedAssets], sessions: Mapping[int, ProviderSession]
) -> tuple[int, int]:
    """The one input size every session accepts (the same tensor goes to all)."""
    sizes: dict[str, tuple[int, int]] = {}
    for index, session in sessions.items():
        signature = session.signature
        assert signature is not None  # set by activate()
        name = configs[index].output.run_name or str(index)
        sizes[name] = model_input_size(
            configs[index], signature.input_height, signature.input_width, assets[index].model
        )
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{n} {s[0]}x{s[1]}" for n, s in sizes.items())
        raise ConfigError(
            f"the compared models take different input sizes ({listed}): one tensor is fed to every "
            "run, so compare models of the same input size"
        )
    return next(iter(sizes.values()))


def model_input_size(
    config: RunConfig, height: int | None, width: int | None, model: Path
) -> tuple[int, int]:
    """The (height, width) a model is fed: its static input size, or preprocess.size where it sets one."""
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


def _infer_all(
    config: RunConfig,
    options: RunOptions,
    targets: Sequence[_Target],
    gt: CocoGroundTruth,
    input_size: tuple[int, int],
) -> None:
    """Run every pending image through preprocess -> infer -> decode for each session, appending to its log.

    Decoding and host preprocessing run once per image in feeder threads ahead of inference; results
    arrive in image order, so each log is always a prefix of its run in order.
    """
    evaluated = set(gt.image_ids)
    for target in targets:
        log_path = target.folder / DETECTION_LOG
        if options.resume:
            truncate_torn_tail(log_path)
        target.detections = {i: d for i, d in read_detection_log(log_path).items() if i in evaluated}
        # Skipped images are tried again on resume: the file may have been fixed in between.
        (target.folder / SKIPPED_LOG).unlink(missing_ok=True)
        if target.detections:
            log.info(
                "resuming %s: %d of %d images already done",
                target.folder,
                len(target.detections),
                len(gt.images),
            )
    pending = [r for r in gt.images if any(r.image_id not in t.detections for t in targets)]
    norm = Normalization.from_mean_std(config.preprocess.mean, config.preprocess.std)
    host = HostPreprocessor(config.preprocess.backend, input_size, norm)
    if host.in_graph:
        for target in targets:
            target.graph = GraphPreprocessor.for_session(
                input_size,
                norm,
                resize=config.preprocess.backend == "onnx-resize",
                providers=target.session.providers_used,
                session=target.config.session,
                provider_configs=target.config.providers,
            )
    workers = config.preprocess.workers if config.preprocess.workers is not None else default_workers()
    log.debug("preprocess backend %s, %d feeder worker(s)", host.backend, workers)
    label = "evaluating" if len(targets) == 1 else f"evaluating {len(targets)} sessions"
    progress = options.progress(len(gt.images), len(gt.images) - len(pending), label)
    prepare = partial(prepare_image, gt, host, max_pixels=config.dataset.max_image_pixels)
    feed = ordered_map(prepare, pending, workers=workers)
    try:
        with contextlib.ExitStack() as stack:
            logs = [stack.enter_context(DetectionLog(t.folder / DETECTION_LOG)) for t in targets]
            stack.enter_context(contextlib.closing(feed))
            while True:
                start = time.perf_counter()
                item = next(feed, None)
                waited = time.perf_counter() - start
                if item is None:
                    break
                record = item.record
                todo = [
                    (t, det_log)
                    for t, det_log in zip(targets, logs, strict=True)
                    if record.image_id not in t.detections
                ]
                for target, _ in todo:
                    target.clock.add("wait", waited)
                    target.clock.add("read", item.read_s)
                if item.error is not None or item.tensor is None:
                    _bad_image(config, options, item, [t for t, _ in todo])
                    progress.update()
                    continue
                for target, det_log in todo:
                    try:
                        _infer_one(target, det_log, item, gt)
                    except InferenceFailed as exc:
                        _inference_failed(config, options, target, item, gt, exc)
                progress.update()
    finally:
        progress.close()
    for target in targets:
        if target.skipped:
            log.warning(
                "%s: %d image(s) were skipped; their ground truth counts as missed (see metrics.json)",
                target.folder,
                len(target.skipped),
            )


def _infer_one(target: _Target, det_log: DetectionLog, item: Prepared, gt: CocoGroundTruth) -> None:
    """One session on one prepared image: (in-graph preprocess) -> infer -> decode -> append."""
    assert item.tensor is not None
    clock = target.clock
    clock.add("preprocess", item.preprocess_s)
    tensor = item.tensor
    if target.graph is not None:
        tensor, graph_s = target.graph(tensor)
        clock.add("preprocess_graph", graph_s)
    raw, infer_s = target.session.infer(tensor)
    clock.add("infer", infer_s)
    start = time.perf_counter()
    dets = decode_image(raw, item.record, gt.label_map, target.config.decode)
    clock.add("decode", time.perf_counter() - start)
    start = time.perf_counter()
    det_log.append(dets)
    clock.add("write", time.perf_counter() - start)
    target.detections[item.record.image_id] = dets


def _inference_failed(
    config: RunConfig,
    options: RunOptions,
    target: _Target,
    item: Prepared,
    gt: CocoGroundTruth,
    exc: InferenceFailed,
) -> None:
    """onnxruntime failed on one image: a bad image (stop or skip), unless not one image has run yet
    after a few tries; then the model or its provider is at fault, not the images."""
    target.failed_inferences += 1
    if target.failed_inferences >= _MODEL_FAULT_AFTER and not target.clock.samples["infer"]:
        raise ModelError(f"{exc} (on each of the first {target.failed_inferences} images)") from None
    error = DatasetError(f"image {gt.image_path(item.record)}: {exc}")
    _bad_image(config, options, replace(item, error=error), [target])


def _bad_image(config: RunConfig, options: RunOptions, item: Prepared, targets: Sequence[_Target]) -> None:
    """An image that could not be read: stop (everything done is kept) or record it as skipped."""
    record = item.record
    if config.dataset.on_bad_image == "stop":
        done = min(len(t.detections) for t in targets)  # never empty: the sessions this image is for
        where = options.resume_hint or f"--resume {targets[0].folder}"
        raise DatasetError(
            f"{item.error} (stopped; the {done} images done so far are kept: fix the image and "
            f"continue with {where}, or set dataset.on_bad_image: skip)"
        ) from None
    for target in targets:
        target.skipped[record.image_id] = SkippedImage(record.image_id, record.file_name, str(item.error))
        append_skipped(target.folder / SKIPPED_LOG, target.skipped[record.image_id])
    log.warning(
        "SKIPPED image %d (%s): its ground truth counts as missed: %s",
        record.image_id,
        record.file_name,
        item.error,
    )
