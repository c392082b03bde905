"""`ssd-eval score RUN_DIR`: score a run folder again from its detection log, without inference."""

from __future__ import annotations

import argparse
from pathlib import Path

from ssd_eval.engine.api import score
from ssd_eval.evaluation.scoring import SCORING_BACKENDS

SCORERS = SCORING_BACKENDS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from ssd_eval.cli import add_common_arguments
    from ssd_eval.cli.run import add_require_gate

    parser = subparsers.add_parser(
        "score",
        help="score a run folder again from its detections (no inference)",
        description="Re-score a finished run folder from detections.jsonl, re-apply the gate rules it "
        "was run with, and rewrite its metrics.json, junit.xml and summary.md.",
    )
    parser.add_argument(
        "run_dir", type=Path, metavar="RUN_DIR", help="a run folder written by `ssd-eval run`"
    )
    parser.add_argument("--scorer", choices=SCORERS, help="scoring backend (default: the run's own)")
    parser.add_argument(
        "--data", type=Path, help="COCO root with annotations/ (when the run's path is not valid here)"
    )
    add_require_gate(parser)
    add_common_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ssd_eval.cli.run import invocation, print_evaluation

    called = invocation(args, "score")
    evaluation = score(
        args.run_dir, scorer=args.scorer, data=args.data, require_gate=args.require_gate, invocation=called
    )
    return print_evaluation(evaluation, quiet=args.quiet)
