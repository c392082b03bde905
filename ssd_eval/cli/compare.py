"""`ssd-eval compare`: runs (providers, options, model variants) against one reference, gated."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ssd_eval.config.compare import CompareConfig, load_compare_config
from ssd_eval.engine.compare import CompareOptions, record_compare_gate, run_comparison
from ssd_eval.engine.runner import Progress
from ssd_eval.reports.baseline import load_gate_baseline
from ssd_eval.reports.ci_report import JUNIT_FILE, SUMMARY_FILE, compare_markdown, write_ci_files
from ssd_eval.reports.gate_compare import gate_comparison
from ssd_eval.reports.report import gate_lines


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from ssd_eval.cli import add_common_arguments, positive_int
    from ssd_eval.cli.run import add_require_gate

    parser = subparsers.add_parser(
        "compare",
        help="compare execution providers or model variants against a reference run",
        description="Run the same images through several sessions (providers, options, models), "
        "compare each with a reference run and gate on the differences.",
    )
    parser.add_argument(
        "--config",
        "-c",
        required=True,
        help="comparison YAML: a path, or the name of a bundled one (compare_providers.yaml)",
    )
    parser.add_argument("--limit", type=positive_int, help="compare only the first N images (by id)")
    parser.add_argument("--data", type=Path, help="COCO root folder with annotations/ and val2017/")
    parser.add_argument(
        "--model", type=Path, help="ONNX model for every run that names none (replaces model.path/source)"
    )
    parser.add_argument("--output", type=Path, help="folder that receives the comparison folder (./results)")
    parser.add_argument("--run-name", help="name of the comparison folder (default <config>-<time>)")
    parser.add_argument(
        "--skip-unavailable",
        action="store_true",
        help="record runs whose provider is unavailable here as skipped instead of failing",
    )
    add_require_gate(parser)
    add_common_arguments(parser)
    parser.set_defaults(handler=run)


def apply_overrides(config: CompareConfig, args: argparse.Namespace) -> CompareConfig:
    """CLI flags replace config keys; their relative paths resolve against the current folder."""
    replace = dataclasses.replace
    if args.model is not None:
        config = replace(config, model=replace(config.model, path=args.model.absolute(), source=None))
    if args.data is not None:
        config = replace(config, dataset=replace(config.dataset, root=args.data.absolute(), source=None))
    if args.limit is not None:
        config = replace(config, dataset=replace(config.dataset, limit=args.limit))
    if args.output is not None:
        config = replace(config, output=replace(config.output, dir=args.output.absolute()))
    if args.run_name is not None:
        config = replace(config, output=replace(config.output, run_name=args.run_name))
    if args.skip_unavailable:
        config = replace(config, skip_unavailable=True)
    if args.require_gate:
        config = replace(config, gate=replace(config.gate, required=True))
    return config


def run(args: argparse.Namespace) -> int:
    from ssd_eval.cli.run import _TqdmProgress

    config = apply_overrides(load_compare_config(args.config), args)
    where = str(config.source_file) if config.source_file is not None else "config"
    baseline = load_gate_baseline(config.gate, where=where)
    options = CompareOptions(
        progress=Progress if args.quiet else _TqdmProgress, config_name=Path(args.config).stem
    )
    result = run_comparison(config, options)
    report = gate_comparison(result, config, baseline)
    result = record_compare_gate(result, report)
    folder = Path(result.out_dir)
    markdown = compare_markdown(result, report)
    write_ci_files(folder, report, markdown, suite=f"ssd-eval compare {folder.name}", time_s=result.wall_s)
    print(markdown)
    for line, bad in gate_lines(report):
        print(line, file=sys.stderr if bad else sys.stdout)
    print(f"results    {folder} (metrics.json, {JUNIT_FILE}, {SUMMARY_FILE})")
    if report.error:
        print(f"ssd-eval: error: {report.error}", file=sys.stderr)
    return report.exit_code
