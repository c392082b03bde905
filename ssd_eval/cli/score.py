"""`ssd-eval score RUN_DIR`: score a run folder again from its detection log, without inference."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ssd_eval.config.run import RunConfig
from ssd_eval.engine.rescore import rescore_run
from ssd_eval.engine.run_folder import gate_baseline, load_run_config
from ssd_eval.evaluation.scoring import SCORING_BACKENDS
from ssd_eval.reports.results import utc_now

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


def gate_config_of(folder: Path, args: argparse.Namespace) -> RunConfig:
    """The gate settings a run folder recorded (config.yaml), with --require-gate on top."""
    config = load_run_config(folder)
    if args.require_gate:
        config = dataclasses.replace(config, gate=dataclasses.replace(config.gate, required=True))
    return config


def run(args: argparse.Namespace) -> int:
    from ssd_eval.cli.run import publish

    started = utc_now()
    config = gate_config_of(args.run_dir, args)
    baseline = gate_baseline(config, args.run_dir)  # read before scoring: a bad one is exit 2 at once
    result = rescore_run(args.run_dir, backend=args.scorer, data=args.data)
    return publish(result, config, baseline, args, started=started, verb="score")
