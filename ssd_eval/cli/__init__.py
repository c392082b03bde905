"""Command line: wires arguments to library calls. The only place that prints.

`ssd-eval [run] --config X` evaluates; other subcommands live in their own modules of this package,
each exposing `add_parser(subparsers)` that registers a parser whose `handler` default is a
function `(args) -> int` (the exit code).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import errno
import importlib
import logging
import os
import re
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import NoReturn, TextIO

from PIL import Image

from ssd_eval import __version__
from ssd_eval.cli.interrupts import Interrupts
from ssd_eval.errors import EXIT_INTERNAL, EXIT_USAGE, SsdEvalError

_DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


class _Stdout:
    """stdout for one command. A reader that goes away (`ssd-eval compare ... | head -3`) ends the output,
    not the command: no traceback, no message, and the exit code stays the command's (its verdict).
    With `discard` (--quiet) nothing is written at all."""

    def __init__(self, stream: TextIO, *, discard: bool) -> None:
        self.stream = stream
        self._closed = discard

    def write(self, text: str) -> int:
        if not self._closed:
            try:
                self.stream.write(text)
            except BrokenPipeError:
                self._reader_gone()
        return len(text)

    def flush(self) -> None:
        if not self._closed:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._reader_gone()

    def _reader_gone(self) -> None:
        self._closed = True
        # What is still buffered would fail again when Python flushes stdout at exit (a message and
        # exit code 120): let it go to /dev/null instead.
        with contextlib.suppress(AttributeError, OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)


def _subcommand_modules() -> list[ModuleType]:
    # Imported on demand so that a subcommand module missing from a partial install (or an optional
    # one) cannot take the main `run` path down with it.
    modules = [importlib.import_module("ssd_eval.cli.run")]
    for name in ("check", "fetch", "compare", "score", "merge", "baseline", "providers", "import_detections"):
        try:
            modules.append(importlib.import_module(f"ssd_eval.cli.{name}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"ssd_eval.cli.{name}":
                raise
    return modules


class CommandLineError(SsdEvalError):
    """The command line itself is wrong: an unknown flag, a bad value, a missing argument (exit 2)."""

    def __init__(self, message: str, prog: str) -> None:
        super().__init__(message)
        self.message = message
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """argparse without its usage block: an error is raised, and `main` makes it one line."""

    def error(self, message: str) -> NoReturn:
        raise CommandLineError(message, self.prog)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ssd-eval",
        description="COCO box mAP of the ONNX Model Zoo SSD-ResNet34 detector on onnxruntime.",
    )
    parser.add_argument("--version", action="version", version=f"ssd_eval {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _subcommand_modules():
        module.add_parser(subparsers)
    return parser


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found: argparse.ArgumentParser | None = action.choices.get(name)
            return found
    return None


def _did_you_mean(word: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def usage_line(error: CommandLineError, parser: argparse.ArgumentParser, command: str, implied: bool) -> str:
    """One line for a command-line error: what is wrong, the likely intended word, where the help is."""
    message = error.message
    sub = _subparser(parser, command)
    prog = sub.prog if sub is not None else error.prog
    unknown = re.match(r"unrecognized arguments: (\S+)", message)
    choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    hint = ""
    if unknown and unknown[1].startswith("-") and sub is not None:
        options = [o for action in sub._actions for o in action.option_strings if o.startswith("--")]
        hint = _did_you_mean(unknown[1].split("=")[0], options)
    elif unknown and implied:
        # `ssd-eval scroe RUN`: the word was taken as an argument of the implied `run` command.
        hint = _did_you_mean(unknown[1], sorted(_subcommand_names(parser)))
        hint = hint.replace("did you mean ", "did you mean ssd-eval ")
        prog = parser.prog
    elif choice:
        hint = _did_you_mean(choice[1], re.findall(r"'([^']*)'", choice[2]))
    return f"{error.prog}: error: {message}{hint} (see {prog} --help)"


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
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="errors only: nothing on stdout, no warnings, no progress; the verdict is in the exit code "
        "and the files written",
    )


def main(argv: Sequence[str] | None = None) -> int:
    interrupts = Interrupts()
    interrupts.install()
    try:
        return _main(list(sys.argv[1:] if argv is None else argv), interrupts)
    except KeyboardInterrupt:  # before the command started (or with --debug)
        return interrupts.report()
    finally:
        interrupts.restore()


def _main(args_list: list[str], interrupts: Interrupts) -> int:
    command_line = ("ssd-eval", *args_list)  # as given, recorded in metrics.json
    parser = build_parser()
    known = _subcommand_names(parser)
    # `ssd-eval --config X` means `ssd-eval run --config X`: the everyday command needs no verb.
    first = args_list[0] if args_list else ""
    implied = first not in known and first not in ("-h", "--help", "--version")
    if implied:
        args_list.insert(0, "run")
    try:
        args = parser.parse_args(args_list)
    except CommandLineError as exc:
        print(usage_line(exc, parser, args_list[0], implied), file=sys.stderr)
        return exc.exit_code
    args.command_line = command_line
    debug = args.debug  # every subcommand has the common flags (add_common_arguments)
    quiet = args.quiet and not debug
    logging.basicConfig(
        level=logging.DEBUG if debug else (logging.ERROR if quiet else logging.INFO),
        format="%(levelname)s %(name)s: %(message)s" if debug else "%(message)s",
        stream=sys.stderr,
    )
    # The data stage refuses images above dataset.max_image_pixels itself, with one line (or a skip);
    # Pillow's own warning for them would only add lines.
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    args.remember_run_dir = interrupts.remember_run_dir
    stdout = _Stdout(sys.stdout, discard=quiet)
    with warnings.catch_warnings():
        if quiet:
            warnings.simplefilter("ignore")
        try:
            sys.stdout = stdout  # write and flush: all that print needs
            return _run_handler(args, interrupts, debug)
        finally:
            sys.stdout = stdout.stream
            stdout.flush()


def _run_handler(args: argparse.Namespace, interrupts: Interrupts, debug: bool) -> int:
    """The subcommand itself: its exit code, an SsdEvalError as one line, a bug as one line and exit 3."""
    try:
        code: int = args.handler(args)
        return code
    except SsdEvalError as exc:
        if debug:
            raise
        print(f"ssd-eval: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return interrupts.report()
    except Exception as exc:  # last line of defence: one line, exit 3, traceback with --debug
        if debug:
            raise
        if isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG:
            # A path given on the command line or in a config that no file system can hold.
            name = str(exc.filename or "")
            shown = name if len(name) <= 60 else name[:57] + "..."
            print(f"ssd-eval: error: file name too long: {shown!r}; give a shorter path", file=sys.stderr)
            return EXIT_USAGE
        if isinstance(exc, OSError) and exc.errno in _DISK_ERRORS:
            # A full disk or read-only folder met outside the run's own guarded writes (e.g. junit.xml).
            where = f" {exc.filename}" if exc.filename else ""
            resume = f"; a run continues with --resume {interrupts.run_dir}" if interrupts.run_dir else ""
            print(f"ssd-eval: error: cannot write{where}: {exc.strerror}{resume}", file=sys.stderr)
            return EXIT_USAGE
        print(
            f"ssd-eval: internal error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
