"""The command line's own decisions (ssd_eval/cli/__init__.py), in-process: exit codes (0 ok, 1 gate
failed, 2 usage/config/input error, 3 internal error), the one-line usage error, the implied `run`,
--quiet / --debug, and a reader of stdout that goes away. A `probe` subcommand stands for any command
whose handler returns, prints or raises what a test needs."""

from __future__ import annotations

import argparse
import errno
import io
import logging
import os
import signal
import sys
import types
import warnings
from collections.abc import Callable

import pytest
from PIL import Image

import ssd_eval.cli as cli
from ssd_eval.cli import CommandLineError, _Stdout, add_common_arguments, build_parser, main, positive_int
from ssd_eval.errors import ConfigError, SsdEvalError

COMMANDS = ["run", "check", "fetch", "compare", "score", "merge", "baseline", "providers", "import"]


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[argparse.Namespace], int]], None]:
    """Add a `probe` subcommand whose handler is the function given."""
    real = cli._subcommand_modules

    def use(handler: Callable[[argparse.Namespace], int]) -> None:
        def add_parser(subparsers: argparse._SubParsersAction) -> None:
            parser = subparsers.add_parser("probe")
            parser.add_argument("words", nargs="*")
            add_common_arguments(parser)
            parser.set_defaults(handler=handler)

        module = types.ModuleType("probe")
        module.add_parser = add_parser  # type: ignore[attr-defined]
        monkeypatch.setattr(cli, "_subcommand_modules", lambda: [*real(), module])

    return use


def _err_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


# --- the parser ---------------------------------------------------------------------------------------


def test_the_parser_has_every_subcommand_in_order():
    parser = build_parser()
    assert parser.prog == "ssd-eval"
    assert parser.description == "COCO box mAP of the ONNX Model Zoo SSD-ResNet34 detector on onnxruntime."
    assert list(cli._subcommand_names(parser)) and sorted(cli._subcommand_names(parser)) == sorted(COMMANDS)
    modules = [module.__name__ for module in cli._subcommand_modules()]
    assert modules == [f"ssd_eval.cli.{name}" for name in COMMANDS[:-1]] + ["ssd_eval.cli.import_detections"]


def test_the_usage_names_the_command_slot():
    assert build_parser().format_usage() == "usage: ssd-eval [-h] [--version] COMMAND ...\n"


def test_every_subcommand_has_the_common_flags():
    parser = build_parser()
    for name in COMMANDS:
        sub = cli._subparser(parser, name)
        assert sub is not None
        flags = {option for action in sub._actions for option in action.option_strings}
        assert {"--debug", "--quiet"} <= flags, name


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_is_the_whole_tools_not_runs(capsys, flag):
    with pytest.raises(SystemExit) as info:
        main([flag])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith(
        "usage: ssd-eval [-h] [--version] COMMAND ...\n\nCOCO box mAP of the ONNX Model Zoo SSD-ResNet34 "
        "detector on onnxruntime.\n"
    )


def test_no_arguments_is_run_without_a_config(capsys):
    assert main([]) == 2
    assert _err_lines(capsys) == [
        "ssd-eval: error: no config given: use --config configs/coco_val.yaml (or a bundled name such as "
        "smoke.yaml), or --resume RUN_DIR"
    ]


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == "ssd_eval 0.1.0\n"


def test_a_subcommand_module_missing_from_the_install_is_left_out(monkeypatch):
    import importlib

    real = importlib.import_module

    def missing_merge(name: str) -> types.ModuleType:
        if name == "ssd_eval.cli.merge":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real(name)

    monkeypatch.setattr(importlib, "import_module", missing_merge)
    names = [module.__name__.rsplit(".", 1)[1] for module in cli._subcommand_modules()]
    assert names == [
        "run",
        "check",
        "fetch",
        "compare",
        "score",
        "baseline",
        "providers",
        "import_detections",
    ]


def test_a_subcommand_module_whose_own_import_fails_is_an_error(monkeypatch):
    """Only the module itself may be missing: a dependency it imports that is missing is a real error."""
    import importlib

    real = importlib.import_module

    def broken_merge(name: str) -> types.ModuleType:
        if name == "ssd_eval.cli.merge":
            raise ModuleNotFoundError("No module named 'yaml'", name="yaml")
        return real(name)

    monkeypatch.setattr(importlib, "import_module", broken_merge)
    with pytest.raises(ModuleNotFoundError, match="yaml"):
        cli._subcommand_modules()


def test_the_common_flags():
    parser = argparse.ArgumentParser()
    add_common_arguments(parser)
    assert vars(parser.parse_args([])) == {"debug": False, "quiet": False}
    assert vars(parser.parse_args(["--debug", "--quiet"])) == {"debug": True, "quiet": True}
    helps = {action.dest: action.help for action in parser._actions}
    assert helps["debug"] == "show tracebacks and debug logging"
    assert helps["quiet"] == (
        "errors only: nothing on stdout, no warnings, no progress; the verdict is in the exit code and the "
        "files written"
    )


@pytest.mark.parametrize(("text", "value"), [("1", 1), ("42", 42), (" 7 ", 7)])
def test_positive_int_accepts_whole_numbers_from_1(text, value):
    assert positive_int(text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "must be >= 1, got 0"),
        ("-5", "must be >= 1, got -5"),
        ("2.5", "expected a whole number, got '2.5'"),
        ("ten", "expected a whole number, got 'ten'"),
    ],
)
def test_positive_int_refuses_the_rest(text, message):
    with pytest.raises(argparse.ArgumentTypeError) as info:
        positive_int(text)
    assert str(info.value) == message


def test_a_command_line_error_is_a_usage_error_naming_the_program():
    error = CommandLineError("bad", "ssd-eval run")
    assert (error.message, error.prog, error.exit_code, str(error)) == ("bad", "ssd-eval run", 2, "bad")


# --- one usage line -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["--confg", "x"],
            "ssd-eval: error: unrecognized arguments: --confg x; did you mean --config? "
            "(see ssd-eval run --help)",
        ),
        (
            ["run", "--confg=x"],
            "ssd-eval: error: unrecognized arguments: --confg=x; did you mean --config? "
            "(see ssd-eval run --help)",
        ),
        (
            # the flag is matched without its value
            ["run", "--confg=/a/much/longer/path/to/the/config.yaml"],
            "ssd-eval: error: unrecognized arguments: --confg=/a/much/longer/path/to/the/config.yaml; "
            "did you mean --config? (see ssd-eval run --help)",
        ),
        (
            ["--config", "c.yaml", "--zzzzzz"],
            "ssd-eval: error: unrecognized arguments: --zzzzzz (see ssd-eval run --help)",
        ),
        (
            ["scroe", "x"],
            "ssd-eval: error: unrecognized arguments: scroe x; did you mean ssd-eval score? "
            "(see ssd-eval --help)",
        ),
        (["zzzzzz"], "ssd-eval: error: unrecognized arguments: zzzzzz (see ssd-eval --help)"),
        (
            ["providers", "extra"],
            "ssd-eval: error: unrecognized arguments: extra (see ssd-eval providers --help)",
        ),
        (
            ["providers", "--debgu"],
            "ssd-eval: error: unrecognized arguments: --debgu; did you mean --debug? (see ssd-eval providers "
            "--help)",
        ),
        (
            ["fetch", "modle"],
            "ssd-eval fetch: error: argument what: invalid choice: 'modle' (choose from 'model', 'data', "
            "'annotations', 'all'); did you mean model? (see ssd-eval fetch --help)",
        ),
        (
            ["fetch", "zzzzzz"],
            "ssd-eval fetch: error: argument what: invalid choice: 'zzzzzz' (choose from 'model', 'data', "
            "'annotations', 'all') (see ssd-eval fetch --help)",
        ),
        (
            ["run", "--limit", "0", "--config", "c.yaml"],
            "ssd-eval run: error: argument --limit: must be >= 1, got 0 (see ssd-eval run --help)",
        ),
        (
            ["--config"],
            "ssd-eval run: error: argument --config/-c: expected one argument (see ssd-eval run --help)",
        ),
    ],
)
def test_a_command_line_error_is_one_line_with_the_likely_word(capsys, argv, line):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [line]
    assert captured.out == ""


def test_the_usage_line_of_an_error_outside_any_subcommand():
    """A subcommand the parser does not know: the error's own program is the one to ask for help."""
    parser = build_parser()
    error = CommandLineError("something is wrong", "ssd-eval")
    assert cli.usage_line(error, parser, "--help", implied=False) == (
        "ssd-eval: error: something is wrong (see ssd-eval --help)"
    )
    assert cli._subparser(argparse.ArgumentParser(), "run") is None
    assert cli._subcommand_names(argparse.ArgumentParser()) == set()


# --- the handler's outcome as an exit code and one line ------------------------------------------------


class _GateFailed(SsdEvalError):
    exit_code = 5


@pytest.mark.parametrize(
    ("raised", "code", "line"),
    [
        (ConfigError("c.yaml: model: unknown key"), 2, "ssd-eval: error: c.yaml: model: unknown key"),
        (_GateFailed("its own code"), 5, "ssd-eval: error: its own code"),
        (
            RuntimeError("boom"),
            3,
            "ssd-eval: internal error: RuntimeError: boom (rerun with --debug for a traceback)",
        ),
        (
            OSError(errno.EACCES, "Permission denied", "f.txt"),
            3,
            "ssd-eval: internal error: PermissionError: [Errno 13] Permission denied: 'f.txt' (rerun with "
            "--debug for a traceback)",
        ),
        (
            OSError(errno.ENAMETOOLONG, "File name too long", "a" * 100),
            2,
            f"ssd-eval: error: file name too long: '{'a' * 57}...'; give a shorter path",
        ),
        (
            OSError(errno.ENAMETOOLONG, "File name too long", "b" * 60),
            2,
            f"ssd-eval: error: file name too long: '{'b' * 60}'; give a shorter path",
        ),
        (
            OSError(errno.ENAMETOOLONG, "File name too long", "c" * 61),
            2,
            f"ssd-eval: error: file name too long: '{'c' * 57}...'; give a shorter path",
        ),
        (
            OSError(errno.ENAMETOOLONG, "File name too long"),
            2,
            "ssd-eval: error: file name too long: ''; give a shorter path",
        ),
        (
            OSError(errno.ENOSPC, "No space left on device", "/r/junit.xml"),
            2,
            "ssd-eval: error: cannot write /r/junit.xml: No space left on device",
        ),
        (
            OSError(errno.EDQUOT, "Disk quota exceeded", "/r/summary.md"),
            2,
            "ssd-eval: error: cannot write /r/summary.md: Disk quota exceeded",
        ),
        (
            OSError(errno.EROFS, "Read-only file system"),
            2,
            "ssd-eval: error: cannot write: Read-only file system",
        ),
    ],
)
def test_the_outcome_of_a_command_is_its_exit_code_and_one_line(probe, capsys, raised, code, line):
    def handler(args: argparse.Namespace) -> int:
        raise raised

    probe(handler)
    assert main(["probe"]) == code
    assert _err_lines(capsys) == [line]


def test_a_full_disk_during_a_run_names_the_folder_to_resume(probe, capsys, tmp_path):
    def handler(args: argparse.Namespace) -> int:
        args.remember_run_dir(tmp_path / "run")
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "junit.xml"))

    probe(handler)
    assert main(["probe"]) == 2
    assert _err_lines(capsys) == [
        f"ssd-eval: error: cannot write {tmp_path / 'run' / 'junit.xml'}: No space left on device; a run "
        f"continues with --resume {tmp_path / 'run'}"
    ]


@pytest.mark.parametrize("code", [0, 1])
def test_the_handlers_code_is_the_exit_code(probe, capsys, code):
    probe(lambda args: code)
    assert main(["probe"]) == code
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("raised", [ConfigError("bad"), RuntimeError("boom"), OSError(errno.ENOSPC, "full")])
def test_debug_shows_the_traceback(probe, raised):
    def handler(args: argparse.Namespace) -> int:
        raise raised

    probe(handler)
    with pytest.raises(type(raised)):
        main(["probe", "--debug"])


def test_an_interrupt_in_the_command_is_exit_130_and_names_the_run_to_resume(probe, capsys, tmp_path):
    (tmp_path / "config.yaml").write_text("")

    def handler(args: argparse.Namespace) -> int:
        args.remember_run_dir(tmp_path)
        raise KeyboardInterrupt

    probe(handler)
    assert main(["probe"]) == 130
    assert _err_lines(capsys) == [
        f"ssd-eval: interrupted; all written so far is kept: continue with --resume {tmp_path}"
    ]


def test_an_interrupt_before_the_command_starts_is_exit_130(monkeypatch, capsys):
    def interrupted() -> argparse.ArgumentParser:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert main(["providers"]) == 130
    assert _err_lines(capsys) == [
        "ssd-eval: interrupted; what was produced so far is kept (a run continues with --resume and its run "
        "folder, a download resumes from its .part file)"
    ]


def test_the_signal_handlers_are_put_back_after_the_command(probe):
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    seen = []

    def handler(args: argparse.Namespace) -> int:
        seen.append(signal.getsignal(signal.SIGINT))
        return 0

    probe(handler)
    assert main(["probe"]) == 0
    assert seen and seen[0] not in (before[0], signal.SIG_DFL, signal.SIG_IGN)  # ours during the command
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


# --- what the handler is given ------------------------------------------------------------------------


def test_the_command_line_is_recorded_as_given(probe, monkeypatch):
    seen: list[tuple[str, ...]] = []

    def handler(args: argparse.Namespace) -> int:
        seen.append(args.command_line)
        return 0

    probe(handler)
    assert main(["probe", "a", "b"]) == 0
    monkeypatch.setattr(sys, "argv", ["/usr/bin/ssd-eval", "probe", "c"])
    assert main() == 0
    assert seen == [("ssd-eval", "probe", "a", "b"), ("ssd-eval", "probe", "c")]


def test_run_is_implied_and_recorded_without_it(monkeypatch):
    import ssd_eval.cli.run as run

    seen: list[argparse.Namespace] = []

    def handler(args: argparse.Namespace) -> int:
        seen.append(args)
        return 0

    real = run.add_parser

    def add_parser(subparsers: argparse._SubParsersAction) -> None:
        real(subparsers)
        subparsers.choices["run"].set_defaults(handler=handler)

    monkeypatch.setattr(run, "add_parser", add_parser)
    assert main(["--config", "c.yaml"]) == 0
    assert main(["run", "--config", "d.yaml"]) == 0
    assert [(a.command, a.config, a.command_line) for a in seen] == [
        ("run", "c.yaml", ("ssd-eval", "--config", "c.yaml")),
        ("run", "d.yaml", ("ssd-eval", "run", "--config", "d.yaml")),
    ]


@pytest.mark.parametrize(
    ("flags", "level", "form"),
    [
        ([], logging.INFO, "%(message)s"),
        (["--quiet"], logging.ERROR, "%(message)s"),
        (["--debug"], logging.DEBUG, "%(levelname)s %(name)s: %(message)s"),
        (["--quiet", "--debug"], logging.DEBUG, "%(levelname)s %(name)s: %(message)s"),
    ],
)
def test_logging_follows_quiet_and_debug(probe, monkeypatch, capsys, flags, level, form):
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # as in a fresh process: basicConfig configures
    monkeypatch.setattr(root, "level", root.level)
    probe(lambda args: 0)
    assert main(["probe", *flags]) == 0
    assert root.level == level
    [handler] = root.handlers
    assert isinstance(handler, logging.StreamHandler) and handler.stream is sys.stderr
    assert handler.formatter is not None and handler.formatter._fmt == form


def test_quiet_silences_stdout_and_warnings_but_not_errors(probe, capsys):
    seen: list[int] = []

    def handler(args: argparse.Namespace) -> int:
        print("a table")
        with warnings.catch_warnings(record=True) as caught:
            warnings.warn("something", UserWarning, stacklevel=1)
        seen.append(len(caught))
        raise ConfigError("the error")

    probe(handler)
    assert main(["probe", "--quiet"]) == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "ssd-eval: error: the error\n")
    assert main(["probe"]) == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("a table\n", "ssd-eval: error: the error\n")
    assert seen == [0, 1]


def test_pillows_decompression_bomb_warning_is_not_shown(probe):
    """The data stage says it itself, in one line."""
    caught_in_command: list[list[str]] = []

    def handler(args: argparse.Namespace) -> int:
        with warnings.catch_warnings(record=True) as caught:
            warnings.warn("huge", Image.DecompressionBombWarning, stacklevel=1)
            warnings.warn("other", RuntimeWarning, stacklevel=1)
        caught_in_command.append([str(w.message) for w in caught])
        return 0

    probe(handler)
    assert main(["probe"]) == 0
    assert caught_in_command == [["other"]]


def test_stdout_is_put_back_and_flushed(probe, monkeypatch):
    class Stream(io.StringIO):
        flushes = 0

        def flush(self) -> None:
            Stream.flushes += 1
            super().flush()

    stream = Stream()
    monkeypatch.setattr(sys, "stdout", stream)
    during: list[object] = []

    def handler(args: argparse.Namespace) -> int:
        during.append(sys.stdout)
        sys.stdout.write("x")
        return 0

    probe(handler)
    Stream.flushes = 0
    assert main(["probe"]) == 0
    assert sys.stdout is stream and stream.getvalue() == "x"
    assert isinstance(during[0], _Stdout) and during[0].stream is stream
    assert Stream.flushes >= 1


# --- stdout whose reader went away --------------------------------------------------------------------


class _BrokenPipe(io.StringIO):
    """A stream whose reader is gone; its descriptor is `fd`, or `fd` is what asking for it raises."""

    def __init__(self, fd: int | Exception) -> None:
        super().__init__()
        self.fd = fd
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    def fileno(self) -> int:
        if isinstance(self.fd, Exception):
            raise self.fd
        return self.fd


def test_discard_writes_nothing_and_counts_every_character():
    stream = io.StringIO()
    out = _Stdout(stream, discard=True)
    assert out.write("abc") == 3
    out.flush()
    assert stream.getvalue() == ""


def test_a_writable_stdout_gets_everything():
    stream = io.StringIO()
    out = _Stdout(stream, discard=False)
    assert out.write("abc") == 3 and out.write("de") == 2
    assert stream.getvalue() == "abcde"


@pytest.mark.parametrize("first", ["write", "flush"])
def test_a_reader_gone_ends_the_output_and_points_the_descriptor_at_devnull(first):
    read_end, write_end = os.pipe()
    try:
        stream = _BrokenPipe(write_end)
        out = _Stdout(stream, discard=False)
        if first == "write":
            assert out.write("lost") == 4
        else:
            out.flush()
        assert out.write("more") == 4  # not written again: no second BrokenPipeError
        out.flush()
        assert stream.writes == (1 if first == "write" else 0)
        # The descriptor now goes to /dev/null: the pipe's write end is closed, so its reader sees the end.
        assert os.write(write_end, b"buffered") == 8
        assert os.read(read_end, 100) == b""
    finally:
        os.close(read_end)
        os.close(write_end)


@pytest.mark.parametrize(
    "no_descriptor",
    [AttributeError("fileno"), ValueError("I/O operation on closed file"), OSError(errno.EBADF, "bad")],
)
def test_a_reader_gone_from_a_stream_without_a_descriptor_is_quiet(no_descriptor):
    stream = _BrokenPipe(no_descriptor)
    out = _Stdout(stream, discard=False)
    assert out.write("x") == 1
    assert out.write("y") == 1
    assert stream.writes == 1


def test_a_reader_gone_opens_no_descriptor_that_stays_open():
    read_end, write_end = os.pipe()
    try:
        before = sorted(os.listdir("/proc/self/fd"))
        _Stdout(_BrokenPipe(write_end), discard=False).write("x")
        assert sorted(os.listdir("/proc/self/fd")) == before
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_closed_pipe_on_stdout_keeps_the_commands_exit_code(probe, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdout", _BrokenPipe(AttributeError("fileno")))

    def handler(args: argparse.Namespace) -> int:
        print("row 1")
        print("row 2")
        return 1

    probe(handler)
    assert main(["probe"]) == 1
    assert capsys.readouterr().err == ""
