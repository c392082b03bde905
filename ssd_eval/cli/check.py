"""`ssd-eval check --data ROOT [--model M]`: a run's input checks without the run (a CI job's first step)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ssd_eval.config.run import RunConfig, load_config
from ssd_eval.engine.check import CheckReport, check_inputs
from ssd_eval.errors import EXIT_OK, ConfigError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from ssd_eval.cli import add_common_arguments, positive_int
    from ssd_eval.cli.run import add_image_ids

    parser = subparsers.add_parser(
        "check",
        help="check the data set and model a run would use, without running it",
        description=(
            "Run every input check of `ssd-eval run` without the evaluation: the config, the annotation "
            "file, every evaluated image's header (present, readable, size as annotated, within "
            "dataset.max_image_pixels), and with a model its signature, provider and output contract on "
            "one real inference of the first image. Exit 0 with a summary, or 2 with one line."
        ),
    )
    parser.add_argument("--config", "-c", help="YAML config (path or bundled name) whose inputs to check")
    parser.add_argument("--data", type=Path, help="COCO root folder with annotations/ and val2017/")
    parser.add_argument(
        "--model",
        help="ONNX model file or known model name to check (without it and without --config: data only)",
    )
    parser.add_argument("--provider", action="append", metavar="NAME", help="execution provider (repeatable)")
    parser.add_argument("--selection", choices=("annotated", "all"), help="which images a run would evaluate")
    parser.add_argument("--limit", type=positive_int, help="only the first N images (by id)")
    add_image_ids(parser)
    parser.add_argument("--offline", action="store_true", help="never download a missing model or data set")
    add_common_arguments(parser)
    parser.set_defaults(handler=run)


def _config(args: argparse.Namespace) -> RunConfig:
    from ssd_eval.cli.run import input_overrides

    if args.config is None and args.data is None:
        raise ConfigError("nothing to check: give --data ROOT (a COCO folder) or --config FILE")
    config = load_config(args.config) if args.config is not None else RunConfig()
    return input_overrides(config, args)


def summary_lines(report: CheckReport) -> list[str]:
    data = report.data
    lines = [
        f"data   {data.annotation_file}: {data.images} of {data.total_images} images ({data.selection}), "
        f"{data.annotations} annotations, {data.categories} categories; every image header in "
        f"{data.image_dir} checked",
    ]
    if report.model is None:
        lines.append("model  not checked (give --model or --config)")
    else:
        model = report.model
        lines.append(
            f"model  {model.model}: input {model.input_size[0]}x{model.input_size[1]} on "
            f"{', '.join(model.providers_used)}; {model.first_image}: {model.detections} detections, "
            "output contract kept"
        )
    lines.append("check OK")
    return lines


def run(args: argparse.Namespace) -> int:
    config = _config(args)
    report = check_inputs(config, check_model=args.model is not None or args.config is not None)
    for line in summary_lines(report):
        print(line)
    return EXIT_OK
