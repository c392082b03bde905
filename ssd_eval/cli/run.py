"""`ssd-eval run` (the default command): evaluate a model on COCO and gate on the result."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import re
import sys
from pathlib import Path

from ssd_eval.config.run import (
    DEFAULT_TOLERANCE,
    ExpectedConfig,
    ProviderConfig,
    RunConfig,
    load_config,
    run_name_problem,
)
from ssd_eval.data.dataset import Shard
from ssd_eval.engine.run_folder import CONFIG_FILE, gate_baseline, load_run_config, write_gate_baseline
from ssd_eval.engine.runner import Progress, RunOptions, run_evaluation, run_folder
from ssd_eval.errors import ConfigError
from ssd_eval.reports.baseline import Baseline, load_gate_baseline
from ssd_eval.reports.ci_report import JUNIT_FILE, SUMMARY_FILE
from ssd_eval.reports.report import gate_lines, summary
from ssd_eval.reports.results import RunResult, utc_now
from ssd_eval.reports.verdict import gate_run


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from ssd_eval.cli import add_common_arguments, positive_int

    parser = subparsers.add_parser(
        "run",
        help="evaluate a model (the default command)",
        description="Evaluate the SSD model on COCO val2017 and gate on its mAP.",
    )
    parser.add_argument(
        "--config",
        "-c",
        help="YAML config: a path, or the name of a bundled config (coco_val.yaml, smoke.yaml)",
    )
    parser.add_argument("--limit", type=positive_int, help="evaluate only the first N images (by id)")
    parser.add_argument(
        "--provider",
        action="append",
        metavar="NAME",
        help="execution provider (cpu, cuda, tensorrt, openvino, dml, coreml or a full name); "
        "repeat for a priority list; replaces the config's providers",
    )
    parser.add_argument(
        "--model",
        help="ONNX model file, or a known model name fetched into the cache (ssd-10, ssd-12, ssd-12-int8, "
        "ssd-12-qdq, twin-1200, twin-600); replaces model.path / model.source",
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        help="never download (also SSD_EVAL_OFFLINE=1): a missing model or data set is an error "
        "saying what to put where",
    )
    parser.add_argument("--data", type=Path, help="COCO root folder with annotations/ and val2017/")
    parser.add_argument(
        "--selection",
        choices=("annotated", "all"),
        help="annotated: the 4952 images with annotations (published protocol); all: 5000",
    )
    parser.add_argument("--output", type=Path, help="folder that receives the run folder (default ./results)")
    parser.add_argument("--run-name", help="name of the run folder (default <config>-<provider>-<time>)")
    parser.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="continue an interrupted run in RUN_DIR with the config it started with",
    )
    parser.add_argument(
        "--resume-or-start",
        action="store_true",
        help="with --config and --run-name: continue the run folder <output>/<run-name> if it was started "
        "(a requeued batch job), else start it",
    )
    parser.add_argument("--shard", type=_shard, metavar="K/N", help="evaluate only part K of N (1-based)")
    parser.add_argument(
        "--expect-ap",
        type=float,
        metavar="X",
        help="gate: expected value of expected.metric (AP), in [0, 1], for the model being run "
        "(replaces expected.value; the figure is then not tied to a model file)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=None,
        metavar="T",
        help="gate: allowed |AP - expected| (replaces expected.tolerance; "
        f"default: the config's, else {DEFAULT_TOLERANCE})",
    )
    add_require_gate(parser)
    add_common_arguments(parser)
    parser.set_defaults(handler=run)


def _shard(text: str) -> Shard:
    match = re.fullmatch(r"(\d+)/(\d+)", text)
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise argparse.ArgumentTypeError(f"expected K/N with 1 <= K <= N, got {text!r}")
    return Shard(index=int(match[1]) - 1, count=int(match[2]))


def _is_model_name(text: str) -> bool:
    """`--model ssd-12` names a known model unless a file of that name exists here."""
    from ssd_eval.assets.sources import MODELS

    return not Path(text).exists() and (text in MODELS or re.fullmatch(r"twin-\d+", text) is not None)


def with_model(config: RunConfig, text: str) -> RunConfig:
    """`--model`: a known model name, or an ONNX file; a bare word that is neither lists the known names."""
    replace = dataclasses.replace
    if _is_model_name(text):
        return replace(config, model=replace(config.model, path=None, source=text))
    path = Path(text)
    if not path.exists() and path.suffix.lower() != ".onnx" and len(path.parts) == 1:
        from ssd_eval.assets.sources import MODELS

        known = [*MODELS, "twin-1200", "twin-600"]
        close = difflib.get_close_matches(text, known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ConfigError(
            f"--model {text!r} is neither a file nor a known model name: {hint}known models: "
            f"{', '.join(MODELS)}, twin-<input size> (e.g. twin-1200); a file is given by its path"
        )
    return replace(config, model=replace(config.model, path=path.absolute(), source=None))


def with_run_name(config: RunConfig, name: str) -> RunConfig:
    """`--run-name`: one folder name, checked as the config's output.run_name is."""
    problem = run_name_problem(name)
    if problem is not None:
        raise ConfigError(f"--run-name {problem}")
    return dataclasses.replace(config, output=dataclasses.replace(config.output, run_name=name))


def input_overrides(config: RunConfig, args: argparse.Namespace) -> RunConfig:
    """The flags that choose a run's inputs (`run` and `check` alike): --model, --offline, --data,
    --limit, --selection, --provider. Relative paths resolve against the current folder."""
    replace = dataclasses.replace
    if args.model is not None:
        config = with_model(config, args.model)
    if args.offline:
        config = replace(config, assets=replace(config.assets, download=False))
    if args.data is not None:
        config = replace(config, dataset=replace(config.dataset, root=args.data.absolute(), source=None))
    if args.limit is not None:
        config = replace(config, dataset=replace(config.dataset, limit=args.limit))
    if args.selection is not None:
        config = replace(config, dataset=replace(config.dataset, selection=args.selection))
    if args.provider:
        config = replace(config, providers=tuple(ProviderConfig(name=name) for name in args.provider))
    return config


def apply_overrides(config: RunConfig, args: argparse.Namespace) -> RunConfig:
    """CLI flags replace config keys; their relative paths resolve against the current folder."""
    replace = dataclasses.replace
    config = input_overrides(config, args)
    if args.output is not None:
        config = replace(config, output=replace(config.output, dir=args.output.absolute()))
    if args.run_name is not None:
        config = with_run_name(config, args.run_name)
    if args.expect_ap is not None or args.tolerance is not None:
        config = replace(config, expected=_expected_override(config.expected, args.expect_ap, args.tolerance))
    if args.require_gate:
        config = replace(config, gate=replace(config.gate, required=True))
    return config


def _expected_override(
    expected: ExpectedConfig | None, value: float | None, tolerance: float | None
) -> ExpectedConfig:
    """`--expect-ap` / `--tolerance` over the config's `expected`: what a flag leaves out comes from it."""
    if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ConfigError(f"--expect-ap: must be a COCO stat in [0, 1] (0.195, not 19.5), got {value}")
    if tolerance is not None and not (math.isfinite(tolerance) and tolerance >= 0.0):
        raise ConfigError(f"--tolerance: must be a number >= 0, got {tolerance}")
    if value is None:
        if expected is None:
            raise ConfigError(
                "--tolerance needs a reference: give --expect-ap or set `expected` in the config"
            )
        return dataclasses.replace(expected, tolerance=expected.tolerance if tolerance is None else tolerance)
    base = expected if expected is not None else ExpectedConfig(value=value)
    # A figure given on the command line is for the model being run: no model or selection pin.
    return dataclasses.replace(
        base,
        value=value,
        tolerance=base.tolerance if tolerance is None else tolerance,
        model_sha256=None,
        selection=None,
    )


def add_require_gate(parser: argparse.ArgumentParser) -> None:
    """`--require-gate`, for every command that gates."""
    parser.add_argument(
        "--require-gate",
        action="store_true",
        help="NO VERDICT (no gate rule evaluated: none set, all skipped or not comparable) exits 1 like "
        "a failed rule (gate.required: true); a partial run (--shard, --limit) still exits 0, its "
        "full-run rules being deferred to the merge",
    )


class _TqdmProgress(Progress):
    def __init__(self, total: int, initial: int, description: str) -> None:
        from tqdm import tqdm

        self._bar = tqdm(
            total=total,
            initial=initial,
            desc=description,
            unit="img",
            dynamic_ncols=True,
            file=sys.stderr,
            smoothing=0.1,
        )

    def update(self, count: int = 1) -> None:
        self._bar.update(count)

    def close(self) -> None:
        self._bar.close()


def _started_run(args: argparse.Namespace) -> Path | None:
    """For --resume-or-start: the run folder the arguments name if a run was started in it, else None."""
    if args.resume is not None or args.config is None:
        raise ConfigError("--resume-or-start needs --config and --run-name (not --resume)")
    config = apply_overrides(load_config(args.config), args)
    if config.output.run_name is None:
        raise ConfigError(
            "--resume-or-start needs a fixed run folder name: give --run-name NAME (or output.run_name)"
        )
    folder = run_folder(config, RunOptions(shard=args.shard))
    return folder if (folder / CONFIG_FILE).is_file() else None


def run(args: argparse.Namespace) -> int:
    started = utc_now()
    resume = _started_run(args) if args.resume_or_start else args.resume
    if resume is not None:
        config = load_run_config(resume)
        name = resume.name
    elif args.config is not None:
        config = load_config(args.config)
        name = Path(args.config).stem
    else:
        raise ConfigError(
            "no config given: use --config configs/coco_val.yaml (or a bundled name such as "
            "smoke.yaml), or --resume RUN_DIR"
        )
    config = apply_overrides(config, args)
    # The baseline is read and checked before any model loads: a bad one is exit 2, not a wasted run.
    if resume is not None:
        baseline = gate_baseline(config, resume)
    else:
        where = str(config.source_file) if config.source_file is not None else "config"
        baseline = load_gate_baseline(config.gate, where=where)
    options = RunOptions(
        resume=resume is not None,
        shard=args.shard,
        config_name=name,
        progress=Progress if args.quiet else _TqdmProgress,
        on_folder=getattr(args, "remember_run_dir", None),
    )
    result = run_evaluation(config, options)
    return publish(result, config, baseline, args, started=started, verb="run")


def publish(
    result: RunResult,
    config: RunConfig,
    baseline: Baseline | None,
    args: argparse.Namespace,
    *,
    started: str,
    verb: str,
) -> int:
    """Gate a scored run (run, resume, score, merge alike), print its summary and verdict: the exit code."""
    folder = Path(result.run_dir)
    write_gate_baseline(folder, baseline)
    command = getattr(args, "command_line", ("ssd-eval", verb))
    result, report = gate_run(result, config, baseline, command=command, started=started, verb=verb)
    print(summary(result))
    for line, bad in gate_lines(report):
        print(line, file=sys.stderr if bad else sys.stdout)
    if result.diagnosis:
        print(f"diagnosis: {result.diagnosis['line']}", file=sys.stderr)
    print(f"CI files   {folder / JUNIT_FILE}, {folder / SUMMARY_FILE}")
    return report.exit_code
