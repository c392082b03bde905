"""`ssd-eval merge RUN_DIR...`: combine the run folders of `--shard K/N` runs into one scored run.

A merge covering the whole selection is a full run: the full-run gate rules the shards deferred
apply here, and the merged folder gets metrics.json, junit.xml and summary.md like a run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ssd_eval.cli.score import SCORERS
from ssd_eval.engine.api import merge


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from ssd_eval.cli import add_common_arguments
    from ssd_eval.cli.run import add_require_gate

    parser = subparsers.add_parser(
        "merge",
        help="merge the run folders of sharded runs into one run",
        description="Merge the run folders of `ssd-eval run --shard K/N` (every K of one N), "
        "score the whole and apply the gate rules of a full run.",
    )
    parser.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR", help="one run folder per shard")
    parser.add_argument(
        "--output", type=Path, help="the merged run folder (default: <first>-merged, without -shardKofN)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing merged folder")
    parser.add_argument("--scorer", choices=SCORERS, help="scoring backend (default: the runs' own)")
    parser.add_argument(
        "--data", type=Path, help="COCO root with annotations/ (when the runs' path is not valid here)"
    )
    add_require_gate(parser)
    add_common_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ssd_eval.cli.run import invocation, print_evaluation

    evaluation = merge(
        args.run_dirs,
        output=args.output,
        scorer=args.scorer,
        data=args.data,
        overwrite=args.overwrite,
        require_gate=args.require_gate,
        invocation=invocation(args, "merge"),
    )
    return print_evaluation(evaluation, quiet=args.quiet)
