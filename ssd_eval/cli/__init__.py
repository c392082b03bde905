"""Command line: wires arguments to library calls. The only place that prints.

`ssd-eval [run] --config X` evaluates; other subcommands live in their own modules of this package,
each exposing `add_parser(subparsers)` that registers a parser whose `handler` default is a
function `(args) -> int` (the exit code).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

from ssd_eval import __version__
from ssd_eval.errors import EXIT_INTERNAL, SsdEvalError


def _subcommand_modules() -> list[ModuleType]:
    # Imported on demand so that a subcommand module missing from a partial install (or an optional
    # one) cannot take the main `run` path down with it.
    modules = [importlib.import_module("ssd_eval.cli.run")]
    for name in ("fetch", "compare", "score", "merge", "baseline", "providers"):
        try:
            modules.append(importlib.import_module(f"ssd_eval.cli.{name}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"ssd_eval.cli.{name}":
                raise
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssd-eval",
        description="COCO box mAP of the ONNX Model Zoo SSD-ResNet34 detector on onnxruntime.",
    )
    parser.add_argument("--version", action="version", version=f"ssd_eval {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _subcommand_modules():
        module.add_parser(subparsers)
    return parser


def _subcommand_names(parser: argparse.ArgumentParser) -> set[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags every subcommand shares."""
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, warnings only")


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    known = _subcommand_names(parser)
    # `ssd-eval --config X` means `ssd-eval run --config X`: the everyday command needs no verb.
    if not args_list or (args_list[0] not in known and args_list[0] not in ("-h", "--help", "--version")):
        args_list.insert(0, "run")
    args = parser.parse_args(args_list)
    debug = getattr(args, "debug", False)
    quiet = getattr(args, "quiet", False)
    logging.basicConfig(
        level=logging.DEBUG if debug else (logging.WARNING if quiet else logging.INFO),
        format="%(levelname)s %(name)s: %(message)s" if debug else "%(message)s",
        stream=sys.stderr,
    )
    try:
        code: int = args.handler(args)
        return code
    except SsdEvalError as exc:
        if debug:
            raise
        print(f"ssd-eval: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(
            "ssd-eval: interrupted; what was produced so far is kept (a run continues with --resume RUN_DIR, "
            "a download resumes from its .part file)",
            file=sys.stderr,
        )
        return 130
    except Exception as exc:  # last line of defence: one line, exit 3, traceback with --debug
        if debug:
            raise
        print(
            f"ssd-eval: internal error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
