"""`ssd-eval score RUN_DIR`: score a run folder again from its detection log, without inference."""

from __future__ import annotations

import argparse
from pathlib import Path

from ssd_eval.engine.rescore import rescore_run
from ssd_eval.errors import EXIT_OK
from ssd_eval.reports.report import summary

SCORERS = ("pycocotools", "faster-coco-eval")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from ssd_eval.cli import add_common_arguments

    parser = subparsers.add_parser(
        "score",
        help="score a run folder again from its detections (no inference)",
        description="Re-score a finished run folder from detections.jsonl and rewrite its metrics.json.",
    )
    parser.add_argument(
        "run_dir", type=Path, metavar="RUN_DIR", help="a run folder written by `ssd-eval run`"
    )
    parser.add_argument("--scorer", choices=SCORERS, help="scoring backend (default: the run's own)")
    parser.add_argument(
        "--data", type=Path, help="COCO root with annotations/ (when the run's path is not valid here)"
    )
    add_common_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    result = rescore_run(args.run_dir, backend=args.scorer, data=args.data)
    print(summary(result))
    return EXIT_OK
