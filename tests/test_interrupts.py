"""Ctrl-C and SIGTERM (ssd_eval/cli/interrupts.py), in-process: the first signal is an interrupt the
cleanup sees, a repeated one ends the process at once with the same one line, and the exit code is
128 + the signal (130 for SIGINT, 143 for SIGTERM). tests/test_faults_cli.py does the same to a real
process."""

from __future__ import annotations

import io
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ssd_eval.cli import interrupts as module
from ssd_eval.cli.interrupts import EXIT_INTERRUPTED, EXIT_TERMINATED, Interrupts, Terminated

GENERIC = (
    "what was produced so far is kept (a run continues with --resume and its run folder, a download "
    "resumes from its .part file)"
)


class _Exited(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@pytest.fixture(autouse=True)
def _handlers_kept() -> Iterator[None]:
    """Whatever a test does to the signal handlers, the next test starts with the ones before."""
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in before.items():
        signal.signal(signum, handler)


@pytest.fixture
def exits(monkeypatch: pytest.MonkeyPatch) -> None:
    """os._exit raises instead of ending the test process."""

    def _exit(code: int) -> None:
        raise _Exited(code)

    monkeypatch.setattr(os, "_exit", _exit)


def _assert_installed(interrupts: Interrupts) -> None:
    """Before a real signal is sent to the test process: Python's own SIGTERM handling would end it (a
    handler not installed then ends the whole test run instead of failing this test)."""
    assert signal.getsignal(signal.SIGINT) == interrupts._on_signal
    assert signal.getsignal(signal.SIGTERM) == interrupts._on_signal


def test_the_exit_codes_are_128_plus_the_signal():
    assert (EXIT_INTERRUPTED, EXIT_TERMINATED) == (130, 143)
    assert issubclass(Terminated, KeyboardInterrupt)


def test_a_new_handler_has_seen_nothing():
    interrupts = Interrupts()
    assert (interrupts.exit_code, interrupts.run_dir) == (None, None)


def test_install_handles_both_signals_and_restore_puts_the_previous_back():
    previous_int, previous_term = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    interrupts = Interrupts()
    interrupts.install()
    assert signal.getsignal(signal.SIGINT) == interrupts._on_signal
    assert signal.getsignal(signal.SIGTERM) == interrupts._on_signal
    interrupts.restore()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == (
        previous_int,
        previous_term,
    )
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    interrupts.restore()  # a second restore changes nothing: it has nothing left to put back
    assert signal.getsignal(signal.SIGINT) == signal.SIG_DFL


def test_outside_the_main_thread_nothing_is_installed():
    previous = signal.getsignal(signal.SIGINT)
    interrupts = Interrupts()
    thread = threading.Thread(target=interrupts.install)
    thread.start()
    thread.join()
    assert signal.getsignal(signal.SIGINT) == previous
    interrupts.restore()
    assert signal.getsignal(signal.SIGINT) == previous


def test_after_a_signal_restore_ignores_further_ones():
    interrupts = Interrupts()
    interrupts.install()
    _assert_installed(interrupts)
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
    interrupts.restore()
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN


def test_a_real_sigterm_is_terminated_with_143():
    interrupts = Interrupts()
    interrupts.install()
    _assert_installed(interrupts)
    with pytest.raises(KeyboardInterrupt) as terminated:
        os.kill(os.getpid(), signal.SIGTERM)
    assert terminated.type is Terminated
    assert interrupts.exit_code == 143


def test_the_first_sigint_is_a_keyboard_interrupt_not_terminated():
    interrupts = Interrupts()
    with pytest.raises(KeyboardInterrupt) as info:
        interrupts._on_signal(signal.SIGINT, None)
    assert type(info.value) is KeyboardInterrupt
    assert interrupts.exit_code == 130


def test_the_first_sigterm_is_terminated():
    interrupts = Interrupts()
    with pytest.raises(KeyboardInterrupt) as terminated:
        interrupts._on_signal(signal.SIGTERM, None)
    assert terminated.type is Terminated
    assert interrupts.exit_code == 143


@pytest.mark.parametrize(
    ("first", "then", "code", "what"),
    [
        (signal.SIGINT, signal.SIGINT, 130, "interrupted"),
        (signal.SIGTERM, signal.SIGINT, 143, "terminated (SIGTERM)"),
        (signal.SIGINT, signal.SIGTERM, 130, "interrupted"),
    ],
)
def test_a_repeated_signal_ends_at_once_with_the_first_ones_line_and_code(
    exits, capfd, first, then, code, what
):
    interrupts = Interrupts()
    with pytest.raises(KeyboardInterrupt):
        interrupts._on_signal(first, None)
    with pytest.raises(_Exited) as info:
        interrupts._on_signal(then, None)
    assert info.value.code == code
    with pytest.raises(_Exited) as info:  # a third: the line is not repeated
        interrupts._on_signal(then, None)
    assert info.value.code == code
    assert capfd.readouterr().err == f"ssd-eval: {what}; {GENERIC}\n"
    assert interrupts.report() == code  # the line was printed: not again
    assert capfd.readouterr().err == ""


def test_report_prints_the_line_once(capsys):
    interrupts = Interrupts()
    assert interrupts.report() == 130  # an interrupt seen before any handler
    assert interrupts.report() == 130
    assert capsys.readouterr().err == f"ssd-eval: interrupted; {GENERIC}\n"


def test_report_flushes_its_line(monkeypatch):
    """A second signal ends the process with os._exit, which flushes nothing: the line must be out."""

    class Stream(io.StringIO):
        flushed = ""

        def flush(self) -> None:
            Stream.flushed = self.getvalue()

    stream = Stream()
    monkeypatch.setattr(module.sys, "stderr", stream)
    Interrupts().report()
    assert Stream.flushed == f"ssd-eval: interrupted; {GENERIC}\n"


def test_report_after_sigterm(capsys):
    interrupts = Interrupts()
    with pytest.raises(KeyboardInterrupt) as terminated:
        interrupts._on_signal(signal.SIGTERM, None)
    assert terminated.type is Terminated
    assert interrupts.report() == 143
    assert capsys.readouterr().err == f"ssd-eval: terminated (SIGTERM); {GENERIC}\n"


@pytest.mark.parametrize("written", ["config.yaml", "compare.yaml"])
def test_a_started_run_is_named_for_resume(tmp_path, written):
    (tmp_path / written).write_text("")
    interrupts = Interrupts()
    interrupts.remember_run_dir(tmp_path)
    assert interrupts.run_dir == tmp_path
    assert (
        interrupts.message()
        == f"ssd-eval: interrupted; all written so far is kept: continue with --resume {tmp_path}"
    )


def test_a_run_folder_without_its_config_is_not_named(tmp_path):
    """The lock made the folder, but the run had not started: --resume could not continue it."""
    (tmp_path / "other.yaml").write_text("")
    (tmp_path / "config.yaml.tmp").write_text("")
    (tmp_path / "compare.yaml").mkdir()
    interrupts = Interrupts()
    interrupts.remember_run_dir(tmp_path)
    assert interrupts.message() == f"ssd-eval: interrupted; {GENERIC}"
    interrupts.remember_run_dir(tmp_path / "gone")
    assert interrupts.message() == f"ssd-eval: interrupted; {GENERIC}"


def test_a_terminated_run_is_named_for_resume(tmp_path):
    (tmp_path / "config.yaml").write_text("")
    interrupts = Interrupts()
    interrupts.remember_run_dir(tmp_path)
    with pytest.raises(KeyboardInterrupt) as terminated:
        interrupts._on_signal(signal.SIGTERM, None)
    assert terminated.type is Terminated
    assert interrupts.message() == (
        f"ssd-eval: terminated (SIGTERM); all written so far is kept: continue with --resume {tmp_path}"
    )


class _NoDescriptor:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def fileno(self) -> int:
        raise self.error


@pytest.mark.parametrize(
    "stderr", [_NoDescriptor(ValueError("closed")), _NoDescriptor(OSError(9, "bad")), object()]
)
def test_write_stderr_falls_back_to_descriptor_2(monkeypatch, capfd, stderr):
    monkeypatch.setattr(module.sys, "stderr", stderr)
    module._write_stderr("the line é\n")
    assert capfd.readouterr().err == "the line é\n"


def test_write_stderr_uses_stderrs_descriptor(monkeypatch, tmp_path: Path):
    with open(tmp_path / "err.txt", "w") as stream:
        monkeypatch.setattr(module.sys, "stderr", stream)
        module._write_stderr("to the file\n")
    assert (tmp_path / "err.txt").read_text() == "to the file\n"


def test_write_stderr_survives_a_descriptor_that_cannot_be_written(monkeypatch):
    def refuse(fd: int, data: bytes) -> int:
        raise OSError(9, "Bad file descriptor")

    monkeypatch.setattr(os, "write", refuse)
    module._write_stderr("lost\n")  # no exception: the process is ending anyway


def test_write_stderr_replaces_what_utf8_cannot_hold(capfd, monkeypatch):
    monkeypatch.setattr(module.sys, "stderr", object())
    module._write_stderr("\udcff\n")  # a surrogate from a file name in a foreign encoding
    assert capfd.readouterr().err == "?\n"
