"""`ssd-eval baseline`: turn a finished run into a baseline file for the gate, or show one."""

from __future__ import annotations

import argparse
from pathlib import Path

from ssd_eval.config.schema import absolute
from ssd_eval.config.strict_load import read_json_file
from ssd_eval.errors import EXIT_OK, ConfigError
from ssd_eval.files import METRICS_FILE
from ssd_eval.reports.baseline import (
    baseline_from_metrics,
    baseline_lines,
    read_baseline,
    write_baseline,
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from ssd_eval.cli import add_common_arguments

    parser = subparsers.add_parser(
        "baseline",
        help="make a baseline file from a run (for gate.baseline), or show one",
        description="Write a measured baseline (all 12 COCO stats, per-category AP, the run's identity: "
        "its images and ground truth) from a finished run folder (the whole selection, a --limit or "
        "--image-ids subset, or a merge; not a shard); it holds later runs of the same images, of any "
        "model. Or print a baseline file with --show.",
    )
    parser.add_argument(
        "source", type=Path, help="a run folder (with metrics.json), or with --show a baseline file"
    )
    parser.add_argument(
        "--output", "-o", type=Path, help="baseline file to write (e.g. results/baselines/NAME.json)"
    )
    parser.add_argument("--name", help="baseline name (default: the output file's stem)")
    parser.add_argument(
        "--run", help="in a comparison folder: which run to take (default: the reference)", default=None
    )
    parser.add_argument("--note", default="", help="free text kept in the file (why this baseline)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing baseline file")
    parser.add_argument("--show", action="store_true", help="print the baseline file given as SOURCE")
    add_common_arguments(parser)
    parser.set_defaults(handler=run)


def _run_metrics(folder: Path, run_name: str | None) -> dict:
    path = folder / METRICS_FILE
    if not path.is_file():
        raise ConfigError(f"{folder} is not a finished run folder: it has no {METRICS_FILE}")
    rescore = f"it is written by ssd-eval: score the run again with `ssd-eval score {folder}`"
    data = read_json_file(path, advice=rescore)
    try:
        return _chosen_metrics(folder, data, run_name)
    except (KeyError, TypeError, AttributeError, ValueError):
        raise ConfigError(f"{path} is not a metrics file of ssd_eval (damaged?); {rescore}") from None


def _chosen_metrics(folder: Path, data: object, run_name: str | None) -> dict:
    """A plain run's metrics, or those of one run of a comparison with the comparison's protocol."""
    if not isinstance(data, dict):
        raise TypeError("not an object")
    if "runs" not in data:  # a plain run
        if run_name is not None:
            raise ConfigError(f"{folder} is a single run: --run applies to comparison folders only")
        return dict(data)
    # A comparison: one of its runs, with the comparison's protocol.
    runs = {r["name"]: r for r in data["runs"] if r.get("status") == "ran"}
    chosen = run_name or data["reference"]
    if chosen not in runs:
        raise ConfigError(f"{folder}: no run named {chosen!r} that ran (runs: {', '.join(runs)})")
    run = runs[chosen]
    # Every run of a comparison evaluated the reference's images of its ground truth (compare checks
    # it): the comparison's identity is theirs (a baseline ignores the model it records).
    return {**run, "protocol": data["protocol"], "identity": data.get("identity")}


def run(args: argparse.Namespace) -> int:
    if args.show:
        for line in baseline_lines(read_baseline(args.source)):
            print(line)
        return EXIT_OK
    if args.output is None:
        raise ConfigError("give --output FILE for the new baseline (e.g. results/baselines/my-run.json)")
    metrics = _run_metrics(args.source, args.run)
    name = args.name or args.output.stem
    baseline = baseline_from_metrics(
        metrics,
        name=name,
        source=str(absolute(args.source)) + (f" (run {args.run})" if args.run else ""),
        note=args.note,
    )
    write_baseline(args.output, baseline, overwrite=args.overwrite)
    print(
        f"wrote {args.output}: {name}, AP {baseline.stats['AP']:.4f} "
        f"on {baseline.protocol['num_images']} images"
    )
    print(f"use it in a config:  gate: {{baseline: {args.output}, max_baseline_drop: 0.003}}")
    return EXIT_OK
