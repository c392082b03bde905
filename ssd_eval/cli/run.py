"""`ssd-eval run` (the default command): evaluate a model on COCO and gate on the result.

Argument wiring and printing only: the run, its verdict and every file of the run folder come from
`ssd_eval.engine.api` (what `ssd_eval.evaluate` calls too).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from pathlib import Path

from ssd_eval.config.run import DEFAULT_TOLERANCE, RunConfig, load_config
from ssd_eval.data.dataset import Shard
from ssd_eval.engine.api import (
    Evaluation,
    Invocation,
    evaluate_config,
    started_run_folder,
    with_baseline,
    with_expected,
    with_options,
)
from ssd_eval.engine.run_folder import load_run_config
from ssd_eval.engine.runner import Progress, RunOptions
from ssd_eval.errors import EXIT_OK, ConfigError
from ssd_eval.files import JUNIT_FILE, SUMMARY_FILE
from ssd_eval.reports.ci_report import append_step_summary
from ssd_eval.reports.report import gate_lines, summary
from ssd_eval.reports.results import utc_now


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from ssd_eval.cli import add_common_arguments, positive_int

    parser = subparsers.add_parser(
        "run",
        help="evaluate a model (the default command)",
        description="Evaluate the SSD model on COCO val2017 and gate on its mAP.",
    )
    parser.add_argument(
        "--config",
        "-c",
        help="YAML config: a path, or the name of a bundled config (coco_val.yaml, smoke.yaml)",
    )
    parser.add_argument(
        "--limit",
        type=positive_int,
        help="evaluate only the first N images (by id): a subset, gated against a baseline of the same "
        "images (published figures are for the whole selection)",
    )
    add_image_ids(parser)
    parser.add_argument(
        "--provider",
        action="append",
        metavar="NAME",
        help="execution provider (cpu, cuda, tensorrt, openvino, dml, coreml or a full name); "
        "repeat for a priority list; replaces the config's providers",
    )
    parser.add_argument(
        "--model",
        help="ONNX model file, or a known model name fetched into the cache (ssd-10, ssd-12, ssd-12-int8, "
        "ssd-12-qdq, twin-1200, twin-600); replaces model.path / model.source",
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        help="never download (also SSD_EVAL_OFFLINE=1): a missing model or data set is an error "
        "saying what to put where",
    )
    parser.add_argument("--data", type=Path, help="COCO root folder with annotations/ and val2017/")
    parser.add_argument(
        "--selection",
        choices=("annotated", "all"),
        help="annotated: the 4952 images with annotations (published protocol); all: 5000",
    )
    parser.add_argument("--output", type=Path, help="folder that receives the run folder (default ./results)")
    parser.add_argument("--run-name", help="name of the run folder (default <config>-<provider>-<time>)")
    parser.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="continue an interrupted run in RUN_DIR with the config it started with",
    )
    parser.add_argument(
        "--resume-or-start",
        action="store_true",
        help="with --config and --run-name: continue the run folder <output>/<run-name> if it was started "
        "(a requeued batch job), else start it",
    )
    parser.add_argument("--shard", type=_shard, metavar="K/N", help="evaluate only part K of N (1-based)")
    parser.add_argument(
        "--expect-ap",
        type=float,
        metavar="X",
        help="gate: expected value of expected.metric (AP), in [0, 1], for the model being run "
        "(replaces expected.value; the figure is then not tied to a model file)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=None,
        metavar="T",
        help="gate: allowed |AP - expected| (replaces expected.tolerance; "
        f"default: the config's, else {DEFAULT_TOLERANCE})",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="FILE",
        help="gate against this baseline file (made with `ssd-eval baseline RUN_DIR`; replaces "
        "gate.baseline): a measured baseline holds any model on the same images",
    )
    parser.add_argument(
        "--max-baseline-drop",
        type=float,
        metavar="X",
        help=f"gate: allowed drop of gate.metric below the baseline (default: the config's, else "
        f"{DEFAULT_TOLERANCE})",
    )
    add_require_gate(parser, run=True)
    add_common_arguments(parser)
    parser.set_defaults(handler=run)


def _shard(text: str) -> Shard:
    match = re.fullmatch(r"(\d+)/(\d+)", text)
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise argparse.ArgumentTypeError(f"expected K/N with 1 <= K <= N, got {text!r}")
    return Shard(index=int(match[1]) - 1, count=int(match[2]))


def input_overrides(config: RunConfig, args: argparse.Namespace) -> RunConfig:
    """The flags that choose a run's inputs (`run` and `check` alike): --model, --offline, --data,
    --limit, --selection, --provider. Relative paths resolve against the current folder."""
    replace = dataclasses.replace
    config = with_options(
        config,
        model=args.model,
        data=args.data,
        limit=args.limit,
        provider=args.provider,
        image_ids=args.image_ids,
        flags=True,
    )
    if args.offline:
        config = replace(config, assets=replace(config.assets, download=False))
    if args.selection is not None:
        config = replace(config, dataset=replace(config.dataset, selection=args.selection))
    return config


def apply_overrides(config: RunConfig, args: argparse.Namespace) -> RunConfig:
    """CLI flags replace config keys; their relative paths resolve against the current folder."""
    config = input_overrides(config, args)
    config = with_options(
        config, output=args.output, run_name=args.run_name, require_gate=args.require_gate, flags=True
    )
    config = with_baseline(
        config, baseline=args.baseline, max_baseline_drop=args.max_baseline_drop, flags=True
    )
    return with_expected(config, expect_ap=args.expect_ap, tolerance=args.tolerance, flags=True)


def add_require_gate(parser: argparse.ArgumentParser, *, run: bool = False) -> None:
    """`--require-gate`, for every command that gates (`run`: with what it means for shards and subsets)."""
    about_runs = (
        "; a shard (--shard) still exits 0, its rules being deferred to the merge; a --limit or --image-ids "
        "subset is gated like any run (against a baseline made from a run of the same images)"
    )
    parser.add_argument(
        "--require-gate",
        action="store_true",
        help="NO VERDICT (no gate rule evaluated: none set, all skipped or not comparable) exits 1 like "
        "a failed rule (gate.required: true)" + (about_runs if run else ""),
    )


def add_image_ids(parser: argparse.ArgumentParser) -> None:
    """`--image-ids FILE`, for the commands that choose a run's images."""
    parser.add_argument(
        "--image-ids",
        type=Path,
        metavar="FILE",
        help="evaluate only the image ids in FILE (one per line, or a JSON list): a fixed subset, e.g. "
        "for a CI job; replaces dataset.image_ids",
    )


class _TqdmProgress(Progress):
    def __init__(self, total: int, initial: int, description: str) -> None:
        from tqdm import tqdm

        self._bar = tqdm(
            total=total,
            initial=initial,
            desc=description,
            unit="img",
            dynamic_ncols=True,
            file=sys.stderr,
            smoothing=0.1,
        )

    def update(self, count: int = 1) -> None:
        self._bar.update(count)

    def close(self) -> None:
        self._bar.close()


def invocation(args: argparse.Namespace, verb: str) -> Invocation:
    """This command line, recorded as the provenance of what it writes; errors name options by flag."""
    return Invocation(tuple(getattr(args, "command_line", ("ssd-eval", verb))), utc_now(), flags=True)


def _started_run(args: argparse.Namespace) -> Path | None:
    """For --resume-or-start: the run folder the arguments name if a run was started in it, else None."""
    if args.resume is not None or args.config is None:
        raise ConfigError("--resume-or-start needs --config and --run-name (not --resume)")
    config = apply_overrides(load_config(args.config), args)
    if config.output.run_name is None:
        raise ConfigError(
            "--resume-or-start needs a fixed run folder name: give --run-name NAME (or output.run_name)"
        )
    return started_run_folder(config)


def run(args: argparse.Namespace) -> int:
    called = invocation(args, "run")
    resume = _started_run(args) if args.resume_or_start else args.resume
    if args.resume is not None and (args.output is not None or args.run_name is not None):
        flag = "--output" if args.output is not None else "--run-name"
        raise ConfigError(
            f"--resume {args.resume} continues that run folder itself: drop {flag} (to start a new run "
            "elsewhere, use --config)"
        )
    if resume is not None:
        config = load_run_config(resume)
        name = resume.name
    elif args.config is not None:
        config = load_config(args.config)
        name = Path(args.config).stem
    else:
        raise ConfigError(
            "no config given: use --config configs/coco_val.yaml (or a bundled name such as "
            "smoke.yaml), or --resume RUN_DIR"
        )
    options = RunOptions(
        resume=resume is not None,
        shard=args.shard,
        config_name=name,
        progress=Progress if args.quiet else _TqdmProgress,
        on_folder=getattr(args, "remember_run_dir", None),
    )
    evaluation = evaluate_config(apply_overrides(config, args), options, invocation=called)
    return print_evaluation(evaluation, quiet=args.quiet)


def print_evaluation(evaluation: Evaluation, *, quiet: bool = False) -> int:
    """Print a gated run's summary and verdict (run, resume, score, merge alike): the exit code.
    `quiet`: only what explains a failed gate, on stderr (its failed rules and the diagnosis); a
    passing run prints nothing (the verdict is the exit code, and in metrics.json, junit.xml and
    summary.md)."""
    if quiet:
        step_summary(evaluation.folder, quiet=True)
        for line, bad in gate_lines(evaluation.gate):
            if bad:
                print(line, file=sys.stderr)
        if evaluation.diagnosis is not None and evaluation.exit_code != EXIT_OK:
            print(f"diagnosis: {evaluation.diagnosis.line}", file=sys.stderr)
        return evaluation.exit_code
    print(summary(evaluation.result))
    for line, bad in gate_lines(evaluation.gate):
        print(line, file=sys.stderr if bad else sys.stdout)
    if evaluation.diagnosis is not None:
        print(f"diagnosis: {evaluation.diagnosis.line}", file=sys.stderr)
    folder = evaluation.folder
    print(f"CI files   {folder / JUNIT_FILE}, {folder / SUMMARY_FILE}")
    step_summary(folder)
    return evaluation.exit_code


def step_summary(folder: Path, *, quiet: bool = False) -> None:
    """In a GitHub Actions job, append the folder's summary.md to the job's summary; a failure to do
    so is a warning (not shown with --quiet), never the command's failure."""
    warning = append_step_summary(folder, os.environ)
    if warning is not None and not quiet:
        print(f"ssd-eval: warning: {warning}", file=sys.stderr)
