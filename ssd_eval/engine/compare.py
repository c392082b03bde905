"""A comparison config in one go: every session over the same images, each writing an ordinary run folder.

Each image is decoded and preprocessed once and the same tensor is fed to every session
(`ssd_eval.engine.runner.run_sessions`, the run loop itself). The comparison folder holds:

- `compare.yaml`: the resolved comparison config (`--resume` continues from it);
- `runs/<name>/`: one ordinary run folder per session, to resume, re-score, merge or compare later;
- `metrics.json`, `summary.md`, `junit.xml`, pictures: exactly what `ssd-eval compare <folder>/runs/<name>...`
  writes from those folders (`ssd_eval.engine.compare_runs`): one code path.

A run whose provider is unavailable is an error, or with `skip_unavailable` recorded as skipped.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import yaml

from ssd_eval.config.compare import (
    CompareConfig,
    RunSpec,
    compare_config_from_dict,
    run_name,
)
from ssd_eval.config.run import RunConfig, run_name_problem
from ssd_eval.config.schema import config_to_dict
from ssd_eval.config.strict_load import load_yaml_file
from ssd_eval.data.dataset import Shard
from ssd_eval.engine.compare_runs import compare_runs, write_compare_metrics
from ssd_eval.engine.run_folder import BUSY_OTHER, check_not_link, check_writable, locked_run_folder
from ssd_eval.engine.runner import Progress, ProgressFactory, RunOptions, run_sessions
from ssd_eval.errors import ConfigError, ModelError, OutputError, ProviderError
from ssd_eval.files import (
    COMPARE_CONFIG_FILE,
    LOCK_FILE,
    METRICS_FILE,
    RUNS_DIR,
    own_folder,
    write_text_atomic,
)
from ssd_eval.pipeline.session import (
    PROVIDER_ALIASES,
    canonical_provider_name,
    resolve_provider,
)
from ssd_eval.reports.baseline import Baseline
from ssd_eval.reports.ci_report import compare_markdown, write_ci_files
from ssd_eval.reports.comparison import CompareResult, RunReport
from ssd_eval.reports.gate_compare import gate_comparison
from ssd_eval.reports.results import provenance
from ssd_eval.reports.verdict import Comparison, Invocation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompareOptions:
    """How to run a comparison beyond its config."""

    progress: ProgressFactory = Progress
    config_name: str = "compare"
    resume: bool = False
    shard: Shard | None = None
    # Run only the runs on these providers here (e.g. the OpenVINO side on the OpenVINO machine).
    providers: tuple[str, ...] = ()
    # Told the comparison folder once it is started (the CLI names it when interrupted).
    on_folder: Callable[[Path], None] | None = None
    # The command line each run folder's history records; () for a call from Python.
    command: tuple[str, ...] = ()


@dataclass(frozen=True)
class ComparisonOutcome:
    """The comparison report, or None when the reference or every other run has not finished yet."""

    folder: Path
    result: CompareResult | None
    finished: tuple[str, ...]  # names of the runs whose folder is finished
    waiting: tuple[str, ...]  # names of the runs not finished (not run here, or skipped)
    gated: Comparison | None = None  # the verdict, when run_comparison was given a gate


def compare_folder(config: CompareConfig, options: CompareOptions) -> Path:
    base = config.output.dir if config.output.dir is not None else Path.cwd() / "results"
    shard = f"-shard{options.shard.index + 1}of{options.shard.count}" if options.shard else ""
    name = config.output.run_name or (
        f"{options.config_name}{shard}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    )
    problem = run_name_problem(name)
    if problem is not None:
        raise ConfigError(f"output.run_name (or --run-name): {problem}")
    return base / name


def load_comparison_config(folder: Path) -> CompareConfig:
    """The resolved config a comparison folder was started with (for --resume)."""
    path = folder / COMPARE_CONFIG_FILE
    if not path.is_file():
        raise OutputError(f"{folder} is not a comparison folder: it has no {COMPARE_CONFIG_FILE}")
    advice = (
        "it is written by `ssd-eval compare --config`: restore it from a copy, or delete the comparison "
        "folder and compare again"
    )
    raw = load_yaml_file(path, advice=advice)
    try:
        config = compare_config_from_dict(raw, base_dir=folder, source=path)
    except ConfigError as exc:
        raise ConfigError(f"{exc}; {advice}") from None
    return replace(config, output=replace(config.output, dir=folder.parent, run_name=folder.name))


def session_config(config: CompareConfig, spec: RunSpec, folder: Path) -> RunConfig:
    """The ordinary run config of one side, writing `<comparison folder>/runs/<name>/`."""
    run = config.run_config(spec)
    return dataclasses.replace(
        run, output=dataclasses.replace(run.output, dir=folder / RUNS_DIR, run_name=run_name(spec))
    )


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


def _unavailable(name: str, key: str, reason: str, *, skip: bool) -> str:
    if not skip:
        hint = "" if key == "reference" else "; or set skip_unavailable: true to record it as skipped"
        raise ProviderError(f"{key} ({name}): {reason}{hint}")
    log.warning("run %s skipped: %s", name, reason)
    return reason


def _selected(config: CompareConfig, providers: Sequence[str], all_known: Sequence[str]) -> list[int]:
    """Indices (0: the reference) of the runs to run here: all, or those on the given providers."""
    if not providers:
        return list(range(len(config.all_runs)))
    wanted = {canonical_provider_name(p, all_known) or p for p in providers}
    chosen = [
        i
        for i, spec in enumerate(config.all_runs)
        if (canonical_provider_name(spec.provider.name, all_known) or spec.provider.name) in wanted
    ]
    if not chosen:
        listed = ", ".join(f"{run_name(s)} ({s.provider.name})" for s in config.all_runs)
        raise ProviderError(
            f"--provider {', '.join(providers)} matches none of the comparison's runs: {listed}"
        )
    return chosen


def _runs_started(folder: Path) -> bool:
    """Whether any run of the comparison folder has written a file (a run folder with content)."""
    runs = folder / RUNS_DIR
    if not folder.is_dir():
        return False
    others = [p for p in folder.iterdir() if p.name not in (RUNS_DIR, COMPARE_CONFIG_FILE, LOCK_FILE)]
    return bool(others) or (
        runs.is_dir() and any(any(run.iterdir()) for run in runs.iterdir() if run.is_dir())
    )


def _check_model_files(config: CompareConfig, indices: Sequence[int]) -> None:
    """Refuse a model file that is not there before anything is written (one line naming the key)."""
    for index in indices:
        spec = config.all_runs[index]
        model = spec.model or config.model
        if model.path is not None and not model.path.is_file():
            side = "reference" if index == 0 else f"runs[{index - 1}]"
            key = f"{side}.model" if spec.model is not None else "model"
            raise ModelError(
                f"{key}.path: model file {model.path} not found: give an ONNX file, or a known model name "
                "with --model (ssd-10, ssd-12-int8, twin-1200, twin-600, ...) or model.source"
            )


def run_comparison(
    config: CompareConfig,
    options: CompareOptions | None = None,
    *,
    gate: Callable[[CompareResult], Comparison] | None = None,
) -> ComparisonOutcome:
    """Run the configured sessions over the same images into run folders, then compare the folders;
    `gate(result)` records the verdict while the comparison folder is still locked."""
    import onnxruntime as ort

    start = time.perf_counter()
    options = options or CompareOptions()
    folder = compare_folder(config, options)
    check_writable(folder)
    if not options.resume:
        check_not_link(folder, "comparison folder")
    # A folder where no run has started yet (an attempt that failed before its first image, e.g. on a
    # wrong --model) holds only its compare.yaml: starting again, or resuming, begins it afresh.
    fresh = not _runs_started(folder)
    held = folder.is_dir() and any(p.name != LOCK_FILE for p in folder.iterdir())
    if not options.resume and not fresh and not config.output.overwrite:
        raise OutputError(
            f"comparison folder {folder} already exists: continue it with --resume {folder}, choose "
            "another --run-name, or set output.overwrite: true"
        )
    if held and not (folder / COMPARE_CONFIG_FILE).is_file():
        # overwrite (or resume) only ever writes into a folder that holds a comparison.
        raise OutputError(
            f"{folder} holds files but is not a comparison folder (no {COMPARE_CONFIG_FILE}), so nothing "
            "in it is replaced; choose another --run-name"
        )
    specs = config.all_runs
    names = [run_name(spec) for spec in specs]
    available, all_known = ort.get_available_providers(), ort.get_all_providers()
    skipped: dict[int, str] = {}
    chosen = _selected(config, options.providers, all_known)
    for index in chosen:
        key = "reference" if index == 0 else f"runs[{index - 1}]"
        problem = _provider_problem(specs[index], available, all_known)
        if problem is not None:
            skip = config.skip_unavailable and index > 0
            skipped[index] = _unavailable(names[index], key, problem, skip=skip)
    to_run = [i for i in chosen if i not in skipped]
    # The comparison folder's own lock (beside each run folder's): a second comparison writing the same
    # folder is refused; `gate` writes the verdict while it is held.
    # Links planted as the comparison's own folders are refused before anything is touched.
    for inner in [folder / RUNS_DIR, *(folder / RUNS_DIR / names[i] for i in to_run)]:
        check_not_link(inner, "folder")
    _check_model_files(config, to_run)
    create = not (options.resume and folder.is_dir())
    with locked_run_folder(folder, create=create, busy=BUSY_OTHER):
        outcome = _compare_locked(config, options, folder, to_run, skipped, start=start, fresh=fresh)
        if outcome.result is not None and gate is not None:
            outcome = dataclasses.replace(outcome, gated=gate(outcome.result))
        return outcome


def _compare_locked(
    config: CompareConfig,
    options: CompareOptions,
    folder: Path,
    to_run: list[int],
    skipped: dict[int, str],
    *,
    start: float,
    fresh: bool,
) -> ComparisonOutcome:
    specs = config.all_runs
    names = [run_name(spec) for spec in specs]
    try:
        own_folder(folder / RUNS_DIR)
        if fresh or not options.resume or not (folder / COMPARE_CONFIG_FILE).is_file():
            write_text_atomic(
                folder / COMPARE_CONFIG_FILE, yaml.safe_dump(config_to_dict(config), sort_keys=False)
            )
    except OSError as exc:
        raise OutputError(f"cannot write the comparison folder {folder}: {exc.strerror}") from None
    if options.on_folder is not None:
        options.on_folder(folder)

    def on_unavailable(position: int, error: ProviderError) -> str:
        index = to_run[position]
        key = "reference" if index == 0 else f"runs[{index - 1}]"
        return _unavailable(names[index], key, str(error), skip=config.skip_unavailable and index > 0)

    outcome = run_sessions(
        [session_config(config, specs[i], folder) for i in to_run],
        RunOptions(
            resume=options.resume,
            shard=options.shard,
            progress=options.progress,
            config_name=options.config_name,
            resume_hint=f"ssd-eval compare --resume {folder}",
            command=options.command,
        ),
        on_unavailable=on_unavailable,
    )
    skipped.update({to_run[position]: reason for position, reason in outcome.unavailable.items()})
    runs_dir = folder / RUNS_DIR
    finished = [
        i for i in range(len(specs)) if i not in skipped and (runs_dir / names[i] / METRICS_FILE).is_file()
    ]
    waiting = tuple(names[i] for i in range(len(specs)) if i not in finished)
    if 0 not in finished or len(finished) + len(skipped) < 2:
        return ComparisonOutcome(folder, None, tuple(names[i] for i in finished), waiting)
    skipped_reports = [
        RunReport(
            name=names[i],
            status="skipped",
            provider=specs[i].provider.name,
            provider_options=dict(specs[i].provider.options),
            note=specs[i].note,
            skip_reason=reason,
        )
        for i, reason in sorted(skipped.items())
    ]
    result = compare_runs(
        [runs_dir / names[i] for i in finished],
        folder,
        settings=config.settings,
        notes={names[i]: specs[i].note for i in finished},
        skipped_runs=skipped_reports,
        overwrite=True,
    )
    # The wall time of this command: running the sessions and comparing them (compare_runs times only
    # the comparing).
    result = replace(result, wall_s=round(time.perf_counter() - start, 3))
    return ComparisonOutcome(folder, result, tuple(names[i] for i in finished), waiting)


def record_compare_gate(
    result: CompareResult, config: CompareConfig, baseline: Baseline | None, *, invocation: Invocation
) -> Comparison:
    """Apply a comparison's gate and write its verdict: metrics.json (gate and provenance), junit.xml and
    summary.md, so that the three files and the exit code agree."""
    report = gate_comparison(result, config, baseline)
    prov = provenance(invocation.started, invocation.command)
    result = replace(result, provenance=prov.to_json(), gate=report.to_json())
    folder = Path(result.out_dir)
    write_compare_metrics(folder / METRICS_FILE, result)
    markdown = compare_markdown(result, report)
    stats = {
        f"{run.name}.{name}": value for run in result.runs if run.ran for name, value in run.stats.items()
    }
    write_ci_files(
        folder, report, markdown, suite=f"ssd-eval compare {folder.name}", time_s=result.wall_s, stats=stats
    )
    return Comparison(folder, result, report)
