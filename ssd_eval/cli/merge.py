"""`ssd-eval merge RUN_DIR...`: combine the run folders of `--shard K/N` runs into one scored run."""

from __future__ import annotations

import argparse
from pathlib import Path

from ssd_eval.cli.score import SCORERS
from ssd_eval.engine.merge import merge_runs
from ssd_eval.errors import EXIT_OK
from ssd_eval.reports.report import summary


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from ssd_eval.cli import add_common_arguments

    parser = subparsers.add_parser(
        "merge",
        help="merge the run folders of sharded runs into one run",
        description="Merge the run folders of `ssd-eval run --shard K/N` (every K of one N) "
        "and score the whole.",
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
    add_common_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    output = args.output.absolute() if args.output is not None else None
    result = merge_runs(args.run_dirs, output, backend=args.scorer, data=args.data, overwrite=args.overwrite)
    print(summary(result))
    return EXIT_OK
