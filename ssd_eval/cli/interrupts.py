"""Ctrl-C and SIGTERM end a command with one line and exit 130 / 143, however often they come.

The first signal raises `KeyboardInterrupt` (SIGTERM too, as `Terminated`), so every cleanup written
for Ctrl-C runs: the feeder threads are joined, the detection log is closed, the run folder's lock
is released. A second signal while that cleanup runs does not start a traceback inside it: the
process ends at once with the same line and exit code. Nothing is lost by that: every detection
line is written before the next image starts, and a torn last line is dropped by `--resume`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as an interrupt so that the cleanup written for Ctrl-C runs for it too."""


class Interrupts:
    """The signal handling of one CLI command; it also knows the run folder to name for --resume."""

    def __init__(self) -> None:
        self.exit_code: int | None = None  # set by the first signal
        self.run_dir: Path | None = None
        self._reported = False
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        """Handle SIGINT and SIGTERM (only possible in the main thread; elsewhere Python's defaults stay)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def restore(self) -> None:
        """Put the previous handlers back; after a signal, ignore further ones instead: the process is
        ending, its line is printed, and Python's shutdown would reset any handler of ours to the
        default one (a later SIGTERM would then kill the process without its exit code)."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if self.exit_code is None else signal.SIG_IGN)
        self._previous.clear()

    def remember_run_dir(self, folder: Path) -> None:
        self.run_dir = folder

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.exit_code is None:
            self.exit_code = 128 + signum
            if signum == signal.SIGTERM:
                raise Terminated
            raise KeyboardInterrupt
        # A repeated signal during the cleanup: end now, as the first one would have.
        if not self._reported:
            self._reported = True
            _write_stderr(self.message() + "\n")
        os._exit(self.exit_code)

    def report(self) -> int:
        """Print the one line (once) and return the exit code."""
        code = self.exit_code if self.exit_code is not None else EXIT_INTERRUPTED
        if not self._reported:
            self._reported = True
            print(self.message(), file=sys.stderr, flush=True)
        return code

    def message(self) -> str:
        what = "terminated (SIGTERM)" if self.exit_code == EXIT_TERMINATED else "interrupted"
        from ssd_eval.files import COMPARE_CONFIG_FILE, CONFIG_FILE

        started = self.run_dir is not None and any(
            (self.run_dir / name).is_file() for name in (CONFIG_FILE, COMPARE_CONFIG_FILE)
        )
        if started:
            return f"ssd-eval: {what}; all written so far is kept: continue with --resume {self.run_dir}"
        return (
            f"ssd-eval: {what}; what was produced so far is kept (a run continues with --resume and "
            "its run folder, a download resumes from its .part file)"
        )


def _write_stderr(text: str) -> None:
    """Write from a signal handler: no Python-level buffer, which may be in use by the interrupted code."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        fd = 2
    with contextlib.suppress(OSError):
        os.write(fd, text.encode("utf-8", "replace"))
