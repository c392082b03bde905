"""`ssd-eval merge RUN_DIR...`: combine the run folders of `--shard K/N` runs into one scored run.

A merge covering the whole selection is a full run: the full-run gate rules the shards deferred
apply here, and the merged folder gets metrics.json, junit.xml and summary.md like a run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ssd_eval.cli.score import SCORERS, gate_config_of
from ssd_eval.engine.merge import merge_runs
from ssd_eval.engine.run_folder import gate_baseline
from ssd_eval.errors import OutputError
from ssd_eval.reports.results import utc_now


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
    from ssd_eval.cli.run import publish

    started = utc_now()
    if not args.run_dirs:
        raise OutputError("cannot merge: give the run folders of the shards")
    # The shards' recorded rules and baseline, read before merging: a bad one is exit 2 at once.
    first = args.run_dirs[0]
    config = gate_config_of(first, args)
    baseline = gate_baseline(config, first)
    output = args.output.absolute() if args.output is not None else None
    result = merge_runs(args.run_dirs, output, backend=args.scorer, data=args.data, overwrite=args.overwrite)
    merged = gate_config_of(Path(result.run_dir), args)
    return publish(result, merged, baseline, args, started=started, verb="merge")
