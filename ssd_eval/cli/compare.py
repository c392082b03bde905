"""`ssd-eval compare`: finished run folders, or a comparison config run in one go, against one reference."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ssd_eval.config.compare import COMPARE_LIMITS, CompareConfig, load_compare_config
from ssd_eval.config.run import RunConfig, run_name_problem
from ssd_eval.config.schema import absolute
from ssd_eval.engine.api import (
    Comparison,
    Invocation,
    compare,
    compare_config,
    compare_settings,
    with_model,
)
from ssd_eval.engine.compare import CompareOptions, load_comparison_config
from ssd_eval.engine.runner import Progress
from ssd_eval.errors import EXIT_OK, ConfigError
from ssd_eval.files import JUNIT_FILE, SUMMARY_FILE
from ssd_eval.reports.ci_report import compare_markdown
from ssd_eval.reports.report import gate_lines


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from ssd_eval.cli import add_common_arguments, positive_int
    from ssd_eval.cli.run import _shard, add_require_gate

    parser = subparsers.add_parser(
        "compare",
        help="compare run folders (from any machine), or run a comparison config, against a reference",
        description="Compare finished run folders with a reference run (the first, or --reference): "
        "stats and deltas, per-class deltas, detection agreement, latency, providers and versions, gated. "
        "With --config instead, run every session of a comparison config over the same images "
        "(one run folder each, under the comparison folder) and compare them.",
    )
    parser.add_argument("runs", nargs="*", type=Path, metavar="RUN_DIR", help="finished run folders")
    parser.add_argument(
        "--reference", metavar="NAME", help="the reference run's folder name (default: the first)"
    )
    parser.add_argument(
        "--config",
        "-c",
        help="comparison YAML: a path, or the name of a bundled one (compare_providers.yaml); with "
        "RUN_DIRs only its agreement, gate and pictures sections are used",
    )
    parser.add_argument(
        "--resume", type=Path, metavar="COMPARE_DIR", help="continue an interrupted comparison in COMPARE_DIR"
    )
    parser.add_argument("--shard", type=_shard, metavar="K/N", help="compare only part K of N of the images")
    parser.add_argument(
        "--provider",
        action="append",
        metavar="NAME",
        help="run here only the config's runs on this provider (repeat for several); the others are "
        "compared once their run folders are finished",
    )
    parser.add_argument("--limit", type=positive_int, help="compare only the first N images (by id)")
    parser.add_argument("--data", type=Path, help="COCO root folder with annotations/ and val2017/")
    parser.add_argument(
        "--model",
        help="ONNX model file, or a known model name (ssd-10, ssd-12-int8, twin-1200, twin-600, ...), for "
        "every run that names none (replaces model.path / model.source)",
    )
    parser.add_argument("--offline", action="store_true", help="never download (also SSD_EVAL_OFFLINE=1)")
    parser.add_argument("--output", type=Path, help="folder that receives the comparison folder (./results)")
    parser.add_argument("--run-name", help="name of the comparison folder (default <config>-<time>)")
    parser.add_argument(
        "--skip-unavailable",
        action="store_true",
        help="record runs whose provider is unavailable here as skipped instead of failing",
    )
    parser.add_argument(
        "--max-ap-drop",
        type=float,
        metavar="X",
        help="gate: a run may lose at most X AP against the reference",
    )
    parser.add_argument(
        "--max-class-ap-drop", type=float, metavar="X", help="gate: ... and at most X AP in any category"
    )
    for flag, metavar, text in AGREEMENT_FLAGS:
        parser.add_argument(flag, type=float, metavar=metavar, help=text)
    add_require_gate(parser)
    add_common_arguments(parser)
    parser.set_defaults(handler=run)


# The agreement rules (gate.min_matched, ...), held per run against the reference; counted over the
# detections scoring at least agreement.min_score.
AGREEMENT_FLAGS = (
    ("--min-matched", "F", "gate: a run matches at least this fraction of the reference's detections"),
    ("--max-extra", "F", "gate: at most this fraction of a run's detections has no reference partner"),
    ("--max-score-diff", "X", "gate: a matched pair's scores differ by at most X"),
    ("--max-box-diff", "PX", "gate: a matched pair's box corners differ by at most PX pixels"),
    ("--min-full-agreement", "F", "gate: at least this fraction of images agree detection for detection"),
)


def _limits(args: argparse.Namespace) -> dict[str, float | None]:
    """The comparison gate's limits given on the command line (None: the config's)."""
    return {name: getattr(args, name) for name in COMPARE_LIMITS}


def apply_overrides(config: CompareConfig, args: argparse.Namespace) -> CompareConfig:
    """CLI flags replace config keys; their relative paths resolve against the current folder."""
    replace = dataclasses.replace
    if args.model is not None:
        # A file or a known name, exactly as `run --model` takes it.
        model = with_model(RunConfig(model=config.model), args.model, flags=True).model
        config = replace(config, model=model)
    if args.data is not None:
        config = replace(config, dataset=replace(config.dataset, root=absolute(args.data), source=None))
    if args.limit is not None:
        config = replace(config, dataset=replace(config.dataset, limit=args.limit))
    if args.offline:
        config = replace(config, assets=replace(config.assets, download=False))
    if args.output is not None:
        config = replace(config, output=replace(config.output, dir=absolute(args.output)))
    if args.run_name is not None:
        config = replace(config, output=replace(config.output, run_name=args.run_name))
    if args.skip_unavailable:
        config = replace(config, skip_unavailable=True)
    settings = compare_settings(
        config.settings,
        require_gate=args.require_gate,
        flags=True,
        **_limits(args),
    )
    return replace(config, gate=settings.gate)


def run(args: argparse.Namespace) -> int:
    from ssd_eval.cli.run import invocation

    called = invocation(args, "compare")
    if args.runs:
        return _compare_folders(args, called)
    if args.resume is not None:
        config = load_comparison_config(args.resume)
        name = args.resume.name
    elif args.config is not None:
        config = load_compare_config(args.config)
        name = Path(args.config).stem
    else:
        raise ConfigError(
            "give run folders to compare (ssd-eval compare RUN_DIR RUN_DIR ...), a comparison config "
            "(--config compare_providers.yaml) or --resume COMPARE_DIR"
        )
    options = CompareOptions(
        progress=Progress if args.quiet else _progress(),
        config_name=name,
        resume=args.resume is not None,
        shard=args.shard,
        providers=tuple(args.provider or ()),
        on_folder=getattr(args, "remember_run_dir", None),
    )
    return _print(compare_config(apply_overrides(config, args), options, invocation=called), quiet=args.quiet)


def _compare_folders(args: argparse.Namespace, called: Invocation) -> int:
    for flag in ("resume", "shard", "provider", "limit", "model"):
        if getattr(args, flag):
            raise ConfigError(
                f"--{flag} applies to running a comparison config; run folders are compared as they are"
            )
    # The comparison folder's name, checked before any file is read (as `run --run-name` is).
    problem = run_name_problem(args.run_name) if args.run_name is not None else None
    if problem is not None:
        raise ConfigError(f"--run-name {problem}")
    comparison = compare(
        args.runs,
        reference=args.reference,
        config=args.config,
        output=args.output,
        run_name=args.run_name,
        **_limits(args),
        require_gate=args.require_gate,
        data=args.data,
        invocation=called,
    )
    return _print(comparison, quiet=args.quiet)


def _print(comparison: Comparison, *, quiet: bool = False) -> int:
    """Print a comparison's report and verdict (or which runs it waits for): the exit code. `quiet`:
    only what explains a non-zero exit, on stderr (the failed rules, or the error of a gate that could
    not be applied)."""
    from ssd_eval.cli.run import step_summary

    folder, result, report = comparison.folder, comparison.result, comparison.gate
    if quiet:
        if result is not None and report is not None:
            step_summary(folder, quiet=True)
            for line, bad in gate_lines(report):
                if bad:
                    print(line, file=sys.stderr)
        if report is not None and report.error:
            print(f"ssd-eval: error: {report.error}", file=sys.stderr)
        return comparison.exit_code
    if result is None or report is None:
        print(f"finished   {', '.join(comparison.finished) or 'none'} (in {folder / 'runs'})")
        print(
            f"waiting    {', '.join(comparison.waiting)}: the comparison is written when the reference and "
            f"another run are finished (run them, then `ssd-eval compare --resume {folder}`, or "
            "compare their run folders with `ssd-eval compare RUN_DIR RUN_DIR ...`)"
        )
        return EXIT_OK
    print(compare_markdown(result, report))
    for line, bad in gate_lines(report):
        print(line, file=sys.stderr if bad else sys.stdout)
    print(f"results    {folder} (metrics.json, {JUNIT_FILE}, {SUMMARY_FILE})")
    step_summary(folder)
    if report.error:
        print(f"ssd-eval: error: {report.error}", file=sys.stderr)
    return comparison.exit_code


def _progress() -> type[Progress]:
    from ssd_eval.cli.run import _TqdmProgress

    return _TqdmProgress
